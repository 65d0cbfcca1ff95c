// Drives the settings page in headless Chromium as a person would and
// reports what happened as one JSON line: sign-in refused and accepted, the
// privacy switch, the bitrate, an output stopped and started, a broken file
// validated (its line and column shown) and refused, a conflicting edit
// shown, and the page at phone width. Usage:
// node settings.mjs URL ADMIN_TOKEN SCREENSHOT.png
import { chromium } from "playwright-core";

const [url, adminToken, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const report = {};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  // The page's own errors; the browser's network log ("Failed to load
  // resource" for the refusals this run provokes, the favicon) is not one.
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      errors.push(message.text());
    }
  });
  await page.goto(url, { waitUntil: "load" });
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

  await page.screenshot({ path: screenshot, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  report.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-phone.png"), fullPage: true });

  // Signing out forgets the token.
  await page.click("#sign-out");
  report.signedOut = await page.evaluate(() => sessionStorage.getItem("edgecam-admin-token") === null
    && !document.getElementById("sign-in").hidden);
  report.errors = errors;
  console.log(JSON.stringify(report));
} catch (error) {
  report.failed = String(error);
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
