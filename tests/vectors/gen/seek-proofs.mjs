// Generates ../data/seek-proofs.json: seek proofs (with and without upgrades,
// hash and block requests, padding) as hypercore 11.37.1 builds them.
// Run from tests/interop (its node_modules):  node ../vectors/gen/seek-proofs.mjs > ../vectors/data/seek-proofs.json
import { createRequire } from 'module'
import os from 'os'
import path from 'path'
import fs from 'fs'
const require = createRequire(path.join(process.cwd(), 'package.json'))
const Hypercore = require('hypercore')
const crypto = require('hypercore-crypto')
const c = require('compact-encoding')
const { MerkleTree } = require('hypercore/lib/merkle-tree.js')
const { wire } = require('hypercore/lib/messages.js')

const seed = crypto.hash(Buffer.from('p2p seek vectors'))
const keyPair = crypto.keyPair(seed)
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'seek-vectors-'))
const core = new Hypercore(dir, { keyPair })
await core.ready()
const L = 37
const sizes = []
for (let i = 0; i < L; i++) sizes.push((i * 7) % 13 + 1)
for (let i = 0; i < L; i++) await core.append(Buffer.alloc(sizes[i], i))
const total = sizes.reduce((a, b) => a + b, 0)

const nodes = []
const rx = core.state.storage.read()
const ps = []
for (let i = 0; i < 2 * L - 1; i++) ps.push(rx.getTreeNode(i))
rx.tryFlush()
for (const n of (await Promise.all(ps)).filter(Boolean)) nodes.push({ index: n.index, size: n.size, hash: n.hash.toString('hex') })

async function prove (req) {
  const rx = core.state.storage.read()
  try {
    const p = await MerkleTree.proof(core.state, rx, req)
    rx.tryFlush()
    const proof = await p.settle()
    if (proof.block) proof.block.value = Buffer.alloc(sizes[proof.block.index], proof.block.index)
    return { wireData: c.encode(wire.data, { request: 1, ...proof }).toString('hex') }
  } catch (err) {
    if (process.env.DEBUG) console.error(err)
    return { error: err.message }
  }
}

const cases = []
const offsets = [0, 1, 5, 7, 8, 50, 99, 100, 101, 150, 200, Math.floor(total / 2), total - 1, total, total + 1]
for (const padding of [0, 1]) {
  for (const bytes of offsets) {
    const seek = { bytes, padding }
    cases.push({ seek, upgrade: { start: 0, length: L } })
    cases.push({ seek, upgrade: { start: 0, length: 20 } })
    cases.push({ seek, upgrade: { start: 12, length: 25 } })
    cases.push({ seek })
    for (const [index, n] of [[4, 0], [10, 2], [30, 4], [33, 5], [20, 3]]) {
      cases.push({ seek, hash: { index: 2 * index, nodes: n } })
    }
    cases.push({ seek, block: { index: 3, nodes: 2 }, upgrade: { start: 12, length: 25 } })
    cases.push({ seek, block: { index: 15, nodes: 0 }, upgrade: { start: 12, length: 25 } })
  }
}
const out = []
for (const r of cases) {
  const req = { block: r.block || null, hash: r.hash || null, seek: r.seek, upgrade: r.upgrade || null }
  if (process.env.DEBUG) console.error(JSON.stringify(req))
  out.push({ request: req, ...(await prove(req)) })
}
const signature = Buffer.from(core.state.signature).toString('hex')
const text = JSON.stringify({
  versions: { hypercore: require('hypercore/package.json').version },
  description: 'Seek proofs from hypercore MerkleTree.proof on a 37-block core; wireData is the data message with request id 1',
  length: L, byteLength: total, fork: 0, blockSizes: sizes,
  signature,
  nodes, cases: out
}, null, 1) + '\n'
// (a failed proof leaves its read batch open, which would hold close() forever)
fs.rmSync(dir, { recursive: true, force: true })
process.stdout.write(text, () => process.exit(0))
