// Browser test of egw's web UI in headless Chromium (playwright-core driving
// Debian's /usr/bin/chromium).  Started by tests/integration/test_ui.py, which
// runs egwd (no device) and egw-sim (a SunSpec inverter) on loopback ports.
//
//   node ui.mjs --url http://127.0.0.1:PORT --token TOKEN --sim-port N --out DIR
//               [--dead-port N] [--mqtt-port N] [--p1-port N]
//
// Besides the flows below, every page is audited at desktop (1280x800) and
// phone (390x844) size: no horizontal scroll of the document, no element
// whose content is wider than its box (a label cut off or spilling), no
// literal "null", "undefined" or "NaN" in the visible text, power-flow labels
// inside their circles.  The audited screenshots are DIR/desktop-*.png and
// DIR/phone-*.png.
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
const deadPort = arg("dead-port");
const mqttPort = arg("mqtt-port");
const p1Port = arg("p1-port");
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
  viewport: { width: 1280, height: 800 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
let failed = false;

/* What a person would see wrong on the page as it is now. */
async function problems(page) {
  return page.evaluate(() => {
    const bad = [];
    const de = document.documentElement;
    if (de.scrollWidth > window.innerWidth + 1)
      bad.push(`document scrolls sideways: ${de.scrollWidth} > ${window.innerWidth}`);
    const text = document.body.innerText;
    const m = text.match(/\b(null|undefined|NaN)\b/);
    if (m) bad.push(`literal "${m[1]}" on screen: …${text.slice(Math.max(0, m.index - 40), m.index + 20)}…`);
    const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
    const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
      (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "");
    for (const el of document.body.querySelectorAll("*")) {
      if (el.closest("svg, dialog:not([open]), details:not([open])") || ["CANVAS", "INPUT", "TEXTAREA", "SELECT", "OPTION", "SCRIPT", "BR"].includes(el.tagName)) continue;
      if (!el.clientWidth || !visible(el)) continue;
      if (el.scrollWidth > el.clientWidth + 1)
        bad.push(`${name(el)} content wider than its box (${el.scrollWidth} > ${el.clientWidth}): "${el.textContent.trim().slice(0, 40)}"`);
    }
    /* No word broken across lines in a button, a state pill or a heading
     * cell ("re|mo|ve" in a squeezed column). */
    for (const el of document.body.querySelectorAll("button, .pill, th, td a")) {
      if (!visible(el) || el.closest("dialog:not([open])")) continue;
      const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        for (const m of n.data.matchAll(/\S+/g)) {
          const r = document.createRange();
          r.setStart(n, m.index);
          r.setEnd(n, m.index + m[0].length);
          const tops = new Set([...r.getClientRects()].map((q) => Math.round(q.top)));
          if (tops.size > 1) bad.push(`${name(el)}: the word "${m[0]}" is broken across lines`);
        }
      }
    }
    /* Power-flow labels inside their circles (SVG user units). */
    const svg = document.querySelector("#flow");
    if (svg) {
      const circles = [...svg.querySelectorAll("circle.node")];
      for (const t of svg.querySelectorAll("text")) {
        if (!t.textContent) continue;
        const b = t.getBBox();
        const c = circles.find((c) => Math.hypot(c.cx.baseVal.value - (b.x + b.width / 2), c.cy.baseVal.value - (b.y + b.height / 2)) < c.r.baseVal.value);
        if (!c) { bad.push(`flow label "${t.textContent}" outside every circle`); continue; }
        const r = c.r.baseVal.value, cx = c.cx.baseVal.value, cy = c.cy.baseVal.value;
        /* Every corner of the text's box inside the circle's inner edge. */
        for (const [x, y] of [[b.x, b.y], [b.x + b.width, b.y], [b.x, b.y + b.height], [b.x + b.width, b.y + b.height]])
          if (Math.hypot(x - cx, y - cy) > r - 2) { bad.push(`flow label "${t.textContent}" leaves its circle`); break; }
      }
    }
    return bad;
  });
}

const audited = [];
/* Audit the page at its current size and keep a screenshot. */
async function audit(page, size, name) {
  await page.waitForTimeout(300);
  const bad = await problems(page);
  await page.screenshot({ path: path.join(out, `${size}-${name}.png`), fullPage: true });
  audited.push(`${size}-${name}`);
  check(bad.length === 0, `${size} ${name}: nothing overflows, no null/undefined/NaN` + (bad.length ? ":\n  " + bad.join("\n  ") : ""));
}
try {
  // The tab Chromium opened: a second tab would be in the background (no animation frames).
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on("pageerror", (e) => errors.push("pageerror: " + (e.stack || e.message)));
  // The refused raw write (403), the wrong token (401) and the bad MQTT port
  // (400) are expected; any other console error is not.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of (403|401|400)/.test(m.text())) errors.push("console: " + m.text());
  });
  page.setDefaultTimeout(15000);

  // Overview before any device.
  await page.goto(url + "/");
  await page.waitForSelector("#flow");
  await page.waitForFunction(() => document.querySelector("#live").textContent === "live");
  check(true, "overview loads and the live stream connects");
  await page.screenshot({ path: path.join(out, "01-overview-empty.png"), fullPage: true });
  await audit(page, "desktop", "overview-empty");

  // Devices: add the simulator through the form.
  await page.click('nav a[data-page="devices"]');
  await page.waitForSelector("#add-device");
  await page.waitForFunction(() => document.querySelectorAll('#add-device select[name=profile] option').length > 3);
  check(await page.inputValue('#add-device input[name=host]') === "" &&
        await page.inputValue('#add-device input[name=port]') === "", "the add form starts empty (no 127.0.0.1:502)");
  check(/api-token/.test(await page.textContent("#devices-page-token-note, #token-note")),
    "the add form says a token is needed and where it is");
  await page.waitForFunction(() => /nothing found yet/.test(document.querySelector("#scan-results")?.textContent || ""));
  await audit(page, "desktop", "devices-empty");
  // The Solarman transport asks for the logger's serial and fills its port.
  await page.selectOption('#add-device select[name=connection]', "solarman");
  check(await page.isVisible('#add-device input[name=logger_serial]') &&
        await page.inputValue('#add-device input[name=port]') === "8899",
    "the Solarman transport shows the logger serial field and port 8899");
  await page.selectOption('#add-device select[name=connection]', "tcp");
  check(!(await page.isVisible('#add-device input[name=logger_serial]')),
    "Modbus TCP hides the logger serial field");
  await page.fill('#add-device input[name=port]', "");
  await page.fill('#add-device input[name=host]', "127.0.0.1");
  await page.fill('#add-device input[name=port]', String(simPort));
  await page.fill('#add-device input[name=unit_id]', "1");
  await page.selectOption('#add-device select[name=profile]', "sunspec");
  await page.fill('#add-device input[name=id]', "inv1");
  await page.fill('#add-device input[name=name]', "Roof inverter");
  await page.click('#add-device button[type=submit]');
  // No token yet in this tab: the dialog asks once.  A wrong token is an
  // error the user sees, not the dialog silently reopening.
  await page.waitForSelector("#token-dialog[open]");
  await page.screenshot({ path: path.join(out, "02-token-dialog.png") });
  await page.fill("#token-input", "not-the-token");
  await page.click('#token-form button[value=ok]');
  await page.waitForFunction(() => /401/.test(document.querySelector("#add-msg")?.textContent || ""));
  check(!(await page.$("#token-dialog[open]")), "a wrong token shows as an error (401), the dialog stays closed");
  check(/api-token/.test(await page.textContent("#add-msg")), "the error says where the token is");
  await page.click('#add-device button[type=submit]');
  await page.waitForSelector("#token-dialog[open]");
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
  await page.waitForFunction(() => /polling/.test(document.querySelector("#added-status")?.textContent || ""));
  check(true, "right after adding, the form shows the device's real state (polling)");

  // A device nobody answers for: its error reaches the page, no JSON typed.
  if (deadPort) {
    await page.fill('#add-device input[name=host]', "127.0.0.1");
    await page.fill('#add-device input[name=port]', String(deadPort));
    await page.fill('#add-device input[name=unit_id]', "1");
    await page.fill('#add-device input[name=id]', "dead1");
    await page.fill('#add-device input[name=name]', "");
    await page.click('#add-device button[type=submit]');
    await page.waitForFunction(() => /connection refused/i.test(document.querySelector("#added-status")?.textContent || ""),
      null, { timeout: 20000 });
    check(true, "a device at a closed port shows \"Connection refused\" right after adding: " +
      (await page.textContent("#added-status")));
    check(/connection refused/i.test(await page.textContent('#device-table tr[data-id="dead1"]')),
      "the device list shows its last error");
  }

  // Scan loopback: the simulator is found and identified.
  await page.fill('#scan-form input[name=hosts]', "127.0.0.1");
  await page.fill('#scan-form input[name=ports]', String(simPort));
  await page.click('#scan-form button[type=submit]');
  await page.waitForFunction(() => (document.querySelector("#scan-results")?.textContent || "").includes("sunspec"),
    null, { timeout: 20000 });
  check(true, "scan finds the simulator as sunspec");
  await page.screenshot({ path: path.join(out, "03-devices.png"), fullPage: true });
  await audit(page, "desktop", "devices");

  // A P1 smart meter: its own entries in the connection list, with the
  // fields each line needs; a bridge found by the scan fills the form.
  if (p1Port) {
    const sel = '#add-device select[name=connection]';
    const shown = (n) => page.isVisible(`#add-device [name=${n}]`);
    await page.selectOption(sel, "p1-serial");
    check(await shown("serial_port") && await shown("databits") && await shown("baudrate") &&
          !(await shown("unit_id")) && !(await shown("profile")) && !(await shown("host")),
      "a P1 meter on a serial port asks for the port and line settings, no unit id or profile");
    check(await page.inputValue('#add-device input[name=baudrate]') === "115200" &&
          await page.inputValue('#add-device select[name=parity]') === "N" &&
          await page.inputValue('#add-device select[name=databits]') === "8",
      "a P1 serial line starts at 115200 8N1");
    await page.click("#p1-dsmr22");
    check(await page.inputValue('#add-device input[name=baudrate]') === "9600" &&
          await page.inputValue('#add-device select[name=parity]') === "E" &&
          await page.inputValue('#add-device select[name=databits]') === "7",
      "the DSMR 2.2 / 3 button sets 9600 7E1");
    await audit(page, "desktop", "devices-p1-serial");
    await page.selectOption(sel, "rtu");
    check(await page.inputValue('#add-device input[name=baudrate]') === "9600" &&
          await page.inputValue('#add-device select[name=parity]') === "N" && !(await shown("databits")) &&
          await shown("unit_id"), "back to Modbus RTU: its own line settings and the unit id again");
    await page.selectOption(sel, "tcp");
    await page.fill('#scan-form input[name=ports]', String(p1Port));
    await page.click('#scan-form button[type=submit]');
    await page.waitForFunction(() => (document.querySelector("#scan-results")?.textContent || "").includes("P1 telegrams"),
      null, { timeout: 40000 }).catch(async (e) => {
      throw new Error("no P1 bridge in the scan results: " + await page.textContent("#scan-results") + "\n" + e.message);
    });
    check(true, "scan finds the P1 bridge");
    await page.click('#scan-results tbody tr button');
    check(await page.inputValue(sel) === "p1-tcp" &&
          await page.inputValue('#add-device input[name=port]') === String(p1Port) &&
          await page.inputValue('#add-device input[name=host]') === "127.0.0.1" && !(await shown("unit_id")),
      "the scan result fills the form as a P1 meter through a TCP bridge");
    await page.fill('#add-device input[name=id]', "grid1");
    await page.click('#add-device button[type=submit]');
    await page.waitForFunction(() => /polling/.test(document.querySelector('#device-table tr[data-id="grid1"]')?.textContent || ""),
      null, { timeout: 20000 });
    check(true, "the P1 meter added through the form reaches polling");
    page.once("dialog", (d) => d.accept());
    await page.evaluate(() => document.querySelector('#device-table tr[data-id="grid1"] button.danger').click());
    await page.waitForFunction(() => !document.querySelector('#device-table tr[data-id="grid1"]'));
    await page.fill('#add-device input[name=id]', "");
  }

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
  // "50 Hz" when the sample is exactly 50.00 (numbers carry no padding zeros)
  check(/^\d\d(\.\d+)? Hz$/.test(f2.hz), "current frequency shown: " + f2.hz);
  await page.waitForFunction(() => (document.querySelector("#batches")?.textContent || "").includes("signed"));
  await page.screenshot({ path: path.join(out, "04-overview-live.png"), fullPage: true });
  const flowText = await page.evaluate(() => ["pv", "grid", "house", "battery"].map((k) =>
    [k, document.querySelector("#flow-" + k).textContent, document.querySelector("#flow-" + k + "-dir").textContent]));
  for (const [k, v, dir] of flowText) {
    check(!/^-/.test(v), `flow ${k} shows no negative number (${v}, ${dir})`);
    check(/^(–|\d+ W|\d+\.\d\d kW)$/.test(v), `flow ${k} in W (whole) or kW (2 decimals): ${v}`);
  }
  check(/importing|exporting|balanced/.test(flowText[1][2]), "grid labelled in words: " + flowText[1][2]);
  check(/charging|discharging|idle/.test(flowText[3][2]), "battery labelled in words: " + flowText[3][2]);
  await audit(page, "desktop", "overview");

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
  const soc = await page.textContent('#reading-body tr[data-field="battery.SoC_nom_fract"]');
  check(/state of charge\s*\d+(\.\d)? %/.test(soc), "SoC shown as a percentage: " + soc);
  const pvW = await page.textContent('#reading-body tr[data-field="pv.W"]');
  check(/\d (W|kW)$/.test(pvW), "power shown with its unit: " + pvW);
  await audit(page, "desktop", "device");
  if (deadPort) {
    await page.goto(url + "/#/device/dead1");
    await page.waitForFunction(() => /refused/i.test(document.querySelector("main")?.textContent || ""));
    await audit(page, "desktop", "device-error");
  }

  // Settings and identity.
  await page.click('nav a[data-page="settings"]');
  await page.waitForFunction(() => (document.querySelector("#settings-json")?.value || "").includes("\"devices\""));
  check((await page.inputValue("#settings-json")).includes("inv1"), "settings show the added device");
  await page.screenshot({ path: path.join(out, "06-settings.png"), fullPage: true });
  await audit(page, "desktop", "settings");
  // Turn MQTT on through the form; a bad port is shown at its field.
  await page.check('#settings-form input[name="mqtt.enabled"]');
  await page.fill('#settings-form input[name="mqtt.host"]', "127.0.0.1");
  await page.fill('#settings-form input[name="mqtt.port"]', "99999");
  await page.click("#settings-form-save");
  await page.waitForFunction(() => (document.querySelector('.field-error[data-for="mqtt.port"]')?.textContent || "") !== "");
  check(await page.$eval('#settings-form input[name="mqtt.port"]', (e) => e.classList.contains("invalid")),
    "the API's error for mqtt.port is shown at the port field: " +
    await page.textContent('.field-error[data-for="mqtt.port"]'));
  await audit(page, "desktop", "settings-error");
  await page.fill('#settings-form input[name="mqtt.port"]', String(mqttPort || 1883));
  await page.click("#settings-form-save");
  await page.waitForFunction(() => /Saved/.test(document.querySelector("#settings-msg")?.textContent || ""));
  const saved = await page.evaluate(async () => (await (await fetch("/api/settings")).json()).mqtt);
  check(saved.enabled === true && saved.port === Number(mqttPort || 1883) && saved.host === "127.0.0.1",
    "MQTT turned on through the form: " + JSON.stringify(saved));
  if (mqttPort) {
    await page.waitForFunction(async () => (await (await fetch("/api/state")).json()).mqtt?.connected === true,
      null, { timeout: 20000, polling: 500 });
    check(true, "egwd connects to the broker set in the form");
  }
  await page.click('nav a[data-page="identity"]');
  await page.waitForFunction(() => (document.querySelector("#pubkey-pem")?.textContent || "").includes("BEGIN PUBLIC KEY"));
  const ident = await page.textContent("#identity");
  check(/serial[0-9a-f]{18}/.test(ident.replace(/\s/g, "")), "identity shows the 18-hex serial");
  await page.screenshot({ path: path.join(out, "07-identity.png"), fullPage: true });
  await audit(page, "desktop", "identity");

  // The status page: for people, with a way back and the raw JSON a link away.
  const st = await page.goto(url + "/status");
  check(st.status() === 200, "/status answers 200");
  const stText = await page.textContent("body");
  check(!/e\+\d/.test(stText), "no scientific notation on the status page");
  check(/kWh/.test(stText) && /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/.test(stText), "energy in kWh, times as dates");
  check(!/\b1\d{12}\b/.test(stText), "no epoch-millisecond times on the status page");
  check(await page.$('a[href="/api/state"]') && await page.$('a[href="/"]'), "status links to the raw JSON and back to the UI");
  if (deadPort) check(/Connection refused/.test(stText), "status shows a device's error");
  await audit(page, "desktop", "status");
  const fav = await page.goto(url + "/favicon.ico");
  check(fav.status() === 200, "/favicon.ico answers 200");

  // A phone.
  const pp = await ctx.newPage();
  await pp.setViewportSize({ width: 390, height: 844 });
  pp.on("pageerror", (e) => errors.push("phone pageerror: " + e.message));
  await pp.goto(url + "/");
  await pp.waitForFunction(() => /Hz/.test(document.querySelector("#hz-now")?.textContent || ""), null, { timeout: 20000 });
  const overflow = await pp.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, "no horizontal overflow on a 390 px phone (" + overflow + ")");
  await pp.waitForFunction(() => /\d/.test(document.querySelector("#flow-pv")?.textContent || ""), null, { timeout: 20000 });
  await pp.screenshot({ path: path.join(out, "08-phone-overview.png"), fullPage: true });
  await audit(pp, "phone", "overview");
  await pp.goto(url + "/#/devices");
  await pp.waitForSelector('#device-table tr[data-id="inv1"]');
  await pp.screenshot({ path: path.join(out, "09-phone-devices.png"), fullPage: true });
  /* serial, state and remove visible inside the screen on a phone */
  const cut = await pp.evaluate(() => {
    const row = document.querySelector('#device-table tr[data-id="inv1"]');
    const out = [];
    for (const sel of ["td.serial", ".pill", "button.danger"]) {
      const e = row.querySelector(sel);
      const r = e && e.getBoundingClientRect();
      if (!r || !r.width || r.right > window.innerWidth || r.left < 0) out.push(sel);
    }
    return out;
  });
  check(cut.length === 0, "on a phone the device row shows serial, state and remove" + (cut.length ? ": cut " + cut.join(", ") : ""));
  await audit(pp, "phone", "devices");
  for (const [name, hash, ready] of [["device", "#/device/inv1", '#reading-body tr[data-field="pv.W"]'],
    ["settings", "#/settings", '#settings-form input[name="mqtt.port"]'],
    ["identity", "#/identity", "#pubkey-pem"]]) {
    await pp.goto(url + "/" + hash);
    await pp.waitForSelector(ready);
    await pp.waitForTimeout(500);
    await audit(pp, "phone", name);
  }
  if (deadPort) {
    await pp.goto(url + "/#/device/dead1");
    await pp.waitForFunction(() => /refused/i.test(document.querySelector("main")?.textContent || ""));
    await audit(pp, "phone", "device-error");
  }
  await pp.goto(url + "/status");
  await audit(pp, "phone", "status");

  // Remove the device from the list (the token is still in this tab).
  page.on("dialog", (d) => d.accept());
  await page.goto(url + "/#/devices");
  // The list is redrawn every 2 s: click in the page, as a tap would.
  await page.waitForSelector('#device-table tr[data-id="inv1"] button.danger');
  await page.evaluate(() => document.querySelector('#device-table tr[data-id="inv1"] button.danger').click());
  await page.waitForFunction(() => !document.querySelector('#device-table tr[data-id="inv1"]'));
  check(true, "device removed from the list");
  // The overview forgets it: no battery left, no power counted from it.
  await page.click('nav a[data-page="overview"]');
  await page.waitForFunction(() => document.querySelector("#flow-box-battery")?.getAttribute("visibility") === "hidden" &&
    document.querySelector("#flow-pv")?.textContent === "–", null, { timeout: 10000 });
  check(true, "after the removal the overview shows no battery and no solar power");

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
