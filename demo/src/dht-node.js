// The browser's DHT node, for the DHT test page (dht.js) and any page that looks things up:
// WebTransport only, Noise, identify, ping and @libp2p/kad-dht in client mode.
import { noise } from '@chainsafe/libp2p-noise'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { webTransport } from '@libp2p/webtransport'
import { createLibp2p } from 'libp2p'

// `loopback` (nodes on one machine, as in the tests): dial private addresses, which js-libp2p
// refuses by default, and keep them in the DHT (kad-dht's default mapper drops them, and with them
// every peer). Real deployments announce public addresses: pass `{ loopback: false }`.
export async function createDhtNode ({ loopback = true } = {}) {
  return createLibp2p({
    transports: [webTransport()],
    connectionEncrypters: [noise()],
    ...(loopback ? { connectionGater: { denyDialMultiaddr: () => false } } : {}),
    services: {
      identify: identify(),
      ping: ping(),
      // Client mode: a browser cannot be dialed, so it only asks.
      dht: kadDHT({ clientMode: true, ...(loopback ? { peerInfoMapper: passthroughMapper } : {}) })
    }
  })
}
