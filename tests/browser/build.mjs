// Bundle src/page.js into dist/page.js for the browser (npm run build).
import { build } from 'esbuild'

await build({
  entryPoints: ['src/page.js'],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  outfile: 'dist/page.js',
  logLevel: 'warning',
  define: { 'process.env.NODE_DEBUG': 'false', global: 'globalThis' }
})
console.log('built dist/page.js')
