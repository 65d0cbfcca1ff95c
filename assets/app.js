// The edgecam dashboard: the camera over HLS beside live graphs of the
// metrics WebSocket. No framework and no chart library: six line charts on
// canvases are a few dozen lines, and the board serves every byte.
"use strict";

const HISTORY = 300; // points kept per series (30 s at 10 samples/s)
const $ = (id) => document.getElementById(id);

// Exposed for tests and curious users: how much data the graphs received.
window.edgecamStats = { samples: 0, hello: null };

// --- video -----------------------------------------------------------------

function startVideo(playlist) {
  const video = $("video");
  const status = (text) => { $("video-status").textContent = text; };
  video.addEventListener("playing", () => status(`live · ${playlist}`));
  // Start as soon as there is something to play; a browser that refuses
  // autoplay needs a tap.
  const play = () => video.play().catch((error) => {
    if (error.name === "NotAllowedError") status("press play to start the video");
  });
  // hls.js wherever Media Source Extensions exist (it starts at the live
  // edge and recovers from errors the same way everywhere); the browser's
  // own HLS elsewhere (older iPhones).
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

// Right after edgecam starts, the first segment is still being written and
// the playlist does not exist; players give up on a missing playlist, so
// wait for it first.
function whenPlaylistExists(playlist, then) {
  fetch(playlist, { method: "HEAD", cache: "no-store" })
    .then((response) => (response.ok ? then() : setTimeout(() => whenPlaylistExists(playlist, then), 1000)))
    .catch(() => setTimeout(() => whenPlaylistExists(playlist, then), 1000));
}

// --- the MJPEG view and snapshots ---------------------------------------------

// The viewer token in the page's address, passed on to what the page links.
const viewerToken = new URLSearchParams(location.search).get("token");
const withToken = (path) => (viewerToken ? `${path}?token=${encodeURIComponent(viewerToken)}` : path);
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
  if (hello.outputs.hls && !$("video").src && !$("video").dataset.started) {
    $("video").dataset.started = "1";
    // A viewer token in the page's address goes along (media requests
    // cannot carry headers; the server adds it to the segment addresses).
    const token = new URLSearchParams(location.search).get("token");
    startVideo(token ? `${hello.outputs.hls.playlist}?token=${encodeURIComponent(token)}` : hello.outputs.hls.playlist);
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
    + (s.camera.state === "lost" ? " · camera lost" : "");
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
