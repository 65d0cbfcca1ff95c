// The overlay's layers (GET/PUT/PATCH/DELETE /api/overlay/layers/{name}):
// visibility, opacity, order, the text or clock format, new layers, and
// privacy masks drawn by dragging a rectangle over the live picture. Each
// change is a configuration edit, applied live and written to the file.
import { $, api, element, failure, fileChanged, say } from "./settings-core.js";

let layers = [];

async function call(method, name, body) {
  const response = await api(method, `/api/overlay/layers/${encodeURIComponent(name)}`, {
    body: body && JSON.stringify(body),
  });
  const ok = response.ok;
  say("layers-message", ok ? `${name}: done` : (await failure(response)).error, ok ? "ok" : "error");
  await fileChanged();
  return ok;
}

/// Moves a layer one step up (drawn later, on top) or down; the order is
/// z, so the layers are numbered 10, 20, … and the two swapped.
async function move(index, step) {
  const order = [...layers];
  const other = index + step;
  if (other < 0 || other >= order.length) return;
  [order[index], order[other]] = [order[other], order[index]];
  for (const [position, layer] of order.entries()) {
    const z = (position + 1) * 10;
    if (layer.z !== z && !(await call("PATCH", layer.name, { z }))) return;
  }
}

function card(layer, index) {
  const visible = element("input", { type: "checkbox", checked: layer.visible });
  visible.setAttribute("aria-label", `${layer.name} visible`);
  visible.addEventListener("change", () => call("PATCH", layer.name, { visible: visible.checked }));
  const opacity = element("input", { type: "range", min: 0, max: 100, step: 5, value: layer.opacity });
  opacity.setAttribute("aria-label", `${layer.name} opacity`);
  opacity.addEventListener("change", () => call("PATCH", layer.name, { opacity: Number(opacity.value) }));
  const controls = [
    element("label", {}, visible, " visible"),
    element("label", {}, "opacity ", opacity),
  ];
  const field = { clock: "format", text: "text" }[layer.kind];
  if (field) {
    const input = element("input", { type: "text", value: layer[field], className: "wide" });
    input.setAttribute("aria-label", `${layer.name} ${field}`);
    input.addEventListener("change", () => call("PATCH", layer.name, { [field]: input.value }));
    controls.push(input);
  } else if (layer.kind === "mask") {
    controls.push(element("span", { className: "dim", textContent: `${layer.rects.length} rectangle(s)` }));
  }
  const up = element("button", { type: "button", textContent: "↑", title: "on top of the next" });
  up.addEventListener("click", () => move(index, 1));
  const down = element("button", { type: "button", textContent: "↓", title: "under the previous" });
  down.addEventListener("click", () => move(index, -1));
  const remove = element("button", { type: "button", textContent: "delete" });
  remove.addEventListener("click", () => call("DELETE", layer.name));
  const made = element("div", { className: "layer" },
    element("b", { textContent: layer.name }), element("span", { className: "dim", textContent: layer.kind }),
    ...controls, element("span", { className: "buttons" }, up, down, remove));
  made.dataset.layer = layer.name;
  return made;
}

export async function loadLayers() {
  const response = await api("GET", "/api/overlay/layers");
  // Drawn in z order (equal z: in file order), bottom first.
  layers = (await response.json()).layers
    .map((layer, position) => ({ ...layer, position }))
    .sort((a, b) => a.z - b.z || a.position - b.position);
  $("layers").replaceChildren(...layers.map(card));
  if (!layers.length) say("layers-message", "no layers yet: add a clock or a text, or draw a mask on the picture");
}

const topZ = () => Math.max(0, ...layers.map((layer) => layer.z)) + 10;

async function addLayer(event) {
  event.preventDefault();
  const name = $("layer-name").value.trim();
  const kind = $("layer-kind").value;
  const words = $("layer-text").value;
  if (!name) {
    say("layers-message", "a layer needs a name", "error");
    return;
  }
  const layer = { kind, anchor: $("layer-anchor").value, z: topZ() };
  if (kind === "clock") layer.format = words || "%Y-%m-%d %H:%M:%S";
  else layer.text = words;
  if (await call("PUT", name, layer)) $("add-layer").reset();
}

// --- masks drawn on the picture ---------------------------------------------

let drawing = null;

/// A pointer position in the picture's own pixels (the snapshot's size).
function inPicture(event) {
  const picture = $("picture");
  const box = picture.getBoundingClientRect();
  const x = Math.min(Math.max(event.clientX - box.left, 0), box.width);
  const y = Math.min(Math.max(event.clientY - box.top, 0), box.height);
  return {
    x, y,
    px: Math.round((x * picture.naturalWidth) / box.width),
    py: Math.round((y * picture.naturalHeight) / box.height),
  };
}

function startDrawing(event) {
  if (!$("draw-mask").getAttribute("aria-pressed").includes("true") || !$("picture").naturalWidth) return;
  event.preventDefault();
  $("picture-frame").setPointerCapture(event.pointerId);
  drawing = inPicture(event);
  Object.assign($("drawn").style, { left: `${drawing.x}px`, top: `${drawing.y}px`, width: "0", height: "0" });
  $("drawn").hidden = false;
}

function drag(event) {
  if (!drawing) return;
  const at = inPicture(event);
  Object.assign($("drawn").style, {
    left: `${Math.min(at.x, drawing.x)}px`, top: `${Math.min(at.y, drawing.y)}px`,
    width: `${Math.abs(at.x - drawing.x)}px`, height: `${Math.abs(at.y - drawing.y)}px`,
  });
}

async function finishDrawing(event) {
  if (!drawing) return;
  const from = drawing;
  const to = inPicture(event);
  drawing = null;
  $("drawn").hidden = true;
  const rect = [Math.min(from.px, to.px), Math.min(from.py, to.py), Math.abs(to.px - from.px), Math.abs(to.py - from.py)];
  if (rect[2] < 4 || rect[3] < 4) return;
  const picture = $("picture");
  const size = [picture.naturalWidth, picture.naturalHeight];
  const name = $("mask-name").value.trim() || "privacy-mask";
  const existing = layers.find((layer) => layer.name === name);
  if (existing && existing.kind === "mask" && existing.size[0] === size[0] && existing.size[1] === size[1]) {
    await call("PATCH", name, { rects: [...existing.rects, rect] });
  } else {
    await call("PUT", name, { kind: "mask", rects: [rect], size, color: "#000000", z: topZ() });
  }
}

function toggleDrawing() {
  const on = $("draw-mask").getAttribute("aria-pressed") !== "true";
  $("draw-mask").setAttribute("aria-pressed", String(on));
  $("picture-frame").classList.toggle("drawing", on);
  // The picture is in the camera's panel, above: bring it to the pointer.
  if (on) $("picture-frame").scrollIntoView({ block: "center" });
  say("layers-message", on ? "drag a rectangle over the picture: it is masked in every output" : "");
}

export function wireOverlay(guarded) {
  $("add-layer").addEventListener("submit", (event) => guarded(() => addLayer(event))());
  $("draw-mask").addEventListener("click", toggleDrawing);
  $("picture-frame").addEventListener("pointerdown", startDrawing);
  $("picture-frame").addEventListener("pointermove", drag);
  $("picture-frame").addEventListener("pointerup", (event) => guarded(() => finishDrawing(event))());
}
