// The camera: its live picture (snapshots fetched with the token, so it
// never rides in an <img> URL), the capture mode chosen from what the
// camera offers (GET /api/camera), and its controls as sliders, switches,
// menus and buttons generated from GET /api/camera/controls.
import { $, api, element, failure, patch, say, tomlString } from "./settings-core.js";

// --- the live picture ---------------------------------------------------------

let pictureTimer = null;
let shownUrl = null;

/// One snapshot into the picture; the next is asked for when it is shown
/// (about two a second: enough to see a control or a mask take effect).
async function refreshPicture() {
  clearTimeout(pictureTimer);
  if ($("settings").hidden) return;
  try {
    const response = await api("GET", "/snapshot.jpg");
    if (response.ok) {
      const url = URL.createObjectURL(await response.blob());
      $("picture").src = url;
      if (shownUrl) URL.revokeObjectURL(shownUrl);
      shownUrl = url;
      $("picture-message").textContent = "";
    } else {
      $("picture-message").textContent = response.status === 503 || response.status === 404
        ? "no picture: the MJPEG output (snapshots) is off — start it under outputs"
        : (await failure(response)).error;
    }
  } catch (error) {
    if (error.message === "signed out") return;
    $("picture-message").textContent = `no picture: ${error.message}`;
  }
  pictureTimer = setTimeout(refreshPicture, document.hidden ? 3000 : 500);
}

export function startPicture() {
  refreshPicture();
}

// --- the capture mode ---------------------------------------------------------

let modes = [];

export async function loadModes() {
  const response = await api("GET", "/api/camera");
  const camera = await failure(response);
  if (!response.ok) {
    say("mode-message", camera.error, "error");
    return;
  }
  $("camera-device").textContent = camera.device;
  modes = camera.modes;
  const { width, height, fps, format } = camera.configured;
  const options = modes.map((mode, index) => element("option", {
    value: String(index),
    textContent: `${mode.width}x${mode.height}${mode.fourcc ? ` ${mode.fourcc}` : ""}`,
    selected: mode.width === width && mode.height === height && (format === "auto" || mode.format === format),
  }));
  if (!options.some((option) => option.selected)) {
    options.unshift(element("option", { value: "", textContent: `${width}x${height} (as configured)`, selected: true }));
  }
  $("mode").replaceChildren(...options);
  showRates(fps);
  $("mode-note").textContent = camera.any_size
    ? "the test pattern and a file draw any size: common ones are listed"
    : "as the camera offers them";
}

function showRates(wanted) {
  const mode = modes[Number($("mode").value)];
  const rates = mode ? mode.fps : [wanted];
  const chosen = rates.includes(wanted) ? wanted : rates[0];
  $("fps").replaceChildren(...rates.map((fps) =>
    element("option", { value: String(fps), textContent: `${fps} fps`, selected: fps === chosen })));
}

async function applyMode() {
  const mode = modes[Number($("mode").value)];
  if (!mode) {
    say("mode-message", "choose a mode from the list", "error");
    return;
  }
  say("mode-message", "rebuilding the camera pipeline… (viewers stay connected)");
  const fragment = `[camera]\nwidth = ${mode.width}\nheight = ${mode.height}\n`
    + `fps = ${Number($("fps").value)}\nformat = ${tomlString(mode.format)}\n`;
  if (await patch(fragment, "mode-message")) await loadModes();
}

// --- the controls -------------------------------------------------------------

/// Sets a control live (PUT, while a slider moves) — one call at a time,
/// the latest value last.
function liveSetter(name) {
  let busy = false;
  let pending;
  const send = async (value) => {
    busy = true;
    const response = await api("PUT", `/api/camera/controls/${encodeURIComponent(name)}`, {
      body: JSON.stringify(value),
    });
    if (!response.ok) say("controls-message", `${name}: ${(await failure(response)).error}`, "error");
    busy = false;
    if (pending !== undefined) {
      const next = pending;
      pending = undefined;
      await send(next);
    }
  };
  return (value) => {
    if (busy) pending = value;
    else send(value).catch(() => {});
  };
}

/// Kept in the file too, when the change is done: it survives a restart.
function keep(name, value) {
  const written = typeof value === "string" ? tomlString(value) : String(value);
  return patch(`[camera.controls]\n${name} = ${written}\n`, "controls-message");
}

/// What the page offers a control for; bitmask and string controls are
/// rare and stay API-only.
const ADJUSTABLE = ["integer", "integer64", "boolean", "menu", "integer_menu", "button"];

function controlInput(control) {
  const label = `${control.label}`;
  const id = `control-${control.name}`;
  const value = control.value ?? control.default;
  if (control.type === "boolean") {
    const input = element("input", { type: "checkbox", id, checked: Boolean(value) });
    input.addEventListener("change", () => keep(control.name, input.checked));
    return [label, input];
  }
  if (control.type === "menu" || control.type === "integer_menu") {
    const input = element("select", { id }, ...control.menu.map((item) =>
      element("option", { value: item.name, textContent: item.name, selected: item.value === value || item.name === value })));
    input.addEventListener("change", () => keep(control.name, input.value));
    return [label, input];
  }
  if (control.type === "button") {
    const input = element("button", { type: "button", id, textContent: "press" });
    input.addEventListener("click", () => liveSetter(control.name)(1));
    return [label, input];
  }
  const input = element("input", {
    type: "range", id, min: control.minimum, max: control.maximum, step: control.step || 1, value,
  });
  const shown = element("output", { textContent: String(value) });
  const setLive = liveSetter(control.name);
  input.addEventListener("input", () => {
    shown.textContent = input.value;
    setLive(Number(input.value));
  });
  input.addEventListener("change", () => keep(control.name, Number(input.value)));
  const reset = element("button", { type: "button", textContent: "default", title: `default: ${control.default}` });
  reset.addEventListener("click", () => {
    input.value = control.default;
    shown.textContent = String(control.default);
    keep(control.name, control.default);
  });
  return [label, element("span", { className: "slider" }, input, shown, reset)];
}

export async function loadControls() {
  const response = await api("GET", "/api/camera/controls");
  const reply = await failure(response);
  if (!response.ok) {
    $("controls").replaceChildren();
    say("controls-message", response.status === 404 ? "this camera has no controls (the test pattern and files have none)" : reply.error);
    return;
  }
  const rows = reply.controls
    .filter((control) => !control.read_only && ADJUSTABLE.includes(control.type))
    .map((control) => {
      const [label, input] = controlInput(control);
      const row = element("div", { className: control.inactive ? "control inactive" : "control" },
        element("label", { htmlFor: `control-${control.name}`, textContent: label }), input);
      row.dataset.control = control.name;
      return row;
    });
  $("controls").replaceChildren(...rows);
  say("controls-message", rows.length ? "" : "this camera has no controls");
}

export function wireCamera(guarded) {
  $("mode").addEventListener("change", () => showRates(Number($("fps").value)));
  $("mode-apply").addEventListener("click", guarded(applyMode));
}
