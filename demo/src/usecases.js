// The use-case test page: run.mjs --page demo opens index.html#<base64 JSON plan>; the page runs
// the plan's steps in order (dial, gossip, upload, fetch) and POSTs one JSON report to /result.
import { createVerifiedFetchWithHelia } from '@helia/verified-fetch'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { startBitswap } from './bitswap.js'
import { fetchFile } from './fetch.js'
import { KUBO_OPTIONS, catAll, startHelia } from './helia.js'
import {
  UPLOAD_PROTOCOL, concat, createNode, errorText, randomBytes, readAll, sendAll, sha256Hex, sleep, waitFor
} from './node.js'
import { VIDEO_TYPE, streamVideo, videoSupported } from './video.js'
import { runPlanFromUrl } from './plan.js'

const steps = {
  async dial (state, step) {
    const t0 = performance.now()
    state.conn = await state.node.dial(multiaddr(step.addr), { signal: AbortSignal.timeout(step.timeoutMs ?? 10000) })
    state.peer = state.conn.remotePeer
    return { ms: performance.now() - t0, remotePeer: state.peer.toString() }
  },

  // Join `topic`, wait (bounded) until the server is in our mesh, publish `count` messages
  // "b2p-<i>", then collect the server's "p2b-<i>" messages until `expect` distinct ones arrived;
  // a short settle afterwards lets duplicates show up. Reports every message received.
  async gossip (state, step) {
    const pubsub = state.node.services.pubsub
    const received = []
    pubsub.addEventListener('message', (evt) => {
      if (evt.detail.topic === step.topic) received.push(new TextDecoder().decode(evt.detail.data))
    })
    pubsub.subscribe(step.topic)
    const t0 = performance.now()
    const peer = state.peer.toString()
    const inMesh = await waitFor(() => pubsub.getMeshPeers(step.topic).includes(peer), step.meshTimeoutMs ?? 20000)
    if (!inMesh) {
      throw new Error(`server not in our mesh; subscribers: ${pubsub.getSubscribers(step.topic).map(String)}`)
    }
    const meshMs = performance.now() - t0
    const publishErrors = []
    for (let i = 0; i < step.count; i++) {
      try {
        await pubsub.publish(step.topic, new TextEncoder().encode(`b2p-${i}`))
      } catch (err) { publishErrors.push(errorText(err)) }
    }
    const distinct = () => new Set(received.filter(m => m.startsWith('p2b-'))).size
    await waitFor(() => distinct() >= step.expect, step.receiveTimeoutMs ?? 30000)
    await sleep(step.settleMs ?? 1000)
    return { meshMs, received, publishErrors: publishErrors.slice(0, 5), publishFailures: publishErrors.length }
  },

  // Upload `bytes` random bytes; the server answers {bytes, sha256, cid}.
  async upload (state, step) {
    const data = randomBytes(step.bytes)
    const sha256 = await sha256Hex(data)
    const stream = await state.node.dialProtocol(state.peer, UPLOAD_PROTOCOL)
    const t0 = performance.now()
    const reading = readAll(stream)
    await sendAll(stream, data)
    await stream.close()
    const answer = JSON.parse(new TextDecoder().decode(await reading))
    const secs = (performance.now() - t0) / 1000
    return { sha256, answer, MBps: step.bytes / 1e6 / secs }
  },

  // Fetch the file `cid`, verifying every block; report its sha256 and throughput.
  async fetch (state, step) {
    const t0 = performance.now()
    let progressCalls = 0
    const data = await fetchFile(state.node, state.peer, step.cid, () => { progressCalls++ })
    const secs = (performance.now() - t0) / 1000
    return { bytes: data.length, sha256: await sha256Hex(data), MBps: data.length / 1e6 / secs, progressCalls }
  },

  // Start Bitswap before dialing: it learns which peers speak it from identify at connect time.
  async startBitswap (state, step) {
    state.bitswap = await startBitswap(state.node)
    return {}
  },

  // Want each of `cids` (raw blocks) over Bitswap from the connected peer; bounded per block.
  async bitswapFetch (state, step) {
    const bitswap = state.bitswap
    const t0 = performance.now()
    const hashes = []
    let bytes = 0
    try {
      for (const cid of step.cids) {
        const block = await bitswap.get(cid, AbortSignal.timeout(step.blockTimeoutMs ?? 10000))
        bytes += block.length
        hashes.push(await sha256Hex(block))
      }
    } finally {
      await bitswap.stop()
    }
    return { bytes, hashes, MBps: bytes / 1e6 / ((performance.now() - t0) / 1000) }
  },

  // Helia (@helia/unixfs over @helia/bitswap) on this node; start it before dialing.
  async startHelia (state, step) {
    state.helia = await startHelia(state.node)
    return {}
  },

  // unixfs.cat of `cid` (at `path` inside it, if given) from the connected peers over Bitswap.
  async heliaCat (state, step) {
    const t0 = performance.now()
    const data = await catAll(state.helia.fs, CID.parse(step.cid), {
      path: step.path, signal: AbortSignal.timeout(step.timeoutMs ?? 60000)
    })
    const secs = (performance.now() - t0) / 1000
    return { bytes: data.length, sha256: await sha256Hex(data), MBps: data.length / 1e6 / secs }
  },

  // The WebM at `cid`, streamed by unixfs.cat into Media Source Extensions and played to the end
  // in a muted <video> (src/video.js). Fails at once, saying so, if MSE cannot play WebM VP8.
  async heliaVideo (state, step) {
    if (!videoSupported()) throw new Error(`MediaSource.isTypeSupported('${VIDEO_TYPE}') is false in this browser`)
    const video = document.createElement('video')
    video.muted = true
    document.body.append(video)
    const t0 = performance.now()
    let arrivedMs = null
    const result = await streamVideo(state.helia.fs, CID.parse(step.cid), video, {
      signal: AbortSignal.timeout(step.timeoutMs ?? 60000),
      onBytes: () => { arrivedMs = performance.now() - t0 }
    })
    const quality = video.getVideoPlaybackQuality()
    return {
      type: VIDEO_TYPE,
      bytes: result.bytes,
      sha256: await sha256Hex(concat(result.chunks, result.bytes)),
      arrivedMs,
      bytesWhenPlaying: result.bytesWhenPlaying,
      totalVideoFrames: quality.totalVideoFrames,
      droppedVideoFrames: quality.droppedVideoFrames,
      ended: video.ended,
      currentTime: video.currentTime,
      duration: video.duration,
      videoWidth: video.videoWidth,
      videoHeight: video.videoHeight
    }
  },

  // @helia/verified-fetch of ipfs://<cid>/<path> (over the same Helia): status, type and bytes.
  async verifiedFetch (state, step) {
    const vfetch = await createVerifiedFetchWithHelia(state.helia.helia)
    const t0 = performance.now()
    // No sessions: a session looks for providers through routing, and this page has no routers
    // (blocks come from the peers it is connected to).
    const response = await vfetch(`ipfs://${step.cid}/${step.path ?? ''}`, {
      session: false, signal: AbortSignal.timeout(step.timeoutMs ?? 60000)
    })
    const data = new Uint8Array(await response.arrayBuffer())
    const secs = (performance.now() - t0) / 1000
    return {
      status: response.status,
      contentType: response.headers.get('content-type'),
      bytes: data.length,
      sha256: await sha256Hex(data),
      MBps: data.length / 1e6 / secs,
      // An error's body says why (a 502 is a failed block fetch or a bad DAG).
      error: response.ok ? null : new TextDecoder().decode(data.subarray(0, 500))
    }
  },

  // The names in the directory `cid` (at `path`, if given).
  async heliaLs (state, step) {
    const names = []
    for await (const entry of state.helia.fs.ls(CID.parse(step.cid), { path: step.path })) {
      names.push(entry.name)
    }
    return { names }
  },

  // unixfs.addBytes of `bytes` random bytes (Kubo's options), then tell the peer its CID over
  // `step.protocol` (JSON) and wait for its JSON answer: the peer fetches the file from us.
  async heliaAdd (state, step) {
    const data = randomBytes(step.bytes)
    const sha256 = await sha256Hex(data)
    const cid = await state.helia.fs.addBytes(data, KUBO_OPTIONS)
    const stream = await state.node.dialProtocol(state.peer, step.protocol)
    const reading = readAll(stream)
    await sendAll(stream, new TextEncoder().encode(JSON.stringify({ cid: cid.toString(), sha256 })))
    await stream.close()
    const answer = JSON.parse(new TextDecoder().decode(await reading))
    return { cid: cid.toString(), sha256, answer }
  },

  async sleep (state, step) {
    await sleep(step.ms)
    return {}
  }
}

runPlanFromUrl(steps, createNode)
