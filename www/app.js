/* egw web UI: plain JavaScript, no framework.  Hash routes:
 *   #/             overview (power flow, 10 Hz frequency chart, batches, state)
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

function fmtPower(w) {
  if (typeof w !== "number" || !isFinite(w)) return "–";
  const a = Math.abs(w);
  return a >= 1000 ? fmtNum(w / 1000, 2) + " kW" : fmtNum(w, 0) + " W";
}

function fmtAgo(ms) {
  if (!ms) return "never";
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
async function api(method, path, body) {
  for (let attempt = 0; attempt < 3; attempt++) {
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
    if (r.status === 401 && method !== "GET") { token.clear(); continue; }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }
  throw new ApiError(401, { error: "token refused" });
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

function sumField(group, name) {
  let sum = null;
  for (const d of live.readings.values()) {
    const g = d.reading && d.reading[group];
    if (g && typeof g[name] === "number") sum = (sum || 0) + g[name];
  }
  return sum;
}

function flowSvg() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.id = "flow";
  svg.setAttribute("viewBox", "0 0 400 300");
  const nodes = {
    pv: [200, 40, "Solar", "#e0a100"], grid: [60, 150, "Grid", "#8a4fbf"],
    house: [340, 150, "House", "#d0573b"], battery: [200, 260, "Battery", "#2f7fd1"],
  };
  const mk = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  const dots = {};
  for (const [k, [x, y]] of Object.entries(nodes)) {
    mk("line", { x1: x, y1: y, x2: 200, y2: 150 });
    dots[k] = mk("circle", { class: "dot", cx: x, cy: y, r: 5, fill: nodes[k][3], visibility: "hidden" });
  }
  mk("circle", { cx: 200, cy: 150, r: 8, fill: "#5d6a62" });
  const vals = {};
  for (const [k, [x, y, label, color]] of Object.entries(nodes)) {
    mk("circle", { cx: x, cy: y, r: 30, class: "node", stroke: color, "stroke-width": 4 });
    mk("text", { x, y: y - 36 < 12 ? y + 50 : y - 36 }, label);
    vals[k] = mk("text", { x, y: y + 5, class: "val", id: "flow-" + k }, "–");
  }
  return { svg, nodes, dots, vals };
}

function pageOverview() {
  const flow = flowSvg();
  const canvas = h("canvas", { id: "freq-chart", width: 800, height: 220 });
  const hzNow = h("div", { class: "big", id: "hz-now" }, "–");
  const hzStats = h("div", { class: "muted", id: "hz-stats" }, "waiting for samples");
  const gw = h("dl", { class: "kv", id: "gw-state" });
  const batches = h("dl", { class: "kv", id: "batches" });
  main.replaceChildren(
    h("h2", null, "Overview"),
    h("div", { class: "grid" },
      h("section", { class: "card" }, h("h3", null, "Power flow"), flow.svg),
      h("section", { class: "card" }, h("h3", null, "Grid frequency"), hzNow, hzStats, canvas),
      h("section", { class: "card" }, h("h3", null, "Gateway"), gw),
      h("section", { class: "card" }, h("h3", null, "Signed batches"), batches)));

  let phase = 0;
  const power = { pv: null, battery: null, grid: null, house: null };
  const updateFlow = () => {
    const pv = sumField("pv", "W"), bat = sumField("battery", "W"), grid = sumField("meter", "W");
    power.pv = pv === null ? null : -pv;          /* generation, positive */
    power.battery = bat;                           /* charging positive */
    power.grid = grid;                             /* import positive */
    power.house = (grid === null && pv === null) ? null : (grid || 0) + (power.pv || 0) - (bat || 0);
    flow.vals.pv.textContent = fmtPower(power.pv);
    flow.vals.battery.textContent = fmtPower(power.battery);
    flow.vals.grid.textContent = fmtPower(power.grid);
    flow.vals.house.textContent = fmtPower(power.house);
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
      dot.setAttribute("cy", y + (150 - y) * t);
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
      fillKv(gw, [
        ["state", st.state],
        ["name", st.name && st.name.name ? st.name.name : "(not named yet)"],
        ["serial", st.signer && st.signer.serial],
        ["signer", st.signer && (st.signer.backend + (st.signer.healthy === false ? " (failing)" : ""))],
        ["backend", !up.enabled ? "not configured" : (up.last_error ? "unreachable: " + (up.last_error_detail || up.last_error) : "ok (" + (up.ok || 0) + " uploads)")],
        ["devices", Array.isArray(st.devices) ? st.devices.length + " (" + st.devices.filter((d) => d.state === "polling").length + " polling)" : undefined],
        ["uptime", st.uptime_ms !== undefined ? fmtNum(st.uptime_ms / 1000, 0) + " s" : undefined],
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
  return () => { clearInterval(timer); clearInterval(anim); chart.stop(); live.listeners.delete(onLive); };
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
  dl.replaceChildren(...rows.filter((r) => r[1] !== undefined && r[1] !== null)
    .flatMap(([k, v]) => [h("dt", null, k), h("dd", { "data-key": k }, typeof v === "object" ? JSON.stringify(v) : String(v))]));
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

function deviceForm(onAdded) {
  const msg = h("div");
  const rtuOnly = [];
  const field = (label, input, rtu) => {
    const l = h("label", null, label, input);
    if (rtu) rtuOnly.push(l);
    return l;
  };
  const conn = h("select", { name: "connection" },
    h("option", { value: "tcp" }, "Modbus TCP"), h("option", { value: "rtu-over-tcp" }, "RTU over TCP"),
    h("option", { value: "rtu" }, "RTU (serial)"));
  const profile = h("select", { name: "profile" }, h("option", { value: "sunspec" }, "sunspec (auto)"));
  const form = h("form", { class: "f", id: "add-device" },
    field("connection", conn),
    field("host", h("input", { name: "host", value: "127.0.0.1" })),
    field("port", h("input", { name: "port", type: "number", value: "502", min: 1, max: 65535 })),
    field("unit id", h("input", { name: "unit_id", type: "number", value: "1", min: 0, max: 255 })),
    field("profile", profile),
    field("id (optional)", h("input", { name: "id", pattern: "[A-Za-z0-9_.\\-]*" })),
    field("name (optional)", h("input", { name: "name" })),
    field("serial port", h("input", { name: "serial_port", value: "/dev/ttyUSB0" }), true),
    field("baud rate", h("input", { name: "baudrate", type: "number", value: "9600" }), true),
    field("parity", h("select", { name: "parity" }, ["N", "E", "O"].map((p) => h("option", null, p))), true),
    field("stop bits", h("input", { name: "stopbits", type: "number", value: "1", min: 1, max: 2 }), true),
    h("button", { class: "primary", type: "submit" }, "Add device"));
  const sync = () => {
    const rtu = conn.value === "rtu";
    for (const l of rtuOnly) l.hidden = !rtu;
    for (const n of ["host", "port"]) form.elements[n].parentElement.hidden = rtu;
  };
  conn.addEventListener("change", sync);
  sync();
  supported().then((list) => {
    for (const p of list) if (p.name !== "sunspec") profile.append(h("option", { value: p.name }, p.name + " – " + (p.brand || "")));
  }).catch(() => {});
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const e = form.elements;
    const body = { connection: e.connection.value, unit_id: Number(e.unit_id.value), profile: e.profile.value };
    if (body.connection === "rtu") {
      Object.assign(body, { serial_port: e.serial_port.value, baudrate: Number(e.baudrate.value),
        parity: e.parity.value, stopbits: Number(e.stopbits.value) });
    } else {
      Object.assign(body, { host: e.host.value, port: Number(e.port.value) });
    }
    if (e.id.value) body.id = e.id.value;
    if (e.name.value) body.name = e.name.value;
    try {
      const r = await api("POST", "/api/device", body);
      showMsg(msg, "ok", "added " + ((r && r.device && r.device.id) || ""));
      onAdded && onAdded(r);
    } catch (err) { showMsg(msg, "error", err.message); }
  });
  const prefill = (res) => {
    form.elements.connection.value = "tcp";
    form.elements.host.value = res.host;
    form.elements.port.value = res.port;
    form.elements.unit_id.value = res.unit_id;
    if (res.profile) form.elements.profile.value = res.profile;
    sync();
    form.scrollIntoView({ behavior: "smooth" });
  };
  return { el: h("div", null, form, msg), prefill };
}

function pageDevices() {
  const tbody = h("tbody");
  const table = h("div", { class: "scroll" }, h("table", { id: "device-table" },
    h("thead", null, h("tr", null, ["device", "state", "profile", "serial", "last good read", "latency",
      "errors", "reconnects", ""].map((t) => h("th", null, t)))), tbody));
  const listMsg = h("div");
  const load = async () => {
    try {
      const data = await api("GET", "/api/device");
      const devs = (data && data.devices) || [];
      tbody.replaceChildren(...devs.map((d) => {
        const s = d.stats || {};
        const lat = typeof s.latency_last_ms === "number" ? fmtNum(s.latency_last_ms, 1) + " ms" : "–";
        return h("tr", { "data-id": d.id },
          h("td", null, h("a", { href: "#/device/" + encodeURIComponent(d.id) }, d.id), d.name ? h("div", { class: "muted" }, d.name) : null),
          h("td", null, h("span", { class: stateClass(d.state) }, d.state)),
          h("td", null, d.profile),
          h("td", null, d.serial || "–"),
          h("td", null, fmtAgo(s.last_good_ms)),
          h("td", { class: "num" }, lat),
          h("td", { class: "num" }, s.errors !== undefined ? s.errors : "–"),
          h("td", { class: "num" }, s.reconnects !== undefined ? s.reconnects : "–"),
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
  const ports = h("input", { name: "ports", value: "502,5502" });
  const scanOut = h("div", { id: "scan-results" });
  let scanTimer = null;
  const showScan = (s) => {
    const res = (s && s.results) || [];
    scanOut.replaceChildren(
      h("p", { class: "muted" }, s && s.running ? "scanning… " + (s.done || 0) + "/" + (s.total || "?") : (res.length ? res.length + " found" : "nothing found yet")),
      res.length ? h("div", { class: "scroll" }, h("table", null,
        h("thead", null, h("tr", null, ["host", "port", "unit", "profile", "serial", ""].map((t) => h("th", null, t)))),
        h("tbody", null, res.map((r) => h("tr", null, h("td", null, r.host), h("td", null, r.port), h("td", null, r.unit_id),
          h("td", null, r.profile || "unknown"), h("td", null, r.serial || "–"),
          h("td", null, h("button", { onclick: () => form.prefill(r) }, "use"))))))) : null);
    if (s && s.running) scanTimer = setTimeout(poll, 500);
  };
  const poll = async () => {
    try { showScan((await api("GET", "/api/device/scan")).scan); } catch (err) { showMsg(scanOut, "error", err.message); }
  };
  const scanForm = h("form", { class: "f", id: "scan-form", onsubmit: async (ev) => {
    ev.preventDefault();
    clearTimeout(scanTimer);
    try {
      /* POST with the token: a scan reaches the network; GET only reads results */
      showScan((await api("POST", "/api/device/scan", { hosts: hosts.value, ports: ports.value })).scan);
    } catch (err) { showMsg(scanOut, "error", err.message); }
  } }, h("label", null, "hosts", hosts), h("label", null, "ports", ports), h("button", { type: "submit" }, "Scan"),
    h("button", { type: "button", onclick: () => { hosts.value = "local"; } }, "this gateway's networks"));

  main.replaceChildren(h("h2", null, "Devices"),
    h("div", { class: "grid" },
      h("section", { class: "card wide" }, table, listMsg),
      h("section", { class: "card wide" }, h("h3", null, "Add a device"), form.el),
      h("section", { class: "card wide" }, h("h3", null, "Scan for Modbus devices"), scanForm, scanOut)));
  load();
  poll();
  const timer = setInterval(load, 2000);
  return () => { clearInterval(timer); clearTimeout(scanTimer); };
}

/* ---- one device ----------------------------------------------------- */

function readingRows(reading) {
  const rows = [];
  for (const [group, vals] of Object.entries(reading || {})) {
    if (!vals || typeof vals !== "object") continue;
    for (const [k, v] of Object.entries(vals)) rows.push(h("tr", { "data-field": group + "." + k },
      h("td", null, group), h("td", null, k), h("td", { class: "num" }, fmtNum(v, 3))));
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
      fillKv(info, [["state", d.state], ["name", d.name], ["profile", d.profile], ["serial", d.serial || "–"],
        ["connection", [c.connection || c.type, c.host, c.port, c.serial_port, c.unit_id !== undefined ? "unit " + c.unit_id : ""].filter((x) => x !== undefined && x !== "").join(" ")],
        ["last good read", fmtAgo(s.last_good_ms)], ["polls", s.polls], ["errors", s.errors], ["timeouts", s.timeouts], ["reconnects", s.reconnects]]);
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

function pageSettings() {
  const ta = h("textarea", { id: "settings-json", spellcheck: "false" });
  const msg = h("div", { id: "settings-msg" });
  const tok = h("p", { class: "muted" });
  const showTok = () => { tok.textContent = token.get() ? "A token is set for this tab." : "No token yet: you will be asked when saving."; };
  const load = async () => {
    try { ta.value = JSON.stringify(await api("GET", "/api/settings"), null, 2); }
    catch (err) { showMsg(msg, "error", err.message); }
  };
  main.replaceChildren(h("h2", null, "Settings"),
    h("section", { class: "card" },
      h("p", { class: "muted" }, "Edit and save: the gateway validates, saves atomically and applies without restart. Secrets show as *** and are kept unless changed."),
      ta, msg,
      h("menu", null,
        h("button", { onclick: () => { token.clear(); showTok(); } }, "Forget token"),
        h("button", { onclick: load }, "Reload"),
        h("button", { class: "primary", id: "settings-save", onclick: async () => {
          let doc;
          try { doc = JSON.parse(ta.value); } catch (err) { showMsg(msg, "error", "not JSON: " + err.message); return; }
          try { await api("POST", "/api/settings", doc); showMsg(msg, "ok", "saved and applied"); load(); }
          catch (err) { showMsg(msg, "error", err.message); }
          showTok();
        } }, "Save")),
      tok));
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
