// Generates ../data/noise-ik.json: Noise IK handshakes as hyperdht 6.34.0 runs
// them (noise-handshake 4.2.0 with noise-curve-ed), every key seeded, so the
// handshake messages, split keys and hash are reproducible. The hyperdht case
// also carries secret-stream transcripts started from the IK result; their
// bytes differ per run (libsodium picks the secretstream header at random).
// Run from tests/interop (its node_modules):  node ../vectors/gen/noise-ik.mjs > ../vectors/data/noise-ik.json
import { createRequire } from 'module'
import path from 'path'
const require = createRequire(path.join(process.cwd(), 'package.json'))
const NoiseHandshake = require('noise-handshake')
const curve = require('noise-curve-ed')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const sodium = require('sodium-universal')
const b4a = require('b4a')
const c = require('compact-encoding')
const NoiseWrap = require('hyperdht/lib/noise-wrap.js')
const m = require('hyperdht/lib/messages.js')
const { NS } = require('hyperdht/lib/constants.js')

const hex = (b) => b4a.toString(b, 'hex')
const version = (name) => require(`${name}/package.json`).version

// The vectors' convention: seed(label) = BLAKE2b-256(ascii label).
function seeded(label) {
  const seed = b4a.alloc(32)
  sodium.crypto_generichash(seed, b4a.from(label))
  return { label, seed, ...curve.generateKeyPair(seed) }
}
const describe = (k) => ({ label: k.label, seed: hex(k.seed), publicKey: hex(k.publicKey) })

// noise-handshake has no ephemeral-key option, but only makes one when `e` is
// still null, so presetting it fixes the ephemeral key pair. Copies: the
// handshake zeroes its ephemeral keys when it completes.
function fixEphemeral(handshake, keyPair) {
  handshake.e = { publicKey: b4a.from(keyPair.publicKey), secretKey: b4a.from(keyPair.secretKey) }
}

function keys(h) {
  return { tx: hex(h.tx), rx: hex(h.rx), hash: hex(h.hash) }
}

function rawCase(name, prologue, payload1, payload2) {
  const is = seeded(`noise-ik ${name} initiator static`)
  const rs = seeded(`noise-ik ${name} responder static`)
  const ie = seeded(`noise-ik ${name} initiator ephemeral`)
  const re = seeded(`noise-ik ${name} responder ephemeral`)
  const initiator = new NoiseHandshake('IK', true, is, { curve })
  const responder = new NoiseHandshake('IK', false, rs, { curve })
  initiator.initialise(prologue, rs.publicKey)
  responder.initialise(prologue)
  fixEphemeral(initiator, ie)
  fixEphemeral(responder, re)
  const message1 = initiator.send(payload1)
  // Copies: on completion a handshake zeroes `re`, a view into the message.
  const got1 = responder.recv(b4a.from(message1))
  const message2 = responder.send(payload2)
  const got2 = initiator.recv(b4a.from(message2))
  if (!b4a.equals(got1, payload1) || !b4a.equals(got2, payload2)) throw new Error('payload mismatch')
  return {
    name,
    prologue: hex(prologue),
    initiatorStatic: describe(is),
    responderStatic: describe(rs),
    initiatorEphemeral: describe(ie),
    responderEphemeral: describe(re),
    payload1: hex(payload1),
    payload2: hex(payload2),
    message1: hex(message1),
    message2: hex(message2),
    initiator: keys(initiator),
    responder: keys(responder),
    remotePublicKeySeenByResponder: hex(responder.rs)
  }
}

// Everything one secret stream writes to its raw side while sending `text`.
async function secretStreamBytes(isInitiator, result, text) {
  const { tx, rx, hash, publicKey, remotePublicKey } = result
  const s = new NoiseSecretStream(isInitiator, null, { handshake: { tx, rx, hash, publicKey, remotePublicKey } })
  const chunks = []
  s.rawStream.on('data', (d) => chunks.push(b4a.from(d)))
  s.write(b4a.from(text))
  await new Promise((resolve) => setTimeout(resolve, 50))
  s.destroy()
  return { text, bytes: hex(b4a.concat(chunks)) }
}

async function hyperdhtCase() {
  const name = 'hyperdht'
  const client = seeded(`noise-ik ${name} client static`)
  const server = seeded(`noise-ik ${name} server static`)
  const ce = seeded(`noise-ik ${name} client ephemeral`)
  const se = seeded(`noise-ik ${name} server ephemeral`)
  const wrapClient = new NoiseWrap(client, server.publicKey)
  const wrapServer = new NoiseWrap(server, null)
  fixEphemeral(wrapClient.handshake, ce)
  fixEphemeral(wrapServer.handshake, se)
  // Like connect.js's first message and server.js's reply (firewalled server).
  const clientPayload = {
    version: 1,
    error: 0,
    firewall: 0,
    holepunch: null,
    addresses4: [{ host: '192.168.1.20', port: 49737 }, { host: '127.0.0.1', port: 49737 }],
    addresses6: [],
    udx: { version: 1, reusableSocket: false, id: 2446300446, seq: 0 },
    secretStream: {},
    relayThrough: null
  }
  const serverPayload = {
    version: 1,
    error: 0,
    firewall: 2,
    holepunch: {
      id: 3,
      relays: [
        { relayAddress: { host: '10.0.0.1', port: 49738 }, peerAddress: { host: '203.0.113.7', port: 50624 } },
        { relayAddress: { host: '10.0.0.2', port: 49739 }, peerAddress: { host: '203.0.113.7', port: 50625 } }
      ]
    },
    addresses4: [{ host: '203.0.113.7', port: 50624 }],
    addresses6: null,
    udx: { version: 1, reusableSocket: true, id: 3411911019, seq: 0 },
    secretStream: {},
    relayThrough: null,
    relayAddresses: [{ host: '10.0.0.1', port: 49738 }, { host: '10.0.0.2', port: 49739 }]
  }
  const message1 = wrapClient.send(clientPayload)
  const decoded1 = wrapServer.recv(b4a.from(message1))
  const message2 = wrapServer.send(serverPayload)
  const decoded2 = wrapClient.recv(b4a.from(message2))
  const clientFinal = wrapClient.final()
  const serverFinal = wrapServer.final()
  return {
    name,
    prologue: hex(NS.PEER_HANDSHAKE),
    initiatorStatic: describe(client),
    responderStatic: describe(server),
    initiatorEphemeral: describe(ce),
    responderEphemeral: describe(se),
    payload1: hex(c.encode(m.noisePayload, clientPayload)),
    payload2: hex(c.encode(m.noisePayload, serverPayload)),
    decodedPayload1: jsonable(decoded1),
    decodedPayload2: jsonable(decoded2),
    message1: hex(message1),
    message2: hex(message2),
    initiator: keys(clientFinal),
    responder: keys(serverFinal),
    remotePublicKeySeenByResponder: hex(serverFinal.remotePublicKey),
    holepunchSecret: hex(clientFinal.holepunchSecret),
    streamIdInitiator: hex(NoiseSecretStream.id(clientFinal.hash, true)),
    streamIdResponder: hex(NoiseSecretStream.id(clientFinal.hash, false)),
    secretStreamInitiator: await secretStreamBytes(true, clientFinal, 'hello from the js client'),
    secretStreamResponder: await secretStreamBytes(false, serverFinal, 'hello from the js server')
  }
}

function jsonable(v) {
  return JSON.parse(JSON.stringify(v, (k, x) => (x && x.type === 'Buffer' ? b4a.toString(b4a.from(x.data), 'hex') : x)))
}

const out = {
  _about:
    'Noise_IK_Ed25519_ChaChaPoly_BLAKE2b as hyperdht runs it (noise-handshake IK with noise-curve-ed). ' +
    'Keys are seeded: seed(label) = BLAKE2b-256(label); the ephemeral key pairs are fixed by presetting ' +
    'noise-handshake\'s `e`. message1/message2, tx/rx and hash are deterministic. In the hyperdht case ' +
    'payload1/payload2 are the encoded noisePayloads and the secretStream* transcripts (u24le frames: ' +
    '56-byte header, then one message) are random per run.',
  versions: Object.fromEntries(
    [
      'hyperdht',
      'noise-handshake',
      'noise-curve-ed',
      '@hyperswarm/secret-stream',
      'compact-encoding',
      'sodium-universal'
    ].map((n) => [n, version(n)])
  ),
  cases: [
    rawCase('empty payloads', NS.PEER_HANDSHAKE, b4a.alloc(0), b4a.alloc(0)),
    rawCase(
      'other prologue',
      b4a.from('some other prologue'),
      b4a.from('hello responder'),
      b4a.from('hi initiator, longer reply')
    ),
    await hyperdhtCase()
  ]
}
console.log(JSON.stringify(out, null, 2))
