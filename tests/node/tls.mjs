// The web UI over HTTPS and the plain-HTTP notice, in headless Chromium.
//   node tls.mjs --port P --tls-port T --host NAME --fingerprint FP [--out DIR]
// NAME is a host name that is not a loopback name (the machine's host name);
// Chromium resolves it to 127.0.0.1 (--host-resolver-rules), so the page is
// loaded from egwd on loopback but its location.hostname is NAME, which is
// what the page decides from.  Prints "ok - ..." per check; exits 1 on failure.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
  options: {
    port: { type: "string" }, "tls-port": { type: "string" }, host: { type: "string" },
    fingerprint: { type: "string" }, out: { type: "string" },
  },
});

function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
  console.log("ok -", msg);
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "egw-chromium-"));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  ignoreHTTPSErrors: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--ignore-certificate-errors", `--host-resolver-rules=MAP ${a.host} 127.0.0.1`],
});
const errors = [];
let failed = false;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on("pageerror", (e) => errors.push("pageerror: " + (e.stack || e.message)));
  page.on("console", (m) => { if (m.type() === "error") errors.push("console: " + m.text()); });
  page.setDefaultTimeout(15000);
  const notice = () => page.evaluate(() => {
    const n = document.getElementById("tls-notice");
    return n ? { hidden: n.hidden, text: n.textContent } : null;
  });

  // 1. The UI over HTTPS: the page, its script, the API and the live stream.
  const tlsUrl = `https://127.0.0.1:${a["tls-port"]}/`;
  await page.goto(tlsUrl);
  await page.waitForSelector("#flow");
  check(await page.evaluate(() => location.protocol) === "https:", "UI loaded over https");
  await page.waitForFunction(() => document.getElementById("live").textContent === "live");
  check(true, "live stream (server-sent events) open over https");
  let n = await notice();
  check(n && n.hidden, "no plain-HTTP notice over https");

  // 2. Plain HTTP on loopback: the token stays in the machine, no notice.
  await page.goto(`http://127.0.0.1:${a.port}/`);
  await page.waitForSelector("#flow");
  await page.waitForTimeout(300);
  n = await notice();
  check(n && n.hidden, "no notice over plain http on 127.0.0.1");

  // 3. Plain HTTP by a LAN name: the notice, with the HTTPS address and fingerprint.
  await page.goto(`http://${a.host}:${a.port}/#/settings`);
  await page.waitForSelector("#tls-link");
  n = await notice();
  check(n && !n.hidden && /in clear/.test(n.text), "notice shown over plain http by host name: " + n.text);
  const href = await page.getAttribute("#tls-link", "href");
  check(href === `https://${a.host}:${a["tls-port"]}/#/settings`, "notice links to " + href);
  const fp = await page.textContent("#tls-fingerprint");
  check(fp === a.fingerprint, "notice shows the certificate fingerprint " + fp);
  if (a.out) await page.screenshot({ path: path.join(a.out, "09-plain-http-notice.png") });

  // 4. Following the link gives the same page over HTTPS, without the notice.
  await Promise.all([page.waitForNavigation(), page.click("#tls-link")]);
  await page.waitForSelector("#main h2");
  check(page.url() === href, "followed the link to " + page.url());
  n = await notice();
  check(n && n.hidden, "no notice after moving to https");

  check(errors.length === 0, "no page errors" + (errors.length ? ": " + errors.join("; ") : ""));
} catch (e) {
  console.log("not ok -", e.message);
  failed = true;
} finally {
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
