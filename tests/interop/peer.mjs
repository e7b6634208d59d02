#!/usr/bin/env node
// The JavaScript side of the replication interop tests (replication_test.sh):
// a corestore-backed peer on a real TCP socket on 127.0.0.1.
//
//   node peer.mjs serve-core DIR N        append blocks "block 0".."block N-1" to core 'src', serve
//   node peer.mjs serve-bee DIR N         put key-0000..key-(N-1) -> value-i into a Hyperbee, serve
//   node peer.mjs serve-drive DIR         write /hello.txt, /dir/big.bin (200000 bytes), serve
//   node peer.mjs read-core KEY PORT I... print {length, blocks:{i: value}} (utf-8)
//   node peer.mjs read-bee KEY PORT K...  print {version, values:{k: value|null}, list:[keys]}
//   node peer.mjs read-drive KEY PORT P.. print {files:{path: sha256 hex|null}}
//   node peer.mjs seek-core KEY PORT B... print {seeks:{b: [block, offset]}} (byte seeks)
//   node peer.mjs wait-length KEY PORT N  connect, wait until the core's length reaches N, print {length}
//
// Serving modes print one JSON line {key, port} once listening, then serve
// until stdin closes; a line "append TEXT" on stdin appends a block (core).
// Every wait is bounded by a watchdog.
import Corestore from 'corestore'
import Hyperbee from 'hyperbee'
import Hyperdrive from 'hyperdrive'
import b4a from 'b4a'
import net from 'net'
import os from 'os'
import fs from 'fs'
import path from 'path'
import crypto from 'crypto'
import readline from 'readline'
import { once } from 'events'

const [mode, ...args] = process.argv.slice(2)
const watchdog = setTimeout(() => { console.error('peer.mjs: timed out'); process.exit(3) }, 60000)
watchdog.unref()

function serve (store) {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true)
    const s = store.replicate(false)
    socket.on('error', () => {})
    s.on('error', () => {})
    socket.pipe(s).pipe(socket)
  })
  server.listen(0, '127.0.0.1')
  return server
}

async function connect (store, port) {
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  const s = store.replicate(true)
  socket.on('error', () => {})
  s.on('error', () => {})
  socket.pipe(s).pipe(socket)
  await once(socket, 'connect')
  return socket
}

async function serveMode (store, key, onLine) {
  const server = serve(store)
  await once(server, 'listening')
  console.log(JSON.stringify({ key: b4a.toString(key, 'hex'), port: server.address().port }))
  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) if (onLine) await onLine(line)
  server.close()
  await store.close()
  process.exit(0)
}

function tmpStore () {
  return new Corestore(fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-interop-js-')))
}

const sha = (b) => crypto.createHash('sha256').update(b).digest('hex')

if (mode === 'serve-core') {
  const store = new Corestore(args[0])
  const core = store.get({ name: 'src' })
  await core.ready()
  const n = Number(args[1])
  const blocks = []
  for (let i = 0; i < n; i++) blocks.push(b4a.from('block ' + i))
  if (blocks.length) await core.append(blocks)
  await serveMode(store, core.key, async (line) => {
    if (line.startsWith('append ')) {
      await core.append(b4a.from(line.slice(7)))
      console.log(JSON.stringify({ length: core.length }))
    }
  })
} else if (mode === 'serve-bee') {
  const store = new Corestore(args[0])
  const bee = new Hyperbee(store.get({ name: 'bee' }), { keyEncoding: 'utf-8', valueEncoding: 'utf-8' })
  await bee.ready()
  const n = Number(args[1])
  const batch = bee.batch()
  for (let i = 0; i < n; i++) await batch.put('key-' + String(i).padStart(4, '0'), 'value-' + i)
  await batch.flush()
  await serveMode(store, bee.core.key)
} else if (mode === 'serve-drive') {
  const store = new Corestore(args[0])
  const drive = new Hyperdrive(store)
  await drive.ready()
  await drive.put('/hello.txt', b4a.from('hello from javascript\n'))
  const big = b4a.alloc(200000)
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255
  await drive.put('/dir/big.bin', big)
  await serveMode(store, drive.key)
} else if (mode === 'read-core') {
  const store = tmpStore()
  const core = store.get({ key: b4a.from(args[0], 'hex') })
  await core.ready()
  await connect(store, Number(args[1]))
  await core.update({ wait: true })
  const blocks = {}
  for (const i of args.slice(2)) blocks[i] = b4a.toString(await core.get(Number(i), { timeout: 20000 }))
  console.log(JSON.stringify({ length: core.length, blocks }))
  process.exit(0)
} else if (mode === 'seek-core') {
  // Each seek runs on a fresh replica, so every one is answered by a seek proof from the peer.
  const seeks = {}
  for (const b of args.slice(2)) {
    const store = tmpStore()
    const core = store.get({ key: b4a.from(args[0], 'hex') })
    await core.ready()
    const socket = await connect(store, Number(args[1]))
    await core.update({ wait: true })
    seeks[b] = await core.seek(Number(b), { timeout: 20000 })
    socket.destroy()
    await store.close()
  }
  console.log(JSON.stringify({ seeks }))
  process.exit(0)
} else if (mode === 'wait-length') {
  const store = tmpStore()
  const core = store.get({ key: b4a.from(args[0], 'hex') })
  await core.ready()
  await connect(store, Number(args[1]))
  const want = Number(args[2])
  while (core.length < want) {
    await core.update({ wait: true })
    if (core.length < want) await once(core, 'append')
  }
  console.log(JSON.stringify({ length: core.length, last: b4a.toString(await core.get(core.length - 1)) }))
  process.exit(0)
} else if (mode === 'read-bee') {
  const store = tmpStore()
  const bee = new Hyperbee(store.get({ key: b4a.from(args[0], 'hex') }), { keyEncoding: 'utf-8', valueEncoding: 'utf-8' })
  await bee.ready()
  await connect(store, Number(args[1]))
  await bee.core.update({ wait: true })
  const values = {}
  for (const k of args.slice(2)) {
    const node = await bee.get(k)
    values[k] = node ? node.value : null
  }
  const list = []
  for await (const { key } of bee.createReadStream()) list.push(key)
  console.log(JSON.stringify({ version: bee.version, values, list }))
  process.exit(0)
} else if (mode === 'read-drive') {
  const store = tmpStore()
  const drive = new Hyperdrive(store, b4a.from(args[0], 'hex'))
  await drive.ready()
  await connect(store, Number(args[1]))
  await drive.core.update({ wait: true })
  const files = {}
  for (const p of args.slice(2)) {
    const data = await drive.get(p, { timeout: 20000 })
    files[p] = data ? sha(data) : null
  }
  console.log(JSON.stringify({ files }))
  process.exit(0)
} else {
  console.error('usage: see the header of peer.mjs')
  process.exit(2)
}
