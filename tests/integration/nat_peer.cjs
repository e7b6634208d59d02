// node nat_peer.cjs MODULES BOOTSTRAP TOPIC SEED MODE [RELAY [end]]: a
// Hyperswarm peer (the JavaScript reference, bound to every interface) that
// greets its first peer, prints what it gets and ends once the peer has
// ended (or, with `end`, once it got a line); exits 0 when the connection
// closed, 3 after 60 s. MODE: client, server or both. RELAY: the hex key of
// a blind relay for relayThrough ("-": none).
const [modules, boot, topic, seed, mode, relay, endFirst] = process.argv.slice(2)
const Hyperswarm = require(modules + '/hyperswarm')
const HyperDHT = require(modules + '/hyperdht')
const b4a = require(modules + '/b4a')
setTimeout(() => process.exit(3), 60000).unref()
const bootstrap = boot.split(',').map((hp) => ({ host: hp.split(':')[0], port: Number(hp.split(':')[1]) }))
const keyPair = HyperDHT.keyPair(b4a.from(seed, 'hex'))
const relayThrough = relay && relay !== '-' ? b4a.from(relay, 'hex') : null
const swarm = new Hyperswarm({ dht: new HyperDHT({ bootstrap, keyPair }), keyPair, relayThrough })
let taken = false
swarm.on('connection', (conn) => {
  if (taken) return
  taken = true
  const rs = conn.rawStream
  console.log(JSON.stringify({ event: 'connected', initiator: conn.isInitiator, address: `${rs.remoteHost}:${rs.remotePort}` }))
  conn.on('error', (e) => console.error('connection error', e.code || e.message))
  conn.on('data', (d) => {
    console.log(JSON.stringify({ event: 'data', text: b4a.toString(d) }))
    if (endFirst === 'end') conn.end()
  })
  conn.on('end', async () => { await conn.flush(); conn.end() })
  // The secret stream closes once both sides ended, before its UDX stream
  // has sent (and had acknowledged) its own END: leave only once that is
  // done too (at most 5 s), or the peer sees a reset instead of the end.
  conn.on('close', () => {
    const leave = () => swarm.destroy().then(() => process.exit(0))
    const rs = conn.rawStream
    if (!rs || rs.destroyed) return leave()
    rs.once('close', leave)
    setTimeout(leave, 5000).unref()
  })
  conn.write('hello from javascript\n')
})
swarm.join(b4a.from(topic, 'hex'), { server: mode !== 'client', client: mode !== 'server' })
