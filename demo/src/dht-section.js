// The demo page's DHT section (issue 15 item 4): a placeholder until the DHT lookup lands.
//
// HOOK for the DHT lookup: replace this module's body (keep the export). `setupDht` gets the
// page's running pieces once the node is connected and fills <section id="dht"> of demo.html
// (elements with ids starting `dht-`): a button that runs a lookup against the Python node,
// live progress and timing in #dht-result, and `data-ok="true"|"false"` on #dht-result when
// done (the click-through, demo/e2e.mjs, waits for that attribute when the section is enabled).
export const DHT_AVAILABLE = false

// ctx: { node, peer, helia, fs, config } (config is the node's /config.json; its `dht` entry,
// if the node sends one, is for this section).
export function setupDht (ctx) {
  const $ = (id) => document.getElementById(id)
  $('dht-result').textContent = 'not in this build yet (the DHT lookup fills this section in)'
}
