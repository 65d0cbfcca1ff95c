// A third-party page that embeds edgecam as a web developer would, loaded
// in headless Chromium: an <img src=/stream.mjpeg>, hls.js with its
// defaults, and fetches with the viewer token as a header (a preflight)
// and to a wrong URL. The page comes from another origin (a server this
// script starts), so every request is cross-origin. Reports one JSON line:
// whether the image advances, the latency of both from the stamp the test
// pattern carries (docs/latency-stamp.md), and what the fetches saw.
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

// Runs in the page: the stamp's capture time (µs) in an image or video
// element's current picture, or null; and a checksum of the picture.
function readPicture(id) {
  const element = document.getElementById(id);
  const width = element.naturalWidth || element.videoWidth;
  const height = element.naturalHeight || element.videoHeight;
  if (!width || !height) return null;
  const canvas = document.getElementById("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(element, 0, 0);
  const data = context.getImageData(0, 0, width, height).data;
  let sum = 0;
  for (let i = 0; i < data.length; i += 397) sum = (sum * 31 + data[i]) >>> 0;
  const cell = 1 << Math.floor(Math.log2(Math.min(32, Math.max(8, Math.floor(width / 64)))));
  const inset = Math.floor(cell / 4), span = Math.max(1, Math.floor(cell / 2));
  const words = [];
  for (let row = 0; row < 8; row++) {
    let word = 0;
    for (let column = 0; column < 16; column++) {
      let total = 0;
      for (let y = row * cell + inset; y < row * cell + inset + span; y++) {
        for (let x = column * cell + inset; x < column * cell + inset + span; x++) {
          const p = (y * width + x) * 4;
          total += 0.299 * data[p] + 0.587 * data[p + 1] + 0.114 * data[p + 2];
        }
      }
      word = (word << 1) | (total / (span * span) >= 128 ? 1 : 0);
    }
    words.push(word);
  }
  let crc = 0xffff;
  for (const word of words.slice(1, 7)) {
    for (const byte of [word >> 8, word & 0xff]) {
      crc ^= byte << 8;
      for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  const stamped = words[0] === 0xb38f && words[7] === crc;
  const captured = stamped ? ((words[1] * 65536 + words[2]) * 65536 + words[3]) * 65536 + words[4] : null;
  return { sum, captured, now: Date.now() * 1000, width, height };
}

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
