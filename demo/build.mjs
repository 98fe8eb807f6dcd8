// Bundle the browser pages (npm run build): src/usecases.js (test plans), src/dht.js (the DHT's
// test plans) and src/demo.js (the page `py-libp2p-webtransport serve --demo` serves) into dist/.
import { build } from 'esbuild'

for (const name of ['usecases', 'demo', 'dht']) {
  await build({
    entryPoints: [`src/${name}.js`],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    outfile: `dist/${name}.js`,
    logLevel: 'warning',
    define: { 'process.env.NODE_DEBUG': 'false', global: 'globalThis' }
  })
  console.log(`built dist/${name}.js`)
}
