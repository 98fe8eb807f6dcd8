// Client of /py-libp2p-webtransport/fetch/1.0.0: ask for a CID, verify every block against its
// CID (sha2-256), and reassemble the file listed by the root block.
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { FETCH_PROTOCOL, concat, sendAll } from './node.js'

const RAW = 0x55
const JSON_CODEC = 0x0200

// Frames: u32 big-endian length + block. Yields blocks as they complete.
async function * frames (stream) {
  let buf = new Uint8Array(0)
  for await (const chunk of stream) {
    const bytes = chunk.subarray ? chunk.subarray() : chunk
    buf = buf.length === 0 ? bytes : concat([buf, bytes])
    while (buf.length >= 4) {
      const len = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0, false)
      if (buf.length < 4 + len) break
      yield buf.slice(4, 4 + len)
      buf = buf.subarray(4 + len)
    }
  }
  if (buf.length !== 0) throw new Error(`fetch: stream ended inside a block (${buf.length} bytes left)`)
}

async function verify (cid, block) {
  const digest = await sha256.digest(block)
  if (cid.multihash.code !== digest.code || !equal(cid.multihash.digest, digest.digest)) {
    throw new Error(`fetch: block does not match ${cid}`)
  }
}

function equal (a, b) {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

// Fetch the file `cidText` from `peer`; onProgress(bytes, size) after every verified block.
export async function fetchFile (node, peer, cidText, onProgress = () => {}) {
  const root = CID.parse(cidText)
  const stream = await node.dialProtocol(peer, FETCH_PROTOCOL)
  await sendAll(stream, new TextEncoder().encode(cidText + '\n'))
  // Half-close: the request is complete (a stream left half-open stalls later streams).
  await stream.close()
  const it = stream[Symbol.asyncIterator]()
  // The status byte comes in the first chunk; push the rest back for the frame parser.
  const first = await it.next()
  if (first.done) throw new Error('fetch: no answer')
  const head = first.value.subarray ? first.value.subarray() : first.value
  if (head[0] !== 0) {
    const rest = [head.subarray(1)]
    for await (const c of { [Symbol.asyncIterator]: () => it }) rest.push(c.subarray ? c.subarray() : c)
    throw new Error(`fetch refused: ${new TextDecoder().decode(concat(rest))}`)
  }
  const body = {
    async * [Symbol.asyncIterator] () {
      if (head.length > 1) yield head.subarray(1)
      for (;;) { const r = await it.next(); if (r.done) return; yield r.value }
    }
  }
  let manifest = null
  const parts = []
  let got = 0
  for await (const block of frames(body)) {
    if (manifest == null) {
      await verify(root, block)
      if (root.code === RAW) { parts.push(block); got = block.length; break }
      if (root.code !== JSON_CODEC) throw new Error(`fetch: unexpected codec ${root.code}`)
      manifest = JSON.parse(new TextDecoder().decode(block))
      onProgress(0, manifest.size)
      continue
    }
    const index = parts.length
    if (index >= manifest.blocks.length) throw new Error('fetch: more blocks than the root lists')
    await verify(CID.parse(manifest.blocks[index]), block)
    parts.push(block)
    got += block.length
    onProgress(got, manifest.size)
  }
  if (manifest != null && parts.length !== manifest.blocks.length) {
    throw new Error(`fetch: got ${parts.length} of ${manifest.blocks.length} blocks`)
  }
  return concat(parts, got)
}
