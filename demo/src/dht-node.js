// The browser's DHT node, for the DHT test page (dht.js), and the kad-dht service the demo page
// adds to its own node (dht-section.js): WebTransport only, Noise, identify, ping and
// @libp2p/kad-dht in client mode.
import { noise } from '@chainsafe/libp2p-noise'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { webTransport } from '@libp2p/webtransport'
import { createLibp2p } from 'libp2p'

// Client mode: a browser cannot be dialed, so it only asks. `loopback` (nodes on one machine, as
// in the tests and the demo): keep private addresses in the DHT (kad-dht's default mapper drops
// them, and with them every peer). Real deployments announce public addresses: `loopback: false`.
export function clientDht ({ loopback = true } = {}) {
  return kadDHT({ clientMode: true, ...(loopback ? { peerInfoMapper: passthroughMapper } : {}) })
}

// With `loopback`, also dial private addresses, which js-libp2p refuses by default.
export async function createDhtNode ({ loopback = true } = {}) {
  return createLibp2p({
    transports: [webTransport()],
    connectionEncrypters: [noise()],
    ...(loopback ? { connectionGater: { denyDialMultiaddr: () => false } } : {}),
    services: {
      identify: identify(),
      ping: ping(),
      dht: clientDht({ loopback })
    }
  })
}
