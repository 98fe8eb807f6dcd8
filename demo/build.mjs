// Bundle the browser pages (npm run build): src/usecases.js (test plans), src/dht.js (the DHT's
// test plans) and src/demo.js (the page `py-libp2p-webtransport serve --demo` serves) into dist/,
// and make the demo's short video, dist/video.webm (ffmpeg's testsrc, VP8: what Chromium and
// Firefox play through Media Source Extensions without proprietary codecs). Without ffmpeg the
// pages still build; the video is left out with a warning (the demo page then says so, and the
// video test asks for ffmpeg).
import { spawnSync } from 'node:child_process'
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

// 4 s at 640x360, 25 fps, a key frame every second (each one starts a WebM cluster, so the
// page can start playing after the first cluster arrives). The noise keeps VP8 from squeezing
// testsrc to ~200 kB: at ~2 MB the file spans eight 256 KiB UnixFS blocks, so the page plays it
// while the later blocks arrive. Realtime encoding takes a few seconds at most.
const VIDEO = [
  '-hide_banner', '-loglevel', 'error', '-y',
  '-f', 'lavfi', '-i', 'testsrc=duration=4:size=640x360:rate=25', '-vf', 'noise=alls=12:allf=t',
  '-c:v', 'libvpx', '-b:v', '4M', '-g', '25', '-deadline', 'realtime', '-cpu-used', '8',
  '-pix_fmt', 'yuv420p', '-an', '-f', 'webm', 'dist/video.webm'
]
const ffmpeg = spawnSync('ffmpeg', VIDEO, { stdio: ['ignore', 'inherit', 'inherit'] })
if (ffmpeg.error?.code === 'ENOENT') {
  console.warn('WARNING: ffmpeg not found: dist/video.webm not made (the demo page has no video); ' +
    'install it (Debian: apt-get install ffmpeg) and run npm run build again')
} else if (ffmpeg.status !== 0) {
  throw new Error(`ffmpeg failed (exit ${ffmpeg.status}) making dist/video.webm`)
} else {
  console.log('built dist/video.webm')
}
