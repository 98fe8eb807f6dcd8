// The test pages' plan runner (usecases.js, dht.js): run.mjs opens the page with a base64 JSON
// plan in the URL's hash; the page runs the plan's steps in order on one node and POSTs one JSON
// report to /result. A step that fails ends the plan unless it says `continueOnError`.
import { enable } from '@libp2p/logger'
import { errorText } from './node.js'

async function run (plan, steps, createNode) {
  const report = { userAgent: navigator.userAgent, steps: [] }
  const state = {}
  // plan.debug: js-libp2p debug namespaces to print on the console (e.g. "helia:bitswap*").
  if (plan.debug) enable(plan.debug)
  try {
    state.node = await createNode()
  } catch (err) {
    report.error = `createLibp2p: ${errorText(err)}`
    return report
  }
  for (const step of plan.steps) {
    const t0 = performance.now()
    try {
      const result = await steps[step.op](state, step)
      report.steps.push({ op: step.op, ok: true, ms: performance.now() - t0, ...result })
    } catch (err) {
      report.steps.push({ op: step.op, ok: false, ms: performance.now() - t0, error: errorText(err) })
      if (!step.continueOnError) break
    }
  }
  if (state.helia != null) {
    try { await state.helia.helia.stop() } catch (err) { report.heliaStopError = errorText(err) }
  }
  try { await state.node.stop() } catch (err) { report.stopError = errorText(err) }
  return report
}

// Run the plan in the URL's hash with `steps` (op name -> async (state, step) => result) on the
// node `createNode` makes, and POST the report.
export async function runPlanFromUrl (steps, createNode) {
  let report
  try {
    const plan = JSON.parse(atob(decodeURIComponent(location.hash.slice(1))))
    report = await run(plan, steps, createNode)
  } catch (err) {
    report = { error: errorText(err), steps: [] }
  }
  await fetch('/result', { method: 'POST', body: JSON.stringify(report), headers: { 'content-type': 'application/json' } })
}
