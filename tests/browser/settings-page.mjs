// What both settings-page scripts start from: Debian's Chromium, headless,
// a desktop-sized page at URL, and the page's own errors collected — not
// the browser's network log ("Failed to load resource" for the refusals a
// run provokes, the favicon).
import { chromium } from "playwright-core";

export async function openSettings(url) {
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
