// Fetch raw blocks over Bitswap with Helia's own implementation (@helia/bitswap), attached to our
// plain js-libp2p node through the Helia mixin API: the node below is the smallest Helia-shaped
// object withBitswap() needs (blockstore, routing, logger, hasher lookup, block broker registry).
import { withBitswap } from '@helia/bitswap'
import { defaultLogger } from '@libp2p/logger'
import { MemoryBlockstore } from 'blockstore-core'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'

export async function startBitswap (libp2p) {
  const brokers = []
  const mixins = []
  const helia = {
    status: 'starting',
    libp2p,
    blockstore: new MemoryBlockstore(),
    logger: defaultLogger(),
    // No content routing: blocks come from the peer we are connected to.
    routing: { async * findProviders () {}, async provide () {} },
    getHasher: async (code) => {
      if (code === sha256.code) return sha256
      throw new Error(`no hasher for ${code}`)
    },
    hasBlockBroker: (name) => brokers.some(b => b.name === name),
    addBlockBroker: (broker) => { brokers.push(broker) },
    addMixin: (mixin) => { mixins.push(mixin) }
  }
  withBitswap(helia)
  for (const mixin of mixins) await mixin.start(helia)
  const broker = brokers.find(b => b.name === 'bitswap')
  return {
    broker,
    async get (cidText, signal) {
      return broker.retrieve(CID.parse(cidText), { signal })
    },
    stop: () => broker.stop()
  }
}
