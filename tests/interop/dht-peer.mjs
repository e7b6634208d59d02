#!/usr/bin/env node
// The JavaScript side of the DHT interop test (dht_test.sh): the reference
// HyperDHT (hyperdht 6.34.0 / dht-rpc 6.27.0, pinned in package.json) on
// 127.0.0.1 only. Every node is given its bootstrap list explicitly, so the
// public bootstrap nodes (node1..3.hyperdht.org) are never contacted.
//
//   node dht-peer.mjs testnet N [BOOTSTRAP]             N persistent nodes; prints {"bootstrap":"127.0.0.1:PORT","nodes":[..]}
//   node dht-peer.mjs announce BOOTSTRAP TOPIC SEED     announce TOPIC with keyPair(SEED), no relays; prints {"publicKey"}
//   node dht-peer.mjs lookup BOOTSTRAP TOPIC            one {"publicKey","relayAddresses","from"} line per unique peer
//                                                       found, "from" being the nodes that held its record (none: no line, exit 0)
//   node dht-peer.mjs immutable-put BOOTSTRAP VALUE     prints {"hash"}
//   node dht-peer.mjs immutable-get BOOTSTRAP HASH      prints {"value"}; exit 1 when not found
//   node dht-peer.mjs mutable-put BOOTSTRAP SEED VALUE SEQ   prints {"publicKey","seq"}
//   node dht-peer.mjs mutable-get BOOTSTRAP PUBKEY      prints {"seq","value"}; exit 1 when not found
//
// BOOTSTRAP is host:port or a comma-separated list of them; TOPIC, SEED, HASH
// and PUBKEY are 64 hex characters; VALUE is UTF-8 text. For testnet, the
// optional BOOTSTRAP makes the first node join that network (for instance
// p2p nodes) instead of starting a new one; the other nodes bootstrap from
// the same list (hyperdht's testnet.js), and the printed bootstrap is the
// first JavaScript node.
//
// In hyperdht's testnet the first node (the printed bootstrap) stays
// ephemeral, having nobody to learn its address from: it answers FIND_NODE
// (so it bootstraps others) but answers the HyperDHT commands (LOOKUP,
// ANNOUNCE, MUTABLE_GET, ...) with error 1 and stores nothing; records live
// on the other nodes.
//
// testnet and announce keep running until SIGTERM, SIGINT or end of standard
// input, then destroy their nodes and exit 0. Data goes to standard output,
// one JSON line each; messages to standard error.
//
// The put modes (announce, immutable-put, mutable-put) say on standard error
// how many nodes stored the record and which refused it with what error (the
// reference's put itself succeeds even when every node refuses, for instance
// with SEQ_REUSED); they exit 1, printing nothing, when no node stored it.
//
// Exit: 0 ok, 1 not found or failure, 2 usage, 3 timed out. One-shot modes
// and the start of serving modes are bounded by DHT_PEER_TIMEOUT seconds
// (default 30); a serving mode stops by itself after DHT_PEER_LIFETIME
// seconds (default 600).
import { createRequire } from 'module'
import HyperDHT from 'hyperdht'
import b4a from 'b4a'

const require = createRequire(import.meta.url)
const createTestnet = require('hyperdht/testnet.js')

const [mode, ...args] = process.argv.slice(2)
const log = (...a) => console.error('dht-peer:', ...a)
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

function usage (msg) {
  log(msg)
  process.exit(2)
}

const seconds = (name, dflt) => {
  const v = Number(process.env[name] || dflt)
  return Number.isFinite(v) && v > 0 ? v : dflt
}
let watchdog = setTimeout(() => {
  log(`${mode}: timed out after ${seconds('DHT_PEER_TIMEOUT', 30)} s`)
  process.exit(3)
}, seconds('DHT_PEER_TIMEOUT', 30) * 1000)
watchdog.unref()

function parseBootstrap (s) {
  if (!s) usage('missing BOOTSTRAP (host:port[,host:port...])')
  return s.split(',').filter(Boolean).map((hp) => {
    const i = hp.lastIndexOf(':')
    const host = hp.slice(0, i)
    const port = Number(hp.slice(i + 1))
    if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) usage(`bad bootstrap address: ${hp}`)
    return { host, port }
  })
}

function hex32 (s, what) {
  if (typeof s !== 'string' || !/^[0-9a-fA-F]{64}$/.test(s)) usage(`${what} must be 64 hex characters, got: ${s}`)
  return b4a.from(s, 'hex')
}

function text (s, what) {
  if (typeof s !== 'string') usage(`missing ${what}`)
  return b4a.from(s, 'utf-8')
}

const hex = (b) => b4a.toString(b, 'hex')

// A client node: ephemeral, on 127.0.0.1, on a random port. HyperDHT turns a
// port of 0 into its default 49737, so an empty port range [0, 0] is given to
// make dht-rpc bind port 0.
function client (bootstrap) {
  return new HyperDHT({ bootstrap, host: '127.0.0.1', port: [0, 0], ephemeral: true })
}

// Serve until SIGTERM, SIGINT or end of stdin, within DHT_PEER_LIFETIME; then close.
function serveUntilStopped (close) {
  clearTimeout(watchdog)
  watchdog = setTimeout(() => stop('lifetime over'), seconds('DHT_PEER_LIFETIME', 600) * 1000)
  let stopping = false
  async function stop (why) {
    if (stopping) return
    stopping = true
    log(`${mode}: stopping (${why})`)
    const force = setTimeout(() => { log(`${mode}: destroy timed out`); process.exit(3) }, 10000)
    force.unref()
    try {
      await close()
    } catch (err) {
      log(`${mode}: error while closing: ${err.message}`)
    }
    process.exit(0)
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.stdin.on('end', () => stop('stdin closed'))
  process.stdin.on('error', () => stop('stdin error'))
  process.stdin.resume()
}

// Counts the answers to the puts a query commits (the reference resolves a put
// even when every node refuses it, e.g. with SEQ_REUSED): wraps node.request,
// which the commit functions of announce, immutablePut and mutablePut call.
const ERRORS = { 1: 'UNKNOWN_COMMAND', 2: 'INVALID_TOKEN', 16: 'SEQ_REUSED', 17: 'SEQ_TOO_LOW' }
function countCommits (node) {
  const stats = { ok: 0, refused: [], failed: 0 }
  const request = node.request.bind(node)
  node.request = async (...a) => {
    try {
      const res = await request(...a)
      if (res.error) stats.refused.push(`${res.from.host}:${res.from.port} ${ERRORS[res.error] || res.error}`)
      else stats.ok++
      return res
    } catch (err) {
      stats.failed++
      throw err
    }
  }
  stats.report = (what) => {
    log(`${what}: stored on ${stats.ok} nodes, refused by ${stats.refused.length}` +
      (stats.refused.length ? ` (${stats.refused.join(', ')})` : '') +
      (stats.failed ? `, ${stats.failed} did not answer` : ''))
    return stats.ok > 0
  }
  return stats
}

async function finish (node, code) {
  try {
    await node.destroy()
  } catch {}
  process.exit(code)
}

async function main () {
  switch (mode) {
    case 'testnet': {
      const n = Number(args[0])
      if (!Number.isInteger(n) || n < 1 || n > 100) usage('testnet N: N is 1..100')
      const bootstrap = args[1] ? parseBootstrap(args[1]) : undefined
      const testnet = await createTestnet(n, { host: '127.0.0.1', bootstrap })
      const addrs = testnet.nodes.map((d) => `127.0.0.1:${d.address().port}`)
      out({ bootstrap: addrs[0], nodes: addrs })
      log(`testnet of ${n} nodes up: ${addrs.join(' ')}`)
      serveUntilStopped(() => testnet.destroy())
      return
    }

    case 'announce': {
      const bootstrap = parseBootstrap(args[0])
      const topic = hex32(args[1], 'TOPIC')
      const keyPair = HyperDHT.keyPair(hex32(args[2], 'SEED'))
      const node = client(bootstrap)
      const commits = countCommits(node)
      await node.announce(topic, keyPair, []).finished()
      if (!commits.report('announce')) {
        log('announce: no node stored the record')
        return finish(node, 1)
      }
      out({ publicKey: hex(keyPair.publicKey) })
      serveUntilStopped(() => node.destroy())
      return
    }

    case 'lookup': {
      const bootstrap = parseBootstrap(args[0])
      const topic = hex32(args[1], 'TOPIC')
      const node = client(bootstrap)
      const peers = new Map() // publicKey hex -> { relays, from }
      let replies = 0
      for await (const data of node.lookup(topic)) {
        replies++
        for (const peer of data.peers) {
          const pk = hex(peer.publicKey)
          if (!peers.has(pk)) {
            peers.set(pk, { relays: peer.relayAddresses.map((a) => `${a.host}:${a.port}`), from: new Set() })
          }
          peers.get(pk).from.add(`${data.from.host}:${data.from.port}`)
        }
      }
      log(`lookup: ${replies} replies with records, ${peers.size} unique peers`)
      for (const [pk, { relays, from }] of peers) {
        out({ publicKey: pk, relayAddresses: relays, from: [...from].sort() })
      }
      return finish(node, 0)
    }

    case 'immutable-put': {
      const bootstrap = parseBootstrap(args[0])
      const value = text(args[1], 'VALUE')
      const node = client(bootstrap)
      const commits = countCommits(node)
      const { hash } = await node.immutablePut(value)
      if (!commits.report('immutable-put')) return finish(node, 1)
      out({ hash: hex(hash) })
      return finish(node, 0)
    }

    case 'immutable-get': {
      const bootstrap = parseBootstrap(args[0])
      const hash = hex32(args[1], 'HASH')
      const node = client(bootstrap)
      const res = await node.immutableGet(hash)
      if (!res) {
        log('immutable-get: not found')
        return finish(node, 1)
      }
      log(`immutable-get: from ${res.from.host}:${res.from.port}`)
      out({ value: b4a.toString(res.value, 'utf-8') })
      return finish(node, 0)
    }

    case 'mutable-put': {
      const bootstrap = parseBootstrap(args[0])
      const keyPair = HyperDHT.keyPair(hex32(args[1], 'SEED'))
      const value = text(args[2], 'VALUE')
      const seq = Number(args[3] === undefined ? 0 : args[3])
      if (!Number.isSafeInteger(seq) || seq < 0) usage(`SEQ must be a non-negative integer, got: ${args[3]}`)
      const node = client(bootstrap)
      const commits = countCommits(node)
      const res = await node.mutablePut(keyPair, value, { seq })
      if (!commits.report('mutable-put')) return finish(node, 1)
      out({ publicKey: hex(res.publicKey), seq: res.seq })
      return finish(node, 0)
    }

    case 'mutable-get': {
      const bootstrap = parseBootstrap(args[0])
      const publicKey = hex32(args[1], 'PUBKEY')
      const node = client(bootstrap)
      const res = await node.mutableGet(publicKey)
      if (!res) {
        log('mutable-get: not found')
        return finish(node, 1)
      }
      log(`mutable-get: from ${res.from.host}:${res.from.port}`)
      out({ seq: res.seq, value: b4a.toString(res.value, 'utf-8') })
      return finish(node, 0)
    }

    default:
      usage(`unknown mode: ${mode} (testnet, announce, lookup, immutable-put, immutable-get, mutable-put, mutable-get)`)
  }
}

main().catch((err) => {
  log(`${mode}: ${err && err.stack ? err.stack : err}`)
  process.exit(1)
})
