// The edgecam dashboard: the camera over HLS beside live graphs of the
// metrics WebSocket. No framework and no chart library: six line charts on
// canvases are a few dozen lines, and the board serves every byte.
"use strict";

const HISTORY = 300; // points kept per series (30 s at 10 samples/s)
const $ = (id) => document.getElementById(id);

// Exposed for tests and curious users: how much data the graphs received,
// how the video plays ("webrtc" or "hls") and how far behind it is.
window.edgecamStats = { samples: 0, hello: null, transport: null, latencyMs: null };

// The viewer token in the page's address, passed on to what the page asks
// for (media requests cannot carry headers).
const viewerToken = new URLSearchParams(location.search).get("token");
const withToken = (path) => (viewerToken ? `${path}?token=${encodeURIComponent(viewerToken)}` : path);

// --- video -----------------------------------------------------------------

const status = (text) => { $("video-status").textContent = text; };

// Start as soon as there is something to play; a browser that refuses
// autoplay needs a tap.
function play() {
  $("video").play().catch((error) => {
    if (error.name === "NotAllowedError") status("press play to start the video");
  });
}

// HLS: about 2 s behind, but plays anywhere. hls.js wherever Media Source
// Extensions exist; the browser's own HLS elsewhere (older iPhones).
function startHls(playlist, why) {
  const video = $("video");
  window.edgecamStats.transport = "hls";
  video.srcObject = null;
  video.addEventListener("playing", () => status(`live · HLS${why ? ` (${why})` : ""}`));
  if (window.Hls && Hls.isSupported()) {
    // A fresh player per attempt: a player that failed fatally stays failed.
    const attach = () => {
      const hls = new Hls({ liveSyncDurationCount: 2, maxBufferLength: 6 });
      hls.on(Hls.Events.ERROR, (_, data) => {
        if (data.fatal) {
          status(`video: ${data.details}; retrying`);
          hls.destroy();
          setTimeout(attach, 2000);
        }
      });
      hls.on(Hls.Events.MANIFEST_PARSED, play);
      hls.loadSource(playlist);
      hls.attachMedia(video);
    };
    whenPlaylistExists(playlist, attach);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.addEventListener("loadedmetadata", play);
    video.addEventListener("error", () => setTimeout(() => { video.src = playlist; }, 2000));
    whenPlaylistExists(playlist, () => { video.src = playlist; });
  } else {
    status("this browser cannot play HLS");
  }
}

// WebRTC over WHEP: a few frames behind capture. Falls back to HLS by
// itself when it cannot play (UDP blocked, too many peers, no WebRTC);
// one that played and then failed (edgecam restarted) tries again.
function startWebrtc(whep, fallback) {
  const video = $("video");
  if (!window.RTCPeerConnection) return fallback("this browser has no WebRTC");
  const pc = new RTCPeerConnection();
  let session = null, played = false, ended = false;
  const end = (why) => {
    if (ended) return;
    ended = true;
    pc.close();
    if (session) fetch(session, { method: "DELETE", keepalive: true }).catch(() => {});
    if (played) setTimeout(() => startWebrtc(whep, fallback), 2000);
    else fallback(why);
  };
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (event) => { video.srcObject = new MediaStream([event.track]); play(); };
  pc.onconnectionstatechange = () => {
    if (["failed", "closed"].includes(pc.connectionState)) end(`WebRTC ${pc.connectionState}`);
  };
  video.addEventListener("playing", () => {
    if (ended) return;
    played = true;
    window.edgecamStats.transport = "webrtc";
    status("live · WebRTC");
  }, { once: true });
  setTimeout(() => { if (!played) end("no WebRTC picture within 5 s: UDP blocked?"); }, 5000);
  window.addEventListener("pagehide", () => {
    if (session) fetch(session, { method: "DELETE", keepalive: true });
  });
  (async () => {
    await pc.setLocalDescription(await pc.createOffer());
    // The answer cannot be trickled to us: send every candidate at once.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
      setTimeout(resolve, 1000);
    });
    const response = await fetch(withToken(whep), {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    });
    if (response.status !== 201) throw new Error(`${response.status} ${(await response.text()).trim()}`);
    session = new URL(response.headers.get("Location"), location.href).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    window.edgecamStats.peer = pc;
  })().catch((error) => end(`WebRTC: ${error.message}`));
}

// How far behind the picture is: read from the test pattern's stamp, or,
// for a camera over WebRTC, the browser's jitter buffer.
async function measureLatency(testPattern) {
  const video = $("video");
  let text = "";
  if (testPattern && video.videoWidth) {
    const picture = window.edgecamStamp.read(video, $("stamp-canvas"));
    if (picture && picture.captured) {
      const ms = (picture.now - picture.captured) / 1000;
      window.edgecamStats.latencyMs = ms;
      text = `${Math.round(ms)} ms behind capture`;
    }
  } else if (window.edgecamStats.transport === "webrtc" && window.edgecamStats.peer) {
    const stats = await window.edgecamStats.peer.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video" && s.jitterBufferEmittedCount) {
        text = `jitter buffer ${Math.round((s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000)} ms`;
      }
    });
  }
  $("video-latency").textContent = text;
}

// Right after edgecam starts, the first segment is still being written and
// the playlist does not exist; players give up on a missing playlist, so
// wait for it first.
function whenPlaylistExists(playlist, then) {
  fetch(playlist, { method: "HEAD", cache: "no-store" })
    .then((response) => (response.ok ? then() : setTimeout(() => whenPlaylistExists(playlist, then), 1000)))
    .catch(() => setTimeout(() => whenPlaylistExists(playlist, then), 1000));
}

// --- the MJPEG view and snapshots ---------------------------------------------
$("snapshot").href = withToken("/snapshot.jpg");

// MJPEG instead of HLS: live to the frame, at more bandwidth. The image is
// only connected while shown (an unwatched MJPEG stream costs the board a
// JPEG encode per frame).
$("view-toggle").addEventListener("click", () => {
  const image = $("mjpeg"), video = $("video"), showing = !image.hidden;
  if (showing) {
    image.removeAttribute("src");
    image.hidden = true;
    video.hidden = false;
    $("view-toggle").textContent = "show MJPEG";
  } else {
    image.src = withToken("/stream.mjpeg");
    image.hidden = false;
    video.hidden = true;
    $("view-toggle").textContent = "show HLS";
  }
});

// --- outputs: state, viewers, start/stop ---------------------------------------

// Start and stop need the admin token: asked once, kept for this tab only.
function adminToken(again) {
  if (again) sessionStorage.removeItem("edgecam-admin-token");
  let token = sessionStorage.getItem("edgecam-admin-token");
  if (!token) {
    token = prompt("Admin token (edgecam logs it at first start; see the README):");
    if (token) sessionStorage.setItem("edgecam-admin-token", token);
  }
  return token;
}

async function switchOutput(name, action, retried) {
  const token = adminToken(retried);
  if (!token) return;
  const response = await fetch(`/api/outputs/${name}/${action}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
  });
  if (response.status === 401 && !retried) return switchOutput(name, action, true);
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    alert(`${action} ${name}: ${body.error || response.status}`);
  }
  refreshOutputs();
}

function refreshOutputs() {
  fetch(withToken("/api/outputs"), { cache: "no-store" })
    .then((response) => (response.ok ? response.json() : null))
    .then((report) => {
      if (!report) return;
      const rows = Object.entries(report.outputs).map(([name, o]) => {
        const row = document.createElement("tr");
        row.dataset.output = name;
        const cells = [name, o.state, o.viewers, o.restarts].map((text) => {
          const cell = document.createElement("td");
          cell.textContent = text;
          return cell;
        });
        cells[1].className = o.state;
        if (o.last_error) cells[1].title = o.last_error;
        const control = document.createElement("td");
        if (o.controllable) {
          const button = document.createElement("button");
          const action = o.state === "stopped" ? "start" : "stop";
          button.textContent = action;
          button.addEventListener("click", () => switchOutput(name, action, false));
          control.append(button);
        }
        row.append(...cells, control);
        return row;
      });
      $("outputs").tBodies[0].replaceChildren(...rows);
    })
    .catch(() => {});
}
refreshOutputs();
setInterval(refreshOutputs, 2000);

// --- charts ----------------------------------------------------------------

class Chart {
  constructor(canvas, colors) {
    this.canvas = canvas;
    this.colors = colors;
    this.series = colors.map(() => []);
  }

  push(values) {
    values.forEach((value, i) => {
      const series = this.series[i];
      series.push(value);
      if (series.length > HISTORY) series.shift();
    });
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(canvas.clientWidth * ratio);
    const height = Math.round(canvas.clientHeight * ratio);
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    const all = this.series.flat().filter((v) => v !== null && Number.isFinite(v));
    if (all.length === 0) return;
    const max = Math.max(...all, 1) * 1.15;
    ctx.lineWidth = 1.5 * ratio;
    this.series.forEach((series, i) => {
      ctx.strokeStyle = this.colors[i];
      ctx.beginPath();
      let started = false;
      series.forEach((value, x) => {
        if (value === null || !Number.isFinite(value)) { started = false; return; }
        const px = (x + HISTORY - series.length) / (HISTORY - 1) * width;
        const py = height - (value / max) * height;
        if (started) ctx.lineTo(px, py); else ctx.moveTo(px, py);
        started = true;
      });
      ctx.stroke();
    });
  }
}

const charts = {
  fps: new Chart($("c-fps"), ["#5fb3ff", "#9be37c"]),
  bitrate: new Chart($("c-bitrate"), ["#f0c030"]),
  latency: new Chart($("c-latency"), ["#ff8a5f"]),
  clients: new Chart($("c-clients"), ["#5fb3ff", "#9be37c", "#c58aff", "#f0c030", "#ff8a5f"]),
  cpu: new Chart($("c-cpu"), ["#ff6f91"]),
  temp: new Chart($("c-temp"), ["#ffb86b"]),
};

function fmt(value, digits = 0) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

function duration(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
}

function onHello(hello) {
  window.edgecamStats.hello = hello;
  const camera = hello.camera, encoder = hello.encoder;
  $("device").textContent = hello.device;
  $("camera").textContent = `${camera.source}, ${camera.width}×${camera.height} @ ${camera.fps} fps`;
  $("encoder").textContent = `${encoder.element}, ${encoder.bitrate_kbps} kbit/s, ${encoder.profile}`;
  const video = $("video");
  if (!video.dataset.started && (hello.outputs.webrtc || hello.outputs.hls)) {
    video.dataset.started = "1";
    const hls = (why) => {
      if (hello.outputs.hls) startHls(withToken(hello.outputs.hls.playlist), why);
      else status(`no video: ${why}, and HLS is off`);
    };
    if (hello.outputs.webrtc) startWebrtc(hello.outputs.webrtc.whep, hls);
    else hls("WebRTC is off");
    const testPattern = camera.source === "test pattern";
    setInterval(() => measureLatency(testPattern), 500);
  }
}

function onSample(s) {
  window.edgecamStats.samples += 1;
  charts.fps.push([s.capture_fps, s.encoded_fps]);
  charts.bitrate.push([s.bitrate_kbps]);
  charts.latency.push([s.capture_to_encode_ms]);
  const viewers = (name) => s.clients[name] || 0;
  charts.clients.push(["rtsp", "hls", "ws", "mjpeg", "frames"].map(viewers));
  charts.cpu.push([s.cpu_percent]);
  charts.temp.push([s.soc_temp_c]);
  $("v-fps").textContent = `${fmt(s.encoded_fps, 1)} (dropped ${s.dropped_frames})`
    + (s.camera.state === "lost" ? " · camera lost" : "")
    + (s.camera.state === "private" ? " · privacy mode" : "");
  $("v-bitrate").textContent = fmt(s.bitrate_kbps);
  $("v-latency").textContent = fmt(s.capture_to_encode_ms, 1);
  // Only the outputs someone watches: five counts do not fit a caption.
  const watched = Object.entries(s.clients).filter(([, n]) => n > 0);
  $("v-clients").textContent = watched.length ? watched.map(([name, n]) => `${name} ${n}`).join(" · ") : "none";
  $("v-cpu").textContent = fmt(s.cpu_percent);
  $("v-temp").textContent = s.soc_temp_c === null ? "n/a" : fmt(s.soc_temp_c, 1);
  $("uptime").textContent = duration(s.uptime_s);
  if (s.throttling && (s.throttling.under_voltage || s.throttling.throttled)) {
    $("v-temp").textContent += " ⚠ throttled";
  }
}

// Charts redraw once per display frame, however fast samples arrive.
function frame() {
  Object.values(charts).forEach((chart) => chart.draw());
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// --- metrics socket, reconnecting ---------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/metrics/ws${location.search}`);
  socket.onopen = () => { $("link").textContent = "live"; };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "hello") onHello(message);
    else if (message.type === "sample") onSample(message);
  };
  socket.onclose = () => {
    $("link").textContent = "reconnecting…";
    setTimeout(connect, 1000);
  };
}
connect();
