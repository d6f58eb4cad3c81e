// Times the dashboard in headless Chromium: first render (navigation until every agent is on
// the board and the timeline is drawn) and scrubber steps, 50 forward then 50 back from the
// middle of the log. A step is timed twice: inside the page, from the key's event to the frame
// after the board is drawn (what a person waits for), and from outside, from the key press sent
// by playwright until the board is seen showing that event (adds the driver's round trips).
// Prints one JSON object.
// Usage: node dashboard.cjs NODE_DIR URL AGENTS
"use strict";
const path = require("path");
const { launch } = require("../tests/browser/launch.cjs");
const [nodeDir, url, agents] = process.argv.slice(2);

(async () => {
  const browser = await launch(nodeDir);
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
    // In the page: when the key went down, and when the frame after drawing the board ended.
    await page.evaluate(() => {
      window.benchSteps = [];
      document.getElementById("seq").addEventListener("keydown", () => { window.benchKey = performance.now(); }, true);
      const draw = window.renderBoard;
      window.renderBoard = (...args) => {
        draw(...args);
        const key = window.benchKey;
        requestAnimationFrame(() => setTimeout(() => window.benchSteps.push(performance.now() - key)));
      };
    });
    const driven = { forward: [], back: [] };
    let at = start;
    for (const [key, dir, list] of [["ArrowRight", 1, driven.forward], ["ArrowLeft", -1, driven.back]]) {
      for (let i = 1; i <= 50; i++) {
        const t = Date.now();
        at += dir;
        await page.keyboard.press(key);
        await page.waitForFunction((v) => document.getElementById("asof").textContent.startsWith("as of event " + v + " "), at, { polling: 5 });
        list.push(Date.now() - t);
      }
    }
    await page.waitForFunction(() => window.benchSteps.length >= 100, null, { polling: 5 });
    const inPage = await page.evaluate(() => window.benchSteps);
    const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
    const p90 = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length * 0.9)];
    const bytes = await page.evaluate(() => performance.getEntriesByType("resource")
      .filter((r) => r.name.includes("/api/timeline")).map((r) => r.transferSize));
    console.log(JSON.stringify({
      first_render_ms: first,
      step_ms_median: Math.round(median(inPage)), step_ms_p90: Math.round(p90(inPage)),
      forward_ms_median: Math.round(median(inPage.slice(0, 50))), back_ms_median: Math.round(median(inPage.slice(50))),
      driven_ms_median: median(driven.forward.concat(driven.back)), driven_ms_p90: p90(driven.forward.concat(driven.back)),
      timeline_bytes: bytes[0] || null,
    }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
