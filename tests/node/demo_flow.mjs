// The demo's power flow on a phone (390x844) in headless Chromium: egwd polls
// the demo's devices (a SolarEdge inverter and an SDM630 meter in one egw-sim
// home, clock frozen).  Started by tests/integration/test_ui.py.
//
//   node demo_flow.mjs --url http://127.0.0.1:PORT --out DIR
//
// Prints the four flow values and their words as one JSON line
// ("flow {...}") for the Python side to hold against /api/state, checks that
// every flow label stays inside its circle and nothing scrolls sideways, and
// saves DIR/10-phone-demo-flow.png.  Exits non-zero on the first failed check.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

function arg(name, def) {
  const i = process.argv.indexOf("--" + name);
  return i > 0 ? process.argv[i + 1] : def;
}

const url = arg("url");
const out = arg("out", "tests/out/screenshots");
if (!url) {
  console.error("usage: node demo_flow.mjs --url URL [--out DIR]");
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });

function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
  console.log("ok -", msg);
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "egw-chromium-"));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 390, height: 844 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push("pageerror: " + (e.stack || e.message)));
  page.setDefaultTimeout(20000);
  await page.goto(url + "/");
  await page.waitForSelector("#flow");
  // both devices decoded: a house value and a grid direction in words
  await page.waitForFunction(() => /\d/.test(document.querySelector("#flow-house")?.textContent || "") &&
    /importing|exporting|balanced/.test(document.querySelector("#flow-grid-dir")?.textContent || "") &&
    /\d/.test(document.querySelector("#flow-pv")?.textContent || ""), null, { timeout: 30000 });
  await page.waitForTimeout(500);
  const flow = await page.evaluate(() => Object.fromEntries(["pv", "grid", "house", "battery"].map((k) =>
    [k, [document.querySelector("#flow-" + k).textContent, document.querySelector("#flow-" + k + "-dir").textContent]])));
  console.log("flow " + JSON.stringify(flow));
  const bad = await page.evaluate(() => {
    const bad = [];
    if (document.documentElement.scrollWidth - window.innerWidth > 1) bad.push("the page scrolls sideways");
    const svg = document.querySelector("#flow");
    const circles = [...svg.querySelectorAll("circle.node")];
    for (const t of svg.querySelectorAll("text")) {
      if (!t.textContent || t.closest("[visibility=hidden]")) continue;
      const b = t.getBBox();
      const c = circles.find((c) => Math.hypot(c.cx.baseVal.value - (b.x + b.width / 2), c.cy.baseVal.value - (b.y + b.height / 2)) < c.r.baseVal.value);
      if (!c) { bad.push(`flow label "${t.textContent}" outside every circle`); continue; }
      const r = c.r.baseVal.value, cx = c.cx.baseVal.value, cy = c.cy.baseVal.value;
      for (const [x, y] of [[b.x, b.y], [b.x + b.width, b.y], [b.x, b.y + b.height], [b.x + b.width, b.y + b.height]])
        if (Math.hypot(x - cx, y - cy) > r - 2) { bad.push(`flow label "${t.textContent}" leaves its circle`); break; }
    }
    return bad;
  });
  const card = await page.$("#flow");
  await card.screenshot({ path: path.join(out, "10-phone-demo-flow.png") });
  await page.screenshot({ path: path.join(out, "10-phone-demo-overview.png"), fullPage: true });
  check(bad.length === 0, "phone demo flow: labels inside their circles, no sideways scroll" + (bad.length ? ":\n  " + bad.join("\n  ") : ""));
  check(errors.length === 0, "no page errors" + (errors.length ? ":\n  " + errors.join("\n  ") : ""));
} catch (e) {
  console.error(e.message || e);
  failed = true;
} finally {
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
