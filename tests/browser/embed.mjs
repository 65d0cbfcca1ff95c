// A third-party page that embeds edgecam as a web developer would, loaded
// in headless Chromium: an <img src=/stream.mjpeg>, hls.js with its
// defaults, and fetches with the viewer token as a header (a preflight)
// and to a wrong URL. The page comes from another origin (a server this
// script starts), so every request is cross-origin. Reports one JSON line:
// whether the image advances, the latency of both from the stamp the test
// pattern carries (read with edgecam's /assets/stamp.js, as any page may;
// docs/latency-stamp.md), and what the fetches saw.
// Usage: node embed.mjs EDGECAM_URL
import http from "node:http";
import { chromium } from "playwright-core";

const [edgecam] = process.argv.slice(2);

const page = `<!doctype html>
<html><body>
<img id="mjpeg" crossorigin="anonymous" src="${edgecam}/stream.mjpeg">
<video id="video" muted autoplay playsinline></video>
<canvas id="canvas"></canvas>
<script src="${edgecam}/assets/hls.light.min.js"></script>
<script src="${edgecam}/assets/stamp.js"></script>
<script>
  const hls = new Hls();
  hls.loadSource("${edgecam}/hls/cam.m3u8");
  hls.attachMedia(document.getElementById("video"));
</script>
</body></html>`;

const server = http.createServer((_, response) => {
  response.writeHead(200, { "content-type": "text/html" });
  response.end(page);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

// In the page: edgecam's own stamp reader (/assets/stamp.js) on an element.
const readPicture = (id) => window.edgecamStamp.read(document.getElementById(id), document.getElementById("canvas"));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
try {
  const tab = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const errors = [];
  tab.on("pageerror", (error) => errors.push(String(error)));
  await tab.goto(origin, { waitUntil: "domcontentloaded" });

  const fetches = await tab.evaluate(async (edgecam) => {
    const attempt = async (url, init) => {
      try {
        const response = await fetch(url, init);
        return { status: response.status };
      } catch (error) {
        return { status: 0, error: String(error) };
      }
    };
    return {
      wrongPlaylist: await attempt(`${edgecam}/hls/wrong.m3u8`),
      withHeader: await attempt(`${edgecam}/hls/cam.m3u8`, { headers: { Authorization: "Bearer nobody" } }),
      snapshot: await attempt(`${edgecam}/snapshot.jpg`),
    };
  }, edgecam);

  // The image, sampled 10 times a second for 5 s once it has a picture.
  await tab.waitForFunction(() => document.getElementById("mjpeg").naturalWidth > 0, null, { timeout: 20000 });
  const imageSamples = [];
  for (let i = 0; i < 50; i++) {
    imageSamples.push(await tab.evaluate(readPicture, "mjpeg"));
    await tab.waitForTimeout(100);
  }

  // hls.js with its defaults: once it plays, let it settle as a viewer
  // would, then sample its picture for 10 s.
  await tab.waitForFunction(() => document.getElementById("video").currentTime > 0, null, { timeout: 30000 });
  await tab.waitForTimeout(3000);
  const videoSamples = [];
  for (let i = 0; i < 50; i++) {
    videoSamples.push(await tab.evaluate(readPicture, "video"));
    await tab.waitForTimeout(200);
  }

  const latencies = (samples) => samples.filter((s) => s && s.captured).map((s) => (s.now - s.captured) / 1000).sort((a, b) => a - b);
  const median = (values) => (values.length ? values[Math.floor(values.length / 2)] : null);
  const imageLatency = latencies(imageSamples);
  const videoLatency = latencies(videoSamples);
  console.log(JSON.stringify({
    fetches,
    imageWidth: imageSamples[0] && imageSamples[0].width,
    imageDistinct: new Set(imageSamples.map((s) => s && s.sum)).size,
    imageStamped: imageLatency.length,
    imageLatencyMs: median(imageLatency),
    videoStamped: videoLatency.length,
    videoLatencyMs: median(videoLatency),
    errors,
  }));
} finally {
  await browser.close();
  server.close();
}
