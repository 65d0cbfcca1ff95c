// Moves one camera control's slider on the settings page, as a person would
// (a real camera's controls: run against vivid in tests/vm.rs), and reports
// the modes the page offers and what the page said, as one JSON line.
// Usage: node settings-control.mjs URL ADMIN_TOKEN CONTROL VALUE
import { reportSettings } from "./settings-page.mjs";

const [url, adminToken, control, value] = process.argv.slice(2);
await reportSettings(url, async (page, report) => {
  await page.fill("#token", adminToken);
  await page.click("#sign-in button");
  const slider = `#control-${control}`;
  // An emulated guest is slow: give the first listing time.
  await page.waitForSelector(slider, { timeout: 60000 });
  await page.waitForFunction(() => document.querySelectorAll("#mode option").length > 0, null, { timeout: 60000 });
  report.modes = await page.$$eval("#mode option", (options) => options.map((o) => o.textContent));
  report.controls = await page.$$eval("#controls .control", (rows) => rows.map((r) => r.dataset.control));
  report.kind = await page.$eval(slider, (input) => input.type);
  await page.fill(slider, value);
  await page.waitForFunction((name) => new RegExp(`camera\\.controls\\.${name}`)
    .test(document.getElementById("controls-message").textContent), control, { timeout: 60000 });
  report.said = await page.$eval("#controls-message", (m) => m.textContent);
  report.shown = await page.$eval(`${slider} + output`, (o) => o.textContent);
});
