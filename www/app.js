/* egw web UI: plain JavaScript, no framework.  Hash routes:
 *   #/             overview (power flow, 10 Hz frequency chart, batches, state;
 *                  with FCR on, a live chart of frequency, setpoint and battery power)
 *   #/devices      device list, add form, scan
 *   #/device/<id>  one device: readings and a raw register reader
 *   #/settings     settings editor (token kept in sessionStorage)
 *   #/identity     the gateway's serial, public key and name
 * Live values come from the server-sent events of /api/live. */
"use strict";

const $ = (sel, root) => (root || document).querySelector(sel);
const main = $("#main");

/* ---- helpers -------------------------------------------------------- */

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

function fmtNum(v, digits) {
  if (typeof v !== "number" || !isFinite(v)) return "–";
  return v.toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 1 : digits });
}

/* Power with one precision per unit: whole watts below 1 kW, else kW with
 * two decimals. */
function fmtPower(w) {
  if (typeof w !== "number" || !isFinite(w)) return "–";
  const a = Math.abs(w);
  return a >= 1000 ? fmtFixed(w / 1000, 2) + " kW" : fmtFixed(w, 0) + " W";
}

function fmtFixed(v, digits) {
  if (typeof v !== "number" || !isFinite(v)) return "–";
  return v.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/* Text for a value that may be missing: never "null", "undefined" or "NaN". */
function txt(v) {
  if (v === undefined || v === null || v === "") return "–";
  if (typeof v === "number") return isFinite(v) ? String(v) : "–";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/* "2026-12-03 11:02:00" in the browser's local time. */
function fmtTime(ms) {
  if (typeof ms !== "number" || !ms) return "never";
  const d = new Date(ms), p = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
    p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
}

function fmtDuration(ms) {
  if (typeof ms !== "number" || !isFinite(ms)) return "–";
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hh = Math.floor(s / 3600); s -= hh * 3600;
  const mm = Math.floor(s / 60); s -= mm * 60;
  return (d ? d + " d " : "") + (d || hh ? hh + " h " : "") + (d || hh || mm ? mm + " min " : "") + s + " s";
}

function fmtAgo(ms) {
  if (typeof ms !== "number" || !ms) return "never";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  return Math.floor(s / 3600) + " h ago";
}

function stateClass(s) { return "pill state-" + String(s || "unknown").replace(/\s+/g, "_"); }

const token = {
  get: () => sessionStorage.getItem("egw.token") || "",
  set: (t) => sessionStorage.setItem("egw.token", t),
  clear: () => sessionStorage.removeItem("egw.token"),
};

function askToken() {
  const dlg = $("#token-dialog");
  const input = $("#token-input");
  input.value = "";
  return new Promise((resolve) => {
    const done = (ok) => {
      $("#token-form").onsubmit = null;
      $("#token-cancel").onclick = null;
      dlg.close();
      if (ok && input.value.trim()) { token.set(input.value.trim()); resolve(true); }
      else resolve(false);
    };
    $("#token-form").onsubmit = (ev) => { ev.preventDefault(); done(true); };
    $("#token-cancel").onclick = () => done(false);
    dlg.showModal();
    input.focus();
  });
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.error || body.message)) || ("HTTP " + status));
    this.status = status;
    this.body = body;
  }
}

/* fetch JSON; changes carry the token, asked once per tab (again on 401). */
const TOKEN_WHERE = "the file <state-dir>/api-token on the gateway (the directory egwd runs with: -d, ./var by default)";

async function api(method, path, body) {
  {
    const headers = {};
    if (method !== "GET") {
      if (!token.get() && !(await askToken())) throw new ApiError(401, { error: "no token given" });
      headers.Authorization = "Bearer " + token.get();
    }
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    const text = await r.text();
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
    if (r.status === 401 && method !== "GET") {
      /* Forget it, so the next change asks again, and say so now. */
      token.clear();
      throw new ApiError(401, { error: "the gateway refused this token (401): copy it from " + TOKEN_WHERE });
    }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }
}

function showMsg(el, kind, text) {
  el.replaceChildren(h("div", { class: "msg " + kind }, text));
}

/* ---- live stream ---------------------------------------------------- */

const live = {
  readings: new Map(),     /* device id -> {ts_ms, reading} */
  freq: [],                /* [ts_ms, hz] (last 60 s) */
  freqDevice: null,
  listeners: new Set(),
  es: null,
};

function liveStart() {
  const pill = $("#live");
  const es = new EventSource("/api/live");
  live.es = es;
  es.onopen = () => { pill.textContent = "live"; pill.className = "pill ok"; };
  es.onerror = () => { pill.textContent = "reconnecting"; pill.className = "pill warn"; };
  es.addEventListener("reading", (ev) => {
    const d = JSON.parse(ev.data);
    live.readings.set(d.device, d);
    for (const fn of live.listeners) fn("reading", d);
  });
  es.addEventListener("freq", (ev) => {
    const d = JSON.parse(ev.data);
    live.freqDevice = d.device;
    live.freq.push([d.ts_ms, d.hz]);
    const cut = d.ts_ms - 60000;
    while (live.freq.length && live.freq[0][0] < cut) live.freq.shift();
    for (const fn of live.listeners) fn("freq", d);
  });
  es.addEventListener("notification", () => loadNotes());
}

/* Before the stream has delivered anything, start from the last reading of
 * each device and the last second of frequency samples. */
async function seedLive() {
  try {
    const data = await api("GET", "/api/device");
    for (const d of (data && data.devices) || [])
      if (d.reading && !live.readings.has(d.id))
        live.readings.set(d.id, { device: d.id, ts_ms: d.stats && d.stats.last_good_ms, reading: d.reading });
  } catch (e) { /* no devices yet */ }
  try {
    const f = await api("GET", "/api/frequency");
    if (f && Array.isArray(f.samples) && !live.freq.length) live.freq.push(...f.samples);
  } catch (e) { /* no frequency source */ }
}

/* ---- notifications -------------------------------------------------- */

async function loadNotes() {
  const box = $("#notes");
  let data;
  try { data = await api("GET", "/api/notification"); } catch (e) { return; }
  const list = (data && data.notifications) || [];
  box.replaceChildren(...list.slice(-5).map((n) => h("div", { class: "note " + (n.level || "") },
    h("span", null, n.text || n.message, " ", h("small", { class: "muted" }, fmtAgo(n.ts_ms))),
    h("button", { title: "dismiss", onclick: async () => {
      try { await api("DELETE", "/api/notification/" + encodeURIComponent(n.id)); } catch (e) { /* kept */ }
      loadNotes();
    } }, "×"))));
}

/* ---- plain HTTP from another machine ---------------------------------- */

/* Over plain HTTP the token and every answer cross the network in clear.
 * On the gateway itself (a loopback address) that stays inside the machine;
 * reached from anywhere else, the page says so and offers the same host over
 * HTTPS (its port and certificate fingerprint from /api/state). */
function isLoopbackHost(host) {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" ||
    /^127\.\d+\.\d+\.\d+$/.test(h);
}

async function tlsNotice() {
  const box = $("#tls-notice");
  if (location.protocol !== "http:" || isLoopbackHost(location.hostname)) return;
  box.replaceChildren(h("strong", null, "Not encrypted: "),
    "this page came over plain HTTP, so the API token and the settings you save cross the network in clear.");
  box.hidden = false;
  let st = null;
  try { st = await api("GET", "/api/state"); } catch (e) { return; }
  const https = st && st.https;
  if (!https) return;
  if (https.listening && https.port) {
    const host = location.hostname.includes(":") && !location.hostname.startsWith("[")
      ? "[" + location.hostname + "]" : location.hostname;
    const url = "https://" + host + ":" + https.port + location.pathname + location.hash;
    box.append(" Use ", h("a", { href: url, id: "tls-link" }, url), " instead.");
    if (https.fingerprint_sha256)
      box.append(" Its certificate is the gateway's own: accept it if its SHA-256 fingerprint is ",
        h("code", { id: "tls-fingerprint" }, https.fingerprint_sha256), ".");
  } else {
    box.append(" HTTPS is off on this gateway" + (https.error ? ": " + https.error : " (setting http.tls)") + ".");
  }
}

/* ---- overview ------------------------------------------------------- */

/* Which devices count in the power flow: those the gateway lists as polling,
 * one per serial (the same inverter added twice counts once).  Until the
 * first /api/state answer every reading counts. */
function countedDevices(devs) {
  const seen = new Set(), ids = new Set();
  for (const d of devs || []) {
    if (d.state !== "polling") continue;
    const key = d.serial ? (d.profile || "") + "/" + d.serial : "id/" + d.id;
    if (seen.has(key)) continue;
    seen.add(key);
    ids.add(d.id);
  }
  return ids;
}

function sumField(group, name) {
  let sum = null;
  for (const d of live.readings.values()) {
    if (live.counted && !live.counted.has(d.device)) continue;
    const g = d.reading && d.reading[group];
    if (g && typeof g[name] === "number") sum = (sum || 0) + g[name];
  }
  return sum;
}

function flowSvg() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.id = "flow";
  svg.setAttribute("viewBox", "0 0 400 330");
  const nodes = {
    pv: [200, 62, "Solar", "#e0a100"], grid: [58, 165, "Grid", "#8a4fbf"],
    house: [342, 165, "House", "#d0573b"], battery: [200, 268, "Battery", "#2f7fd1"],
  };
  const mk = (tag, attrs, text, parent) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    (parent || svg).append(e);
    return e;
  };
  /* One group per node (its line, dot, circle and labels): a node with no
   * device behind it (no battery) is hidden, not shown as a dash. */
  const dots = {}, groups = {};
  for (const [k, [x, y]] of Object.entries(nodes)) {
    groups[k] = mk("g", { id: "flow-node-" + k });
    mk("line", { x1: x, y1: y, x2: 200, y2: 165 }, undefined, groups[k]);
    dots[k] = mk("circle", { class: "dot", cx: x, cy: y, r: 5, fill: nodes[k][3], visibility: "hidden" }, undefined, groups[k]);
  }
  mk("circle", { cx: 200, cy: 165, r: 8, fill: "#5d6a62" });
  const vals = {}, dirs = {};
  for (const [k, [x, y, label, color]] of Object.entries(nodes)) {
    const g = mk("g", { id: "flow-box-" + k });
    mk("circle", { cx: x, cy: y, r: 48, class: "node", stroke: color, "stroke-width": 4, "data-node": k }, undefined, g);
    mk("text", { x, y: y - 14, class: "lbl" }, label, g);
    vals[k] = mk("text", { x, y: y + 6, class: "val", id: "flow-" + k }, "–", g);
    dirs[k] = mk("text", { x, y: y + 24, class: "dir", id: "flow-" + k + "-dir" }, "", g);
  }
  return { svg, nodes, dots, vals, dirs, groups };
}

function svgGet(svg, id) { return svg.querySelector("#" + id); }

function pageOverview() {
  const flow = flowSvg();
  const canvas = h("canvas", { id: "freq-chart", width: 800, height: 220 });
  const hzNow = h("div", { class: "big", id: "hz-now" }, "–");
  const hzStats = h("div", { class: "muted", id: "hz-stats" }, "waiting for samples");
  const gw = h("dl", { class: "kv", id: "gw-state" });
  const batches = h("dl", { class: "kv", id: "batches" });
  const fcr = fcrCard();
  main.replaceChildren(
    h("h2", null, "Overview"),
    h("div", { class: "grid" },
      h("section", { class: "card" }, h("h3", null, "Power flow"), flow.svg),
      h("section", { class: "card" }, h("h3", null, "Grid frequency"), hzNow, hzStats, canvas),
      h("section", { class: "card" }, h("h3", null, "Gateway"), gw),
      h("section", { class: "card" }, h("h3", null, "Signed batches"), batches),
      fcr.card));

  let phase = 0;
  const power = { pv: null, battery: null, grid: null, house: null };
  const updateFlow = () => {
    /* Sign conventions of the readings: generation negative, battery
     * charging positive, meter import positive, inverter AC output negative. */
    const pv = sumField("pv", "W"), bat = sumField("battery", "W"), grid = sumField("meter", "W");
    const inv = sumField("inverter", "W");
    power.pv = pv === null ? null : Math.abs(pv);
    power.battery = bat;
    power.grid = grid;
    /* The house takes what the inverter delivers (or, without that, solar
     * minus charging) plus the import; never below zero: a small negative
     * sum is meter and conversion losses, not a house producing power. */
    const ac = inv !== null ? -inv : (pv === null && bat === null ? null : (power.pv || 0) - (bat || 0));
    power.house = (grid === null && ac === null) ? null : Math.max(0, (grid || 0) + (ac || 0));
    const words = {
      pv: power.pv === null ? "" : power.pv >= 5 ? "producing" : "idle",
      battery: bat === null ? "" : bat >= 5 ? "charging" : bat <= -5 ? "discharging" : "idle",
      grid: grid === null ? "" : grid >= 5 ? "importing" : grid <= -5 ? "exporting" : "balanced",
      house: power.house === null ? "" : "using",
    };
    for (const k of ["pv", "battery", "grid", "house"]) {
      const v = power[k];
      flow.vals[k].textContent = v === null ? "–" : fmtPower(k === "pv" || k === "house" ? v : Math.abs(v));
      flow.dirs[k].textContent = words[k];
      /* Solar, grid and house always; the battery only when a device has one. */
      const hide = k === "battery" && v === null;
      for (const id of ["flow-node-", "flow-box-"]) {
        const g = svgGet(flow.svg, id + k);
        if (g) g.setAttribute("visibility", hide ? "hidden" : "visible");
      }
    }
  };
  /* A dot travels along each line in the direction energy flows. */
  const animate = () => {
    phase = (phase + 0.012) % 1;
    const toward = { pv: 1, grid: 1, battery: -1, house: -1 }; /* + means into the hub */
    for (const [k, [x, y]] of Object.entries(flow.nodes)) {
      const p = power[k];
      const dot = flow.dots[k];
      if (p === null || Math.abs(p) < 5) { dot.setAttribute("visibility", "hidden"); continue; }
      const inward = (p > 0) === (toward[k] > 0);
      const t = inward ? phase : 1 - phase;
      dot.setAttribute("visibility", "visible");
      dot.setAttribute("cx", x + (200 - x) * t);
      dot.setAttribute("cy", y + (165 - y) * t);
    }
  };

  const chart = freqChart(canvas);
  const onLive = (kind, d) => {
    if (kind === "reading") updateFlow();
    else {
      hzNow.textContent = fmtNum(d.hz, 3) + " Hz";
      chart.draw();
    }
  };
  live.listeners.add(onLive);
  updateFlow();
  seedLive().then(() => { updateFlow(); chart.draw(); });

  const refresh = async () => {
    try {
      const st = await api("GET", "/api/state");
      const up = st.uploader || {};
      /* Drop readings of devices that were removed; count polling ones only. */
      const ids = new Set((st.devices || []).map((d) => d.id));
      for (const id of [...live.readings.keys()]) if (!ids.has(id)) live.readings.delete(id);
      live.counted = countedDevices(st.devices);
      updateFlow();
      fillKv(gw, [
        ["state", st.state],
        ["name", st.name && st.name.name ? st.name.name : "(not named yet)"],
        ["serial", st.signer && (st.signer.serial || "unknown")],
        ["signer", st.signer && (st.signer.backend + (st.signer.signing === false ? " (not signing: " + (st.signer.not_signing_reason || "failing") + ")" : ""))],
        ["backend", !up.enabled ? "not configured" : (up.last_error ? "unreachable: " + (up.last_error_detail || up.last_error) : "ok (" + (up.ok || 0) + " uploads)")],
        ["devices", Array.isArray(st.devices) ? st.devices.length + " (" + st.devices.filter((d) => d.state === "polling").length + " polling)" : undefined],
        ["uptime", st.uptime_ms !== undefined ? fmtDuration(st.uptime_ms) : undefined],
      ]);
      fillKv(batches, batchRows(st));
    } catch (e) { fillKv(gw, [["error", e.message]]); }
    try {
      const f = await api("GET", "/api/frequency");
      if (f && f.stats_1s) hzStats.textContent = "1 s: mean " + fmtNum(f.stats_1s.mean, 3) +
        " Hz, min " + fmtNum(f.stats_1s.min, 3) + ", max " + fmtNum(f.stats_1s.max, 3) +
        ", RoCoF " + fmtNum(f.stats_1s.rocof_hz_s, 3) + " Hz/s" + (f.device ? " (" + f.device + ")" : "");
    } catch (e) { /* no frequency source yet */ }
  };
  refresh();
  const timer = setInterval(refresh, 2000);
  const anim = setInterval(animate, 40);
  return () => { clearInterval(timer); clearInterval(anim); chart.stop(); fcr.stop(); live.listeners.delete(onLive); };
}

/* Grid services (FCR): shown while fcr.enabled is on.  The frequency comes
 * from the 10 Hz stream; setpoint and measured battery power from
 * /api/state's "fcr", polled twice a second.  Powers: charging positive. */
function fcrCard() {
  const canvas = h("canvas", { id: "fcr-chart", width: 800, height: 240 });
  const kv = h("dl", { class: "kv", id: "fcr-state" });
  const card = h("section", { class: "card", id: "fcr-card", hidden: true },
    h("h3", null, "Grid services (FCR)"), kv, canvas,
    h("div", { class: "muted" }, "frequency (Hz, left), setpoint and battery power (W, right; charging +)"));
  const pts = []; /* [t_ms, setpoint, measured] */
  const span = 60000;
  const poll = async () => {
    let st;
    try { st = await api("GET", "/api/state"); } catch (e) { return; }
    const f = st.fcr;
    if (!f || f.state === "off") { card.hidden = true; return; }
    card.hidden = false;
    const t = live.freq.length ? live.freq[live.freq.length - 1][0] : Date.now();
    pts.push([t, f.setpoint_W, f.measured_W]);
    while (pts.length && pts[0][0] < t - span) pts.shift();
    const prods = Object.entries(f.products || {}).map(([k, v]) => k + " " + fmtPower(v.activation_W) + " / " + fmtPower(v.capacity_w));
    fillKv(kv, [
      ["state", f.state + (f.reason ? " (" + f.reason + ")" : "")],
      ["frequency", typeof f.f_Hz === "number" ? fmtFixed(f.f_Hz, 3) + " Hz" : undefined],
      ["setpoint", f.setpoint_W === null ? "battery in its own mode" : fmtPower(f.setpoint_W)],
      ["battery", fmtPower(f.measured_W)],
      ["activation", prods.join(", ")],
      ["delay p99", f.delay_ms && typeof f.delay_ms.p99 === "number" ? f.delay_ms.p99 + " ms" : undefined],
    ]);
    paint();
  };
  const paint = () => {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 600, hgt = canvas.clientHeight || 240;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(hgt * dpr); }
    const c = canvas.getContext("2d");
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, w, hgt);
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--muted").trim() || "#888";
    const accent = css.getPropertyValue("--accent").trim() || "#1f6f4a";
    const now = live.freq.length ? live.freq[live.freq.length - 1][0] : Date.now(), t0 = now - span;
    let pmax = 100;
    for (const [, a, b] of pts) for (const v of [a, b]) if (typeof v === "number") pmax = Math.max(pmax, Math.abs(v));
    const L = 52, R = w - 56, T = 8, B = hgt - 22;
    const x = (t) => L + (t - t0) / span * (R - L);
    const yf = (v) => B - (v - 49.4) / (50.6 - 49.4) * (B - T);
    const yp = (v) => B - (v + pmax) / (2 * pmax) * (B - T);
    c.font = "11px system-ui, sans-serif"; c.fillStyle = fg;
    for (const v of [49.5, 49.9, 50.0, 50.1, 50.5]) c.fillText(v.toFixed(1), 4, yf(v) + 4);
    for (const v of [-pmax, 0, pmax]) c.fillText(fmtPower(v), R + 4, yp(v) + 4);
    const line = (data, yv, color) => {
      c.strokeStyle = color; c.lineWidth = 2; c.beginPath();
      let first = true;
      for (const [t, v] of data) {
        if (t < t0 || typeof v !== "number") { first = true; continue; }
        if (first) { c.moveTo(x(t), yv(v)); first = false; } else c.lineTo(x(t), yv(v));
      }
      c.stroke();
    };
    line(live.freq, yf, accent);
    line(pts.map((p) => [p[0], p[1]]), yp, "#c0392b");
    line(pts.map((p) => [p[0], p[2]]), yp, "#2471a3");
    canvas.dataset.points = pts.length;
  };
  poll();
  const timer = setInterval(poll, 500);
  return { card, stop() { clearInterval(timer); } };
}

function batchRows(st) {
  const s = st.store || {}, hv = st.harvest || {};
  return [
    ["signed", hv.stored_signed !== undefined ? hv.stored_signed : hv.sealed],
    ["uploaded", s.delivered],
    ["waiting", s.backlog],
    ["dropped", s.dropped],
    ["store size", s.bytes !== undefined ? fmtNum(s.bytes / 1024, 0) + " KiB" : undefined],
  ];
}

function fillKv(dl, rows) {
  dl.replaceChildren(...rows.filter((r) => r[1] !== undefined && r[1] !== null && r[1] !== "" &&
      !(typeof r[1] === "number" && !isFinite(r[1])))
    .flatMap(([k, v]) => [h("dt", null, k), h("dd", { "data-key": k }, v instanceof Node ? v : txt(v))]));
}

/* The frequency chart: our own canvas drawing, 30 s window, redrawn on every
 * sample from the stream (10 Hz) and when the window is resized. */
function freqChart(canvas) {
  const st = { frames: 0 };
  const draw = () => {
    st.frames++;
    canvas.dataset.frames = st.frames;
    paint();
  };
  const paint = () => {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 600, hgt = canvas.clientHeight || 220;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(hgt * dpr); }
    const c = canvas.getContext("2d");
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, w, hgt);
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--muted").trim() || "#888";
    const lineCol = css.getPropertyValue("--line").trim() || "#ccc";
    const accent = css.getPropertyValue("--accent").trim() || "#1f6f4a";
    const pts = live.freq;
    const now = pts.length ? pts[pts.length - 1][0] : Date.now();
    const span = 30000, t0 = now - span;
    let lo = Infinity, hi = -Infinity;
    for (const [t, v] of pts) if (t >= t0) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!isFinite(lo)) { lo = 49.9; hi = 50.1; }
    const mid = (lo + hi) / 2, half = Math.max((hi - lo) / 2 * 1.2, 0.05);
    lo = mid - half; hi = mid + half;
    const L = 52, R = w - 8, T = 8, B = hgt - 22;
    const x = (t) => L + (t - t0) / span * (R - L);
    const y = (v) => B - (v - lo) / (hi - lo) * (B - T);
    c.font = "11px system-ui, sans-serif";
    c.fillStyle = fg; c.strokeStyle = lineCol; c.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = lo + (hi - lo) * i / 4, yy = Math.round(y(v)) + 0.5;
      c.beginPath(); c.moveTo(L, yy); c.lineTo(R, yy); c.stroke();
      c.fillText(v.toFixed(3), 4, yy + 4);
    }
    for (let s = 0; s <= 30; s += 10) {
      const xx = x(now - s * 1000);
      c.fillText(s ? "-" + s + " s" : "now", Math.min(xx - 12, R - 24), hgt - 6);
    }
    c.strokeStyle = accent; c.lineWidth = 2; c.beginPath();
    let first = true;
    for (const [t, v] of pts) {
      if (t < t0) continue;
      if (first) { c.moveTo(x(t), y(v)); first = false; } else c.lineTo(x(t), y(v));
    }
    c.stroke();
  };
  draw();
  window.addEventListener("resize", draw);
  return { draw, stop() { window.removeEventListener("resize", draw); } };
}

/* ---- devices -------------------------------------------------------- */

let supportedCache = null;
async function supported() {
  if (!supportedCache) supportedCache = (await api("GET", "/api/device/supported")).profiles || [];
  return supportedCache;
}

/* One line for a device's condition: its state and, when not polling, the
 * last error the gateway recorded ("Connection refused"). */
function deviceCondition(d) {
  const s = d.stats || {};
  const err = s.last_error || (d.fsm && d.fsm.recent && d.fsm.recent.length &&
    d.state !== "polling" ? d.fsm.recent[d.fsm.recent.length - 1].reason : "");
  return h("span", { class: "cond" }, h("span", { class: stateClass(d.state) }, txt(d.state)),
    d.state !== "polling" && err ? h("span", { class: "err" }, " " + err) : null);
}

function deviceForm(onAdded) {
  const msg = h("div", { id: "add-msg" });
  const rtuOnly = [], v5Only = [], modbusOnly = [], p1SerialOnly = [];
  const field = (label, input, only) => {
    const l = h("label", null, label, input);
    if (only === "rtu") rtuOnly.push(l);
    if (only === "solarman") v5Only.push(l);
    if (only === "modbus") modbusOnly.push(l);
    if (only === "p1-serial") p1SerialOnly.push(l);
    return l;
  };
  /* A P1 meter is its own kind (profile p1, no unit id): its two lines are
   * entries of this list, sent as connection tcp or serial. */
  const conn = h("select", { name: "connection" },
    h("option", { value: "tcp" }, "Modbus TCP"), h("option", { value: "rtu-over-tcp" }, "RTU over TCP"),
    h("option", { value: "rtu" }, "RTU (serial)"),
    h("option", { value: "solarman" }, "Solarman data logger (V5)"),
    h("optgroup", { label: "P1 smart meter (DSMR / HAN)" },
      h("option", { value: "p1-tcp" }, "P1 meter via TCP bridge"),
      h("option", { value: "p1-serial" }, "P1 meter on serial port")));
  /* The P1 line settings come from /api/device/supported (115200 8N1; DSMR
   * 2.2 and 3: 9600 7E1). */
  let p1Line = null;
  const setLine = (l) => {
    if (!l) return;
    form.elements.baudrate.value = l.baudrate;
    form.elements.parity.value = l.parity;
    form.elements.databits.value = l.databits;
    form.elements.stopbits.value = l.stopbits;
  };
  const profile = h("select", { name: "profile" }, h("option", { value: "sunspec" }, "sunspec (auto)"));
  const form = h("form", { class: "f", id: "add-device" },
    field("connection", conn),
    field("host", h("input", { name: "host", placeholder: "192.168.1.50", required: true })),
    field("port", h("input", { name: "port", type: "number", placeholder: "502", min: 1, max: 65535, required: true })),
    field("logger serial", h("input", { name: "logger_serial", type: "number", min: 1, max: 4294967295,
      placeholder: "2712345678", title: "the serial number printed on the Wi-Fi stick" }), "solarman"),
    field("unit id", h("input", { name: "unit_id", type: "number", placeholder: "1", min: 0, max: 255, required: true }), "modbus"),
    field("profile", profile, "modbus"),
    field("id (optional)", h("input", { name: "id", pattern: "[A-Za-z0-9_.\\-]*" })),
    field("name (optional)", h("input", { name: "name" })),
    field("serial port", h("input", { name: "serial_port", value: "/dev/ttyUSB0" }), "rtu"),
    field("baud rate", h("input", { name: "baudrate", type: "number", value: "9600" }), "rtu"),
    field("parity", h("select", { name: "parity" }, ["N", "E", "O"].map((p) => h("option", null, p))), "rtu"),
    field("data bits", h("select", { name: "databits" }, ["8", "7"].map((p) => h("option", null, p))), "p1-serial"),
    field("stop bits", h("input", { name: "stopbits", type: "number", value: "1", min: 1, max: 2 }), "rtu"),
    field("DSMR 2.2 / 3", h("button", { type: "button", id: "p1-dsmr22", title: "older Dutch meters (DSMR 2.2 and 3) send at 9600 baud, 7 data bits, even parity",
      onclick: () => setLine(p1Line && p1Line.dsmr22) }, "9600 7E1"), "p1-serial"),
    h("button", { class: "primary", type: "submit" }, "Add device"));
  let lastKind = conn.value, rtuLine = null;
  const sync = () => {
    const c = conn.value, p1 = c.startsWith("p1-");
    const serial = c === "rtu" || c === "p1-serial", v5 = c === "solarman";
    for (const l of rtuOnly) l.hidden = !serial;
    for (const l of v5Only) l.hidden = !v5;
    for (const l of modbusOnly) l.hidden = p1;
    for (const l of p1SerialOnly) l.hidden = c !== "p1-serial";
    form.elements.unit_id.required = !p1;
    form.elements.logger_serial.required = v5;
    form.elements.port.placeholder = v5 ? "8899" : c === "p1-tcp" ? "8088" : "502";
    if (v5 && !form.elements.port.value) form.elements.port.value = "8899";
    for (const n of ["host", "port"]) {
      form.elements[n].parentElement.hidden = serial;
      form.elements[n].required = !serial;
    }
    /* A P1 meter's line has its own defaults: the RTU line's settings are
     * kept aside while a P1 serial meter is chosen. */
    if (c === "p1-serial" && lastKind !== "p1-serial") {
      const e = form.elements;
      rtuLine = { baudrate: e.baudrate.value, parity: e.parity.value, databits: "8", stopbits: e.stopbits.value };
      setLine(p1Line || { baudrate: 115200, parity: "N", databits: 8, stopbits: 1 });
    } else if (c !== "p1-serial" && lastKind === "p1-serial") setLine(rtuLine);
    lastKind = c;
  };
  conn.addEventListener("change", sync);
  sync();
  supported().then((list) => {
    for (const p of list) {
      if (p.name === "p1") p1Line = p.serial;
      else if (p.name !== "sunspec") profile.append(h("option", { value: p.name }, p.name + " – " + (p.brand || "")));
    }
  }).catch(() => {});
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const e = form.elements;
    const p1 = e.connection.value.startsWith("p1-");
    const body = p1 ? { connection: e.connection.value.slice(3), profile: "p1" }
      : { connection: e.connection.value, unit_id: Number(e.unit_id.value), profile: e.profile.value };
    if (body.connection === "rtu" || body.connection === "serial") {
      Object.assign(body, { serial_port: e.serial_port.value, baudrate: Number(e.baudrate.value),
        parity: e.parity.value, stopbits: Number(e.stopbits.value) });
      if (p1) body.databits = Number(e.databits.value);
    } else {
      Object.assign(body, { host: e.host.value, port: Number(e.port.value) });
    }
    if (body.connection === "solarman") body.logger_serial = Number(e.logger_serial.value);
    if (e.id.value) body.id = e.id.value;
    if (e.name.value) body.name = e.name.value;
    for (const el of form.querySelectorAll(".invalid")) el.classList.remove("invalid");
    try {
      const r = await api("POST", "/api/device", body);
      const id = r && r.device && r.device.id;
      /* Not "added" in green: what the device does is shown by the list's
       * poll (added: connecting, then polling or the error). */
      msg.replaceChildren(h("div", { class: "msg", id: "added-status", "data-id": id || "" },
        "Added " + txt(id) + ": ", h("span", { class: "cond" }, "connecting…")));
      onAdded && onAdded(r);
    } catch (err) {
      const f = err.body && err.body.field && form.elements[err.body.field];
      if (f) f.classList.add("invalid");
      showMsg(msg, "error", (f ? err.body.field + ": " : "") + err.message);
    }
  });
  const prefill = (res) => {
    form.elements.connection.value = res.profile === "p1" ? "p1-" + (res.connection || "tcp") : res.connection || "tcp";
    if (res.logger_serial) form.elements.logger_serial.value = res.logger_serial;
    form.elements.host.value = res.host;
    form.elements.port.value = res.port;
    form.elements.unit_id.value = res.unit_id === undefined || res.unit_id === null ? "" : res.unit_id;
    if (res.profile) form.elements.profile.value = res.profile;
    sync();
    form.scrollIntoView({ behavior: "smooth" });
  };
  const note = h("p", { class: "muted", id: "token-note" }, "Adding or removing a device needs the gateway's API token: " +
    TOKEN_WHERE + ". You are asked for it once; it stays in this browser tab only.");
  return { el: h("div", null, note, form, msg), prefill, msg };
}

function pageDevices() {
  const tbody = h("tbody");
  const table = h("div", { class: "scroll" }, h("table", { id: "device-table" },
    h("thead", null, h("tr", null, [["device"], ["state"], ["profile", "wide-only"], ["serial"], ["last good read", "wide-only"],
      ["latency", "wide-only"], ["errors", "wide-only"], ["reconnects", "wide-only"], [""]].map(([t, c]) => h("th", { class: c }, t)))), tbody));
  const listMsg = h("div");
  const load = async () => {
    try {
      const data = await api("GET", "/api/device");
      const devs = (data && data.devices) || [];
      const added = $("#added-status");
      const ad = added && devs.find((d) => d.id === added.dataset.id);
      if (ad) {
        added.className = "msg " + (ad.state === "polling" ? "ok" : "error");
        added.replaceChildren("Added " + ad.id + ": ", deviceCondition(ad));
      }
      tbody.replaceChildren(...devs.map((d) => {
        const s = d.stats || {};
        const lat = typeof s.latency_last_ms === "number" ? fmtNum(s.latency_last_ms, 1) + " ms" : "–";
        return h("tr", { "data-id": d.id },
          h("td", null, h("a", { href: "#/device/" + encodeURIComponent(d.id) }, d.id), d.name && d.name !== d.id ? h("div", { class: "muted" }, d.name) : null),
          h("td", null, deviceCondition(d)),
          h("td", { class: "wide-only" }, txt(d.profile)),
          h("td", { class: "serial" }, d.serial || "–"),
          h("td", { class: "wide-only" }, fmtAgo(s.last_good_ms)),
          h("td", { class: "num wide-only" }, lat),
          h("td", { class: "num wide-only" }, txt(s.errors)),
          h("td", { class: "num wide-only" }, txt(s.reconnects)),
          h("td", null, h("button", { class: "danger", onclick: async () => {
            if (!confirm("Remove " + d.id + "?")) return;
            try { await api("DELETE", "/api/device?id=" + encodeURIComponent(d.id)); load(); }
            catch (err) { showMsg(listMsg, "error", err.message); }
          } }, "remove")));
      }));
      if (!devs.length) tbody.replaceChildren(h("tr", null, h("td", { colspan: 9, class: "muted" }, "no device configured: add one below or scan")));
    } catch (err) { showMsg(listMsg, "error", err.message); }
  };
  const form = deviceForm(() => load());

  const hosts = h("input", { name: "hosts", value: "127.0.0.1",
    title: "addresses or a.b.c.d/24, comma separated; local: this gateway's own networks" });
  const ports = h("input", { name: "ports", value: "502,5502",
    title: "Modbus TCP 502; Solarman loggers 8899; P1 bridges often 23, 2001 or 8088 (a port that takes the connection but answers no Modbus is listened to up to 11 s for a P1 telegram)" });
  const scanOut = h("div", { id: "scan-results" });
  let scanTimer = null;
  const showScan = (s) => {
    const res = (s && s.results) || [];
    /* replaceChildren would print a null as the text "null": filter it. */
    scanOut.replaceChildren(...[
      h("p", { class: "muted" }, s && s.running ? "scanning… " + txt(s.done || 0) + "/" + (s.total ? txt(s.total) : "?") : (res.length ? res.length + " found" : "nothing found yet")),
      res.length ? h("div", { class: "scroll" }, h("table", null,
        h("thead", null, h("tr", null, ["address", "profile", "serial", ""].map((t) => h("th", null, t)))),
        h("tbody", null, res.map((r) => h("tr", null,
          h("td", { class: "addr" }, txt(r.host) + ":" + txt(r.port), h("div", { class: "muted" }, r.profile === "p1" ? "P1 telegrams" : "unit " + txt(r.unit_id) +
            (r.logger_serial ? ", Solarman logger " + txt(r.logger_serial) : ""))),
          h("td", null, r.profile || "unknown"), h("td", { class: "serial" }, r.serial || "–"),
          h("td", null, h("button", { onclick: () => form.prefill(r) }, "use"))))))) : null].filter(Boolean));
    if (s && s.running) scanTimer = setTimeout(poll, 500);
  };
  /* A poll still in flight when a new scan starts answers for the old one:
   * it must not draw over the new scan (nor end its polling). */
  let scanGen = 0;
  const poll = async () => {
    const g = scanGen;
    try {
      const s = (await api("GET", "/api/device/scan")).scan;
      if (g === scanGen) showScan(s);
    } catch (err) { if (g === scanGen) showMsg(scanOut, "error", err.message); }
  };
  const scanForm = h("form", { class: "f", id: "scan-form", onsubmit: async (ev) => {
    ev.preventDefault();
    clearTimeout(scanTimer);
    const g = ++scanGen;
    try {
      /* POST with the token: a scan reaches the network; GET only reads results */
      const s = (await api("POST", "/api/device/scan", { hosts: hosts.value, ports: ports.value })).scan;
      if (g === scanGen) showScan(s);
    } catch (err) { if (g === scanGen) showMsg(scanOut, "error", err.message); }
  } }, h("label", null, "hosts", hosts), h("label", null, "ports", ports), h("button", { type: "submit" }, "Scan"),
    h("button", { type: "button", title: "scan this gateway's own networks", onclick: () => { hosts.value = "local"; } }, "local networks"));

  main.replaceChildren(h("h2", null, "Devices"),
    h("div", { class: "grid" },
      h("section", { class: "card wide" }, table, listMsg),
      h("section", { class: "card wide" }, h("h3", null, "Add a device"), form.el),
      h("section", { class: "card wide" }, h("h3", null, "Scan for devices"), scanForm, scanOut)));
  load();
  poll();
  const timer = setInterval(load, 2000);
  return () => { clearInterval(timer); clearTimeout(scanTimer); };
}

/* ---- one device ----------------------------------------------------- */

/* A reading field's name and value for people: the unit is the suffix of the
 * field's name (W, V, A, Hz, C, Wh, fract), each unit with one precision. */
const UNITS = {
  W: ["power", (v) => fmtPower(v)],
  V: ["voltage", (v) => fmtFixed(v, 1) + " V"],
  A: ["current", (v) => fmtFixed(v, 2) + " A"],
  Hz: ["frequency", (v) => fmtFixed(v, 2) + " Hz"],
  C: ["temperature", (v) => fmtFixed(v, 1) + " °C"],
  Wh: ["energy", (v) => fmtFixed(v / 1000, 1) + " kWh"],
  VA: ["apparent power", (v) => fmtFixed(v, 0) + " VA"],
  var: ["reactive power", (v) => fmtFixed(v, 0) + " var"],
  fract: ["", (v) => fmtFixed(v * 100, 1) + " %"],
  pct: ["", (v) => fmtFixed(v, 1) + " %"],
};
const NAMES = { SoC_nom_fract: "state of charge", SoH_fract: "state of health", PF: "power factor",
  total_generation_Wh: "total generation", daily_generation_Wh: "generation today", total_import_Wh: "total import", total_export_Wh: "total export",
  total_charge_Wh: "total charged", total_discharge_Wh: "total discharged" };

function fieldText(key, v) {
  const m = /^(?:(.*)_)?([A-Za-z]+)$/.exec(key);
  const unit = m && UNITS[m[2]] ? m[2] : null;
  let name = NAMES[key];
  if (!name) {
    const base = m && unit ? (m[1] || "") : key;
    name = (base.replace(/_/g, " ") + (unit && UNITS[unit][0] ? " " + UNITS[unit][0] : "")).trim();
  }
  if (typeof v !== "number" || !isFinite(v)) return [name, "–"];
  return [name, unit ? UNITS[unit][1](v) : fmtNum(v, 3)];
}

function readingRows(reading) {
  const rows = [];
  for (const [group, vals] of Object.entries(reading || {})) {
    if (!vals || typeof vals !== "object") continue;
    for (const [k, v] of Object.entries(vals)) {
      const [name, val] = fieldText(k, v);
      rows.push(h("tr", { "data-field": group + "." + k },
        h("td", null, group), h("td", { title: k }, name), h("td", { class: "num" }, val)));
    }
  }
  return rows.length ? rows : [h("tr", null, h("td", { colspan: 3, class: "muted" }, "no reading yet"))];
}

function pageDevice(id) {
  const info = h("dl", { class: "kv" });
  const tbody = h("tbody", { id: "reading-body" });
  const ts = h("p", { class: "muted", id: "reading-ts" });
  const out = h("div", { id: "raw-out" });
  const wout = h("div", { id: "raw-write-out" });
  const types = ["u16", "i16", "u32", "i32", "u64", "f32", "str"];
  const rform = h("form", { class: "f", id: "raw-form" },
    h("label", null, "function", h("select", { name: "fc" }, h("option", { value: "3" }, "3 holding"), h("option", { value: "4" }, "4 input"))),
    h("label", null, "address", h("input", { name: "address", type: "number", min: 0, max: 65535, value: "0" })),
    h("label", null, "count", h("input", { name: "count", type: "number", min: 1, max: 125, value: "2" })),
    h("label", null, "type", h("select", { name: "type" }, types.map((t) => h("option", null, t)))),
    h("label", null, "word order", h("select", { name: "order" }, h("option", { value: "big" }, "big (ABCD)"), h("option", { value: "little" }, "little (CDAB)"))),
    h("label", null, "scale", h("input", { name: "scale", value: "1" })),
    h("button", { class: "primary", type: "submit" }, "Read"));
  rform.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const e = rform.elements;
    const q = { device: id, fc: Number(e.fc.value), address: Number(e.address.value), count: Number(e.count.value),
      type: e.type.value, order: e.order.value, scale: Number(e.scale.value) };
    try {
      const r = await api("POST", "/api/inverter/modbus/read", q);
      out.replaceChildren(h("dl", { class: "kv" },
        h("dt", null, "raw"), h("dd", { id: "raw-words" }, (r.raw || []).map((w) => w + " (0x" + w.toString(16).padStart(4, "0") + ")").join(", ")),
        h("dt", null, "value"), h("dd", { id: "raw-value" }, Array.isArray(r.values) ? r.values.map((v) => v === null ? "unavailable" : String(v)).join(", ") : String(r.value))));
    } catch (err) { showMsg(out, "error", err.message); }
  });
  const wform = h("form", { class: "f", id: "raw-write-form" },
    h("label", null, "address", h("input", { name: "address", type: "number", min: 0, max: 65535 })),
    h("label", null, "values (comma separated words)", h("input", { name: "values" })),
    h("button", { type: "submit" }, "Write"));
  wform.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const e = wform.elements;
    try {
      const values = e.values.value.split(",").map((s) => Number(s.trim()));
      const r = await api("POST", "/api/inverter/modbus", { device: id, address: Number(e.address.value), values });
      showMsg(wout, "ok", "written: " + JSON.stringify(r));
    } catch (err) { showMsg(wout, "error", err.message); }
  });

  main.replaceChildren(h("h2", null, "Device ", h("span", { id: "device-id" }, id)),
    h("div", { class: "grid" },
      h("section", { class: "card" }, h("h3", null, "Device"), info),
      h("section", { class: "card" }, h("h3", null, "Readings"), ts,
        h("div", { class: "scroll" }, h("table", null, h("thead", null, h("tr", null, h("th", null, "group"), h("th", null, "field"), h("th", null, "value"))), tbody))),
      h("section", { class: "card wide" }, h("h3", null, "Raw register read"), rform, out),
      h("section", { class: "card wide" }, h("h3", null, "Raw register write"),
        h("p", { class: "muted" }, "Only addresses on the modbus_write_allowlist setting; needs the token; every write is logged."), wform, wout)));

  const showReading = (d) => {
    tbody.replaceChildren(...readingRows(d.reading));
    ts.textContent = d.ts_ms ? "at " + new Date(d.ts_ms).toLocaleTimeString() : "";
  };
  const load = async () => {
    try {
      const data = await api("GET", "/api/device");
      const d = ((data && data.devices) || []).find((x) => x.id === id);
      if (!d) { fillKv(info, [["error", "no such device"]]); return; }
      const s = d.stats || {}, c = d.connection || {};
      fillKv(info, [["state", deviceCondition(d)], ["name", d.name], ["profile", d.profile], ["serial", d.serial || "–"],
        ["connection", [c.connection || c.type, c.host, c.port, c.serial_port, c.unit_id !== undefined ? "unit " + c.unit_id : ""].filter((x) => x !== undefined && x !== "").join(" ")],
        ["last good read", typeof s.last_good_ms === "number" ? fmtTime(s.last_good_ms) + " (" + fmtAgo(s.last_good_ms) + ")" : "never"], ["polls", s.polls], ["errors", s.errors], ["timeouts", s.timeouts], ["reconnects", s.reconnects]]);
      if (!live.readings.has(id) && d.reading) showReading({ ts_ms: s.last_good_ms, reading: d.reading });
    } catch (err) { fillKv(info, [["error", err.message]]); }
  };
  const cached = live.readings.get(id);
  if (cached) showReading(cached);
  const onLive = (kind, d) => { if (kind === "reading" && d.device === id) showReading(d); };
  live.listeners.add(onLive);
  load();
  const timer = setInterval(load, 3000);
  return () => { clearInterval(timer); live.listeners.delete(onLive); };
}

/* ---- settings ------------------------------------------------------- */

/* The settings people change, as forms; each input is named by its path
 * in the settings document ("mqtt.port"), the name the API uses in a 400's
 * "field", so an error lands at its input.  Everything else stays in the
 * JSON editor one click away. */
const SETTINGS_FORM = [
  ["Backend", [
    ["backend.data_urls", "data upload URLs (one a line)", "list"],
    ["backend.graphql_url", "GraphQL URL", "text"],
  ]],
  ["MQTT / Home Assistant", [
    ["mqtt.enabled", "MQTT on", "bool"],
    ["mqtt.host", "broker host", "text"],
    ["mqtt.port", "broker port", "int"],
    ["mqtt.username", "user", "text"],
    ["mqtt.password", "password", "password"],
    ["mqtt.tls", "TLS", "bool"],
    ["mqtt.topic_prefix", "topic prefix", "text"],
    ["mqtt.discovery_prefix", "discovery prefix", "text"],
  ]],
  ["Intervals", [
    ["harvest.poll_interval_ms", "device poll interval (ms)", "int"],
    ["harvest.batch_interval_ms", "signed batch interval (ms)", "int"],
  ]],
  ["Web server", [
    ["http.port", "HTTP port", "int"],
    ["http.bind", "bind address", "text"],
    ["http.allowed_hosts", "allowed Host names (one a line)", "list"],
  ]],
];

function getPath(o, path) {
  for (const k of path.split(".")) o = o && typeof o === "object" ? o[k] : undefined;
  return o;
}

function setPath(o, path, v) {
  const ks = path.split(".");
  for (const k of ks.slice(0, -1)) o = (o[k] && typeof o[k] === "object") ? o[k] : (o[k] = {});
  o[ks[ks.length - 1]] = v;
}

function pageSettings() {
  const ta = h("textarea", { id: "settings-json", spellcheck: "false" });
  const msg = h("div", { id: "settings-msg" });
  const jmsg = h("div", { id: "settings-json-msg" });
  const tok = h("p", { class: "muted" });
  const inputs = new Map();
  let doc = null;
  const showTok = () => { tok.textContent = token.get() ? "A token is set for this tab." : "No token yet: saving asks for it (" + TOKEN_WHERE + ")."; };

  const sections = SETTINGS_FORM.map(([title, fields]) => h("fieldset", { class: "card" }, h("legend", null, title),
    h("div", { class: "f" }, fields.map(([path, label, kind]) => {
      let input;
      if (kind === "bool") input = h("input", { type: "checkbox", name: path });
      else if (kind === "list") input = h("textarea", { name: path, rows: 2, class: "short", spellcheck: "false" });
      else input = h("input", { name: path, type: kind === "int" ? "number" : kind === "password" ? "password" : "text",
        autocomplete: kind === "password" ? "new-password" : "off" });
      const err = h("span", { class: "field-error", "data-for": path });
      inputs.set(path, { input, kind, err });
      return h("label", { class: kind === "bool" ? "check" : null }, kind === "bool" ? [input, label] : [label, input], err);
    }))));
  const form = h("form", { id: "settings-form" }, sections, msg,
    h("menu", null, h("button", { class: "primary", type: "submit", id: "settings-form-save" }, "Save")));

  const fill = () => {
    for (const [path, { input, kind }] of inputs) {
      const v = getPath(doc, path);
      if (kind === "bool") input.checked = v === true;
      else if (kind === "list") input.value = Array.isArray(v) ? v.join("\n") : "";
      else input.value = v === undefined || v === null ? "" : String(v);
    }
    ta.value = JSON.stringify(doc, null, 2);
  };
  const clearErrors = () => {
    for (const { input, err } of inputs.values()) { input.classList.remove("invalid"); err.textContent = ""; }
  };
  const load = async () => {
    try { doc = await api("GET", "/api/settings"); fill(); }
    catch (err) { showMsg(msg, "error", err.message); }
  };
  /* The API's 400 names the field: show the message at its input. */
  const save = async (body, out) => {
    clearErrors();
    try {
      await api("POST", "/api/settings", body);
      showMsg(out, "ok", "Saved and applied.");
      await load();
    } catch (err) {
      const f = err.body && err.body.field;
      const at = f && (inputs.get(f) || inputs.get(f.replace(/\[\d+\]$/, "")));
      if (at) {
        at.input.classList.add("invalid");
        at.err.textContent = err.message;
        showMsg(out, "error", "Not saved: " + f + ": " + err.message);
        at.input.focus();
      } else showMsg(out, "error", "Not saved" + (f ? ": " + f : "") + ": " + err.message);
    }
    showTok();
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!doc) return;
    const body = JSON.parse(JSON.stringify(doc));
    for (const [path, { input, kind }] of inputs) {
      let v;
      if (kind === "bool") v = input.checked;
      else if (kind === "list") v = input.value.split(/[\n,]/).map((x) => x.trim()).filter(Boolean);
      else if (kind === "int") v = input.value.trim() === "" ? input.value : Number(input.value);
      else v = input.value;
      setPath(body, path, v);
    }
    save(body, msg);
  });

  main.replaceChildren(h("h2", null, "Settings"),
    h("p", { class: "muted" }, "The gateway checks, saves and applies changes without a restart. Secrets show as *** and are kept unless changed."),
    form,
    h("details", { class: "card", id: "settings-raw" }, h("summary", null, "All settings as JSON"),
      ta, jmsg,
      h("menu", null,
        h("button", { onclick: load }, "Reload"),
        h("button", { class: "primary", id: "settings-save", onclick: () => {
          let d;
          try { d = JSON.parse(ta.value); } catch (err) { showMsg(jmsg, "error", "not JSON: " + err.message); return; }
          save(d, jmsg);
        } }, "Save JSON"))),
    h("menu", null, h("button", { onclick: () => { token.clear(); showTok(); } }, "Forget token")),
    tok);
  showTok();
  load();
  return null;
}

/* ---- identity ------------------------------------------------------- */

function pageIdentity() {
  const dl = h("dl", { class: "kv", id: "identity" });
  const pem = h("pre", { id: "pubkey-pem" });
  main.replaceChildren(h("h2", null, "Gateway identity"),
    h("div", { class: "grid" }, h("section", { class: "card" }, dl), h("section", { class: "card" }, h("h3", null, "Public key (PEM)"), pem)));
  (async () => {
    let c = null, n = null;
    try { c = await api("GET", "/api/crypto"); } catch (e) { fillKv(dl, [["error", e.message]]); return; }
    try { n = await api("GET", "/api/name"); } catch (e) { /* name query not running */ }
    fillKv(dl, [["name", n ? (n.name || "(not named yet)") : (c.deviceName || "(unknown)")],
      ["serial", c.serialNumber], ["signer", c.backend],
      ["public key (hex X‖Y)", c.publicKey],
      ["JWK", c.publicKey_jwk ? JSON.stringify(c.publicKey_jwk) : undefined]]);
    pem.textContent = c.publicKey_pem || "";
  })();
  return null;
}

/* ---- router --------------------------------------------------------- */

let cleanup = null;
function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  const hash = location.hash.replace(/^#/, "") || "/";
  let page = "overview";
  if (hash.startsWith("/device/")) { page = "devices"; cleanup = pageDevice(decodeURIComponent(hash.slice(8))); }
  else if (hash === "/devices") { page = "devices"; cleanup = pageDevices(); }
  else if (hash === "/settings") { page = "settings"; cleanup = pageSettings(); }
  else if (hash === "/identity") { page = "identity"; cleanup = pageIdentity(); }
  else cleanup = pageOverview();
  for (const a of document.querySelectorAll("nav a[data-page]")) a.classList.toggle("active", a.dataset.page === page);
  document.body.dataset.page = page;
}

window.addEventListener("hashchange", route);
liveStart();
route();
tlsNotice();
loadNotes();
setInterval(loadNotes, 10000);
