// The independent /quic-v1 peer of the interop tests: js-libp2p 3 in Node with
// @chainsafe/libp2p-quic (a Rust QUIC stack, quinn, behind napi).
//
//   node peer.mjs serve                 listen on 127.0.0.1 (UDP, any port), serve /echo/1.0.0;
//                                       prints {"peerId", "addrs"} on one line, runs until stdin ends
//   node peer.mjs dial ADDR PLAN_JSON   dial ADDR (with /p2p/), run the plan's checks, print one
//                                       JSON report line, exit 0
//
// The plan: {"pings": N, "echoBytes": N, "concurrent": N, "concurrentBytes": N}.
// Echoed bytes are checked byte for byte against what was sent.

import { quic } from '@chainsafe/libp2p-quic'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { randomBytes } from 'node:crypto'

// @chainsafe/libp2p-quic 2.1.1 declares Node >= 22; on Node 20 only this is missing.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const ECHO = '/echo/1.0.0'
const CHUNK = 64 * 1024

async function sendAll (stream, data) {
  for (let off = 0; off < data.length; off += CHUNK) {
    if (!stream.send(data.subarray(off, off + CHUNK))) await stream.onDrain()
  }
}

async function readExactly (stream, n) {
  const chunks = []
  let total = 0
  for await (const chunk of stream) {
    const bytes = chunk.subarray ? chunk.subarray() : chunk
    chunks.push(bytes)
    total += bytes.length
    if (total >= n) break
  }
  return Buffer.concat(chunks.map(c => Buffer.from(c.buffer, c.byteOffset, c.byteLength)))
}

async function echoOnce (node, peer, size) {
  const data = randomBytes(size)
  const stream = await node.dialProtocol(peer, ECHO, { maxOutboundStreams: 1024 })
  const reading = readExactly(stream, size)
  await sendAll(stream, data)
  const got = await reading
  await stream.close()
  return { sent: size, received: got.length, exact: got.length === size && data.equals(got.subarray(0, size)) }
}

function newNode (listen) {
  return createLibp2p({
    addresses: { listen },
    transports: [quic()],
    // Tests use loopback addresses, which js-libp2p refuses to dial by default.
    connectionGater: { denyDialMultiaddr: () => false },
    // Sequential pings may overlap with the closing of the previous ping stream.
    services: {
      ping: ping({ maxOutboundStreams: 16 }),
      identify: identify({ runOnConnectionOpen: false })
    }
  })
}

function errorText (err) {
  return `${err?.name ?? 'Error'}: ${err?.message ?? String(err)}`
}

async function serve () {
  const node = await newNode(['/ip4/127.0.0.1/udp/0/quic-v1'])
  await node.handle(ECHO, async (a) => {
    const stream = a.stream ?? a // libp2p 3 passes the stream; 2 passed {stream, connection}
    try {
      for await (const chunk of stream) {
        const bytes = chunk.subarray ? chunk.subarray() : chunk
        if (!stream.send(bytes)) await stream.onDrain()
      }
      await stream.close()
    } catch (err) {
      stream.abort?.(err)
    }
  }, { maxInboundStreams: 1024 })
  process.stdout.write(JSON.stringify({
    peerId: node.peerId.toString(),
    addrs: node.getMultiaddrs().map(a => a.toString())
  }) + '\n')
  process.stdin.resume()
  await new Promise(resolve => process.stdin.on('end', resolve))
  await node.stop()
}

async function dial (addr, plan) {
  const report = { ok: true, steps: {} }
  const node = await newNode([])
  try {
    const t0 = performance.now()
    const conn = await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(10000) })
    report.steps.dial = { ms: performance.now() - t0, remotePeer: conn.remotePeer.toString() }
    const rtts = []
    for (let i = 0; i < (plan.pings ?? 3); i++) rtts.push(await node.services.ping.ping(conn.remotePeer))
    report.steps.ping = { rtts }
    const id = await node.services.identify.identify(conn)
    report.steps.identify = {
      observedAddr: id.observedAddr?.toString() ?? null,
      protocols: id.protocols,
      publicKeyPeer: id.peerId?.toString() ?? null
    }
    report.steps.echo = await echoOnce(node, conn.remotePeer, plan.echoBytes ?? 1024 * 1024)
    const n = plan.concurrent ?? 0
    const results = await Promise.all(
      Array.from({ length: n }, () => echoOnce(node, conn.remotePeer, plan.concurrentBytes ?? 2000)
        .catch(err => ({ error: errorText(err) })))
    )
    report.steps.concurrent = {
      count: n,
      exact: results.filter(r => r.exact).length,
      failures: results.filter(r => !r.exact).slice(0, 5)
    }
  } catch (err) {
    report.ok = false
    report.error = errorText(err)
  }
  process.stdout.write(JSON.stringify(report) + '\n')
  await node.stop()
}

const [mode, ...args] = process.argv.slice(2)
if (mode === 'serve') {
  await serve()
} else if (mode === 'dial') {
  await dial(args[0], JSON.parse(args[1] ?? '{}'))
} else {
  process.stderr.write('usage: node peer.mjs serve | dial ADDR PLAN_JSON\n')
  process.exit(2)
}
