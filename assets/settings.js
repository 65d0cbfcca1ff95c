// The settings page: signing in, and the parts every change goes through —
// the same API as curl and `edgecam config`. The camera and the overlay
// have their own modules.
import {
  $, KEY, api, describeChanges, element, failure, file, patch, say, settings, tomlString,
  whenChanged, whenRefused,
} from "./settings-core.js";
import { loadControls, loadModes, startPicture, wireCamera } from "./settings-camera.js";
import { loadLayers, wireOverlay } from "./settings-overlay.js";

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
  await show();
}

function signOut(why = "") {
  sessionStorage.removeItem(KEY);
  $("settings").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  say("sign-in-message", why, why ? "error" : "");
}
whenRefused(signOut);

async function show() {
  $("sign-in").hidden = true;
  $("settings").hidden = false;
  $("sign-out").hidden = false;
  startPicture();
  await Promise.all([loadFile(), loadFields(), loadPrivacy(), loadOutputs(), loadLayers(),
    loadModes(), loadControls(), loadTokens()]);
}

// A change made through any part: the file and the fields show it.
whenChanged(() => Promise.all([loadFile(), loadFields(), loadLayers(), loadOutputs()]));

// --- the whole file ---------------------------------------------------------

function renumber(bad) {
  const lines = $("toml").value.split("\n").length;
  const gutter = $("gutter");
  gutter.replaceChildren();
  for (let n = 1; n <= lines; n += 1) {
    gutter.append(element("span", { textContent: `${n}\n`, className: n === bad ? "bad" : "" }));
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
  file.etag = response.headers.get("ETag");
  renumber();
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
    headers: { "If-Match": file.etag || "" },
  });
  const reply = await failure(response);
  if (response.ok) {
    file.etag = response.headers.get("ETag");
    renumber();
    say("file-message", `applied and written:\n${describeChanges(reply.changes)}`, "ok");
    await Promise.all([loadFields(), loadPrivacy(), loadOutputs(), loadLayers(), loadModes(), loadTokens()]);
  } else if (response.status === 412) {
    say("file-message", "someone else changed the configuration since you loaded it: nothing was written. " +
      "Copy your edits, press reload to see theirs, and apply again.", "error");
  } else {
    showError(reply);
  }
}

// --- privacy, encoder -------------------------------------------------------

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

/// The fields beside the file, from the running configuration.
async function loadFields() {
  const { encoder } = await settings();
  $("bitrate").value = encoder.bitrate_kbps;
  $("keyframes").value = encoder.keyframe_interval;
  $("profile").value = encoder.profile;
}

async function setBitrate() {
  const kbps = Number($("bitrate").value);
  if (!Number.isInteger(kbps) || kbps <= 0) {
    say("bitrate-message", "a whole number of kbit/s", "error");
    return;
  }
  await patch(`[encoder]\nbitrate_kbps = ${kbps}\n`, "bitrate-message");
}

async function setStream() {
  const frames = Number($("keyframes").value);
  if (!Number.isInteger(frames) || frames <= 0) {
    say("stream-message", "the keyframe interval is a whole number of frames", "error");
    return;
  }
  say("stream-message", "rebuilding the camera pipeline… (viewers stay connected)");
  await patch(`[encoder]\nkeyframe_interval = ${frames}\nprofile = ${tomlString($("profile").value)}\n`,
    "stream-message");
}

// --- outputs ------------------------------------------------------------------

/// An output's parameters, as `key = value` lines (secrets come redacted).
function parameters(settingsOf) {
  return Object.entries(settingsOf || {})
    .flatMap(([section, values]) => Object.entries(values || {}).map(([key, value]) =>
      `${section}.${key} = ${typeof value === "object" ? JSON.stringify(value) : value}`))
    .join("\n");
}

async function loadOutputs() {
  const response = await api("GET", "/api/outputs");
  const report = await response.json();
  const rows = Object.entries(report.outputs).flatMap(([name, output]) => {
    const cells = [name, output.state, output.viewers].map((text) => element("td", { textContent: String(text ?? "") }));
    const action = element("td");
    if (output.controllable) {
      const verb = output.state === "stopped" ? "start" : "stop";
      const button = element("button", { type: "button", textContent: verb });
      button.addEventListener("click", async () => {
        const reply = await api("POST", `/api/outputs/${name}/${verb}`);
        const done = verb === "stop" ? "stopped" : "started";
        say("outputs-message", reply.ok ? `${name}: ${done}` : (await failure(reply)).error, reply.ok ? "ok" : "error");
        await loadOutputs();
      });
      action.append(button);
    }
    const row = element("tr", {}, ...cells, action);
    row.dataset.output = name;
    const shown = parameters(output.settings);
    if (!shown) return [row];
    const details = element("details", {}, element("summary", { textContent: "parameters" }),
      element("pre", { textContent: shown }));
    return [row, element("tr", { className: "parameters" }, element("td", { colSpan: 4 }, details))];
  });
  $("outputs-table").tBodies[0].replaceChildren(...rows);
}

// --- tokens -------------------------------------------------------------------

async function loadTokens() {
  const response = await api("GET", "/api/tokens");
  const tokens = await response.json();
  $("viewer-token-state").textContent = tokens.viewer_token_set
    ? "set: video and metrics need it"
    : "not set: anyone on the network can watch";
  $("admin-token-from").textContent = tokens.admin_token_from;
  $("clear-viewer").hidden = !tokens.viewer_token_set;
}

async function rotate(role) {
  const response = await api("POST", `/api/tokens/${role}`);
  const reply = await failure(response);
  if (!response.ok) {
    say("tokens-message", reply.error, "error");
    return;
  }
  // This tab goes on with the new admin token; the old one is refused now.
  if (role === "admin") sessionStorage.setItem(KEY, reply.token);
  $("new-token").textContent = reply.token;
  $("new-token-box").hidden = false;
  say("tokens-message", `the new ${role} token, shown this once: copy it now`, "ok");
  await Promise.all([loadTokens(), loadFile()]);
}

async function clearViewer() {
  const response = await api("DELETE", "/api/tokens/viewer");
  say("tokens-message", response.ok ? "no viewer token: watching is open" : (await failure(response)).error,
    response.ok ? "ok" : "error");
  $("new-token-box").hidden = true;
  await Promise.all([loadTokens(), loadFile()]);
}

// --- wiring -------------------------------------------------------------------

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
$("stream-apply").addEventListener("click", guarded(setStream));
$("rotate-admin").addEventListener("click", guarded(() => rotate("admin")));
$("rotate-viewer").addEventListener("click", guarded(() => rotate("viewer")));
$("clear-viewer").addEventListener("click", guarded(clearViewer));
wireCamera(guarded);
wireOverlay(guarded);

if (sessionStorage.getItem(KEY)) guarded(show)();
