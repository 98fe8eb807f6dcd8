// The DHT test page (run.mjs --page demo --bundle dist/dht.js): a js-libp2p node with
// @libp2p/kad-dht in client mode, connected only to the Python node over WebTransport, runs the
// plan's steps (dial, findProviders, findPeer, dialFound, heliaCat) and POSTs one JSON report to
// /result. Each lookup step reports how long it took.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { createDhtNode } from './dht-node.js'
import { catAll, startHelia } from './helia.js'
import { sha256Hex, waitFor } from './node.js'
import { runPlanFromUrl } from './plan.js'

const peerText = (peer) => ({ id: peer.id.toString(), multiaddrs: peer.multiaddrs.map(String) })

const steps = {
  // Dial the Python node; wait (bounded) until the DHT has it in its routing table (identify
  // tells it that the node speaks /ipfs/kad/1.0.0).
  async dial (state, step) {
    const t0 = performance.now()
    const conn = await state.node.dial(multiaddr(step.addr), { signal: AbortSignal.timeout(step.timeoutMs ?? 10000) })
    const dialMs = performance.now() - t0
    const dht = state.node.services.dht
    if (!await waitFor(() => dht.routingTable.size > 0, step.routingTimeoutMs ?? 10000)) {
      throw new Error('the node never entered the DHT routing table')
    }
    return { dialMs, routingMs: performance.now() - t0, remotePeer: conn.remotePeer.toString() }
  },

  // The providers of `cid` through libp2p's content routing (the DHT): the time to the first
  // one and to the end of the query.
  async findProviders (state, step) {
    const t0 = performance.now()
    const providers = []
    let firstMs = null
    for await (const peer of state.node.contentRouting.findProviders(CID.parse(step.cid), {
      signal: AbortSignal.timeout(step.timeoutMs ?? 20000)
    })) {
      firstMs ??= performance.now() - t0
      if (!providers.some(p => p.id === peer.id.toString())) providers.push(peerText(peer))
    }
    state.found = providers
    return { providers, firstMs, totalMs: performance.now() - t0 }
  },

  // findPeer of `peer` through libp2p's peer routing (the DHT). `useCache: false` skips the
  // peer store, so even a connected peer is looked up over the network.
  async findPeer (state, step) {
    const t0 = performance.now()
    const peer = await state.node.peerRouting.findPeer(peerIdFromString(step.peer), {
      useCache: step.useCache ?? true, signal: AbortSignal.timeout(step.timeoutMs ?? 20000)
    })
    state.found = [peerText(peer)]
    return { peer: peerText(peer), ms: performance.now() - t0 }
  },

  // Dial the peer `peer` the last lookup found, at the addresses it returned (nothing else).
  async dialFound (state, step) {
    const found = (state.found ?? []).find(p => p.id === step.peer)
    if (found == null) throw new Error(`${step.peer} was not found by the last lookup`)
    const conn = await state.node.dial(found.multiaddrs.map(a => multiaddr(a)), {
      signal: AbortSignal.timeout(step.timeoutMs ?? 10000)
    })
    return { remotePeer: conn.remotePeer.toString(), remoteAddr: conn.remoteAddr.toString() }
  },

  // Helia (@helia/unixfs over @helia/bitswap) on this node; start it before dialing peers to
  // fetch from (Bitswap learns who speaks it from identify at connect time).
  async startHelia (state, step) {
    state.helia = await startHelia(state.node)
    return {}
  },

  // unixfs.cat of `cid` from the connected peers over Bitswap.
  async heliaCat (state, step) {
    const t0 = performance.now()
    const data = await catAll(state.helia.fs, CID.parse(step.cid), { signal: AbortSignal.timeout(step.timeoutMs ?? 30000) })
    const secs = (performance.now() - t0) / 1000
    return { bytes: data.length, sha256: await sha256Hex(data), MBps: data.length / 1e6 / secs }
  },

  // The peers this node is connected to (to show which one a fetch came from).
  async connections (state, step) {
    return { peers: state.node.getPeers().map(String) }
  }
}

runPlanFromUrl(steps, createDhtNode)
