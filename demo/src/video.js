// The demo's video: a WebM (VP8) the Python node serves as UnixFS over Bitswap, played through
// Media Source Extensions while Helia's `cat` streams it in: each chunk is appended to the
// SourceBuffer as it arrives and playback starts once the first one is in.
export const VIDEO_TYPE = 'video/webm; codecs="vp8"'

// Whether this browser can play the demo's video through MSE (Chromium builds without
// proprietary codecs still have VP8/VP9 in WebM).
export function videoSupported () {
  return typeof MediaSource !== 'undefined' && MediaSource.isTypeSupported(VIDEO_TYPE)
}

function once (target, okEvent, errorEvent = 'error') {
  return new Promise((resolve, reject) => {
    const ok = () => { target.removeEventListener(errorEvent, bad); resolve() }
    const bad = () => { target.removeEventListener(okEvent, ok); reject(target.error ?? new Error(`${errorEvent} event`)) }
    target.addEventListener(okEvent, ok, { once: true })
    target.addEventListener(errorEvent, bad, { once: true })
  })
}

// Stream `cid` (UnixFS, via @helia/unixfs `fs`) into `video` and resolve when it has played to
// the end. `onBytes(got)` is called per chunk; the result says how many bytes had arrived when
// playback started, and holds every byte (for the caller's hash check).
export async function streamVideo (fs, cid, video, { onBytes = () => {}, signal } = {}) {
  if (!videoSupported()) throw new Error(`this browser cannot play ${VIDEO_TYPE} through Media Source Extensions`)
  const source = new MediaSource()
  video.src = URL.createObjectURL(source)
  await once(source, 'sourceopen')
  const buffer = source.addSourceBuffer(VIDEO_TYPE)
  let got = 0
  let bytesWhenPlaying = null
  video.addEventListener('playing', () => { bytesWhenPlaying ??= got }, { once: true })
  const ended = once(video, 'ended')
  const chunks = []
  for await (const chunk of fs.cat(cid, { signal })) {
    buffer.appendBuffer(chunk)
    await once(buffer, 'updateend')
    chunks.push(chunk)
    got += chunk.length
    onBytes(got)
    // Start as soon as there is something to show; later chunks keep arriving meanwhile.
    if (chunks.length === 1) video.play().catch(() => {}) // a refusal shows as no 'playing'
  }
  source.endOfStream() // the duration is now known: 'ended' fires at the end of what arrived
  await ended
  return { chunks, bytes: got, bytesWhenPlaying }
}
