// Loads the edgecam dashboard in headless Chromium (Debian's, driven by
// playwright-core) and reports, as one JSON line on stdout, what a person
// would see: whether the video plays, whether the graphs get data, and how
// many bytes the page needed; and its live-view controls: the outputs
// table, an output stopped and started from it (answering the admin-token
// prompt), the MJPEG view. Usage: node dashboard.mjs URL SCREENSHOT.png TOKEN
import { chromium } from "playwright-core";

const [url, screenshot, adminToken] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  const consoleLines = [];
  page.on("console", (message) => consoleLines.push(message.text()));
  // Page weight: every distinct file the page itself needs (the video
  // segments and playlist are not the page; hls.js's worker is a blob: URL
  // made from the script already counted).
  const files = new Map();
  const bodies = [];
  page.on("response", (response) => {
    const url = new URL(response.url());
    if (url.protocol.startsWith("http") && !url.pathname.startsWith("/hls/")) {
      bodies.push(response.body().then((b) => files.set(url.pathname, b.length)).catch(() => {}));
    }
  });
  await page.goto(url, { waitUntil: "load" });
  await Promise.all(bodies);

  // Wait (up to 20 s) for the video to start, then watch it for 5 s.
  try {
    await page.waitForFunction(() => document.getElementById("video").currentTime > 0, null, { timeout: 20000 });
  } catch (error) {
    const status = await page.evaluate(() => { const v = document.getElementById("video"); const b = v.buffered; return `${document.getElementById("video-status").textContent} readyState=${v.readyState} buffered=${b.length ? b.start(0) + "-" + b.end(b.length - 1) : "none"} error=${v.error && v.error.message} paused=${v.paused}`; });
    throw new Error(`the video did not start within 20 s (page says: ${status}; console: ${consoleLines.join(" | ")})`);
  }
  const before = await page.evaluate(() => document.getElementById("video").currentTime);
  const samplesBefore = await page.evaluate(() => window.edgecamStats.samples);
  await page.waitForTimeout(5000);
  const after = await page.evaluate(() => document.getElementById("video").currentTime);
  const state = await page.evaluate(() => ({
    samples: window.edgecamStats.samples,
    hello: window.edgecamStats.hello !== null,
    camera: document.getElementById("camera").textContent,
    encoder: document.getElementById("encoder").textContent,
    fps: document.getElementById("v-fps").textContent,
    chartPixels: [...document.querySelectorAll("canvas")].map((canvas) => {
      const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      let drawn = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) drawn++;
      return drawn;
    }),
    videoWidth: document.getElementById("video").videoWidth,
    transport: window.edgecamStats.transport,
    latencyMs: window.edgecamStats.latencyMs,
    latencyText: document.getElementById("video-latency").textContent,
  }));
  await page.screenshot({ path: screenshot });

  // The outputs table, and one output switched off and on from it.
  await page.waitForSelector("#outputs tr[data-output=frames] button", { timeout: 10000 });
  const outputRows = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("#outputs tbody tr")].map((row) => [row.dataset.output, row.children[1].textContent])));
  page.on("dialog", (dialog) => dialog.accept(adminToken));
  const stateOf = (name) => page.evaluate((name) => document.querySelector(`#outputs tr[data-output=${name}] td:nth-child(2)`).textContent, name);
  await page.click("#outputs tr[data-output=frames] button");
  await page.waitForFunction(() => document.querySelector("#outputs tr[data-output=frames] td:nth-child(2)").textContent === "stopped", null, { timeout: 10000 });
  const stopped = await stateOf("frames");
  await page.click("#outputs tr[data-output=frames] button");
  await page.waitForFunction(() => document.querySelector("#outputs tr[data-output=frames] td:nth-child(2)").textContent === "running", null, { timeout: 10000 });
  const restarted = await stateOf("frames");

  // The MJPEG view: the image shows and advances, the video hides.
  await page.click("#view-toggle");
  await page.waitForFunction(() => document.getElementById("mjpeg").naturalWidth > 0, null, { timeout: 10000 });
  const picture = () => page.evaluate(() => {
    const image = document.getElementById("mjpeg");
    const canvas = document.createElement("canvas");
    canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < data.length; i += 97) sum = (sum * 31 + data[i]) >>> 0;
    return sum;
  });
  const first = await picture();
  await page.waitForTimeout(500);
  const second = await picture();
  const mjpeg = {
    width: await page.evaluate(() => document.getElementById("mjpeg").naturalWidth),
    advanced: first !== second,
    videoHidden: await page.evaluate(() => document.getElementById("video").hidden),
  };
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-mjpeg.png") });
  await page.click("#view-toggle");

  // A second viewer when the board takes one WebRTC peer (the test sets
  // webrtc.max_peers = 1): refused with 503, it plays HLS by itself.
  const refused = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await refused.goto(url, { waitUntil: "load" });
  // Playing, and saying what plays: the status is set by the "playing"
  // event, which may come after currentTime has moved.
  await refused.waitForFunction(
    () => document.getElementById("video").currentTime > 0
      && document.getElementById("video-status").textContent.startsWith("live"),
    null,
    { timeout: 30000 },
  );
  const fallback = await refused.evaluate(() => ({
    transport: window.edgecamStats.transport,
    status: document.getElementById("video-status").textContent,
  }));
  await refused.close();

  // Phone width: the layout must not need horizontal scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-phone.png"), fullPage: true });

  console.log(JSON.stringify({
    videoAdvance: after - before,
    samplesDuring: state.samples - samplesBefore,
    pageBytes: [...files.values()].reduce((a, b) => a + b, 0),
    pageFiles: Object.fromEntries(files),
    phoneOverflow,
    outputRows,
    fallback,
    switched: [stopped, restarted],
    mjpeg,
    errors,
    ...state,
  }));
} finally {
  await browser.close();
}
