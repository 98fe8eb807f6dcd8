#!/usr/bin/env node
// Click through the demo page in headless Chromium and save a screenshot; prints one JSON line.
//
//   node e2e.mjs --url http://127.0.0.1:PORT/ --screenshot out.png [--timeout 90]
//                [--sections chat,fetch,helia,upload,dht,video]   (default: all of them)
import { parseArgs } from 'node:util'
import { chromium } from 'playwright-core'

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    screenshot: { type: 'string' },
    message: { type: 'string', default: 'hello from the browser test' },
    timeout: { type: 'string', default: '90' },
    sections: { type: 'string', default: 'chat,fetch,helia,upload,dht,video' },
    'chromium-path': { type: 'string', default: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium' }
  }
})
const timeout = Number(args.timeout) * 1000
const sections = new Set(args.sections.split(','))
const logs = []
const out = { ok: false, logs }
let browser
const watchdog = setTimeout(() => { out.error = 'timed out'; finish() }, timeout + 5000)

async function finish () {
  clearTimeout(watchdog)
  if (browser) await browser.close().catch(() => {})
  console.log(JSON.stringify(out))
  process.exit(0)
}

try {
  browser = await chromium.launch({
    executablePath: args['chromium-path'],
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage']
  })
  const page = await browser.newPage({ viewport: { width: 900, height: 1000 } })
  page.setDefaultTimeout(timeout)
  page.on('console', msg => { logs.push(`console.${msg.type()}: ${msg.text()}`); if (logs.length > 100) logs.shift() })
  page.on('pageerror', err => logs.push(`pageerror: ${err.message}`))
  await page.goto(args.url)
  const step = async (name, fn) => { out.step = name; await fn() }

  await step('connect', () => page.waitForSelector('#state[data-state="connected"], #state[data-state="error"]'))
  out.state = await page.textContent('#state')
  if (out.state !== 'connected') throw new Error(`state: ${out.state}`)
  await step('ping', () => page.waitForFunction(() => /^[\d.]+ ms/.test(document.getElementById('rtt').textContent)))
  out.rtt = await page.textContent('#rtt')
  if (sections.has('chat')) await step('chat', async () => {
    await page.waitForSelector('#chat-input:not([disabled])')
    await page.fill('#chat-input', args.message)
    await page.click('#chat-send')
    await page.waitForFunction((m) => document.getElementById('chat-log').textContent.includes(`python node got: ${m}`), args.message)
  })
  out.chat = await page.$$eval('#chat-log div', divs => divs.map(d => d.textContent))
  out.chatStats = await page.textContent('#chat-stats')
  if (sections.has('fetch')) {
    await step('fetch', async () => {
      await page.click('#fetch')
      await page.waitForSelector('#fetch-result[data-verified]')
    })
    out.fetch = { verified: await page.getAttribute('#fetch-result', 'data-verified'), text: await page.textContent('#fetch-result') }
    out.fetchProgress = await page.$eval('#fetch-progress', p => [p.value, p.max])
  }
  if (sections.has('helia')) {
    await step('helia', async () => {
      await page.click('#helia-fetch')
      await page.waitForSelector('#helia-result[data-verified]')
    })
    out.helia = {
      verified: await page.getAttribute('#helia-result', 'data-verified'),
      text: await page.textContent('#helia-result'),
      progress: await page.$eval('#helia-progress', p => [p.value, p.max]),
      names: JSON.parse(await page.getAttribute('#helia-ls', 'data-names') ?? 'null'),
      listing: await page.textContent('#helia-ls')
    }
  }
  if (sections.has('upload')) {
    await step('upload', async () => {
      await page.click('#upload')
      await page.waitForSelector('#upload-result[data-verified]')
    })
    out.upload = {
      verified: await page.getAttribute('#upload-result', 'data-verified'),
      text: await page.textContent('#upload-result'),
      progress: await page.$eval('#upload-progress', p => [p.value, p.max])
    }
  }
  if (sections.has('dht')) {
    await step('dht', async () => {
      await page.click('#dht-lookup')
      await page.waitForSelector('#dht-result[data-ok]')
    })
  }
  out.dht = {
    ok: await page.getAttribute('#dht-result', 'data-ok'),
    text: await page.textContent('#dht-result'),
    found: JSON.parse(await page.getAttribute('#dht-result', 'data-found') ?? 'null'),
    log: await page.textContent('#dht-log'),
    progress: await page.$eval('#dht-progress', p => [p.value, p.max])
  }
  if (sections.has('video')) {
    // Ask first whether the browser can play WebM VP8 through MSE at all (a build without
    // the codec fails here, clearly, instead of timing out waiting for frames).
    await step('video support', () => page.waitForSelector('#video-support[data-supported]'))
    out.video = {
      supported: await page.getAttribute('#video-support', 'data-supported'),
      support: await page.textContent('#video-support')
    }
    if (out.video.supported === 'true') {
      await step('video', async () => {
        await page.click('#video-play')
        await page.waitForSelector('#video-result[data-verified]')
      })
      Object.assign(out.video, await page.$eval('#video', v => ({
        ended: v.ended,
        endedAttr: v.dataset.ended ?? null,
        frames: v.getVideoPlaybackQuality().totalVideoFrames,
        dropped: v.getVideoPlaybackQuality().droppedVideoFrames,
        currentTime: v.currentTime,
        duration: v.duration,
        videoWidth: v.videoWidth
      })))
      out.video.verified = await page.getAttribute('#video-result', 'data-verified')
      out.video.bytesWhenPlaying = await page.getAttribute('#video-result', 'data-bytes-when-playing')
      out.video.progress = await page.$eval('#video-progress', p => [p.value, p.max])
      out.video.text = await page.textContent('#video-result')
      out.video.framesText = await page.textContent('#video-frames')
    }
  }
  await step('screenshot', () => page.screenshot({ path: args.screenshot, fullPage: true }))
  out.screenshot = args.screenshot
  out.ok = true
} catch (err) {
  out.error = `${err.name}: ${err.message}`
}
await finish()
