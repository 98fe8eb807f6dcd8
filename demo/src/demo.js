// The page `py-libp2p-webtransport serve --demo` serves: it reads the node's addresses from
// /config.json, dials over WebTransport and shows connection state, ping RTT, a gossip chat, a
// verified file fetch by CID with progress and throughput (our fetch protocol, and Helia over
// Bitswap with a directory listing), an upload, the DHT lookup (src/dht-section.js) and a video played
// while it arrives (src/video.js).
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { dhtServices, setupDht } from './dht-section.js'
import { fetchFile } from './fetch.js'
import { catAll, startHelia } from './helia.js'
import {
  UPLOAD_PROTOCOL, concat, createNode, errorText, randomBytes, readAll, sendAll, sha256Hex
} from './node.js'
import { VIDEO_TYPE, streamVideo, videoSupported } from './video.js'

const $ = (id) => document.getElementById(id)
const MiB = 1024 * 1024

function setState (state, text = state) {
  $('state').dataset.state = state
  $('state').textContent = text
}

function chatLine (text, mine) {
  const div = document.createElement('div')
  div.textContent = text
  if (mine) div.className = 'me'
  $('chat-log').append(div)
  $('chat-log').scrollTop = $('chat-log').scrollHeight
}

// "3.2 MiB, 41.0 MB/s" for `got` bytes since `t0` (performance.now()).
function rate (got, t0) {
  const secs = Math.max((performance.now() - t0) / 1000, 1e-3)
  return `${(got / MiB).toFixed(1)} MiB, ${(got / 1e6 / secs).toFixed(1)} MB/s`
}

// Run `work` when `button` is clicked, with the button off meanwhile; `result` gets
// data-verified="false" and the error if it throws.
function onClick (button, result, work) {
  $(button).disabled = false
  $(button).onclick = async () => {
    $(button).disabled = true
    delete $(result).dataset.verified
    try {
      await work()
    } catch (err) {
      $(result).dataset.verified = 'false'
      $(result).textContent = `failed: ${errorText(err)}`
    }
    $(button).disabled = false
  }
}

function setupChat (pubsub, peer, topic) {
  let sent = 0
  let received = 0
  const pending = [] // send times of our messages the node has not answered yet
  const show = (echoMs) => {
    $('chat-stats').textContent = `${sent} sent, ${received} received` +
      (echoMs == null ? '' : `, the node answered in ${echoMs.toFixed(1)} ms`)
  }
  pubsub.addEventListener('message', (evt) => {
    if (evt.detail.topic !== topic) return
    received++
    chatLine(new TextDecoder().decode(evt.detail.data), false)
    show(pending.length > 0 ? performance.now() - pending.shift() : null)
  })
  const send = async () => {
    const text = $('chat-input').value.trim()
    if (text === '') return
    try {
      pending.push(performance.now())
      await pubsub.publish(topic, new TextEncoder().encode(text))
      sent++
      show(null)
      chatLine(`me: ${text}`, true)
      $('chat-input').value = ''
    } catch (err) {
      pending.pop()
      chatLine(`(not sent: ${errorText(err)})`, true)
    }
  }
  $('chat-send').onclick = send
  $('chat-input').onkeydown = (evt) => { if (evt.key === 'Enter') send() }
  // Publishing needs the node in our gossip mesh, which takes a heartbeat or two.
  const meshReady = setInterval(() => {
    if (pubsub.getMeshPeers(topic).includes(peer.toString())) {
      clearInterval(meshReady)
      $('chat-input').disabled = false
      $('chat-send').disabled = false
    }
  }, 100)
}

function setupFetch (node, peer, file) {
  onClick('fetch', 'fetch-result', async () => {
    $('fetch-result').textContent = 'fetching…'
    const t0 = performance.now()
    const data = await fetchFile(node, peer, file.cid, (got, size) => {
      $('fetch-progress').max = size
      $('fetch-progress').value = got
      $('fetch-result').textContent = rate(got, t0)
    })
    const secs = (performance.now() - t0) / 1000
    const ok = (await sha256Hex(data)) === file.sha256
    $('fetch-result').dataset.verified = String(ok)
    $('fetch-result').textContent = `${ok ? 'verified' : 'HASH MISMATCH'}: ${(data.length / MiB).toFixed(1)} MiB in ` +
      `${secs.toFixed(2)} s, ${(data.length / 1e6 / secs).toFixed(1)} MB/s (every block checked against its CID)`
  })
}

function setupHelia (fs, content) {
  onClick('helia-fetch', 'helia-result', async () => {
    $('helia-result').textContent = 'fetching…'
    $('helia-progress').max = content.file.bytes
    const t0 = performance.now()
    const data = await catAll(fs, CID.parse(content.file.cid), {
      onBytes: (got) => {
        $('helia-progress').value = got
        $('helia-result').textContent = rate(got, t0)
      }
    })
    const secs = (performance.now() - t0) / 1000
    const ok = (await sha256Hex(data)) === content.file.sha256
    $('helia-result').textContent = `${ok ? 'verified' : 'HASH MISMATCH'}: ${(data.length / MiB).toFixed(1)} MiB in ` +
      `${secs.toFixed(2)} s, ${(data.length / 1e6 / secs).toFixed(1)} MB/s (unixfs.cat over Bitswap)`
    // The directory listing: one dag-pb block per entry, so its progress counts entries.
    const names = []
    const t1 = performance.now()
    for await (const entry of fs.ls(CID.parse(content.dir))) {
      names.push(entry.name)
      $('helia-ls').textContent = `${names.join(', ')} …`
    }
    $('helia-ls').textContent = `${names.join(', ')} (${names.length} entries in ` +
      `${(performance.now() - t1).toFixed(0)} ms, unixfs.ls)`
    $('helia-ls').dataset.names = JSON.stringify(names)
    $('helia-result').dataset.verified = String(ok) // last: the listing is part of the check
  })
}

function setupUpload (node, peer) {
  onClick('upload', 'upload-result', async () => {
    const data = randomBytes(10 * MiB)
    const hash = await sha256Hex(data)
    const t0 = performance.now()
    const stream = await node.dialProtocol(peer, UPLOAD_PROTOCOL)
    const reading = readAll(stream)
    let sent = 0
    $('upload-progress').max = data.length
    const progress = setInterval(() => {
      $('upload-progress').value = sent
      $('upload-result').textContent = `uploading: ${rate(sent, t0)}`
    }, 100)
    try {
      for (let off = 0; off < data.length; off += MiB) {
        await sendAll(stream, data.subarray(off, off + MiB))
        sent = Math.min(off + MiB, data.length)
      }
      await stream.close()
    } finally {
      clearInterval(progress)
    }
    $('upload-progress').value = sent
    const answer = JSON.parse(new TextDecoder().decode(await reading))
    const secs = (performance.now() - t0) / 1000
    const ok = answer.sha256 === hash
    $('upload-result').dataset.verified = String(ok)
    $('upload-result').textContent = `${ok ? 'verified' : 'HASH MISMATCH'}: node stored ${answer.bytes} bytes as ` +
      `${answer.cid}, ${(data.length / 1e6 / secs).toFixed(1)} MB/s`
  })
}

function setupVideo (fs, video) {
  const supported = videoSupported()
  $('video-support').dataset.supported = String(supported)
  $('video-support').textContent = supported
    ? `${VIDEO_TYPE} through Media Source Extensions: supported`
    : `this browser cannot play ${VIDEO_TYPE} through Media Source Extensions`
  if (video == null) {
    $('video-result').textContent = 'this build has no video (ffmpeg was missing when the page was built)'
    return
  }
  if (!supported) return
  $('video-cid').textContent = `${video.cid} (${(video.bytes / MiB).toFixed(1)} MiB)`
  onClick('video-play', 'video-result', async () => {
    const el = $('video')
    delete el.dataset.ended
    $('video-progress').max = video.bytes
    $('video-result').textContent = 'streaming…'
    const t0 = performance.now()
    let arrived = 0 // ms from the click to the last byte: the throughput excludes playback
    const frames = setInterval(() => {
      $('video-frames').textContent = `${el.getVideoPlaybackQuality().totalVideoFrames} frames decoded, ` +
        `${el.currentTime.toFixed(1)} s played`
    }, 200)
    let result
    try {
      result = await streamVideo(fs, CID.parse(video.cid), el, {
        onBytes: (got) => {
          $('video-progress').value = got
          $('video-result').textContent = `arriving: ${rate(got, t0)}`
          arrived = performance.now() - t0
        }
      })
    } finally {
      clearInterval(frames)
    }
    const total = el.getVideoPlaybackQuality().totalVideoFrames
    $('video-frames').textContent = `${total} frames decoded, played to the end (${el.duration.toFixed(1)} s)`
    $('video').dataset.ended = 'true'
    $('video').dataset.frames = String(total)
    const ok = (await sha256Hex(concat(result.chunks, result.bytes))) === video.sha256
    const started = result.bytesWhenPlaying == null
      ? 'playback start not seen'
      : `playing after ${(result.bytesWhenPlaying / MiB).toFixed(2)} of ${(result.bytes / MiB).toFixed(2)} MiB had arrived`
    $('video-result').dataset.bytesWhenPlaying = String(result.bytesWhenPlaying)
    $('video-result').dataset.verified = String(ok)
    $('video-result').textContent = `${ok ? 'verified' : 'HASH MISMATCH'}: ${(result.bytes / MiB).toFixed(2)} MiB ` +
      `in ${arrived.toFixed(0)} ms, ${(result.bytes / 1e3 / Math.max(arrived, 1)).toFixed(1)} MB/s over Bitswap; ${started}`
  })
}

async function main () {
  const config = await (await fetch('/config.json')).json()
  $('topic').textContent = config.topic
  $('file-cid').textContent = `${config.file.cid} (${(config.file.bytes / MiB).toFixed(1)} MiB)`
  $('helia-cid').textContent = config.helia.file.cid
  $('helia-dir').textContent = config.helia.dir
  const node = await createNode({ services: dhtServices(config) }) // kad-dht when the node runs a DHT
  // Helia starts before the dial: Bitswap learns the node's protocols from identify.
  const { fs } = await startHelia(node)
  const pubsub = node.services.pubsub
  pubsub.subscribe(config.topic)

  setState('connecting', 'connecting…')
  let conn
  try {
    conn = await node.dial(config.addrs.map(a => multiaddr(a)), { signal: AbortSignal.timeout(15000) })
  } catch (err) {
    setState('error', `dial failed: ${errorText(err)}`)
    return
  }
  const peer = conn.remotePeer
  setState('connected')
  $('remote').textContent = peer.toString()
  $('addr').textContent = conn.remoteAddr.toString()
  node.addEventListener('peer:disconnect', (evt) => {
    if (evt.detail.equals(peer)) setState('closed', 'disconnected')
  })

  // Live RTT, once a second.
  const rtts = []
  setInterval(async () => {
    try {
      const rtt = await node.services.ping.ping(peer, { signal: AbortSignal.timeout(5000) })
      rtts.push(rtt)
      if (rtts.length > 20) rtts.shift()
      const avg = rtts.reduce((a, b) => a + b, 0) / rtts.length
      $('rtt').textContent = `${rtt.toFixed(1)} ms (average of last ${rtts.length}: ${avg.toFixed(1)} ms)`
    } catch (err) {
      $('rtt').textContent = `ping failed: ${errorText(err)}`
    }
  }, 1000)

  setupChat(pubsub, peer, config.topic)
  setupFetch(node, peer, config.file)
  setupHelia(fs, config.helia)
  setupUpload(node, peer)
  setupDht({ node, peer, config })
  setupVideo(fs, config.video)
}

main().catch(err => setState('error', `error: ${errorText(err)}`))
