// The browser node shared by the test page and the demo page: WebTransport only, Noise,
// identify (gossipsub learns the server's protocols from it), ping, gossipsub and any `services`
// a page adds (the demo page: kad-dht, src/dht-section.js).
import { noise } from '@chainsafe/libp2p-noise'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { webTransport } from '@libp2p/webtransport'
import { createLibp2p } from 'libp2p'

export const UPLOAD_PROTOCOL = '/py-libp2p-webtransport/upload/1.0.0'
export const FETCH_PROTOCOL = '/py-libp2p-webtransport/fetch/1.0.0'
const CHUNK = 64 * 1024

export async function createNode ({ services = {} } = {}) {
  return createLibp2p({
    transports: [webTransport()],
    connectionEncrypters: [noise()],
    // The node is on loopback, which js-libp2p refuses to dial by default.
    connectionGater: { denyDialMultiaddr: () => false },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: false }),
      ...services
    }
  })
}

export function errorText (err) {
  if (err == null) return null
  const parts = [`${err.name ?? 'Error'}: ${err.message ?? String(err)}`]
  let cause = err.cause
  while (cause != null && parts.length < 6) {
    parts.push(`caused by ${cause.name ?? 'Error'}: ${cause.message ?? String(cause)}`)
    cause = cause.cause
  }
  return parts.join(' | ')
}

export function sleep (ms) {
  return new Promise(resolve => setTimeout(resolve, ms))
}

// Poll `check` until it returns true or `timeoutMs` passes; returns whether it did.
export async function waitFor (check, timeoutMs, everyMs = 50) {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (check()) return true
    await sleep(everyMs)
  }
  return check()
}

export async function sha256Hex (bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes)
  return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('')
}

export function randomBytes (n) {
  const out = new Uint8Array(n)
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)))
  return out
}

export async function sendAll (stream, data) {
  for (let off = 0; off < data.length; off += CHUNK) {
    if (!stream.send(data.subarray(off, off + CHUNK))) await stream.onDrain()
  }
}

export async function readAll (stream, onChunk = null) {
  const chunks = []
  let total = 0
  for await (const chunk of stream) {
    const bytes = chunk.subarray ? chunk.subarray() : chunk
    chunks.push(bytes)
    total += bytes.length
    if (onChunk != null) onChunk(total)
  }
  return concat(chunks, total)
}

export function concat (chunks, total = chunks.reduce((n, c) => n + c.length, 0)) {
  const out = new Uint8Array(total)
  let off = 0
  for (const c of chunks) { out.set(c, off); off += c.length }
  return out
}
