// The browser side of the test suite: a js-libp2p node with only the WebTransport transport.
// The runner opens index.html#<base64 JSON plan>; the page runs the plan's steps in order and
// POSTs one JSON report to /result (so any browser works, with or without a driver).
import { noise } from '@chainsafe/libp2p-noise'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { webTransport } from '@libp2p/webtransport'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const CHUNK = 64 * 1024

function log (...args) {
  console.log('[page]', ...args)
}

// Deterministic bytes (xorshift32) so both ends can check content without shipping it.
function patternBytes (n, seed = 0x9e3779b9) {
  const out = new Uint8Array(n)
  let x = seed >>> 0
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

async function sha256Hex (bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes)
  return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('')
}

function errorText (err) {
  if (err == null) return null
  const parts = [`${err.name ?? 'Error'}: ${err.message ?? String(err)}`]
  let cause = err.cause
  while (cause != null && parts.length < 6) {
    parts.push(`caused by ${cause.name ?? 'Error'}: ${cause.message ?? String(cause)}`)
    cause = cause.cause
  }
  if (err.errors != null) {
    for (const e of err.errors) parts.push(`aggregate: ${e.name}: ${e.message}`)
  }
  return parts.join(' | ')
}

async function sendAll (stream, data, track = {}) {
  for (let off = 0; off < data.length; off += CHUNK) {
    if (!stream.send(data.subarray(off, off + CHUNK))) {
      await stream.onDrain()
    }
    track.sent = Math.min(off + CHUNK, data.length)
  }
}

async function readAll (stream, expected = Infinity, onFirstByte = null, onProgress = null) {
  const chunks = []
  let total = 0
  for await (const chunk of stream) {
    const bytes = chunk.subarray ? chunk.subarray() : chunk
    if (total === 0 && onFirstByte != null) onFirstByte()
    chunks.push(bytes)
    total += bytes.length
    if (onProgress != null) onProgress(total)
    if (total > expected) break
  }
  const out = new Uint8Array(total)
  let off = 0
  for (const c of chunks) { out.set(c, off); off += c.length }
  return out
}

function sameBytes (a, b) {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

// `track` (optional) records how far the echo got, so a stuck one can be reported.
async function echoOnce (node, peer, protocol, size, seed, track = {}) {
  const data = patternBytes(size, seed)
  track.phase = 'open'
  const stream = await node.dialProtocol(peer, protocol, { maxOutboundStreams: 1024 })
  track.id = stream.id
  track.received = 0
  track.phase = 'send'
  const reading = readAll(stream, size, null, (n) => { track.received = n })
  await sendAll(stream, data, track)
  track.phase = 'close'
  await stream.close()
  track.phase = 'read'
  const got = await reading
  track.phase = 'done'
  track.status = stream.status
  return { sent: size, received: got.length, exact: sameBytes(data, got) }
}

const steps = {
  async dial (state, step) {
    const progress = []
    const t0 = performance.now()
    state.conn = await state.node.dial(multiaddr(step.addr), {
      signal: AbortSignal.timeout(step.timeoutMs ?? 10000),
      onProgress: (evt) => { progress.push(evt.type) }
    })
    state.peer = state.conn.remotePeer
    return { ms: performance.now() - t0, progress, remotePeer: state.peer.toString(), remoteAddr: state.conn.remoteAddr.toString() }
  },

  async ping (state, step) {
    const rtts = []
    for (let i = 0; i < (step.count ?? 20); i++) {
      rtts.push(await state.node.services.ping.ping(state.peer))
    }
    return { rtts }
  },

  async identify (state, step) {
    const result = await state.node.services.identify.identify(state.conn)
    return {
      protocols: result.protocols,
      agentVersion: result.agentVersion,
      observedAddr: result.observedAddr?.toString() ?? null,
      listenAddrs: (result.listenAddrs ?? []).map(a => a.toString())
    }
  },

  async echo (state, step) {
    const t0 = performance.now()
    const track = {}
    const job = echoOnce(state.node, state.peer, step.protocol ?? '/echo/1.0.0', step.bytes, step.seed, track)
    // Bounded below the runner's timeout, so a stuck echo reports how far it got.
    let timer
    const timeout = new Promise(resolve => { timer = setTimeout(resolve, step.timeoutMs ?? 60000, 'timeout') })
    const r = await Promise.race([job, timeout])
    clearTimeout(timer)
    if (r === 'timeout') {
      throw new Error(`echo of ${step.bytes} bytes unfinished after ${step.timeoutMs ?? 60000} ms: ${JSON.stringify(track)}`)
    }
    return { ...r, ms: performance.now() - t0 }
  },

  async concurrentEcho (state, step) {
    const jobs = []
    const tracks = []
    for (let i = 0; i < step.streams; i++) {
      const track = {}
      tracks.push(track)
      jobs.push(echoOnce(state.node, state.peer, step.protocol ?? '/echo/1.0.0', step.bytes, i + 1, track))
    }
    // Bounded: a stuck echo is reported with how far each unfinished one got.
    let timer
    const timeout = new Promise(resolve => { timer = setTimeout(resolve, step.timeoutMs ?? 45000, 'timeout') })
    const settled = await Promise.race([Promise.allSettled(jobs), timeout])
    clearTimeout(timer)
    if (settled === 'timeout') {
      const stuck = tracks.filter(t => t.phase !== 'done')
      throw new Error(`${stuck.length} of ${step.streams} echoes unfinished: ${JSON.stringify(stuck.slice(0, 10))}`)
    }
    const results = settled
    const exact = results.filter(r => r.status === 'fulfilled' && r.value.exact).length
    const errors = results.filter(r => r.status === 'rejected').map(r => errorText(r.reason))
    return { streams: step.streams, exact, errors: errors.slice(0, 5) }
  },

  // /perf/1.0.0: 8-byte big-endian size to receive, upload until close-write, then download.
  // Upload time ends at the first downloaded byte (the server sends only after it read our EOF).
  async perf (state, step) {
    const up = step.upload ?? 0
    const down = step.download ?? 0
    const stream = await state.node.dialProtocol(state.peer, '/perf/1.0.0')
    const header = new Uint8Array(8)
    new DataView(header.buffer).setBigUint64(0, BigInt(down), false)
    const t0 = performance.now()
    let tFirst = null
    const reading = readAll(stream, down, () => { tFirst = performance.now() })
    stream.send(header)
    const block = patternBytes(Math.min(up, 1024 * 1024) || 1)
    let sent = 0
    while (sent < up) {
      const n = Math.min(CHUNK, up - sent)
      const off = sent % block.length
      const piece = off + n <= block.length ? block.subarray(off, off + n) : block.subarray(0, n)
      if (!stream.send(piece)) await stream.onDrain()
      sent += n
    }
    await stream.close()
    const tClosed = performance.now()
    const got = await reading
    const tEnd = performance.now()
    const upSecs = ((tFirst ?? tEnd) - t0) / 1000
    const downSecs = (tEnd - (tFirst ?? tClosed)) / 1000
    return {
      uploaded: sent,
      downloaded: got.length,
      uploadMBps: up > 0 ? up / 1e6 / upSecs : null,
      downloadMBps: down > 0 ? got.length / 1e6 / downSecs : null
    }
  },

  // Open a stream, write a little, then reset it: the server must see a reset, not EOF.
  // The server answers first, so the protocol is negotiated and its handler is reading.
  async resetStream (state, step) {
    const stream = await state.node.dialProtocol(state.peer, step.protocol)
    stream.send(new TextEncoder().encode(step.payload ?? 'about to reset'))
    const iterator = stream[Symbol.asyncIterator]()
    const first = await iterator.next()
    stream.abort(new Error('reset by the browser test'))
    return { aborted: true, gotReply: !first.done }
  },

  // Read from a protocol whose server side resets the stream: report how the read ended.
  async expectRemoteReset (state, step) {
    const stream = await state.node.dialProtocol(state.peer, step.protocol)
    stream.send(new TextEncoder().encode('go'))
    try {
      const got = await readAll(stream)
      return { ended: 'eof', bytes: got.length }
    } catch (err) {
      return { ended: 'error', error: errorText(err) }
    }
  },

  // Wait until the server closes the connection (or time out).
  async waitClosed (state, step) {
    const t0 = performance.now()
    const deadline = t0 + (step.timeoutMs ?? 10000)
    while (performance.now() < deadline) {
      if (state.conn.status !== 'open') return { closed: true, status: state.conn.status, ms: performance.now() - t0 }
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    return { closed: false, status: state.conn.status }
  },

  async hangUp (state, step) {
    await state.node.hangUp(state.peer)
    return { ok: true }
  },

  // Wait until the test says so: poll step.url (the test's own loopback HTTP server) until it
  // answers 200, bounded by step.timeoutMs.
  async waitSignal (state, step) {
    const t0 = performance.now()
    const deadline = t0 + (step.timeoutMs ?? 30000)
    while (performance.now() < deadline) {
      try {
        const res = await fetch(step.url, { cache: 'no-store' })
        if (res.ok) return { ms: performance.now() - t0 }
      } catch (err) {}
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    throw new Error(`no signal from ${step.url} within ${step.timeoutMs ?? 30000} ms`)
  },

  async sleep (state, step) {
    await new Promise(resolve => setTimeout(resolve, step.ms))
    return { ok: true }
  }
}

async function run (plan) {
  const report = { userAgent: navigator.userAgent, hasWebTransport: typeof WebTransport !== 'undefined', steps: [] }
  const state = {}
  try {
    state.node = await createLibp2p({
      transports: [webTransport()],
      connectionEncrypters: [noise()],
      // Tests dial loopback addresses, which js-libp2p refuses by default.
      connectionGater: { denyDialMultiaddr: () => false },
      connectionManager: { maxParallelDials: 10 },
      // identify runs only when a step asks, so the explicit call is the only identify stream.
      services: { ping: ping(), identify: identify({ runOnConnectionOpen: false }) }
    })
  } catch (err) {
    report.error = `createLibp2p: ${errorText(err)}`
    return report
  }
  for (const step of plan.steps) {
    const t0 = performance.now()
    try {
      const result = await steps[step.op](state, step)
      report.steps.push({ op: step.op, ok: true, ms: performance.now() - t0, ...result })
      log(step.op, 'ok')
    } catch (err) {
      report.steps.push({ op: step.op, ok: false, ms: performance.now() - t0, error: errorText(err) })
      log(step.op, 'failed', errorText(err))
      if (!step.continueOnError) break
    }
  }
  try { await state.node.stop() } catch (err) { report.stopError = errorText(err) }
  return report
}

async function main () {
  const plan = JSON.parse(atob(decodeURIComponent(location.hash.slice(1))))
  let report
  try {
    report = await run(plan)
  } catch (err) {
    report = { error: errorText(err), steps: [] }
  }
  window.__report = report
  await fetch('/result', { method: 'POST', body: JSON.stringify(report), headers: { 'content-type': 'application/json' } })
}

main()
