// The settings page: every change goes through the same API as curl and
// `edgecam config` (validate → apply → confirm or roll back), with the admin
// token kept in this tab's session storage — never in a URL or a cookie.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "edgecam-admin-token";
let etag = null;

function say(id, text, kind = "") {
  const element = $(id);
  element.textContent = text;
  element.className = `message ${kind}`;
}

/// An API call with the token; the JSON error's message on failure.
async function api(method, path, { body, headers = {} } = {}) {
  const token = sessionStorage.getItem(KEY);
  const response = await fetch(path, {
    method,
    body,
    cache: "no-store",
    headers: { Authorization: `Bearer ${token}`, ...headers },
  });
  if (response.status === 401) {
    signOut("the token was refused; sign in again");
    throw new Error("signed out");
  }
  return response;
}

async function failure(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { error: text || response.statusText };
  }
}

// --- signing in -----------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  const response = await fetch("/api/config", {
    cache: "no-store",
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) {
    const { error } = await failure(response);
    say("sign-in-message", response.status === 401 ? "refused: that is not the admin token" : error, "error");
    return;
  }
  sessionStorage.setItem(KEY, token);
  $("token").value = "";
  say("sign-in-message", "");
  show();
}

function signOut(why = "") {
  sessionStorage.removeItem(KEY);
  $("settings").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  say("sign-in-message", why, why ? "error" : "");
}

async function show() {
  $("sign-in").hidden = true;
  $("settings").hidden = false;
  $("sign-out").hidden = false;
  await Promise.all([loadFile(), loadPrivacy(), loadOutputs(), loadLayers()]);
}

// --- the whole file ---------------------------------------------------------

function renumber(bad) {
  const lines = $("toml").value.split("\n").length;
  const gutter = $("gutter");
  gutter.replaceChildren();
  for (let n = 1; n <= lines; n += 1) {
    const number = document.createElement("span");
    number.textContent = `${n}\n`;
    if (n === bad) number.className = "bad";
    gutter.append(number);
  }
  // Room past the last line for the text's horizontal scrollbar.
  gutter.append("\n\n");
  if (bad) {
    const lineHeight = parseFloat(getComputedStyle($("toml")).lineHeight);
    $("toml").scrollTop = Math.max(0, (bad - 4) * lineHeight);
  }
  gutter.scrollTop = $("toml").scrollTop;
}

async function loadFile() {
  const response = await api("GET", "/api/config");
  $("toml").value = await response.text();
  etag = response.headers.get("ETag");
  renumber();
  return parseToml($("toml").value);
}

/// The few keys the page shows beside the file, read from its text.
function parseToml(text) {
  const bitrate = /^\s*bitrate_kbps\s*=\s*(\d+)/m.exec(text.split(/^\[encoder\]/m)[1] || "");
  if (bitrate) $("bitrate").value = bitrate[1];
}

function describeChanges(changes) {
  if (!changes.length) return "nothing changes";
  return changes
    .map((c) => {
      const effect = c.effect === "restart" ? `restarts ${c.outputs.join(", ")}` : {
        live: "live",
        camera: "rebuilds the camera",
        process: "needs a restart of edgecam",
      }[c.effect] || c.effect;
      return `${c.key}: ${JSON.stringify(c.from)} → ${JSON.stringify(c.to)} (${effect})`;
    })
    .join("\n");
}

function showError(reply) {
  const where = reply.line ? `line ${reply.line}, column ${reply.column}: ` : "";
  say("file-message", `${where}${reply.error}`, "error");
  renumber(reply.line);
}

async function validate() {
  const response = await api("POST", "/api/config/validate", { body: $("toml").value });
  const reply = await failure(response);
  if (response.ok) {
    renumber();
    say("file-message", `valid — what would change:\n${describeChanges(reply.changes)}`, "ok");
  } else {
    showError(reply);
  }
}

async function apply() {
  say("file-message", "applying… (a change must keep frames flowing to be kept)");
  const response = await api("PUT", "/api/config", {
    body: $("toml").value,
    headers: { "If-Match": etag || "" },
  });
  const reply = await failure(response);
  if (response.ok) {
    etag = response.headers.get("ETag");
    renumber();
    say("file-message", `applied and written:\n${describeChanges(reply.changes)}`, "ok");
    await Promise.all([loadPrivacy(), loadOutputs(), loadLayers()]);
  } else if (response.status === 412) {
    say("file-message", "someone else changed the configuration since you loaded it: nothing was written. " +
      "Copy your edits, press reload to see theirs, and apply again.", "error");
  } else {
    showError(reply);
  }
}

/// A TOML fragment merged into the file (one setting), then the file again.
/// One key changed by someone else meanwhile does not conflict with this
/// one: read the file again and send it once more.
async function patch(fragment, message) {
  const send = () => api("PATCH", "/api/config", { body: fragment, headers: { "If-Match": etag || "" } });
  let response = await send();
  if (response.status === 412) {
    await loadFile();
    response = await send();
  }
  const reply = await failure(response);
  if (response.ok) {
    say(message, describeChanges(reply.changes), "ok");
    await loadFile();
  } else {
    say(message, reply.error, "error");
  }
  return response.ok;
}

// --- privacy, encoder, outputs, layers --------------------------------------

async function loadPrivacy() {
  const response = await api("GET", "/api/privacy");
  $("privacy").checked = (await response.json()).enabled;
}

async function setPrivacy() {
  const enabled = $("privacy").checked;
  const response = await api("POST", "/api/privacy", { body: JSON.stringify({ enabled }) });
  if (response.ok) {
    say("privacy-message", enabled ? "privacy mode is on: the camera is closed" : "privacy mode is off", "ok");
    await loadFile();
  } else {
    say("privacy-message", (await failure(response)).error, "error");
    await loadPrivacy();
  }
}

async function setBitrate() {
  const kbps = Number($("bitrate").value);
  if (!Number.isInteger(kbps) || kbps <= 0) {
    say("bitrate-message", "a whole number of kbit/s", "error");
    return;
  }
  await patch(`[encoder]\nbitrate_kbps = ${kbps}\n`, "bitrate-message");
}

async function loadOutputs() {
  const response = await api("GET", "/api/outputs");
  const report = await response.json();
  const rows = Object.entries(report.outputs).map(([name, output]) => {
    const row = document.createElement("tr");
    row.dataset.output = name;
    for (const text of [name, output.state, output.viewers]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    const cell = document.createElement("td");
    if (output.controllable) {
      const button = document.createElement("button");
      const action = output.state === "stopped" ? "start" : "stop";
      button.textContent = action;
      button.addEventListener("click", async () => {
        const reply = await api("POST", `/api/outputs/${name}/${action}`);
        const done = action === "stop" ? "stopped" : "started";
        say("outputs-message", reply.ok ? `${name}: ${done}` : (await failure(reply)).error, reply.ok ? "ok" : "error");
        await loadOutputs();
      });
      cell.append(button);
    }
    row.append(cell);
    return row;
  });
  $("outputs-table").tBodies[0].replaceChildren(...rows);
}

async function loadLayers() {
  const response = await api("GET", "/api/overlay/layers");
  const { layers } = await response.json();
  const rows = layers.map((layer) => {
    const row = document.createElement("tr");
    for (const text of [layer.name, layer.kind]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    const visible = document.createElement("input");
    visible.type = "checkbox";
    visible.checked = layer.visible;
    visible.setAttribute("aria-label", `${layer.name} visible`);
    visible.addEventListener("change", () => layerCall("PATCH", layer.name, { visible: visible.checked }));
    const remove = document.createElement("button");
    remove.textContent = "delete";
    remove.addEventListener("click", () => layerCall("DELETE", layer.name));
    for (const control of [visible, remove]) {
      const cell = document.createElement("td");
      cell.append(control);
      row.append(cell);
    }
    return row;
  });
  $("layers").tBodies[0].replaceChildren(...rows);
  if (!layers.length) say("layers-message", "no layers (add them in the file below, [[overlay.layers]])");
}

async function layerCall(method, name, body) {
  const response = await api(method, `/api/overlay/layers/${encodeURIComponent(name)}`, {
    body: body && JSON.stringify(body),
  });
  say("layers-message", response.ok ? `${name}: done` : (await failure(response)).error, response.ok ? "ok" : "error");
  await Promise.all([loadLayers(), loadFile()]);
}

// --- wiring -----------------------------------------------------------------

const guarded = (action) => () => action().catch((error) => {
  if (error.message !== "signed out") say("file-message", String(error), "error");
});

$("sign-in").addEventListener("submit", (event) => signIn(event).catch((e) => say("sign-in-message", String(e), "error")));
$("sign-out").addEventListener("click", () => signOut());
$("toml").addEventListener("input", () => renumber());
$("toml").addEventListener("scroll", () => {
  $("gutter").scrollTop = $("toml").scrollTop;
});
$("validate").addEventListener("click", guarded(validate));
$("apply").addEventListener("click", guarded(apply));
$("reload").addEventListener("click", guarded(async () => {
  await loadFile();
  say("file-message", "the file as it is on the board");
}));
$("privacy").addEventListener("change", guarded(setPrivacy));
$("bitrate-apply").addEventListener("click", guarded(setBitrate));

if (sessionStorage.getItem(KEY)) guarded(show)();
