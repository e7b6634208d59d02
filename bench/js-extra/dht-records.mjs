// Memory used by a JavaScript HyperDHT node to hold N announce records.
//
// Usage: node --expose-gc dht-records.mjs [N=100000] [TOPICS=N]
//
// Prints ONE JSON line on stdout:
//   {"bench":"dht-records","impl":"js","records":N,"topics":T,
//    "rss_before_MB":..,"rss_after_MB":..,"rss_delta_MB":..,"heap_delta_MB":..,"ms":..,...}
// Diagnostics go to stderr. A watchdog exits with status 3 after 600 s.
//
// One persistent HyperDHT node (hyperdht 6.34.0 / dht-rpc 6.27.0) is created and
// announce requests are fed straight into its storage handler
// (node._persistent.onannounce), bypassing UDP: over the network dht-rpc's
// congestion window would throttle us to ~100 requests/s. Each record is a
// genuine, signed announce (fresh key pair per record) that passes the
// handler's signature verification, exactly as a remote announce would.
//
// "ms" is the time spent inside onannounce only (decode + verify + store);
// "gen_ms" is the time spent generating key pairs/signatures (not part of the
// node's work). Memory is measured after repeated global.gc() right before the
// first record is fed and after the last one, with every reference to generated
// inputs dropped; the node stays alive in between.
//
// Extra fields: heap_total_delta_MB (V8 committed heap), new_space_delta_MB and
// new_space_resident_delta_MB (V8 young generation: committed / touched), and
// rss_delta_excl_new_space_MB = rss_delta minus the young generation's resident
// growth. The young generation holds no records after a full GC but its pages
// stay resident (up to 2 x 16 MB), an N-independent GC artifact that dominates
// rss_delta for small N. A warm-up (key generation only, nothing stored) runs
// before the baseline so the young generation has already grown to its
// working size.
//
// Note: hyperdht's default record cache is maxSize 65536 with two generations
// (fresh/stale), so it holds at most ~131072 records. To hold more, set
// DHT_RECORDS_MAXSIZE (passed as the node's maxSize option). "stored" in the
// output is node._persistent.records.size and should equal N.

import { createRequire } from 'node:module'
import dgram from 'node:dgram'
import v8 from 'node:v8'
import vm from 'node:vm'

const require = createRequire(import.meta.url)
const WATCHDOG_MS = 600_000

const watchdog = setTimeout(() => {
  console.error(`dht-records: watchdog fired after ${WATCHDOG_MS / 1000} s`)
  process.exit(3)
}, WATCHDOG_MS)
watchdog.unref()

function log(...args) {
  console.error('dht-records:', ...args)
}

function parsePositiveInt(s, def, name) {
  if (s === undefined || s === '') return def
  const n = Number(s)
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`dht-records: ${name} must be a positive integer, got ${JSON.stringify(s)}`)
    process.exit(2)
  }
  return n
}

const N = parsePositiveInt(process.argv[2], 100000, 'N')
const TOPICS = Math.min(parsePositiveInt(process.argv[3], N, 'TOPICS'), N)
const BATCH = 2000
const MAXSIZE = process.env.DHT_RECORDS_MAXSIZE
  ? parsePositiveInt(process.env.DHT_RECORDS_MAXSIZE, 0, 'DHT_RECORDS_MAXSIZE')
  : 0

let gc = globalThis.gc
if (typeof gc !== 'function') {
  log('global.gc not exposed (run with --expose-gc); enabling it at runtime')
  v8.setFlagsFromString('--expose-gc')
  gc = vm.runInNewContext('gc')
}

// Resolve hyperdht's own dependencies (compact-encoding) through hyperdht.
const HyperDHT = require('hyperdht')
const hdRequire = createRequire(require.resolve('hyperdht'))
const c = hdRequire('compact-encoding')
const sodium = hdRequire('sodium-universal')
const m = require('hyperdht/lib/messages.js')
const Persistent = require('hyperdht/lib/persistent.js')
const b4a = require('b4a')

const MB = 1024 * 1024
const round = (x) => Math.round(x * 100) / 100
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function settle() {
  for (let i = 0; i < 4; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  await sleep(50)
  gc()
  await new Promise((resolve) => setImmediate(resolve))
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4')
    s.once('error', reject)
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

// A node that has no bootstrap never learns its own address and stays ephemeral
// (dht-rpc _updateNetworkState returns false while _nat.host is null), so it never
// emits 'persistent'. DHT.bootstrapper(port, host) seeds the NAT sampler with the
// address, which makes the single node persistent.
async function makePersistentNode() {
  const opts = MAXSIZE ? { maxSize: MAXSIZE } : {}
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeUdpPort()
    const node = HyperDHT.bootstrapper(port, '127.0.0.1', { host: '127.0.0.1', ...opts })
    try {
      await node.fullyBootstrapped()
    } catch (err) {
      log(`bootstrapper on port ${port} failed: ${err.message}`)
      await node.destroy().catch(() => {})
      continue
    }
    if (node._persistent !== null && node.id !== null) return { node, nodes: [node] }
    log('bootstrapper node did not become persistent, retrying')
    await node.destroy()
  }
  // Fallback: a 2-node testnet; its second node becomes persistent.
  log('falling back to a 2-node testnet')
  const createTestnet = require('hyperdht/testnet.js')
  const tn = await createTestnet(2, { host: '127.0.0.1', ...opts })
  const node = tn.nodes.find((n) => n._persistent !== null && n.id !== null)
  if (!node) throw new Error('no persistent node in testnet')
  return { node, nodes: tn.nodes, testnet: tn }
}

// Deterministic 32-byte topic t = BLAKE2b(seed || t) from a random per-run seed,
// so no topic table has to be held in memory. (sodium, not node:crypto: the
// OpenSSL hash contexts of createHash() live in malloc and inflate RSS.)
const SEED = b4a.alloc(32)
sodium.randombytes_buf(SEED)
const TOPIC_IN = b4a.alloc(36)
TOPIC_IN.set(SEED, 0)
function topic(t) {
  TOPIC_IN.writeUInt32LE(t >>> 0, 32)
  const out = b4a.alloc(32)
  sodium.crypto_generichash(out, TOPIC_IN)
  return out
}

const TOKEN = b4a.alloc(32, 7) // onannounce does not check tokens (io.js does, before dispatch)

function makeRequest(node, i) {
  const target = topic(i % TOPICS)
  const keyPair = HyperDHT.keyPair()
  const ann = {
    peer: { publicKey: keyPair.publicKey, relayAddresses: [] },
    refresh: null,
    signature: null,
    bump: 0
  }
  ann.signature = Persistent.signAnnounce(target, TOKEN, node.id, ann, keyPair)
  return {
    id: null,
    command: null,
    target,
    token: TOKEN,
    value: c.encode(m.announce, ann),
    from: { host: '127.0.0.1', port: 10000 + (i % 50000) },
    replied: false,
    reply() {
      this.replied = true
    },
    error() {}
  }
}

// Warm up the generation path (crypto, encoders) without touching the node's
// storage, keeping WARM requests alive for a while so that V8's young generation
// grows to the size it reaches while records are fed (objects that survive make
// it grow from 1x to 2x semi-space size, 16 -> 32 MB committed). Otherwise that
// fixed, N-independent growth would land in rss_delta. Done in a separate
// function so that no suspended async frame keeps the garbage alive.
const WARM = 20000
function warmUp(node) {
  let warm = []
  for (let i = 0; i < WARM; i++) warm.push(makeRequest(node, i))
  warm = null
}

// V8 young generation (new_space): committed size and resident (touched) size.
function newSpace() {
  for (const s of v8.getHeapSpaceStatistics()) {
    if (s.space_name === 'new_space') return { size: s.space_size, phys: s.physical_space_size }
  }
  return { size: 0, phys: 0 }
}

function mem() {
  const u = process.memoryUsage()
  return {
    rss: u.rss,
    heap: u.heapUsed,
    heapTotal: u.heapTotal,
    external: u.external,
    newSpace: newSpace().size,
    newSpacePhys: newSpace().phys
  }
}

async function main() {
  const t0 = performance.now()
  const { node, nodes, testnet } = await makePersistentNode()
  log(`persistent node ready: id=${b4a.toString(node.id, 'hex').slice(0, 16)}.. port=${node.address().port}` +
    ` (records maxSize=${node._persistent.records.maxSize})`)

  warmUp(node)
  await settle()
  const before = mem()
  log(`before: rss=${round(before.rss / MB)} MB heap=${round(before.heap / MB)} MB new_space=${round(before.newSpace / MB)} MB (resident ${round(before.newSpacePhys / MB)})`)

  let feedMs = 0
  let genMs = 0
  let rejected = 0
  for (let start = 0; start < N; start += BATCH) {
    const end = Math.min(N, start + BATCH)
    const g0 = performance.now()
    let reqs = new Array(end - start)
    for (let i = start; i < end; i++) reqs[i - start] = makeRequest(node, i)
    const f0 = performance.now()
    for (let j = 0; j < reqs.length; j++) {
      node._persistent.onannounce(reqs[j])
      if (!reqs[j].replied) rejected++
    }
    const f1 = performance.now()
    genMs += f0 - g0
    feedMs += f1 - f0
    reqs = null
    // collect the generation garbage batch by batch
    if ((start / BATCH) % 5 === 4) gc()
    if ((start / BATCH) % 25 === 24) log(`fed ${end}/${N}`)
  }

  await settle()
  const after = mem()
  log(`after: rss=${round(after.rss / MB)} MB heap=${round(after.heap / MB)} MB new_space=${round(after.newSpace / MB)} MB (resident ${round(after.newSpacePhys / MB)})`)

  // Verification (after measuring, so it does not disturb the numbers).
  const stored = node._persistent.records.size
  if (stored !== N) log(`WARNING: records.size=${stored}, expected ${N}`)
  if (rejected) log(`WARNING: ${rejected} announces were not accepted`)
  let lookupValue = null
  node._persistent.onlookup({
    target: topic(0),
    token: null,
    value: null,
    from: { host: '127.0.0.1', port: 10000 },
    reply(value) {
      lookupValue = value
    },
    error() {}
  })
  let lookupPeers = 0
  if (lookupValue) lookupPeers = c.decode(m.lookupRawReply, lookupValue).peers.length
  const expectedPeers = Math.min(20, Math.ceil(N / TOPICS))
  if (lookupPeers === 0) log('WARNING: lookup for topic 0 returned no peers')
  else log(`lookup topic 0: ${lookupPeers} peers (expected ${expectedPeers})`)

  const out = {
    bench: 'dht-records',
    impl: 'js',
    records: N,
    topics: TOPICS,
    rss_before_MB: round(before.rss / MB),
    rss_after_MB: round(after.rss / MB),
    rss_delta_MB: round((after.rss - before.rss) / MB),
    heap_delta_MB: round((after.heap - before.heap) / MB),
    heap_total_delta_MB: round((after.heapTotal - before.heapTotal) / MB),
    new_space_delta_MB: round((after.newSpace - before.newSpace) / MB),
    new_space_resident_delta_MB: round((after.newSpacePhys - before.newSpacePhys) / MB),
    rss_delta_excl_new_space_MB: round(
      (after.rss - before.rss - (after.newSpacePhys - before.newSpacePhys)) / MB
    ),
    external_delta_MB: round((after.external - before.external) / MB),
    ms: Math.round(feedMs),
    gen_ms: Math.round(genMs),
    total_ms: Math.round(performance.now() - t0),
    stored,
    lookup_peers: lookupPeers,
    node: process.version,
    hyperdht: require('hyperdht/package.json').version
  }
  process.stdout.write(JSON.stringify(out) + '\n')

  if (testnet) await testnet.destroy()
  else for (const n of nodes) await n.destroy()
  return stored === N && lookupPeers > 0 ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error('dht-records: error:', err && err.stack ? err.stack : err)
    process.exit(1)
  }
)
