#!/usr/bin/env node
// Reference side of the p2p interop test (see interop_test.sh).
//
// Usage: node corestore_check.mjs PRIMARY_KEY_HEX NAME [BLOCK...]
//
// Creates a Corestore 7 in a fresh temporary folder seeded with the given
// 32-byte primary key, opens the named core (store.get({ name })), appends
// each BLOCK (UTF-8) with one append() call per block, and prints one JSON
// line:
//   {key, discoveryKey, length, byteLength, fork, treeHash, signature,
//    signatureEd25519}
// with every binary value in lowercase hex. The temporary folder is removed.
//
// Notes on the reference API (corestore 7.12.5 / hypercore 11.37.1):
// - Corestore refuses opts.primaryKey unless opts.unsafe is true
//   ("Passing the primary key is unsafe unless you know what you are doing").
// - core.treeHash() hashes the current Merkle roots (crypto.tree(roots)).
// - core.state.signature is the stored signature of the current head. For
//   the default manifest (version 1, one ed25519 signer) Verifier.sign wraps
//   the 64-byte ed25519 signature in a multisig container (68 bytes:
//   proofs count 1, signer 0, signature, patch 0, patch-node count 0), so
//   `signature` is that container and `signatureEd25519` the bare signature
//   (ed25519 over caps.treeSignable(key, treeHash, length, fork)).

import Corestore from 'corestore'
import b4a from 'b4a'
import multisig from 'hypercore/lib/multisig.js'
import fs from 'fs'
import os from 'os'
import path from 'path'

function usage (msg) {
  process.stderr.write(`corestore_check: ${msg}\n` +
    'usage: node corestore_check.mjs PRIMARY_KEY_HEX NAME [BLOCK...]\n')
  process.exit(2)
}

const hex = (buf) => (buf ? b4a.toString(buf, 'hex') : null)

async function main () {
  const [primaryKeyHex, name, ...blocks] = process.argv.slice(2)
  if (!primaryKeyHex || name === undefined) usage('missing arguments')
  if (!/^[0-9a-fA-F]{64}$/.test(primaryKeyHex)) usage('the primary key must be 64 hex characters')

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-interop-js-'))
  let store = null
  try {
    store = new Corestore(dir, {
      primaryKey: b4a.from(primaryKeyHex, 'hex'),
      unsafe: true
    })
    const core = store.get({ name })
    await core.ready()

    for (const block of blocks) await core.append(b4a.from(block, 'utf-8'))

    const signature = (core.state && core.state.signature) || null
    let signatureEd25519 = null
    if (signature) {
      signatureEd25519 = signature.byteLength === 64
        ? signature
        : multisig.inflate(signature).proofs[0].signature
    }

    const out = {
      key: hex(core.key),
      discoveryKey: hex(core.discoveryKey),
      length: core.length,
      byteLength: core.byteLength,
      fork: core.fork,
      treeHash: hex(await core.treeHash()),
      signature: hex(signature),
      signatureEd25519: hex(signatureEd25519)
    }
    process.stdout.write(JSON.stringify(out) + '\n')
    await core.close()
  } finally {
    if (store) await store.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  process.stderr.write(`corestore_check: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
