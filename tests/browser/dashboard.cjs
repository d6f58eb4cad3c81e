// Drives the dashboard in headless Chromium and checks what a person would see. Run by
// tests/it/dashboard.rs: node dashboard.cjs NODE_DIR URL EXPECT_JSON SCREENSHOT_DIR INSTANT_URL
// (INSTANT_URL: a server whose log is one export, all at one receive time)
// EXPECT_JSON: {"agents": [...], "feature": NAME, "early_seq": N, "last_seq": N,
//               "leased": [agents holding work under a lease at early_seq]}
"use strict";
const path = require("path");
const { launch, errorsOf } = require("./launch.cjs");
const [nodeDir, url, expectJson, shots, instantUrl] = process.argv.slice(2);
const expect = JSON.parse(expectJson);

function check(ok, what) {
  if (!ok) throw new Error("FAILED: " + what);
  console.log("ok: " + what);
}

(async () => {
  const browser = await launch(nodeDir);
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors = errorsOf(page);
    const started = Date.now();
    await page.goto(url);
    // The board lists the demo's agents.
    await page.waitForFunction((n) => document.querySelectorAll("#agents tr").length === n,
      expect.agents.length, { timeout: 15000 });
    const firstRender = Date.now() - started;
    const agents = await page.$$eval("#agents tr td:first-child", (tds) => tds.map((td) => td.textContent));
    check(JSON.stringify(agents) === JSON.stringify(expect.agents), "the board lists " + agents.join(", "));
    check(await page.$eval("#seq", (e) => Number(e.max)) === expect.last_seq, "the scrubber ends at the last event");
    const lanes = await page.$$eval("#timeline svg path[data-agent]", (ps) => [...new Set(ps.map((p) => p.dataset.agent))]);
    check(JSON.stringify(lanes.sort()) === JSON.stringify([...expect.agents].sort()), "the timeline draws a lane of intervals for each agent");
    // The demo's launched agent sends Claude Code's events: its lane marks its tool calls and
    // LLM requests, and the legend names them.
    const own = await page.$$eval('#timeline svg path[data-kind="tool_call"], #timeline svg path[data-kind="llm_request"]', (ps) => [...new Set(ps.map((p) => p.dataset.kind))].sort());
    const legend = await page.$eval("#legend", (e) => e.textContent);
    check(JSON.stringify(own) === JSON.stringify(["llm_request", "tool_call"]) && legend.includes("tool call") && legend.includes("llm request"),
      "the timeline marks the agents' own tool calls and LLM requests (" + own.join(", ") + ")");
    // What it spent: a cumulative cost line for it and the total, and its feature card's cost.
    const costLines = await page.$$eval("#timeline svg polyline[data-agent-cost]", (ps) => ps.map((p) => p.dataset.agentCost).sort());
    check(JSON.stringify(costLines) === JSON.stringify(["demo-claude", "total"]), "the timeline charts the cost by agent (" + costLines.join(", ") + ")");
    const costs = await page.$$eval("#features .cost", (ds) => ds.map((d) => d.textContent).filter((t) => t));
    check(costs.length === 6 && costs.filter((c) => c === "$0.0117 · 1 LLM request · 1% of $1.00").length === 1,
      "each card shows its budget, and the launched agent's feature what it cost: " + costs.join(" | "));
    const bars = await page.$$eval("#features .budget:not([hidden])", (bs) => bs.length);
    check(bars === 6, "each feature with a budget has its bar (" + bars + ")");
    const charts = await page.$$eval("#timeline svg polyline[data-chart]", (ps) => ps.map((p) => p.dataset.chart + ":" + p.getAttribute("points").split(" ").length));
    check(["queue", "health", "events/s"].every((c) => charts.some((x) => x.startsWith(c + ":") && Number(x.split(":")[1]) > 1)),
      "the timeline charts queue length, health and ingest rate (" + charts.join(", ") + ")");
    const axis = await page.$$eval("#timeline svg text[data-axis]", (ts) => ts.map((t) => t.textContent));
    check(axis.length >= 2 && axis.every((a) => /^\d\d:\d\d:\d\d(\.\d{3})?$/.test(a)), "a time axis: " + axis.join(" "));
    // The charts share the lanes' time axis: they start and end where the lanes do.
    const extents = await page.evaluate(() => {
      const lanes = [...document.querySelectorAll("#timeline svg path[data-agent]")].flatMap((p) =>
        [...p.getAttribute("d").matchAll(/M([\d.]+) [\d.]+h([\d.]+)/g)].map((m) => [Number(m[1]), Number(m[1]) + Number(m[2])]));
      const charts = [...document.querySelectorAll("#timeline svg polyline[data-chart]")].map((p) => {
        const pts = p.getAttribute("points").split(" ").map((xy) => xy.split(",").map(Number));
        return { chart: p.dataset.chart, pts };
      });
      return { left: Math.min(...lanes.map((l) => l[0])), right: Math.max(...lanes.map((l) => l[1])), charts };
    });
    for (const c of extents.charts) {
      const xs = c.pts.map((p) => p[0]);
      check(Math.abs(Math.min(...xs) - extents.left) < 0.6 && Math.max(...xs) <= extents.right + 0.6,
        c.chart + " spans the lanes' axis: " + Math.min(...xs) + ".." + Math.max(...xs) + " within " + extents.left + ".." + extents.right);
      // Steps: each segment is level or upright, never a slope.
      const sloped = c.pts.slice(1).filter((p, i) => p[0] !== c.pts[i][0] && p[1] !== c.pts[i][1]);
      check(sloped.length === 0, c.chart + " is drawn as steps");
    }
    const clipped = await page.evaluate(() => {
      const svg = document.querySelector("#timeline svg").getBoundingClientRect();
      return [...document.querySelectorAll("#timeline svg text[data-axis]")]
        .filter((t) => { const b = t.getBoundingClientRect(); return b.right > svg.right + 0.5 || b.left < svg.left - 0.5; })
        .map((t) => t.textContent);
    });
    check(clipped.length === 0, "no axis label runs off the timeline" + (clipped.length ? ": " + clipped.join(" ") : ""));
    await page.screenshot({ path: path.join(shots, "dashboard-now.png"), fullPage: true });
    const done = `[data-status="completed"] [data-feature="${expect.feature}"]`;
    check(await page.$(done) !== null, expect.feature + " is completed now");
    const card = await page.$eval(done + " .done", (e) => e.textContent);
    check(/^by \S+ · [0-9a-f]{10} · \d\d:\d\d:\d\d$/.test(card), "a completed card shows its agent, merge commit and time: " + card);
    check(await page.$("#trouble #anomalies") !== null && await page.$("#trouble #refusals") !== null,
      "a panel for anomalies and refused spans");

    // Back to an early point: the same feature is still in progress there.
    await page.$eval("#seq", (e, v) => { e.value = v; e.dispatchEvent(new Event("input")); }, expect.early_seq);
    await page.waitForSelector(`[data-status="in_progress"] [data-feature="${expect.feature}"]`, { timeout: 10000 });
    check(true, expect.feature + " is in progress as of event " + expect.early_seq);
    check(await page.$eval("#live", (e) => e.checked) === false, "scrubbing leaves live mode");
    // The lease left, as of that moment: a duration for agents holding work, none for the rest.
    const leases = await page.$$eval("#agents tr", (trs) => trs.map((tr) => [tr.children[0].textContent, tr.children[6].textContent]));
    for (const [agent, left] of leases) {
      const held = expect.leased.includes(agent);
      check(held ? /^(\d+h \d+m|\d+m \d+s|\d+s)$/.test(left) : left === "–",
        agent + (held ? " has " + left + " of its lease left" : " holds no lease"));
    }
    // What the agents reported is on the board, as the API says it.
    const reported = await page.$$eval("#agents tr", (trs) => trs.map((tr) => tr.children[3].textContent));
    const api = await page.evaluate(async (seq) => (await (await fetch("/api/status?at=" + seq)).json()).data.agents, expect.early_seq);
    for (const [i, a] of api.entries()) {
      const want = a.progress_percentage != null ? a.progress_percentage + "%" : "–";
      check(reported[i].startsWith(want), a.agent_id + " shows its reported progress: " + reported[i]);
    }
    await page.screenshot({ path: path.join(shots, "dashboard-past.png"), fullPage: true });

    // One key press, one event.
    await page.focus("#seq");
    const stepStart = Date.now();
    await page.keyboard.press("ArrowRight");
    await page.waitForFunction((v) => document.getElementById("asof").textContent.startsWith("as of event " + v),
      expect.early_seq + 1, { timeout: 10000 });
    const step = Date.now() - stepStart;
    check(await page.$eval("#seq", (e) => Number(e.value)) === expect.early_seq + 1, "ArrowRight moves one event");
    await page.keyboard.press("ArrowLeft");
    await page.waitForFunction((v) => document.getElementById("asof").textContent.startsWith("as of event " + v),
      expect.early_seq, { timeout: 10000 });
    check(true, "ArrowLeft moves back one event");
    check(await page.$("#timeline #cursor") !== null, "the timeline marks where the board stands");

    // A marker on the timeline: its detail, and the board as of its event.
    const tick = await page.evaluate(() => {
      const p = document.querySelector('#timeline svg path[data-kind="assignment"]');
      const [x, y] = p.getAttribute("d").slice(1).split(/[ v]/).map(Number);
      const svg = p.ownerSVGElement, box = svg.getBoundingClientRect();
      const scale = box.width / svg.viewBox.baseVal.width;
      return { x: box.left + x * scale, y: box.top + (y + 5) * scale };
    });
    await page.mouse.click(tick.x, tick.y);
    await page.waitForFunction(() => document.querySelector("#detail h2")?.textContent.startsWith("assignment"), null, { timeout: 10000 });
    const detail = await page.$eval("#detail", (e) => e.textContent);
    check(/score \d/.test(detail), "clicking an assignment marker shows its score and reasons: " + detail);
    const markerSeq = Number(/event (\d+)$/.exec(await page.$eval("#detail h2", (e) => e.textContent))[1]);
    await page.waitForFunction((v) => document.getElementById("asof").textContent.startsWith("as of event " + v + " "), markerSeq, { timeout: 10000 });
    check(await page.$eval("#seq", (e) => Number(e.value)) === markerSeq, "and moves the board and the scrubber to event " + markerSeq);

    // At the moment the feature was submitted, the merge queue lists what waited to merge, in order.
    await page.$eval("#seq", (e, v) => { e.value = v; e.dispatchEvent(new Event("input")); }, expect.merge_seq);
    await page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll("#mergequeue tr")]
      .map((tr) => tr.children[1].textContent)) === JSON.stringify(want), expect.merge_queue, { timeout: 10000 })
      .catch(() => {});
    const queue = await page.$$eval("#mergequeue tr", (trs) => trs.map((tr) => tr.children[1].textContent));
    check(JSON.stringify(queue) === JSON.stringify(expect.merge_queue),
      "the merge queue as of event " + expect.merge_seq + ": " + queue.join(", "));
    // When the radar forecast a conflict, the radar table lists the feature and what it
    // conflicts with.
    await page.$eval("#seq", (e, v) => { e.value = v; e.dispatchEvent(new Event("input")); }, expect.radar_seq);
    await page.waitForFunction((f) => [...document.querySelectorAll("#radar tr")].some((tr) => tr.children[0].textContent === f), expect.radar_feature, { timeout: 10000 })
      .catch(() => {});
    const radar = await page.$$eval("#radar tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    check(radar.some((r) => r[0] === expect.radar_feature && r[2] === "conflict" && r[3].length > 0),
      "the conflict radar as of event " + expect.radar_seq + ": " + JSON.stringify(radar));
    // The timeline links the lanes of the two agents whose features the radar saw conflict.
    const links = await page.$$eval("#timeline path[data-kind=risk-link]", (ps) => ps.map((p) => p.getAttribute("d")));
    const spans = (links[0] || "").split("M").filter((seg) => seg).map((seg) => {
      const n = seg.split(/[ Q]/).map(Number);
      return [n[1], n[5]];
    });
    check(spans.some(([from, to]) => from !== to), "the timeline links two lanes at a risk: " + links.join(" | "));
    // Clicking a feature now shows what its branch changes against the base branch.
    await page.$eval("#seq", (e, v) => { e.value = v; e.dispatchEvent(new Event("input")); }, expect.last_seq);
    await page.waitForSelector(".feature[data-feature=radar-1]", { timeout: 10000 }).catch(() => {});
    await page.click(".feature[data-feature=radar-1]");
    await page.waitForFunction(() => /radar\.txt/.test(document.querySelector("#changes pre").textContent), null, { timeout: 10000 })
      .catch(() => {});
    const changes = await page.$eval("#changes pre", (e) => e.textContent);
    check(/^branch \S+ against main\n/.test(changes) && /radar\.txt/.test(changes) && /1 file changed, 1 insertion/.test(changes),
      "a feature's diffstat against the base branch: " + JSON.stringify(changes));
    // An agent's history: every transition with its event.
    await page.click("#agents tr:first-child");
    await page.waitForSelector("#history li", { timeout: 10000 });
    const title = await page.$eval("#historytitle", (e) => e.textContent);
    check(title === "History of agent " + expect.agents[0], title);
    const entries = await page.$$eval("#history li", (lis) => lis.map((li) => li.textContent));
    check(entries.some((t) => t.includes("agent.feature_assignment") && t.includes("score")),
      "the history shows an assignment with its score");
    check(entries.every((t) => /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(t)), "each transition with its time");
    await page.screenshot({ path: path.join(shots, "dashboard-history.png"), fullPage: true });
    // A recent range asks the server for less and draws the same agents (the demo just ran).
    await page.$eval("#timeline svg", (e) => { e.dataset.before = "yes"; });
    const asked = page.waitForRequest((r) => r.url().includes("/api/timeline") && r.url().includes("from=-1h"));
    await page.selectOption("#range", "-1h");
    await asked;
    await page.waitForFunction((n) => {
      const drawn = document.querySelector("#timeline svg");
      return !drawn.dataset.before && new Set([...drawn.querySelectorAll("path[data-agent]")].map((p) => p.dataset.agent)).size === n;
    }, expect.agents.length, { timeout: 10000 });
    check(true, "the last hour's timeline draws every agent's lane");
    check(errors.length === 0, "no console errors" + (errors.length ? ": " + errors.join(" | ") : ""));

    // An 800 px window: one column, nothing runs off the page, the header and timeline fit.
    const narrow = await browser.newPage({ viewport: { width: 800, height: 1000 } });
    await narrow.goto(url);
    await narrow.waitForFunction((n) => document.querySelectorAll("#agents tr").length === n,
      expect.agents.length, { timeout: 15000 });
    await narrow.waitForSelector("#timeline svg", { timeout: 15000 });
    const fit = await narrow.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      header: document.querySelector("header").getBoundingClientRect().right,
      timeline: document.querySelector("#timeline svg").getBoundingClientRect().right,
      scrub: document.querySelector("#scrub").getBoundingClientRect().right,
    }));
    check(fit.page <= 800 && fit.header <= 800 && fit.timeline <= 800 && fit.scrub <= 800,
      "at 800 px the page fits: " + JSON.stringify(fit));
    await narrow.screenshot({ path: path.join(shots, "dashboard-800.png"), fullPage: true });

    // A log that is one instant (a single export so far) still draws: no NaN, no errors.
    const fresh = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const freshErrors = errorsOf(fresh);
    await fresh.goto(instantUrl);
    await fresh.waitForSelector("#timeline svg", { timeout: 15000 });
    const nan = await fresh.$$eval("#timeline *", (es) => es.flatMap((e) => [...e.attributes])
      .filter((a) => a.value.includes("NaN")).map((a) => a.name + "=" + a.value.slice(0, 40)));
    check(nan.length === 0, "a one-instant log draws with numbers" + (nan.length ? ": " + nan.join(" | ") : ""));
    check(freshErrors.length === 0, "and no console errors" + (freshErrors.length ? ": " + freshErrors.join(" | ") : ""));
    console.log(JSON.stringify({ first_render_ms: firstRender, step_ms: step }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
