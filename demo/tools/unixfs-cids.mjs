// The CIDs @helia/unixfs gives files and directories with Kubo's import options (what
// `ipfs add --cid-version=1` does): raw leaves, 256 KiB chunks, balanced DAG, 174 links per node.
// tests/apps/test_unixfs_cids.py compares them with the Python importer's.
//
//   node tools/unixfs-cids.mjs file PATH...   one line of JSON: {"PATH": "CID", ...}
//   node tools/unixfs-cids.mjs dir ROOT       one line of JSON: {"ROOT": "CID"}; the files
//                                             below ROOT, each named by its path under ROOT
import { readFile, readdir } from 'node:fs/promises'
import { basename, join, relative } from 'node:path'
import { unixfs } from '@helia/unixfs'
import { MemoryBlockstore } from 'blockstore-core'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

export const KUBO_OPTIONS = {
  cidVersion: 1,
  rawLeaves: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  reduceSingleLeafToSelf: true
}

async function * walk (dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield * walk(path)
    else yield path
  }
}

const [mode, ...paths] = process.argv.slice(2)
const fs = unixfs({ blockstore: new MemoryBlockstore() })
const out = {}
if (mode === 'file') {
  for (const path of paths) {
    out[path] = (await fs.addBytes(await readFile(path), KUBO_OPTIONS)).toString()
  }
} else if (mode === 'dir' && paths.length === 1) {
  const root = paths[0]
  const entries = []
  for await (const path of walk(root)) {
    entries.push({ path: join(basename(root), relative(root, path)), content: await readFile(path) })
  }
  let last = null
  for await (const entry of fs.addAll(entries, KUBO_OPTIONS)) last = entry
  out[root] = last.cid.toString()
} else {
  console.error('usage: unixfs-cids.mjs file PATH... | dir ROOT')
  process.exit(2)
}
console.log(JSON.stringify(out))
