// Times the dashboard in headless Chromium: first render (navigation until every agent is on
// the board and the timeline is drawn) and scrubber steps (one arrow key until the board shows
// that event), 50 steps from the middle of the log. Prints one JSON object.
// Usage: node dashboard.cjs NODE_DIR URL AGENTS
"use strict";
const path = require("path");
const [nodeDir, url, agents] = process.argv.slice(2);
const { chromium } = require(path.join(nodeDir, "node_modules", "playwright-core"));

(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const started = Date.now();
    await page.goto(url);
    await page.waitForFunction((n) => document.querySelectorAll("#agents tr").length === n
      && document.querySelector("#timeline svg") !== null, Number(agents), { timeout: 60000, polling: 10 });
    const first = Date.now() - started;
    const max = await page.$eval("#seq", (e) => Number(e.max));
    const start = Math.floor(max / 2);
    await page.$eval("#seq", (e, v) => { e.value = v; e.dispatchEvent(new Event("input")); }, start);
    await page.waitForFunction((v) => document.getElementById("asof").textContent.startsWith("as of event " + v + " "), start, { polling: 5 });
    await page.focus("#seq");
    const steps = [];
    for (let i = 1; i <= 50; i++) {
      const t = Date.now();
      await page.keyboard.press("ArrowRight");
      await page.waitForFunction((v) => document.getElementById("asof").textContent.startsWith("as of event " + v + " "), start + i, { polling: 5 });
      steps.push(Date.now() - t);
    }
    steps.sort((a, b) => a - b);
    const bytes = await page.evaluate(() => performance.getEntriesByType("resource")
      .filter((r) => r.name.includes("/api/timeline")).map((r) => r.transferSize));
    console.log(JSON.stringify({ first_render_ms: first, step_ms_median: steps[25], step_ms_p90: steps[45], timeline_bytes: bytes[0] || null }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
