// Bulk transfer over one UDX stream on loopback with udx-native (1.21.3), the
// JavaScript side of bench/udx_bench.cpp, and Node's net TCP for reference.
//
// Usage: node udx-bulk.mjs [MB=256]
//
// One process: two UDP sockets on 127.0.0.1, one stream each, connected to
// each other; the sender writes MB MiB (the pattern of bench/udx_bench.cpp,
// honouring write() === false / 'drain'), and the clock stops when the
// receiver has every byte (each byte is compared with the pattern).
// Prints ONE JSON line on stdout; MB/s is MiB/s.
import net from 'net'
import UDX from 'udx-native'

const MB = Number(process.argv[2] || 256)
const TOTAL = MB * 1024 * 1024
const PATTERN = 1 << 20
const CHUNK = 64 * 1024

setTimeout(() => { console.error('udx-bulk: timed out'); process.exit(3) }, 600_000).unref()

const pattern = Buffer.alloc(PATTERN)
{
  let x = 0x9e3779b97f4a7c15n
  const M = (1n << 64n) - 1n
  for (let i = 0; i < PATTERN; i++) {
    x ^= (x << 13n) & M
    x ^= x >> 7n
    x ^= (x << 17n) & M
    pattern[i] = Number(x & 0xffn)
  }
}

// Each received byte is compared with the pattern at its stream offset
// (natively, like the memcmp of the C++ side): a lost, duplicated or
// reordered byte fails.
function checker () {
  let pos = 0
  let ok = true
  return {
    add (buf) {
      let i = 0
      while (i < buf.length) {
        const at = pos % PATTERN
        const n = Math.min(buf.length - i, PATTERN - at)
        if (ok && !buf.subarray(i, i + n).equals(pattern.subarray(at, at + n))) ok = false
        i += n; pos += n
      }
    },
    get ok () { return ok }
  }
}

// Writes TOTAL bytes of the pattern into stream with backpressure.
function pump (stream) {
  let written = 0
  const more = () => {
    while (written < TOTAL) {
      const at = written % PATTERN
      const n = Math.min(CHUNK, PATTERN - at, TOTAL - written)
      written += n
      if (!stream.write(pattern.subarray(at, at + n))) return stream.once('drain', more)
    }
  }
  more()
}

function receive (stream, t0, resolve, reject) {
  const sum = checker()
  let got = 0
  stream.on('data', (d) => {
    sum.add(d)
    got += d.length
    if (got === TOTAL) {
      const s = (performance.now() - t0) / 1000
      if (!sum.ok) reject(new Error('the receiver\'s bytes differ'))
      else resolve(s)
    }
  })
  stream.on('error', reject)
}

async function udxRun () {
  const udx = new UDX()
  const sa = udx.createSocket(); sa.bind(0, '127.0.0.1')
  const sb = udx.createSocket(); sb.bind(0, '127.0.0.1')
  const tx = udx.createStream(1)
  const rx = udx.createStream(2)
  tx.connect(sa, 2, sb.address().port, '127.0.0.1')
  rx.connect(sb, 1, sa.address().port, '127.0.0.1')
  const t0 = performance.now()
  const seconds = await new Promise((resolve, reject) => {
    receive(rx, t0, resolve, reject)
    tx.on('error', reject)
    pump(tx)
  })
  const retransmits = tx.retransmits
  const packets = tx.packetsTransmitted
  tx.destroy(); rx.destroy()
  await Promise.all([sa.close(), sb.close()])
  return { seconds, retransmits, packets }
}

async function tcpRun () {
  let server
  const seconds = await new Promise((resolve, reject) => {
    server = net.createServer((sock) => receive(sock, t0, resolve, reject))
    let t0
    server.listen(0, '127.0.0.1', () => {
      t0 = performance.now()
      const c = net.connect(server.address().port, '127.0.0.1', () => pump(c))
      c.on('error', reject)
      server.client = c
    })
  })
  server.client.destroy()
  server.close()
  return seconds
}

const u = await udxRun()
const tcp = await tcpRun()
console.log(JSON.stringify({
  bench: 'udx-bulk',
  impl: 'js',
  MB,
  udx_MB_per_s: MB / u.seconds,
  tcp_MB_per_s: MB / tcp,
  udx_s: u.seconds,
  tcp_s: tcp,
  retransmits: u.retransmits,
  packets_sent: u.packets
}))
process.exit(0)
