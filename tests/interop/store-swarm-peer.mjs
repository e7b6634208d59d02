// Corestore replication over Hyperswarm, the JavaScript side of
// store_swarm_test.sh. All on 127.0.0.1 with an explicit bootstrap list.
//   serve BOOTSTRAP DIR        a core with three blocks, replicated to every
//                              peer that joins its discovery key; prints
//                              {"key":hex} and stays up until SIGTERM
//   read BOOTSTRAP DIR KEYHEX  joins the key's discovery key as a client and
//                              prints block 0 as {"block":utf8}
import Corestore from 'corestore'
import Hyperswarm from 'hyperswarm'
import HyperDHT from 'hyperdht'
import b4a from 'b4a'

const [mode, bootstrap, dir, keyHex] = process.argv.slice(2)
const watchdog = setTimeout(() => { console.error('store-swarm-peer: timed out'); process.exit(3) }, 60_000)

const dht = new HyperDHT({ bootstrap: bootstrap.split(','), host: '127.0.0.1' })
const swarm = new Hyperswarm({ dht })
const store = new Corestore(dir)
swarm.on('connection', (conn) => store.replicate(conn))

async function close () {
  clearTimeout(watchdog)
  await swarm.destroy()
  await store.close()
}

if (mode === 'serve') {
  const core = store.get({ name: 'interop' })
  await core.ready()
  if (core.length === 0) await core.append([b4a.from('from javascript 0'), b4a.from('one'), b4a.from('two')])
  await swarm.join(core.discoveryKey, { server: true, client: false }).flushed()
  console.log(JSON.stringify({ key: b4a.toString(core.key, 'hex') }))
  const stop = async () => { await close(); process.exit(0) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} else if (mode === 'read') {
  const core = store.get({ key: b4a.from(keyHex, 'hex') })
  await core.ready()
  swarm.join(core.discoveryKey, { server: false, client: true })
  const block = await core.get(0, { timeout: 30_000 })
  console.log(JSON.stringify({ block: b4a.toString(block) }))
  await close()
  process.exit(0)
} else {
  console.error('usage: store-swarm-peer.mjs serve|read BOOTSTRAP DIR [KEYHEX]')
  process.exit(2)
}
