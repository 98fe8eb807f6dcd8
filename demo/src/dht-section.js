// The demo page's DHT section. When the node runs the DHT (`serve --demo` does unless --no-dht;
// /config.json's `dht` entry is then set), the page's node carries @libp2p/kad-dht in client mode
// (src/dht-node.js's settings) and, through the Python node's Kademlia, finds the providers of
// the demo's CIDs and the node itself (findPeer with useCache: false, so over the network, not
// from the peer store), showing every query message as it goes and the timings.
// #dht-result gets data-ok="true"|"false" when done (demo/e2e.mjs waits for it): true when the
// node is the provider of every CID and findPeer gave its WebTransport addresses.
import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import { clientDht } from './dht-node.js'
import { errorText, waitFor } from './node.js'

const $ = (id) => document.getElementById(id)
const short = (peer) => `…${peer.toString().slice(-8)}`

// The services demo.js adds to the page's node: kad-dht only when the node runs a DHT.
export function dhtServices (config) {
  return config.dht == null ? {} : { dht: clientDht() }
}

// ctx: { node, peer, config } (config is the node's /config.json).
export function setupDht ({ node, peer, config }) {
  if (config.dht == null) {
    $('dht-result').textContent = 'the node runs no DHT (it was started with --no-dht): nothing to look up'
    return
  }
  const cids = Object.entries(config.dht.cids)
  $('dht-cids').textContent = cids.map(([name, cid]) => `${name} ${cid}`).join(', ')
  $('dht-lookup').disabled = false
  $('dht-lookup').onclick = async () => {
    $('dht-lookup').disabled = true
    delete $('dht-result').dataset.ok
    try {
      await lookUp(node, peer, config.dht.peer, cids)
    } catch (err) {
      $('dht-result').dataset.ok = 'false'
      $('dht-result').textContent = `failed: ${errorText(err)}`
    }
    $('dht-lookup').disabled = false
  }
}

async function lookUp (node, peer, nodeId, cids) {
  const t0 = performance.now()
  const lines = []
  const note = (text) => {
    lines.push(`${(performance.now() - t0).toFixed(0).padStart(5)} ms  ${text}`)
    $('dht-log').textContent = lines.join('\n')
    $('dht-log').scrollTop = $('dht-log').scrollHeight
  }
  // kad-dht's query events, as they happen.
  const onProgress = ({ type, detail: e }) => {
    if (type === 'kad-dht:query:send-query') note(`${e.messageName} sent to ${short(e.to)}`)
    if (type === 'kad-dht:query:peer-response') {
      note(`answer from ${short(e.from)}: ${e.providers.length} provider(s), ${e.closer.length} closer peer(s)`)
    }
    if (type === 'kad-dht:query:query-error') note(`error from ${short(e.from)}: ${errorText(e.error)}`)
  }
  const dht = node.services.dht
  $('dht-progress').max = cids.length + 1
  $('dht-progress').value = 0
  $('dht-result').textContent = 'waiting for the node to enter the DHT routing table…'
  // identify tells kad-dht that the node speaks /ipfs/kad/1.0.0; kad-dht holds its first query
  // until its first self-query (about 1 s after the page's node started).
  if (!await waitFor(() => dht.routingTable.size > 0, 10000)) {
    throw new Error('the node never entered the DHT routing table (does it speak /ipfs/kad/1.0.0?)')
  }
  note(`the node ${short(peer)} is in the routing table`)
  const found = { providers: {} }
  const texts = []
  for (const [name, cid] of cids) {
    $('dht-result').textContent = `findProviders(${name})…`
    const t1 = performance.now()
    let firstMs = null
    const ids = []
    for await (const provider of node.contentRouting.findProviders(CID.parse(cid), {
      signal: AbortSignal.timeout(20000), onProgress
    })) {
      firstMs ??= performance.now() - t1
      if (!ids.includes(provider.id.toString())) ids.push(provider.id.toString())
      note(`provider of the ${name}: ${short(provider.id)}`)
    }
    found.providers[name] = ids
    $('dht-progress').value++
    const who = ids.map(id => id === nodeId ? 'the node' : short(id)).join(', ') || 'no provider'
    texts.push(`${name}: ${who} (first after ${firstMs?.toFixed(0) ?? '–'} ms, ` +
      `query done in ${(performance.now() - t1).toFixed(0)} ms)`)
  }
  $('dht-result').textContent = 'findPeer(the node)…'
  const t2 = performance.now()
  const record = await node.peerRouting.findPeer(peerIdFromString(nodeId), {
    useCache: false, signal: AbortSignal.timeout(20000), onProgress
  })
  $('dht-progress').value++
  found.peer = { id: record.id.toString(), multiaddrs: record.multiaddrs.map(String) }
  const wt = found.peer.multiaddrs.filter(a => a.includes('/webtransport'))
  texts.push(`findPeer: the node at ${wt.length} WebTransport address(es) in ${(performance.now() - t2).toFixed(0)} ms`)
  const ok = Object.values(found.providers).every(ids => ids.includes(nodeId)) &&
    found.peer.id === nodeId && wt.length > 0
  $('dht-result').dataset.found = JSON.stringify(found)
  $('dht-result').dataset.ok = String(ok)
  $('dht-result').textContent = `${ok ? 'found' : 'NOT FOUND'}: ${texts.join('; ')}`
}
