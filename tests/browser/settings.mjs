// Drives the settings page in headless Chromium as a person would and
// reports what happened as one JSON line: sign-in refused and accepted, the
// privacy switch, the bitrate, the keyframe interval and profile, an output
// stopped and started, overlay layers added, made translucent, reordered,
// edited and deleted, a privacy mask dragged over the live picture, the
// capture mode changed, a broken file validated (its line and column shown)
// and refused, a conflicting edit shown, the tokens rotated, and the page at
// phone width. Usage:
// node settings.mjs URL ADMIN_TOKEN SCREENSHOT.png
import { reportSettings } from "./settings-page.mjs";

const [url, adminToken, screenshot] = process.argv.slice(2);
await reportSettings(url, async (page, report) => {
  const text = (id) => page.$eval(`#${id}`, (element) => element.textContent);
  const waitText = (id, pattern, timeout = 15000) => page.waitForFunction(
    ([id, source]) => new RegExp(source).test(document.getElementById(id).textContent),
    [id, pattern.source], { timeout });

  // Sign in: a wrong token is refused, the right one loads the file.
  await page.fill("#token", "not-the-token");
  await page.click("#sign-in button");
  await waitText("sign-in-message", /refused/);
  report.refused = await text("sign-in-message");
  await page.fill("#token", adminToken);
  await page.click("#sign-in button");
  await page.waitForFunction(() => document.getElementById("toml").value.includes("[camera]"));
  report.loaded = true;
  report.tokenInUrl = page.url().includes(adminToken);
  report.cookies = (await page.context().cookies()).length;
  report.stored = await page.evaluate(() => sessionStorage.getItem("edgecam-admin-token") !== null);

  // Privacy on, then off.
  await page.click("#privacy");
  await waitText("privacy-message", /privacy mode is on/, 30000);
  report.privacyOn = await page.evaluate(async (token) =>
    (await (await fetch("/api/privacy", { headers: { Authorization: `Bearer ${token}` } })).json()).enabled,
  adminToken);
  await page.click("#privacy");
  await waitText("privacy-message", /privacy mode is off/, 30000);

  // The bitrate.
  await page.fill("#bitrate", "100");
  await page.click("#bitrate-apply");
  await waitText("bitrate-message", /encoder\.bitrate_kbps/);
  report.bitrate = await text("bitrate-message");

  // An output stopped and started from its row.
  const state = (name) => page.$eval(`#outputs-table tr[data-output="${name}"] td:nth-child(2)`, (c) => c.textContent);
  await page.click('#outputs-table tr[data-output="mjpeg"] button');
  await page.waitForFunction(() => document.querySelector('#outputs-table tr[data-output="mjpeg"] td:nth-child(2)').textContent === "stopped", null, { timeout: 30000 });
  report.stopped = await state("mjpeg");
  await page.click('#outputs-table tr[data-output="mjpeg"] button');
  await page.waitForFunction(() => document.querySelector('#outputs-table tr[data-output="mjpeg"] td:nth-child(2)').textContent === "running", null, { timeout: 30000 });
  report.started = await state("mjpeg");

  // The live picture, the modes the test pattern offers, and no controls.
  await page.waitForFunction(() => document.getElementById("picture").naturalWidth > 0, null, { timeout: 20000 });
  report.pictureWidth = await page.$eval("#picture", (p) => p.naturalWidth);
  report.modes = await page.$$eval("#mode option", (options) => options.map((o) => o.textContent));
  await waitText("controls-message", /no controls/);

  // Keyframe interval and profile: the camera pipeline is rebuilt.
  await page.fill("#keyframes", "60");
  await page.selectOption("#profile", "main");
  await page.click("#stream-apply");
  await waitText("stream-message", /encoder\.keyframe_interval/, 30000);
  report.stream = await text("stream-message");

  // Overlay layers: a text and a clock added, the text made translucent,
  // moved on top, the clock's format edited, then the clock deleted.
  const order = () => page.$$eval("#layers .layer", (cards) => cards.map((c) => c.dataset.layer));
  // The message is cleared first: the previous action left "…: done" too.
  const layerDone = async (name, action) => {
    await page.$eval("#layers-message", (m) => { m.textContent = ""; });
    await action();
    await waitText("layers-message", new RegExp(`^${name}: done`));
  };
  const addLayer = async (name, kind, words, anchor) => {
    await page.fill("#layer-name", name);
    await page.selectOption("#layer-kind", kind);
    await page.fill("#layer-text", words);
    await page.selectOption("#layer-anchor", anchor);
    await page.click("#add-layer button[type=submit]");
    await page.waitForSelector(`#layers .layer[data-layer="${name}"]`);
  };
  await addLayer("label", "text", "HELLO {camera}", "bottom-left");
  await addLayer("clock", "clock", "", "top-right");
  report.added = await order();
  await layerDone("label", () => page.fill('#layers .layer[data-layer="label"] input[type=range]', "50"));
  await page.click('#layers .layer[data-layer="label"] button[title="on top of the next"]');
  await page.waitForFunction(() => [...document.querySelectorAll("#layers .layer")].map((c) => c.dataset.layer).join() === "clock,label");
  report.reordered = await order();
  await layerDone("clock", async () => {
    await page.fill('#layers .layer[data-layer="clock"] input[type=text]', "%H:%M");
    await page.press('#layers .layer[data-layer="clock"] input[type=text]', "Tab");
  });
  const layers = await page.evaluate(async (token) =>
    (await (await fetch("/api/overlay/layers", { headers: { Authorization: `Bearer ${token}` } })).json()).layers,
  adminToken);
  report.layers = Object.fromEntries(layers.map((l) => [l.name, { z: l.z, opacity: l.opacity, text: l.text, format: l.format }]));
  await page.click('#layers .layer[data-layer="clock"] button:text("delete")');
  await page.waitForSelector('#layers .layer[data-layer="clock"]', { state: "detached" });

  // A privacy mask dragged over the picture, at [400, 200, 160, 100] of its
  // 640x360 pixels.
  await page.click("#draw-mask");
  const box = await page.$eval("#picture", (p) => {
    const r = p.getBoundingClientRect();
    return { x: r.left, y: r.top, scale: r.width / p.naturalWidth };
  });
  const point = (x, y) => [box.x + x * box.scale, box.y + y * box.scale];
  await page.mouse.move(...point(400, 200));
  await page.mouse.down();
  await page.mouse.move(...point(480, 250), { steps: 4 });
  await page.mouse.move(...point(560, 300), { steps: 4 });
  await page.mouse.up();
  await page.waitForSelector('#layers .layer[data-layer="privacy-mask"]');
  report.mask = await page.evaluate(async (token) =>
    (await (await fetch("/api/overlay/layers/privacy-mask", { headers: { Authorization: `Bearer ${token}` } })).json()),
  adminToken);
  await page.click("#draw-mask");

  // The capture mode: the same size at 15 fps (the viewer's decoder keeps
  // its size; the mask must survive the camera's rebuild).
  const modeIndex = await page.$$eval("#mode option", (options) => options.findIndex((o) => o.textContent.startsWith("640x360")));
  await page.selectOption("#mode", String(modeIndex));
  await page.selectOption("#fps", "15");
  await page.click("#mode-apply");
  await waitText("mode-message", /camera\.fps/, 30000);
  report.mode = await text("mode-message");

  // A broken file: validate shows its line and column; apply writes nothing.
  const good = await page.$eval("#toml", (t) => t.value);
  const lines = good.split("\n");
  const at = lines.findIndex((line) => line.startsWith("bitrate_kbps"));
  lines[at] = "bitrate_kbps = = 3";
  await page.fill("#toml", lines.join("\n"));
  await page.click("#validate");
  await waitText("file-message", /line \d+, column \d+/);
  report.invalid = await text("file-message");
  report.brokenLine = at + 1;
  report.markedLine = await page.$eval("#gutter .bad", (e) => Number(e.textContent));
  await page.click("#apply");
  await waitText("file-message", /line \d+, column \d+/);
  report.applyRefused = await text("file-message");

  // A valid edit: what it would change is listed before applying.
  await page.click("#reload");
  await waitText("file-message", /as it is on the board/);
  const reloaded = await page.$eval("#toml", (t) => t.value);
  await page.fill("#toml", reloaded.replace(/^confirm_s = \d+/m, "confirm_s = 6"));
  await page.click("#validate");
  await waitText("file-message", /valid/);
  report.effects = await text("file-message");

  // Someone else writes meanwhile: the conflict is shown, nothing overwritten.
  await page.evaluate(async (token) => {
    const current = await fetch("/api/config", { headers: { Authorization: `Bearer ${token}` } });
    await fetch("/api/config", {
      method: "PATCH",
      headers: { Authorization: `Bearer ${token}`, "If-Match": current.headers.get("ETag") },
      body: "[metrics]\nrate_hz = 5\n",
    });
  }, adminToken);
  await page.click("#apply");
  await waitText("file-message", /someone else changed/);
  report.conflict = await text("file-message");

  // Tokens: a viewer token made (shown once) guards the metrics, then
  // removed; a new admin token keeps this tab signed in, the old refused.
  const status = (path, token) => page.evaluate(async ([path, token]) =>
    (await fetch(path, { headers: token ? { Authorization: `Bearer ${token}` } : {} })).status, [path, token]);
  await page.click("#rotate-viewer");
  await waitText("viewer-token-state", /^set/);
  const viewerToken = await text("new-token");
  report.viewerTokenLength = viewerToken.length;
  report.metricsWithout = await status("/metrics");
  report.metricsWith = await status("/metrics", viewerToken);
  await page.click("#clear-viewer");
  await waitText("viewer-token-state", /^not set/);
  report.metricsOpenAgain = await status("/metrics");
  await page.click("#rotate-admin");
  await waitText("tokens-message", /new admin token/);
  report.adminToken = await text("new-token");
  report.oldAdminRefused = await status("/api/tokens", adminToken);
  await page.click("#reload");
  await waitText("file-message", /as it is on the board/);
  report.stillSignedIn = !(await page.$eval("#settings", (s) => s.hidden));
  await page.$eval("#new-token-box", (box) => { box.hidden = true; });

  await page.screenshot({ path: screenshot, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  report.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-phone.png"), fullPage: true });

  // Signing out forgets the token.
  await page.click("#sign-out");
  report.signedOut = await page.evaluate(() => sessionStorage.getItem("edgecam-admin-token") === null
    && !document.getElementById("sign-in").hidden);
});
