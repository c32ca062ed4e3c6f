// Browser test of egw's web UI in headless Chromium (playwright-core driving
// Debian's /usr/bin/chromium).  Started by tests/integration/test_ui.py, which
// runs egwd (no device) and egw-sim (a SunSpec inverter) on loopback ports.
//
//   node ui.mjs --url http://127.0.0.1:PORT --token TOKEN --sim-port N --out DIR
//
// Adds the simulated inverter through the form (the token is asked once and
// kept in sessionStorage), waits for its live values and for the frequency
// chart to move, reads a register through the raw reader, visits every page
// and saves a screenshot of each (desktop and phone) into DIR.  Exits non-zero
// with a message on the first failed check.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

function arg(name, def) {
  const i = process.argv.indexOf("--" + name);
  return i > 0 ? process.argv[i + 1] : def;
}

const url = arg("url");
const token = arg("token");
const simPort = arg("sim-port");
const out = arg("out", "tests/out/screenshots");
if (!url || !token || !simPort) {
  console.error("usage: node ui.mjs --url URL --token TOKEN --sim-port N [--out DIR]");
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });

function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
  console.log("ok -", msg);
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "egw-chromium-"));
// A fresh profile directory (--user-data-dir) for every run.
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1200, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
let failed = false;
try {
  // The tab Chromium opened: a second tab would be in the background (no animation frames).
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on("pageerror", (e) => errors.push("pageerror: " + (e.stack || e.message)));
  // The refused raw write (403) is expected; any other console error is not.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 403/.test(m.text())) errors.push("console: " + m.text());
  });
  page.setDefaultTimeout(15000);

  // Overview before any device.
  await page.goto(url + "/");
  await page.waitForSelector("#flow");
  await page.waitForFunction(() => document.querySelector("#live").textContent === "live");
  check(true, "overview loads and the live stream connects");
  await page.screenshot({ path: path.join(out, "01-overview-empty.png"), fullPage: true });

  // Devices: add the simulator through the form.
  await page.click('nav a[data-page="devices"]');
  await page.waitForSelector("#add-device");
  await page.waitForFunction(() => document.querySelectorAll('#add-device select[name=profile] option').length > 3);
  await page.fill('#add-device input[name=host]', "127.0.0.1");
  await page.fill('#add-device input[name=port]', String(simPort));
  await page.fill('#add-device input[name=unit_id]', "1");
  await page.selectOption('#add-device select[name=profile]', "sunspec");
  await page.fill('#add-device input[name=id]', "inv1");
  await page.fill('#add-device input[name=name]', "Roof inverter");
  await page.click('#add-device button[type=submit]');
  // No token yet in this tab: the dialog asks once.
  await page.waitForSelector("#token-dialog[open]");
  await page.screenshot({ path: path.join(out, "02-token-dialog.png") });
  await page.fill("#token-input", token);
  await page.click('#token-form button[value=ok]');
  await page.waitForSelector('#device-table tr[data-id="inv1"]');
  check(await page.evaluate(() => sessionStorage.getItem("egw.token")) === token,
    "token kept in sessionStorage");
  await page.waitForFunction(() => {
    const row = document.querySelector('#device-table tr[data-id="inv1"]');
    return row && row.textContent.includes("polling");
  }, null, { timeout: 20000 });
  check(true, "added device reaches polling");

  // Scan loopback: the simulator is found and identified.
  await page.fill('#scan-form input[name=hosts]', "127.0.0.1");
  await page.fill('#scan-form input[name=ports]', String(simPort));
  await page.click('#scan-form button[type=submit]');
  await page.waitForFunction(() => (document.querySelector("#scan-results")?.textContent || "").includes("sunspec"),
    null, { timeout: 20000 });
  check(true, "scan finds the simulator as sunspec");
  await page.screenshot({ path: path.join(out, "03-devices.png"), fullPage: true });

  // Overview: live values and a moving frequency chart.
  await page.click('nav a[data-page="overview"]');
  await page.waitForFunction(() => /\d.*W/.test(document.querySelector("#flow-pv")?.textContent || ""),
    null, { timeout: 20000 });
  const pv = await page.textContent("#flow-pv");
  check(/\d/.test(pv), "power flow shows PV power: " + pv);
  await page.waitForFunction(() => /Hz/.test(document.querySelector("#hz-now")?.textContent || ""),
    null, { timeout: 20000 });
  const f1 = await page.evaluate(() => ({ frames: Number(document.querySelector("#freq-chart").dataset.frames || 0),
    img: document.querySelector("#freq-chart").toDataURL(), hz: document.querySelector("#hz-now").textContent, n: live.freq.length, rs: live.es.readyState, pill: document.querySelector("#live").textContent, last: live.freq.length ? live.freq[live.freq.length - 1][0] : 0 }));
  await page.waitForTimeout(3000);
  const f2 = await page.evaluate(() => ({ frames: Number(document.querySelector("#freq-chart").dataset.frames || 0),
    img: document.querySelector("#freq-chart").toDataURL(), hz: document.querySelector("#hz-now").textContent, n: live.freq.length, rs: live.es.readyState, pill: document.querySelector("#live").textContent, last: live.freq.length ? live.freq[live.freq.length - 1][0] : 0 }));
  const fps = (f2.frames - f1.frames) / 3;
  const sps = (f2.n - f1.n) / 3;
  // 10 Hz from the server (test_api.py checks the rate on the wire); the
  // browser on a loaded CI machine may lag, so ask for a clearly moving chart.
  check(sps >= 4, `frequency samples reach the page: ${sps.toFixed(1)}/s`);
  check(fps >= 4, `frequency chart redrawn ${fps.toFixed(1)} times/s`);
  check(f1.img !== f2.img, "frequency chart pixels change over time");
  check(/^\d\d\.\d+ Hz$/.test(f2.hz), "current frequency shown: " + f2.hz);
  await page.waitForFunction(() => (document.querySelector("#batches")?.textContent || "").includes("signed"));
  await page.screenshot({ path: path.join(out, "04-overview-live.png"), fullPage: true });

  // Device page: readings update live; raw register reader.
  await page.goto(url + "/#/device/inv1");
  await page.waitForSelector('#reading-body tr[data-field="pv.W"]', { timeout: 20000 });
  const ts1 = await page.textContent("#reading-ts");
  await page.waitForFunction((t) => document.querySelector("#reading-ts").textContent !== t, ts1,
    { timeout: 10000 });
  check(true, "device readings update live");
  await page.fill('#raw-form input[name=address]', "40000");
  await page.fill('#raw-form input[name=count]', "2");
  await page.selectOption('#raw-form select[name=type]', "str");
  await page.click('#raw-form button[type=submit]');
  await page.waitForSelector("#raw-value");
  check((await page.textContent("#raw-value")) === "SunS", "raw read of 40000 (str) gives SunS");
  check((await page.textContent("#raw-words")).includes("21365"), "raw words shown");
  // A write off the allow-list is refused with a clear message.
  await page.fill('#raw-write-form input[name=address]', "40000");
  await page.fill('#raw-write-form input[name=values]', "1");
  await page.click('#raw-write-form button[type=submit]');
  await page.waitForFunction(() => (document.querySelector("#raw-write-out")?.textContent || "").includes("allowlist"));
  check(true, "raw write outside the allow-list refused");
  await page.screenshot({ path: path.join(out, "05-device.png"), fullPage: true });

  // Settings and identity.
  await page.click('nav a[data-page="settings"]');
  await page.waitForFunction(() => (document.querySelector("#settings-json")?.value || "").includes("\"devices\""));
  check((await page.inputValue("#settings-json")).includes("inv1"), "settings show the added device");
  await page.screenshot({ path: path.join(out, "06-settings.png"), fullPage: true });
  await page.click('nav a[data-page="identity"]');
  await page.waitForFunction(() => (document.querySelector("#pubkey-pem")?.textContent || "").includes("BEGIN PUBLIC KEY"));
  const ident = await page.textContent("#identity");
  check(/serial[0-9a-f]{18}/.test(ident.replace(/\s/g, "")), "identity shows the 18-hex serial");
  await page.screenshot({ path: path.join(out, "07-identity.png"), fullPage: true });

  // A phone.
  const pp = await ctx.newPage();
  await pp.setViewportSize({ width: 390, height: 844 });
  pp.on("pageerror", (e) => errors.push("phone pageerror: " + e.message));
  await pp.goto(url + "/");
  await pp.waitForFunction(() => /Hz/.test(document.querySelector("#hz-now")?.textContent || ""), null, { timeout: 20000 });
  const overflow = await pp.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, "no horizontal overflow on a 390 px phone (" + overflow + ")");
  await pp.screenshot({ path: path.join(out, "08-phone-overview.png"), fullPage: true });
  await pp.goto(url + "/#/devices");
  await pp.waitForSelector('#device-table tr[data-id="inv1"]');
  await pp.screenshot({ path: path.join(out, "09-phone-devices.png"), fullPage: true });

  // Remove the device from the list (the token is still in this tab).
  page.on("dialog", (d) => d.accept());
  await page.goto(url + "/#/devices");
  await page.click('#device-table tr[data-id="inv1"] button.danger');
  await page.waitForFunction(() => !document.querySelector('#device-table tr[data-id="inv1"]'));
  check(true, "device removed from the list");

  check(errors.length === 0, "no page errors" + (errors.length ? ": " + errors.join("; ") : ""));
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
  if (errors.length) console.error("page errors:", errors.join("\n"));
} finally {
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
