// Headless Debian Chromium through playwright-core, as the browser test and the dashboard bench
// both open it. NODE_DIR is where tests/browser/ensure.sh installed playwright-core.
"use strict";
const path = require("path");

async function launch(nodeDir) {
  const { chromium } = require(path.join(nodeDir, "node_modules", "playwright-core"));
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

// Collects console errors and uncaught exceptions of `page` into the returned list.
function errorsOf(page) {
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  return errors;
}

module.exports = { launch, errorsOf };
