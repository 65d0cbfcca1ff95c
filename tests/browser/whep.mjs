// Plays edgecam's WebRTC stream in headless Chromium over WHEP, from a
// page of another origin (so CORS is part of it), and reports one JSON
// line: the time from POST to the first decoded frame, how many frames
// were shown, and the capture→display latency read from the latency
// stamp of the test pattern for each shown frame (read with edgecam's own
// /assets/stamp.js, as any page may; docs/latency-stamp.md).
// Usage: node whep.mjs EDGECAM_URL SECONDS [PEERS]
import http from "node:http";
import { chromium } from "playwright-core";

const [edgecam, seconds = "10", peers = "1"] = process.argv.slice(2);

const server = http.createServer((_, response) => {
  response.writeHead(200, { "content-type": "text/html" });
  response.end(`<!doctype html><body><canvas id="canvas"></canvas>
<script src="${edgecam}/assets/stamp.js"></script></body>`);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    // Host candidates as addresses, not mDNS names (edgecam's ICE agent
    // does not resolve .local names).
    "--disable-features=WebRtcHideLocalIpsWithMdns",
  ],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(origin, { waitUntil: "load" });
  const report = await page.evaluate(async ({ edgecam, seconds, peers }) => {
    const play = async (index) => {
      const video = document.createElement("video");
      video.id = `video${index}`;
      video.muted = true;
      video.autoplay = true;
      video.playsInline = true;
      document.body.append(video);
      const pc = new RTCPeerConnection();
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.ontrack = (event) => { video.srcObject = new MediaStream([event.track]); };
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === "complete") return resolve();
        pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
        setTimeout(resolve, 2000);
      });
      const posted = performance.now();
      const response = await fetch(`${edgecam}/whep/cam`, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
      });
      if (response.status !== 201) throw new Error(`WHEP POST: ${response.status} ${await response.text()}`);
      const location = response.headers.get("Location");
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
      const first = await new Promise((resolve) => {
        video.requestVideoFrameCallback(() => resolve(performance.now() - posted));
      });
      return { pc, video, location, first };
    };
    const started = await Promise.all([...Array(peers).keys()].map(play));
    // Every shown frame of the first peer: its stamp against the clock.
    const latencies = [];
    const shown = started.map(() => 0);
    started.forEach(({ video }, i) => {
      const onFrame = () => {
        shown[i] += 1;
        if (i === 0) {
          const picture = window.edgecamStamp.read(video, document.getElementById("canvas"));
          if (picture && picture.captured) latencies.push((picture.now - picture.captured) / 1000);
        }
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    });
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const stats = await started[0].pc.getStats();
    let jitterBufferMs = null;
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video" && s.jitterBufferEmittedCount) {
        jitterBufferMs = (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000;
      }
    });
    const deleted = [];
    for (const { pc, location } of started) {
      const response = await fetch(new URL(location, edgecam), { method: "DELETE" });
      deleted.push(response.status);
      pc.close();
    }
    latencies.sort((a, b) => a - b);
    const at = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] : null);
    return {
      firstFrameMs: started.map((s) => Math.round(s.first)),
      shown,
      stamped: latencies.length,
      latencyP50Ms: at(0.5),
      latencyP99Ms: at(0.99),
      jitterBufferMs,
      width: started[0].video.videoWidth,
      deleted,
    };
  }, { edgecam, seconds: Number(seconds), peers: Number(peers) });
  console.log(JSON.stringify({ ...report, errors }));
} finally {
  await browser.close();
  server.close();
}
