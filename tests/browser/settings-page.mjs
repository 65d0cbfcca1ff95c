// What both settings-page scripts run in: Debian's Chromium, headless, a
// desktop-sized page at URL, the page's own errors collected — not the
// browser's network log ("Failed to load resource" for the refusals a run
// provokes, the favicon) — and what the steps found printed as one JSON
// line, with the error that stopped them if one did.
import { chromium } from "playwright-core";

async function openSettings(url) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      errors.push(message.text());
    }
  });
  try {
    await page.goto(url, { waitUntil: "load" });
  } catch (error) {
    await browser.close();
    throw error;
  }
  return { browser, page, errors };
}

export async function reportSettings(url, steps) {
  const { browser, page, errors } = await openSettings(url);
  const report = {};
  try {
    await steps(page, report);
    report.errors = errors;
  } catch (error) {
    report.failed = String(error);
  } finally {
    console.log(JSON.stringify(report));
    await browser.close();
  }
}
