#!/usr/bin/env node
// The JavaScript side of the swarm interop test (swarm_test.sh): the reference
// Hyperswarm (hyperswarm 4.17.2 on hyperdht 6.34.0, pinned in package.json)
// on 127.0.0.1 only. Every DHT node is given its bootstrap list explicitly, so
// the public bootstrap nodes (node1..3.hyperdht.org) are never contacted.
//
//   node swarm-peer.mjs testnet N
//       N persistent DHT nodes (hyperdht/testnet.js) on 127.0.0.1; prints
//       {"bootstrap":"127.0.0.1:PORT","nodes":[..]} and serves until SIGTERM,
//       SIGINT or end of standard input.
//   node swarm-peer.mjs pipe BOOTSTRAP TOPIC SEED MODE
//       A Hyperswarm with keyPair(SEED) joins TOPIC as MODE (server, client or
//       both). The first connection gets standard input (each chunk read is
//       one write) and its data goes to standard output; at the end of
//       standard input, once the peer has acknowledged everything written
//       (conn.flush(); see below), the connection is ended. Exits 0 when the
//       connection closes after both sides ended it, 1 when it closes before.
//       Why the flush: the secret stream (@hyperswarm/secret-stream 6.9)
//       destroys its UDX stream as soon as both of its sides have ended, and
//       libudx then sends DESTROY ahead of whatever it has not sent yet: a
//       peer that ends after the remote ended can lose the tail of its data,
//       and its END (the remote sees a reset). SWARM_PEER_NO_FLUSH=1 ends at
//       once, as a plain stdin.pipe(conn) would.
//   node swarm-peer.mjs events BOOTSTRAP TOPIC SEED MODE
//       As pipe, but only reports connections: one JSON line per connection
//       on standard output ({"event":"connected","publicKey","initiator"}),
//       and keeps running until SIGTERM, SIGINT or end of standard input.
//
// BOOTSTRAP is host:port or a comma-separated list of them; TOPIC and SEED are
// 64 hex characters. The public key is printed on standard error first
// ("swarm-peer: publicKey HEX"). Everything but the piped data (or the JSON
// lines) goes to standard error, including every connection attempt and its
// error code (PEER_NOT_FOUND, HOLEPUNCH_ABORTED, SERVER_ERROR, ...).
//
// Exit: 0 ok, 1 failure, 2 usage, 3 timed out (SWARM_PEER_TIMEOUT seconds,
// default 60, for pipe; SWARM_PEER_LIFETIME, default 290, for the serving
// modes). SWARM_PEER_TRACE=1 also logs every DHT request and response;
// SWARM_PEER_DIAL=KEY makes pipe also dial KEY directly (swarm.joinPeer).
import { createRequire } from 'module'
import Hyperswarm from 'hyperswarm'
import HyperDHT from 'hyperdht'
import b4a from 'b4a'

const require = createRequire(import.meta.url)
const createTestnet = require('hyperdht/testnet.js')

const [mode, ...args] = process.argv.slice(2)
const started = Date.now()
const log = (...a) => console.error(`swarm-peer[${((Date.now() - started) / 1000).toFixed(3)}]:`, ...a)
const hex = (b) => b4a.toString(b, 'hex')
const short = (b) => hex(b).slice(0, 16)

function usage (msg) {
  log(msg)
  process.exit(2)
}

const seconds = (name, dflt) => {
  const v = Number(process.env[name] || dflt)
  return Number.isFinite(v) && v > 0 ? v : dflt
}
const limit = mode === 'pipe' ? seconds('SWARM_PEER_TIMEOUT', 60) : seconds('SWARM_PEER_LIFETIME', 290)
const watchdog = setTimeout(() => {
  log(`${mode}: timed out after ${limit} s`)
  process.exit(3)
}, limit * 1000)
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

function describe (err) {
  if (!err) return 'no error'
  return `${err.code || err.name || 'Error'}: ${err.message}`
}

// Serve until SIGTERM, SIGINT or end of stdin; then close.
function serveUntilStopped (close) {
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
      log(`${mode}: error while closing: ${describe(err)}`)
    }
    process.exit(0)
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.stdin.on('end', () => stop('stdin closed'))
  process.stdin.on('error', () => stop('stdin error'))
  process.stdin.resume()
}

// Logs what the DHT node does for connections: every connect attempt's
// outcome, and (SWARM_PEER_TRACE=1) every request and response.
function instrument (dht) {
  const connect = dht.connect.bind(dht)
  dht.connect = (publicKey, opts = {}) => {
    const relays = (opts.relayAddresses || []).map((a) => `${a.host}:${a.port}`)
    log(`dialling ${short(publicKey)} (relay addresses from the record: ${relays.join(' ') || 'none'})`)
    const s = connect(publicKey, opts)
    s.on('error', (err) => log(`dial ${short(publicKey)} failed: ${describe(err)}`))
    s.on('connect', () => log(`dial ${short(publicKey)}: secret stream handshake done`))
    return s
  }
  if (process.env.SWARM_PEER_TRACE === '1') {
    const request = dht.request.bind(dht)
    dht.request = async (req, to, opts) => {
      const what = `request cmd=${req.command} to ${to.host}:${to.port}`
      try {
        const res = await request(req, to, opts)
        log(`${what}: reply from ${res.from.host}:${res.from.port} error=${res.error} value=${res.value ? res.value.length + ' bytes' : 'none'}`)
        return res
      } catch (err) {
        log(`${what}: ${describe(err)}`)
        throw err
      }
    }
    const onrequest = dht.onrequest.bind(dht)
    dht.onrequest = (req) => {
      log(`incoming request cmd=${req.command} from ${req.from.host}:${req.from.port} value=${req.value ? req.value.length + ' bytes' : 'none'}`)
      return onrequest(req)
    }
  }
}

function openSwarm (bootstrap, seed) {
  const keyPair = HyperDHT.keyPair(seed)
  // HyperDHT turns a port of 0 into its default 49737: an empty range [0, 0]
  // makes dht-rpc bind a random port.
  const dht = new HyperDHT({ bootstrap, host: '127.0.0.1', port: [0, 0], keyPair })
  instrument(dht)
  const swarm = new Hyperswarm({ dht, keyPair })
  log(`publicKey ${hex(keyPair.publicKey)}`)
  return swarm
}

function joinMode (m) {
  if (m === 'server') return { server: true, client: false }
  if (m === 'client') return { server: false, client: true }
  if (m === 'both') return { server: true, client: true }
  return usage(`MODE must be server, client or both, got: ${m}`)
}

async function join (swarm, topic, opts) {
  const discovery = swarm.join(topic, opts)
  log(`joining ${short(topic)}... as ${opts.server && opts.client ? 'server and client' : opts.server ? 'server' : 'client'}`)
  discovery.flushed().then(() => {
    log(`joined: ${opts.server ? 'announced' : 'looked up'}; dht ${swarm.dht.host}:${swarm.dht.port}` +
      ` firewalled=${swarm.dht.firewalled} peers found=${swarm.peers.size}`)
  }, (err) => log(`join failed: ${describe(err)}`))
  let lastPeers = 0
  swarm.on('update', () => {
    if (swarm.peers.size !== lastPeers) {
      lastPeers = swarm.peers.size
      log(`update: ${swarm.peers.size} peers known, ${swarm.connecting} connecting, ${swarm.connections.size} connected`)
    }
  })
}

function describeConn (conn, info) {
  const rs = conn.rawStream
  const where = rs ? `${rs.remoteHost}:${rs.remotePort} (udx ids local ${rs.id} remote ${rs.remoteId})` : 'unknown address'
  return `${short(conn.remotePublicKey)} ${conn.isInitiator ? 'dialled' : 'accepted'} at ${where}` +
    (info ? ` (client=${info.client})` : '')
}

// Leaves the swarm (bounded: 5 s), flushes standard output and exits.
async function finish (swarm, code) {
  const force = setTimeout(() => { log('leaving the swarm timed out'); process.exit(code) }, 5000)
  try {
    await swarm.destroy()
  } catch (err) {
    log(`error while leaving the swarm: ${describe(err)}`)
  }
  clearTimeout(force)
  process.stdout.write('', () => process.exit(code))
}

async function pipe (bootstrap, topic, seed, opts) {
  const swarm = openSwarm(bootstrap, seed)
  let piped = null
  process.stdin.pause()

  swarm.on('connection', (conn, info) => {
    if (piped) {
      log(`another connection ${describeConn(conn, info)}: not piped`)
      conn.on('error', (err) => log(`unpiped connection error: ${describe(err)}`))
      return
    }
    piped = conn
    log(`connected ${describeConn(conn, info)}`)
    let localEnded = false
    let remoteEnded = false
    let received = 0
    let sent = 0

    conn.on('error', (err) => log(`connection error: ${describe(err)}`))
    conn.on('data', (data) => {
      received += data.length
      if (!process.stdout.write(data)) {
        conn.pause()
        process.stdout.once('drain', () => conn.resume())
      }
    })
    conn.on('end', () => {
      remoteEnded = true
      log(`the peer ended its side after ${received} bytes`)
    })
    conn.on('finish', () => log(`our side is ended and flushed (${sent} bytes sent)`))
    conn.on('close', () => {
      const ok = localEnded && remoteEnded
      log(`connection closed (${ok ? 'both sides ended' : `local ended=${localEnded}, remote ended=${remoteEnded}`}); ` +
        `sent ${sent} bytes, received ${received}`)
      finish(swarm, ok ? 0 : 1)
    })

    process.stdin.on('data', (data) => {
      sent += data.length
      if (!conn.write(data)) {
        process.stdin.pause()
        conn.once('drain', () => process.stdin.resume())
      }
    })
    process.stdin.on('end', async () => {
      log(`end of standard input after ${sent} bytes`)
      // The secret stream destroys its UDX stream as soon as both sides have
      // ended, dropping whatever UDX has not sent yet (and sending DESTROY
      // instead of END): when the peer has ended already, end only once
      // everything written is acknowledged. SWARM_PEER_NO_FLUSH=1 skips this.
      if (process.env.SWARM_PEER_NO_FLUSH !== '1') {
        const flushed = await conn.flush()
        log(`everything written is acknowledged: ${flushed}`)
      }
      localEnded = true
      log('ending our side')
      conn.end()
    })
    process.stdin.resume()
  })

  await join(swarm, topic, opts)
  dialToo(swarm)
}

// SWARM_PEER_DIAL=KEY (64 hex): also dial KEY directly (swarm.joinPeer), as
// soon as the topic is joined: with a peer that dials us through the topic
// at the same time, both ends dial, and Hyperswarm's duplicate rule decides.
function dialToo (swarm) {
  const key = process.env.SWARM_PEER_DIAL
  if (!key) return
  log(`joinPeer ${key.slice(0, 16)}`)
  swarm.joinPeer(hex32(key, 'SWARM_PEER_DIAL'))
}

async function events (bootstrap, topic, seed, opts) {
  const swarm = openSwarm(bootstrap, seed)
  swarm.on('connection', (conn, info) => {
    log(`connected ${describeConn(conn, info)}`)
    process.stdout.write(JSON.stringify({ event: 'connected', publicKey: hex(conn.remotePublicKey), initiator: conn.isInitiator }) + '\n')
    conn.on('error', (err) => log(`connection error: ${describe(err)}`))
    conn.on('data', () => {})
    conn.on('close', () => log(`disconnected ${short(conn.remotePublicKey)}`))
  })
  await join(swarm, topic, opts)
  serveUntilStopped(() => swarm.destroy())
}

async function main () {
  switch (mode) {
    case 'testnet': {
      const n = Number(args[0])
      if (!Number.isInteger(n) || n < 1 || n > 100) usage('testnet N: N is 1..100')
      const testnet = await createTestnet(n, { host: '127.0.0.1' })
      const addrs = testnet.nodes.map((d) => `127.0.0.1:${d.address().port}`)
      process.stdout.write(JSON.stringify({ bootstrap: addrs[0], nodes: addrs }) + '\n')
      log(`testnet of ${n} nodes up: ${addrs.join(' ')}`)
      serveUntilStopped(() => testnet.destroy())
      return
    }
    case 'pipe':
    case 'events': {
      const bootstrap = parseBootstrap(args[0])
      const topic = hex32(args[1], 'TOPIC')
      const seed = hex32(args[2], 'SEED')
      const opts = joinMode(args[3])
      return mode === 'pipe' ? pipe(bootstrap, topic, seed, opts) : events(bootstrap, topic, seed, opts)
    }
    default:
      usage(`unknown mode: ${mode} (testnet, pipe, events)`)
  }
}

main().catch((err) => {
  log(`${mode}: ${err && err.stack ? err.stack : err}`)
  process.exit(1)
})
