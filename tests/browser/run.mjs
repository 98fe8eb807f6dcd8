#!/usr/bin/env node
// Run a test plan in a real headless browser and print one JSON report on stdout.
//
//   node run.mjs --browser chromium|firefox --plan '{"steps":[{"op":"dial","addr":"/ip4/..."}]}' [--timeout 60]
//                [--net-log PATH] (Chromium's net-log)  [--moz-log MODULES] (Firefox's MOZ_LOG)
//                [--page DIR --bundle dist/NAME.js]   (another page folder, e.g. demo/; default: this one)
//
// The page (dist/page.js, built with `npm run build`) is served from a local HTTP server on
// 127.0.0.1; it reads the plan from the URL fragment and POSTs its report to /result. Chromium is
// driven through playwright-core (console and page errors are captured); Firefox is started as a
// plain headless process with a throwaway profile. Everything is bounded by --timeout.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
const { values: args } = parseArgs({
  options: {
    browser: { type: 'string', default: 'chromium' },
    plan: { type: 'string' },
    timeout: { type: 'string', default: '60' },
    'chromium-path': { type: 'string', default: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium' },
    'firefox-path': { type: 'string', default: process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr' },
    'net-log': { type: 'string' },
    'moz-log': { type: 'string' },
    page: { type: 'string', default: here },
    bundle: { type: 'string', default: join('dist', 'page.js') }
  }
})
const timeoutMs = Number(args.timeout) * 1000
const plan = JSON.parse(args.plan)
const logs = []
const note = (line) => { logs.push(line); if (logs.length > 400) logs.shift() }

const pageDir = args.page
const bundle = join(pageDir, args.bundle)
if (!existsSync(bundle)) {
  console.log(JSON.stringify({ ok: false, error: `${bundle} missing: run \`npm ci && npm run build\` in ${pageDir}` }))
  process.exit(2)
}

let resolveReport
const reportPromise = new Promise(resolve => { resolveReport = resolve })
const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/result') {
    let body = ''
    req.on('data', c => { body += c })
    req.on('end', () => { res.end('ok'); resolveReport(JSON.parse(body)) })
    return
  }
  const path = req.url.split('?')[0].split('#')[0]
  const files = { '/': ['index.html', 'text/html'], '/index.html': ['index.html', 'text/html'], '/dist/page.js': [args.bundle, 'text/javascript'] }
  const file = files[path]
  if (file == null) { res.statusCode = 404; res.end(); return }
  res.setHeader('content-type', file[1])
  res.end(readFileSync(join(pageDir, file[0])))
})
await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
const url = `http://127.0.0.1:${server.address().port}/index.html#${encodeURIComponent(Buffer.from(JSON.stringify(plan)).toString('base64'))}`

const profile = mkdtempSync(join(tmpdir(), `wt-${args.browser}-`))
let cleanup = async () => {}

async function startChromium () {
  const { chromium } = await import('playwright-core')
  const flags = [
    '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'
  ]
  if (args['net-log']) flags.push(`--log-net-log=${args['net-log']}`, '--net-log-capture-mode=Everything')
  const browser = await chromium.launch({ executablePath: args['chromium-path'], headless: true, args: flags })
  const page = await browser.newPage()
  page.on('console', msg => note(`console.${msg.type()}: ${msg.text()}`))
  page.on('pageerror', err => note(`pageerror: ${err.message}`))
  await page.goto(url)
  cleanup = async () => { await browser.close() }
  return browser.version()
}

async function startFirefox () {
  // Prefs for an unattended headless run; WebTransport itself is on by default in current ESR.
  writeFileSync(join(profile, 'user.js'), [
    'user_pref("network.webtransport.enabled", true);',
    'user_pref("network.http.http3.enable", true);',
    'user_pref("browser.shell.checkDefaultBrowser", false);',
    'user_pref("datareporting.policy.dataSubmissionEnabled", false);',
    'user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);',
    'user_pref("app.update.enabled", false);',
    'user_pref("network.proxy.type", 0);',
    'user_pref("devtools.console.stdout.content", true);'
  ].join('\n'))
  const env = { ...process.env, MOZ_HEADLESS: '1' }
  if (args['moz-log']) {
    // Firefox's page-visible errors are generic ("WebTransport connection rejected"); its
    // internal log says why. Written to files in the profile, failures are picked out below.
    env.MOZ_LOG = args['moz-log']
    env.MOZ_LOG_FILE = join(profile, 'moz.log')
  }
  const child = spawn(args['firefox-path'], ['--headless', '--no-remote', '--profile', profile, url], {
    stdio: ['ignore', 'pipe', 'pipe'], env
  })
  child.stdout.on('data', d => note(`firefox: ${String(d).trimEnd()}`))
  child.stderr.on('data', d => note(`firefox: ${String(d).trimEnd()}`))
  cleanup = async () => {
    child.kill('SIGTERM')
    await new Promise(resolve => { child.once('exit', resolve); setTimeout(resolve, 3000) })
    if (args['moz-log']) noteMozLogFailures()
  }
  return 'firefox-esr'
}

// The lines of Firefox's MOZ_LOG files (one per process) that report a failure, at most 100.
function noteMozLogFailures () {
  let kept = 0
  for (const name of readdirSync(profile).filter(n => n.startsWith('moz.log')).sort()) {
    for (const line of readFileSync(join(profile, name), 'utf8').split('\n')) {
      if (kept < 100 && /fail|error/i.test(line)) { note(`moz-log: ${line.slice(0, 400)}`); kept++ }
    }
  }
}

let output
const timer = setTimeout(() => resolveReport({ timedOut: true }), timeoutMs)
try {
  const version = args.browser === 'firefox' ? await startFirefox() : await startChromium()
  const report = await reportPromise
  output = { ok: report.timedOut !== true && report.error == null, browser: args.browser, version, report, logs }
  if (report.timedOut) output.error = `no report from the page within ${args.timeout}s`
} catch (err) {
  output = { ok: false, browser: args.browser, error: `runner: ${err.message}`, logs }
} finally {
  clearTimeout(timer)
  await cleanup().catch(() => {})
  server.close()
  rmSync(profile, { recursive: true, force: true })
}
// Exit only once the report is flushed: process.exit() right after a large write to a pipe
// truncates it.
process.stdout.write(JSON.stringify(output) + '\n', () => process.exit(0))
