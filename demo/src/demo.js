// The page `py-libp2p-webtransport serve --demo` serves: it reads the node's addresses from
// /config.json, dials over WebTransport and shows connection state, ping RTT, a gossip chat, a
// verified file fetch by CID with progress and throughput (our fetch protocol, and Helia over
// Bitswap with a directory listing), and an upload.
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { fetchFile } from './fetch.js'
import { catAll, startHelia } from './helia.js'
import {
  UPLOAD_PROTOCOL, createNode, errorText, randomBytes, readAll, sendAll, sha256Hex
} from './node.js'

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

async function main () {
  const config = await (await fetch('/config.json')).json()
  $('topic').textContent = config.topic
  $('file-cid').textContent = `${config.file.cid} (${(config.file.bytes / MiB).toFixed(1)} MiB)`
  $('helia-cid').textContent = config.helia.file.cid
  $('helia-dir').textContent = config.helia.dir
  const node = await createNode()
  // Helia starts before the dial: Bitswap learns the node's protocols from identify.
  const { fs } = await startHelia(node)
  const pubsub = node.services.pubsub
  pubsub.addEventListener('message', (evt) => {
    if (evt.detail.topic === config.topic) chatLine(new TextDecoder().decode(evt.detail.data), false)
  })
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

  // Chat: publishing needs the node in our gossip mesh, which takes a heartbeat or two.
  const send = async () => {
    const text = $('chat-input').value.trim()
    if (text === '') return
    try {
      await pubsub.publish(config.topic, new TextEncoder().encode(text))
      chatLine(`me: ${text}`, true)
      $('chat-input').value = ''
    } catch (err) {
      chatLine(`(not sent: ${errorText(err)})`, true)
    }
  }
  $('chat-send').onclick = send
  $('chat-input').onkeydown = (evt) => { if (evt.key === 'Enter') send() }
  const meshReady = setInterval(() => {
    if (pubsub.getMeshPeers(config.topic).includes(peer.toString())) {
      clearInterval(meshReady)
      $('chat-input').disabled = false
      $('chat-send').disabled = false
    }
  }, 100)

  $('fetch').disabled = false
  $('fetch').onclick = async () => {
    $('fetch').disabled = true
    $('fetch-result').textContent = 'fetching…'
    const t0 = performance.now()
    try {
      const data = await fetchFile(node, peer, config.file.cid, (got, size) => {
        $('fetch-progress').max = size
        $('fetch-progress').value = got
        const secs = (performance.now() - t0) / 1000
        $('fetch-result').textContent = `${(got / MiB).toFixed(1)} MiB, ${(got / 1e6 / secs).toFixed(1)} MB/s`
      })
      const secs = (performance.now() - t0) / 1000
      const ok = (await sha256Hex(data)) === config.file.sha256
      $('fetch-result').dataset.verified = String(ok)
      $('fetch-result').textContent = `${ok ? 'verified' : 'HASH MISMATCH'}: ${(data.length / MiB).toFixed(1)} MiB in ` +
        `${secs.toFixed(2)} s, ${(data.length / 1e6 / secs).toFixed(1)} MB/s (every block checked against its CID)`
    } catch (err) {
      $('fetch-result').dataset.verified = 'false'
      $('fetch-result').textContent = `failed: ${errorText(err)}`
    }
    $('fetch').disabled = false
  }

  $('helia-fetch').disabled = false
  $('helia-fetch').onclick = async () => {
    $('helia-fetch').disabled = true
    $('helia-result').textContent = 'fetching…'
    const size = config.helia.file.bytes
    $('helia-progress').max = size
    const t0 = performance.now()
    try {
      const data = await catAll(fs, CID.parse(config.helia.file.cid), {
        onBytes: (got) => {
          $('helia-progress').value = got
          const secs = (performance.now() - t0) / 1000
          $('helia-result').textContent = `${(got / MiB).toFixed(1)} MiB, ${(got / 1e6 / secs).toFixed(1)} MB/s`
        }
      })
      const secs = (performance.now() - t0) / 1000
      const ok = (await sha256Hex(data)) === config.helia.file.sha256
      $('helia-result').dataset.verified = String(ok)
      $('helia-result').textContent = `${ok ? 'verified' : 'HASH MISMATCH'}: ${(data.length / MiB).toFixed(1)} MiB in ` +
        `${secs.toFixed(2)} s, ${(data.length / 1e6 / secs).toFixed(1)} MB/s (unixfs.cat over Bitswap)`
      const names = []
      for await (const entry of fs.ls(CID.parse(config.helia.dir))) names.push(entry.name)
      $('helia-ls').textContent = names.join(', ')
      $('helia-ls').dataset.names = JSON.stringify(names)
    } catch (err) {
      $('helia-result').dataset.verified = 'false'
      $('helia-result').textContent = `failed: ${errorText(err)}`
    }
    $('helia-fetch').disabled = false
  }

  $('upload').disabled = false
  $('upload').onclick = async () => {
    $('upload').disabled = true
    $('upload-result').textContent = 'uploading…'
    try {
      const data = randomBytes(10 * MiB)
      const hash = await sha256Hex(data)
      const t0 = performance.now()
      const stream = await node.dialProtocol(peer, UPLOAD_PROTOCOL)
      const reading = readAll(stream)
      await sendAll(stream, data)
      await stream.close()
      const answer = JSON.parse(new TextDecoder().decode(await reading))
      const secs = (performance.now() - t0) / 1000
      const ok = answer.sha256 === hash
      $('upload-result').dataset.verified = String(ok)
      $('upload-result').textContent = `${ok ? 'verified' : 'HASH MISMATCH'}: node stored ${answer.bytes} bytes as ` +
        `${answer.cid}, ${(data.length / 1e6 / secs).toFixed(1)} MB/s`
    } catch (err) {
      $('upload-result').dataset.verified = 'false'
      $('upload-result').textContent = `failed: ${errorText(err)}`
    }
    $('helia-fetch').disabled = false
  $('helia-fetch').onclick = async () => {
    $('helia-fetch').disabled = true
    $('helia-result').textContent = 'fetching…'
    const size = config.helia.file.bytes
    $('helia-progress').max = size
    const t0 = performance.now()
    try {
      const data = await catAll(fs, CID.parse(config.helia.file.cid), {
        onBytes: (got) => {
          $('helia-progress').value = got
          const secs = (performance.now() - t0) / 1000
          $('helia-result').textContent = `${(got / MiB).toFixed(1)} MiB, ${(got / 1e6 / secs).toFixed(1)} MB/s`
        }
      })
      const secs = (performance.now() - t0) / 1000
      const ok = (await sha256Hex(data)) === config.helia.file.sha256
      $('helia-result').dataset.verified = String(ok)
      $('helia-result').textContent = `${ok ? 'verified' : 'HASH MISMATCH'}: ${(data.length / MiB).toFixed(1)} MiB in ` +
        `${secs.toFixed(2)} s, ${(data.length / 1e6 / secs).toFixed(1)} MB/s (unixfs.cat over Bitswap)`
      const names = []
      for await (const entry of fs.ls(CID.parse(config.helia.dir))) names.push(entry.name)
      $('helia-ls').textContent = names.join(', ')
      $('helia-ls').dataset.names = JSON.stringify(names)
    } catch (err) {
      $('helia-result').dataset.verified = 'false'
      $('helia-result').textContent = `failed: ${errorText(err)}`
    }
    $('helia-fetch').disabled = false
  }

  $('upload').disabled = false
  }
}

main().catch(err => setState('error', `error: ${errorText(err)}`))
