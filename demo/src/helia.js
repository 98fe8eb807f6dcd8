// Helia on the page's own js-libp2p node: Bitswap as the only block broker and no routers, so
// blocks come from the peers the page is connected to (the Python node), never from the network
// at large. `fs` is @helia/unixfs; KUBO_OPTIONS are Kubo's import options (`ipfs add
// --cid-version=1`), so a file added here has the CID the Python node gives the same bytes.
import { withBitswap } from '@helia/bitswap'
import { unixfs } from '@helia/unixfs'
import { createHeliaLight } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

export const KUBO_OPTIONS = {
  cidVersion: 1,
  rawLeaves: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  reduceSingleLeafToSelf: true
}

// Start before dialing: Bitswap learns which peers speak it from identify at connect time.
export async function startHelia (libp2p) {
  const helia = createHeliaLight({ routers: [], blockBrokers: [] })
  Object.defineProperty(helia, 'libp2p', { value: libp2p, enumerable: true, configurable: true })
  withBitswap(helia)
  await helia.start()
  return { helia, fs: unixfs(helia) }
}

// All bytes of a file (optionally at `path` below a directory), with progress per chunk.
export async function catAll (fs, cid, { path, signal, onBytes = () => {} } = {}) {
  const chunks = []
  let total = 0
  for await (const chunk of fs.cat(cid, { path, signal })) {
    chunks.push(chunk)
    total += chunk.length
    onBytes(total)
  }
  const out = new Uint8Array(total)
  let off = 0
  for (const c of chunks) { out.set(c, off); off += c.length }
  return out
}
