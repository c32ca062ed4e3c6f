// A settings file egwd refused, as the web UI shows it, in headless Chromium.
//   node rejected.mjs --port P --expect TEXT [--out DIR]
// Loads the UI on plain HTTP (loopback) and waits for a notification that
// contains TEXT (the refused field).  Prints "ok - ..." per check; exits 1 on
// failure.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
  options: { port: { type: "string" }, expect: { type: "string" }, out: { type: "string" } },
});

function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
  console.log("ok -", msg);
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "egw-chromium-"));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
let failed = false;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on("pageerror", (e) => errors.push("pageerror: " + (e.stack || e.message)));
  page.setDefaultTimeout(15000);
  await page.goto(`http://127.0.0.1:${a.port}/`);
  await page.waitForSelector("#flow");
  check(true, "UI served with the settings file refused");
  const note = await page.waitForFunction((want) => {
    const n = [...document.querySelectorAll("#notes .note")].find((x) => x.textContent.includes(want));
    return n ? { text: n.textContent, visible: n.offsetParent !== null } : null;
  }, a.expect).then((h) => h.jsonValue());
  check(note.visible, "the refusal is shown: " + note.text);
  check(/rejected/.test(note.text), "it names the file kept aside");
  if (a.out) await page.screenshot({ path: path.join(a.out, "10-settings-rejected.png") });
  check(errors.length === 0, "no page errors" + (errors.length ? ": " + errors.join("; ") : ""));
} catch (e) {
  console.log("not ok -", e.message);
  failed = true;
} finally {
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
