"""Device API, live stream, notifications, UI assets and /metrics of a real
egwd talking to a real egw-sim on loopback (issue 5).

Every route: success, 400 naming the field, 401 without the token, 404; a
device added through the API survives a restart of egwd; /metrics parses
with a strict Prometheus text-format parser written here."""
import errno
import json
import os
import math
import re
import signal
import socket
import threading
import time
import unittest

import egwtest as t


def sse_events(port, seconds, path="/api/live"):
    """Read the live stream for `seconds`; return [(event, data dict, t_recv)]."""
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n".encode())
    buf = b""
    head = None
    out = []
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            now = time.time()
            buf += d
            if head is None:
                if b"\r\n\r\n" not in buf:
                    continue
                head, buf = buf.split(b"\r\n\r\n", 1)
            # chunked transfer coding: the framing bytes sit between events;
            # strip chunk-size lines by parsing the SSE fields only.
            for block in re.split(rb"\n\n", buf)[:-1]:
                ev, data = None, None
                for line in block.split(b"\n"):
                    line = line.strip(b"\r")
                    if line.startswith(b"event: "):
                        ev = line[7:].decode()
                    elif line.startswith(b"data: "):
                        data = json.loads(line[6:])
                if ev:
                    out.append((ev, data, now))
            buf = re.split(rb"\n\n", buf)[-1]
    finally:
        s.close()
    return head.decode(), out


# ---- a strict parser of the Prometheus text format (0.0.4) -------------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ValueError(f"bad value {s!r}")
    return float(s)


def parse_labels(s, lineno):
    """s is the text between { and }; returns dict.  Strict about escapes."""
    labels = {}
    i = 0
    while i < len(s):
        m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", s[i:])
        if not m:
            raise ValueError(f"line {lineno}: bad label at {s[i:]!r}")
        name = m.group(1)
        i += m.end()
        val = []
        while True:
            if i >= len(s):
                raise ValueError(f"line {lineno}: unterminated label value")
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ValueError(f"line {lineno}: bad escape \\{nxt}")
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ValueError(f"line {lineno}: newline in label value")
            else:
                val.append(c)
                i += 1
        if name in labels:
            raise ValueError(f"line {lineno}: duplicate label {name}")
        labels[name] = "".join(val)
        if i < len(s):
            if s[i] != ",":
                raise ValueError(f"line {lineno}: expected ',' in labels")
            i += 1
    return labels


def parse_prometheus(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, value)]}}.
    Raises ValueError on anything the format does not allow: a TYPE after
    samples of its family, a family declared twice, samples of one family
    not together, duplicate series, bad names/values, histograms whose
    buckets are not cumulative or lack +Inf, _count != +Inf bucket."""
    if not text.endswith("\n"):
        raise ValueError("must end with a newline")
    fams = {}
    order = []
    current = None
    seen_series = set()
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not METRIC_NAME.match(name):
                    raise ValueError(f"line {lineno}: bad metric name {name!r}")
                f = fams.setdefault(name, {"type": None, "help": None, "samples": []})
                if f["samples"]:
                    raise ValueError(f"line {lineno}: {parts[1]} after samples of {name}")
                if parts[1] == "TYPE":
                    if f["type"] is not None:
                        raise ValueError(f"line {lineno}: second TYPE for {name}")
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ValueError(f"line {lineno}: bad TYPE line")
                    f["type"] = parts[3]
                else:
                    if f["help"] is not None:
                        raise ValueError(f"line {lineno}: second HELP for {name}")
                    f["help"] = parts[3] if len(parts) == 4 else ""
                if name not in order:
                    order.append(name)
                current = name
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?", line)
        if not m:
            raise ValueError(f"line {lineno}: cannot parse sample {line!r}")
        name, labels = m.group(1), parse_labels(m.group(3) or "", lineno)
        value = parse_value(m.group(4))
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)] if name.endswith(suffix) else None
            if base and base in fams and fams[base]["type"] in ("histogram", "summary"):
                fam = base
        if fam not in fams:
            fams[fam] = {"type": None, "help": None, "samples": []}
            order.append(fam)
        elif fam != current and fams[fam]["samples"]:
            raise ValueError(f"line {lineno}: samples of {fam} are not grouped")
        current = fam
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ValueError(f"line {lineno}: duplicate series {key}")
        seen_series.add(key)
        ftype = fams[fam]["type"]
        if ftype == "counter" and (value < 0 or math.isnan(value)):
            raise ValueError(f"line {lineno}: negative counter")
        if name.endswith("_bucket") and ftype == "histogram" and "le" not in labels:
            raise ValueError(f"line {lineno}: bucket without le")
        fams[fam]["samples"].append((name, labels, value))
    for name, f in fams.items():
        if f["type"] != "histogram":
            continue
        series = {}
        for sname, labels, value in f["samples"]:
            other = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            series.setdefault(other, {"buckets": [], "count": None, "sum": None})
            if sname == name + "_bucket":
                series[other]["buckets"].append((parse_value(labels["le"]), value))
            elif sname == name + "_count":
                series[other]["count"] = value
            elif sname == name + "_sum":
                series[other]["sum"] = value
        for other, s in series.items():
            b = s["buckets"]
            if not b or b[-1][0] != math.inf:
                raise ValueError(f"{name}{other}: no +Inf bucket")
            for (le1, v1), (le2, v2) in zip(b, b[1:]):
                if not le1 < le2 or v2 < v1:
                    raise ValueError(f"{name}{other}: buckets not increasing/cumulative")
            if s["count"] is None or s["sum"] is None or s["count"] != b[-1][1]:
                raise ValueError(f"{name}{other}: _count/_sum missing or != +Inf bucket")
    return fams


def read_body(qs):
    """A raw read's JSON body from the query string the GET form took."""
    body = {}
    for kv in filter(None, qs.split("&")):
        k, v = kv.split("=", 1)
        try:
            v = int(v)
        except ValueError:
            try:
                v = float(v) if k == "scale" else v
            except ValueError:
                pass
        body[k] = v
    return body


def foreign_address():
    """A documentation address (RFC 5737) on none of this machine's IPv4
    subnets, or None.  Used only for requests egwd must refuse."""
    import ipaddress
    import subprocess
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True).stdout
    nets = [ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
            for i in json.loads(out or "[]") for a in i.get("addr_info", [])]
    for cand in ("198.51.100.7", "203.0.113.7", "192.0.2.7"):
        if not any(ipaddress.ip_address(cand) in n for n in nets):
            return cand
    return None


class PromParserTest(unittest.TestCase):
    """The parser itself must refuse what the format refuses."""

    def test_rejects(self):
        good = "# TYPE a counter\na 1\n"
        parse_prometheus(good)
        for bad in ["a 1",                                  # no final newline
                    "# TYPE a counter\na -1\n",             # negative counter
                    "# TYPE a counter\n# TYPE a counter\na 1\n",
                    "a{x=\"1\"} 1\na{x=\"1\"} 2\n",           # duplicate series
                    "a 1\nb 1\na{x=\"2\"} 1\n",              # not grouped
                    "a{x=\"\\q\"} 1\n",                       # bad escape
                    "a{1x=\"1\"} 1\n",                       # bad label name
                    "a one\n",
                    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
                    "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"]:
            with self.assertRaises(ValueError, msg=bad):
                parse_prometheus(bad)


class ApiTest(unittest.TestCase):
    def setUp(self):
        self.sim = t.EgwSim(self, [("sunspec", 1)], control=False)
        self.simport = self.sim.servers[0]["port"]
        self.egwd = t.Egwd(self, set={"modbus_write_allowlist": [
            {"device": "inv1", "address": 40068, "count": 1}]})

    def req(self, method, path, body=None, token=True, headers=None):
        h = dict(headers or {})
        if token:
            h.update(self.egwd.auth())
        return t.http_json(self.egwd.port, method, path, body=body, headers=h)

    def add_inverter(self, **extra):
        body = {"connection": "tcp", "host": "127.0.0.1", "port": self.simport, "unit_id": 1,
                "profile": "sunspec", "id": "inv1"}
        body.update(extra)
        st, o = self.req("POST", "/api/device", body)
        self.assertEqual(st, 201, o)
        return o

    def wait_polling(self, egwd=None, dev="inv1"):
        egwd = egwd or self.egwd

        def polling():
            for d in egwd.get("/api/device")["devices"]:
                if d["id"] == dev and d["state"] == "polling" and d["reading"]:
                    return d
        return t.wait_until(polling, timeout=15, what=f"{dev} polling")

    # -- assets --------------------------------------------------------------

    def test_assets(self):
        p = self.egwd.port
        st, h, body = t.http(p, "GET", "/")
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "text/html; charset=utf-8")
        self.assertIn(b"<!doctype html>", body)
        self.assertIn("no-cache", h["cache-control"])
        etag = h["etag"]
        self.assertRegex(etag, r'^"[0-9a-f]{16}"$')
        st, h2, body = t.http(p, "GET", "/", headers={"If-None-Match": etag})
        self.assertEqual((st, body), (304, b""))
        self.assertEqual(h2["etag"], etag)
        st, h, body = t.http(p, "GET", "/app.js")
        self.assertEqual((st, h["content-type"]), (200, "text/javascript; charset=utf-8"))
        self.assertIn(b"EventSource", body)
        self.assertEqual(t.http(p, "GET", "/app.css")[1]["content-type"], "text/css; charset=utf-8")
        self.assertEqual(t.http(p, "GET", "/favicon.svg")[1]["content-type"], "image/svg+xml")
        # The status page moved to /status.
        st, h, body = t.http(p, "GET", "/status")
        self.assertEqual(st, 200)
        self.assertIn(b"egw", body)
        # No path reaches the filesystem.
        for bad in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/app.js/../../etc/passwd",
                    "//etc/passwd", "/embed.py", "/meson.build", "/www/app.js", "/index.html/",
                    "/app.js%2f..%2f..%2fetc%2fpasswd"):
            s = socket.create_connection(("127.0.0.1", p))
            s.sendall(f"GET {bad} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            s.close()
            self.assertTrue(data.startswith(b"HTTP/1.1 404") or data.startswith(b"HTTP/1.1 400"),
                            (bad, data[:100]))
            self.assertNotIn(b"root:", data)

    # -- device API ----------------------------------------------------------

    def test_device_api_and_restart(self):
        self.assertEqual(self.egwd.get("/api/device"), {"devices": []})
        base = {"connection": "tcp", "host": "127.0.0.1", "port": self.simport, "profile": "sunspec"}
        # 401 without a token, with a wrong one
        st, o = self.req("POST", "/api/device", base, token=False)
        self.assertEqual(st, 401, o)
        st, o = t.http_json(self.egwd.port, "POST", "/api/device", body=base,
                            headers={"Authorization": "Bearer " + "0" * 64})
        self.assertEqual(st, 401, o)
        # 400 naming the field
        cases = [
            (dict(base, connection="usb"), "connection"),
            (dict(base, port=70000), "port"),
            (dict(base, port="502"), "port"),
            ({k: v for k, v in base.items() if k != "host"}, "host"),
            (dict(base, host="not a host!"), "host"),
            (dict(base, unit_id=300), "unit_id"),
            (dict(base, profile="nosuchprofile"), "profile"),
            ({k: v for k, v in base.items() if k != "profile"}, "profile"),
            (dict(base, id="bad id/../"), "id"),
            (dict(base, colour="red"), "colour"),
            (dict(base, connection="rtu"), "serial_port"),
            (dict(base, connection="rtu", serial_port="/dev/ttyUSB0", parity="X"), "parity"),
        ]
        for body, field in cases:
            st, o = self.req("POST", "/api/device", body)
            self.assertEqual(st, 400, (body, o))
            self.assertEqual(o.get("field"), field, (body, o))
            self.assertIn(field, o["error"])
        st, _, data = t.http(self.egwd.port, "POST", "/api/device", body="{not json",
                             headers=self.egwd.auth())
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(data)["field"], "body")
        self.assertEqual(self.egwd.get("/api/device"), {"devices": []})

        # 201, opened at once, polled, statistics present
        o = self.add_inverter(name="Roof")
        self.assertEqual(o["device"]["id"], "inv1")
        d = self.wait_polling()
        self.assertEqual(d["profile"], "sunspec")
        self.assertTrue(d["serial"])
        self.assertLess(d["reading"]["pv"]["W"], 0)
        for k in ("errors", "reconnects", "last_good_ms", "latency_last_ms", "timeouts"):
            self.assertIn(k, d["stats"])
        # duplicate id
        st, o = self.req("POST", "/api/device", dict(base, id="inv1"))
        self.assertEqual((st, o.get("field")), (400, "id"))
        # a second one without id gets a stable generated id
        st, o = self.req("POST", "/api/device", dict(base, port=t.free_port()))
        self.assertEqual(st, 201, o)
        gen = o["device"]["id"]
        self.assertRegex(gen, r"^dev\d+$")

        # DELETE: 401, 400, 404, 200 by query and by body
        st, o = self.req("DELETE", f"/api/device?id={gen}", token=False)
        self.assertEqual(st, 401)
        st, o = self.req("DELETE", "/api/device")
        self.assertEqual((st, o.get("field")), (400, "id"))
        st, o = self.req("DELETE", "/api/device?id=nosuch")
        self.assertEqual((st, o.get("field")), (404, "id"))
        st, o = self.req("DELETE", "/api/device", {"id": gen})
        self.assertEqual((st, o), (200, {"deleted": gen}))
        ids = [d["id"] for d in self.egwd.get("/api/device")["devices"]]
        self.assertEqual(ids, ["inv1"])

        # survives a restart of egwd, without the backend, polling again
        state_dir = self.egwd.state_dir
        self.assertEqual(self.egwd.stop(), 0)
        with open(f"{state_dir}/settings.json") as f:
            saved = json.load(f)
        self.assertEqual([d["id"] for d in saved["devices"]], ["inv1"])
        egwd2 = t.Egwd(self, state_dir=state_dir)
        d = self.wait_polling(egwd2)
        self.assertEqual(d["name"], "Roof")
        # removal also persists
        st, o = t.http_json(egwd2.port, "DELETE", "/api/device?id=inv1", headers=egwd2.auth())
        self.assertEqual(st, 200, o)
        self.assertEqual(egwd2.get("/api/device"), {"devices": []})

    def test_api_device_replaces_command_line_devices(self):
        """The demo starts egwd with --set devices=[...]; a device added in the
        UI must still take effect, and be kept."""
        self.egwd.stop()
        first = {"connection": "tcp", "host": "127.0.0.1", "port": self.simport, "unit_id": 1,
                 "profile": "sunspec", "id": "cli"}
        self.egwd = t.Egwd(self, set={"devices": [first]})
        # Another unit behind the same gateway: the same host, port and unit
        # twice would be one device polled twice (refused).
        st, o = self.req("POST", "/api/device", dict(first, id="same"))
        self.assertEqual((st, o.get("field")), (400, "host"), o)
        st, o = self.req("POST", "/api/device", dict(first, id="added", unit_id=2))
        self.assertEqual(st, 201, o)
        ids = [d["id"] for d in self.egwd.get("/api/device")["devices"]]
        self.assertEqual(ids, ["cli", "added"])
        with open(os.path.join(self.egwd.state_dir, "settings.json")) as f:
            saved = json.load(f)
        self.assertEqual([d["id"] for d in saved["devices"]], ["cli", "added"])

    def test_settings_post_applies_devices(self):
        st, o = self.req("POST", "/api/settings", {"devices": [
            {"connection": "tcp", "host": "127.0.0.1", "port": self.simport, "unit_id": 1,
             "profile": "sunspec", "id": "inv1"}]})
        self.assertEqual(st, 200, o)
        self.wait_polling()
        st, o = self.req("POST", "/api/settings", {"devices": []})
        self.assertEqual(st, 200, o)
        t.wait_until(lambda: self.egwd.get("/api/device")["devices"] == [], what="device removed")

    def test_supported(self):
        o = self.egwd.get("/api/device/supported")
        names = {p["name"]: p for p in o["profiles"]}
        self.assertIn("sunspec", names)
        self.assertGreater(len(names), 10)
        for p in o["profiles"]:
            for k in ("brand", "family", "dtype", "reads"):
                self.assertIn(k, p)
        self.assertIn("pv.W", names["sunspec"]["reads"])
        self.assertEqual(t.http(self.egwd.port, "POST", "/api/device/supported",
                                headers=self.egwd.auth())[0], 405)

    def test_scan(self):
        closed = t.free_port()
        scan = "/api/device/scan"
        st, o = self.req("POST", scan, {"hosts": "127.0.0.1", "ports": "notaport"})
        self.assertEqual((st, o.get("field")), (400, "ports"))
        st, o = self.req("POST", scan, {"hosts": "10.0.0.300", "ports": "502"})
        self.assertEqual((st, o.get("field")), (400, "hosts"))
        st, o = self.req("POST", scan, {"hosts": "127.0.0.0/16", "ports": "502"})
        self.assertEqual((st, o.get("field")), (400, "hosts"))
        st, o = self.req("POST", scan, {"ports": "502"})  # the hosts are the user's choice
        self.assertEqual((st, o.get("field")), (400, "hosts"))
        # Only the gateway's own networks: a documentation address that is on
        # none of this machine's subnets is refused before any packet is sent.
        foreign = foreign_address()
        if foreign:
            st, o = self.req("POST", scan, {"hosts": foreign, "ports": "502"})
            self.assertEqual((st, o.get("field")), (400, "hosts"), o)
            self.assertIn("own networks", o["error"])
        t0 = time.monotonic()
        st, o = self.req("POST", scan, {"hosts": ["127.0.0.1"], "ports": [self.simport, closed]})
        self.assertEqual(st, 202, o)
        self.assertLess(time.monotonic() - t0, 0.5)  # answered at once, scan runs in the loop
        self.assertTrue(o["scan"]["running"])
        # the server keeps answering while the scan runs
        self.assertEqual(self.egwd.get("/api/hello")["message"], "Hello from egw")

        def done():
            s = self.egwd.get("/api/device/scan")["scan"]
            return s if not s["running"] else None
        s = t.wait_until(done, timeout=20, what="scan done")
        self.assertEqual(s["total"], 2)
        self.assertEqual(len(s["results"]), 1, s)
        r = s["results"][0]
        self.assertEqual((r["host"], r["port"], r["profile"], r["sunspec"]),
                         ("127.0.0.1", self.simport, "sunspec", True))
        self.assertTrue(r["serial"])
        # cached
        self.assertEqual(self.egwd.get("/api/device/scan")["scan"]["results"], s["results"])

    def test_raw_modbus(self):
        st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=40000"))
        self.assertEqual((st, o.get("field")), (404, "device"))
        self.add_inverter()
        self.wait_polling()
        for q, field in [("address=x", "address"), ("", "address"), ("address=1&fc=5", "fc"),
                         ("address=1&type=f64", "type"), ("address=1&count=200", "count"),
                         ("address=1&order=middle", "order"), ("address=1&scale=abc", "scale")]:
            st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&{q}"))
            self.assertEqual((st, o.get("field")), (400, field), q)
        st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=40000&count=2&type=str"))
        self.assertEqual(st, 200, o)
        self.assertEqual((o["raw"], o["value"]), ([0x5375, 0x6E53], "SunS"))
        st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=40000&type=u32"))
        self.assertEqual(o["value"], 0x53756E53)
        st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=40000&type=u32&order=little"))
        self.assertEqual(o["value"], 0x6E535375)
        st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=40000&count=1&scale=0.5"))
        self.assertEqual(o["value"], 0x5375 * 0.5)
        # an address the device does not have: Modbus exception -> 502 with the error
        st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=9&count=1"))
        self.assertEqual(st, 502, o)

        # writes: token, allow-list, logged
        body = {"device": "inv1", "address": 40068, "value": 7}
        st, o = self.req("POST", "/api/inverter/modbus", body, token=False)
        self.assertEqual(st, 401)
        st, o = self.req("POST", "/api/inverter/modbus", dict(body, address=40000))
        self.assertEqual((st, o.get("field")), (403, "address"))
        st, o = self.req("POST", "/api/inverter/modbus", dict(body, values=[1, 2]))
        self.assertEqual(st, 403)  # 40069 is not on the list
        st, o = self.req("POST", "/api/inverter/modbus", {"device": "inv1", "address": 40068})
        self.assertEqual((st, o.get("field")), (400, "values"))
        st, o = self.req("POST", "/api/inverter/modbus", dict(body, value=70000))
        self.assertEqual((st, o.get("field")), (400, "values"))
        st, o = self.req("POST", "/api/inverter/modbus", body)
        self.assertEqual((st, o.get("written")), (200, True), o)
        st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=40068"))
        self.assertEqual(o["raw"], [7])
        out = self.egwd.output()
        self.assertIn("modbus write by client 127.0.0.1", out)
        self.assertIn("address 40068 values [7]", out)
        self.assertIn("modbus write refused", out)

    def test_raw_modbus_single_client(self):
        """An inverter that accepts one client: the raw read/write must use the
        connection egwd polls through, not a second one (which the device
        resets), while polling goes on."""
        sim = t.EgwSim(self, [("sunspec", 1)], args=["--single-client"], control=False)
        port = sim.servers[0]["port"]
        self.add_inverter(port=port)
        before = self.wait_polling()["stats"]["polls"]
        # the device really refuses a second client: a Modbus request on a
        # connection of our own is not answered
        # (the reset may come before the connect returns: on loopback the
        # handshake completes in the kernel, and the sim's RST can beat
        # Python's check of SO_ERROR)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                s.sendall(bytes([0, 1, 0, 0, 0, 6, 1, 3, 0x9C, 0x40, 0, 1]))
                self.assertEqual(s.recv(64), b"")
        except (ConnectionResetError, BrokenPipeError):
            pass
        for _ in range(5):
            st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=40000&count=2&type=str"))
            self.assertEqual((st, o.get("value")), (200, "SunS"), o)
        st, o = self.req("POST", "/api/inverter/modbus", {"device": "inv1", "address": 40068,
                                                         "value": 9})
        self.assertEqual((st, o.get("written")), (200, True), o)
        st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=40068"))
        self.assertEqual((st, o.get("raw")), (200, [9]), o)
        # polling went on, on the same connection
        d = self.wait_polling()
        t.wait_until(lambda: self.wait_polling()["stats"]["polls"] > before + 1, timeout=5,
                     what="polls continue")
        self.assertEqual(d["state"], "polling")
        self.assertEqual(d["stats"]["modbus"]["reconnects"], 0, d["stats"])

    def test_raw_modbus_rtu(self):
        """A serial RTU device is reached through its own line (was 400)."""
        path = os.path.join(t.tempdir(self), "pty")
        sim = t.Proc([t.binary("egw-sim"), "--profile", "sunspec", "--rtu-pty", path,
                      "--unit-id", "3"], name="egw-sim")
        self.addCleanup(sim.stop)
        sim.wait_output("egw-sim: ready", timeout=10)
        st, o = self.req("POST", "/api/device", {"connection": "rtu", "serial_port": path,
                                                 "baudrate": 9600, "parity": "N", "unit_id": 3,
                                                 "profile": "sunspec", "id": "inv1"})
        self.assertEqual(st, 201, o)
        self.wait_polling()
        st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=40000&count=2&type=str"))
        self.assertEqual((st, o.get("value")), (200, "SunS"), o)
        st, o = self.req("POST", "/api/inverter/modbus", {"device": "inv1", "address": 40068,
                                                         "value": 11})
        self.assertEqual((st, o.get("written")), (200, True), o)
        st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=40068"))
        self.assertEqual((st, o.get("raw")), (200, [11]), o)
        # an address the device does not have: its exception, and polling goes on
        st, o = self.req("POST", "/api/inverter/modbus/read", read_body(f"device=inv1&address=9"))
        self.assertEqual(st, 502, o)
        self.assertEqual(self.wait_polling()["state"], "polling")

    def test_raw_modbus_device_removed_or_stopped(self):
        """A raw read queued on a device's connection when the device is
        removed gets 503 (cancelled); one pending while egwd stops (the
        devices go first) neither crashes nor leaks (exit 0, also under
        ASan)."""
        sim = t.EgwSim(self, [("sunspec", 1)], args=["--fault-slow", "1500"], control=False)
        egwd = t.Egwd(self, set={"modbus.timeout_ms": 5000})
        auth = egwd.auth()
        body = {"connection": "tcp", "host": "127.0.0.1", "port": sim.servers[0]["port"],
                "unit_id": 1, "profile": "sunspec", "id": "slow"}
        def raw_read(out):
            try:
                out.append(t.http_json(egwd.port, "POST", "/api/inverter/modbus/read",
                                       body={"device": "slow", "address": 40000, "count": 2},
                                       headers=auth))
            except OSError as e:
                out.append(e)

        for stop in (False, True):
            st, o = t.http_json(egwd.port, "POST", "/api/device", body=body, headers=auth)
            self.assertEqual(st, 201, o)
            out = []
            th = threading.Thread(target=raw_read, args=(out,))
            th.start()
            time.sleep(0.5)  # queued behind the device's first (slow) request
            if not stop:
                st, o = t.http_json(egwd.port, "DELETE", "/api/device?id=slow", headers=auth)
                self.assertEqual(st, 200, o)
                th.join(10)
                st, o = out[0]
                self.assertEqual((st, o.get("code")), (503, errno.ECANCELED), o)
            else:
                rc = egwd.stop()
                th.join(10)
                self.assertEqual(rc, 0, egwd.output()[-3000:])
                if not isinstance(out[0], OSError):  # answered before the server closed
                    self.assertEqual(out[0][0], 503, out[0])

    # -- live stream, notifications ------------------------------------------

    def test_live_and_notifications(self):
        self.add_inverter()
        self.wait_polling()
        head, events = sse_events(self.egwd.port, 3.0)
        self.assertIn("Content-Type: text/event-stream", head)
        freq = [d for e, d, _ in events if e == "freq"]
        readings = [d for e, d, _ in events if e == "reading"]
        self.assertGreaterEqual(len(freq), 20, f"{len(freq)} freq samples in 3 s")
        self.assertGreaterEqual(len(readings), 2)
        self.assertTrue(all(45 < f["hz"] < 65 and f["device"] == "inv1" for f in freq))
        ts = [f["ts_ms"] for f in freq]
        self.assertEqual(ts, sorted(ts))
        self.assertIn("pv", readings[-1]["reading"])
        # delay from publish to receipt, measured against the server's clock stamp
        delays = sorted((tr * 1e6 - d["t_us"]) / 1000 for e, d, tr in events if e == "freq")
        self.assertLess(delays[len(delays) // 2], 50, delays)
        self.assertEqual(self.egwd.get("/api/frequency")["device"], "inv1")

        self.assertEqual(self.egwd.get("/api/notification"), {"notifications": []})
        # Losing the device makes a notification (and a "state" event).
        self.sim.signal(signal.SIGKILL)
        self.sim.wait()

        def note():
            n = self.egwd.get("/api/notification")["notifications"]
            return n[0] if n else None
        n = t.wait_until(note, timeout=15, what="device-lost notification")
        self.assertIn("inv1", n["text"])
        self.assertEqual(n["level"], "warning")
        st, o = self.req("DELETE", f"/api/notification/{n['id']}", token=False)
        self.assertEqual(st, 401)
        st, o = self.req("DELETE", "/api/notification/abc")
        self.assertEqual((st, o.get("field")), (400, "id"))
        st, o = self.req("DELETE", "/api/notification/999999")
        self.assertEqual((st, o.get("field")), (404, "id"))
        st, o = self.req("DELETE", f"/api/notification/{n['id']}")
        self.assertEqual(st, 200, o)
        self.assertEqual(self.egwd.get("/api/notification"), {"notifications": []})

    def test_unknown_paths(self):
        for path in ("/api/devices", "/api/device/nosuch", "/api/inverter", "/nosuch.js"):
            st, o = self.req("GET", path, token=False)
            self.assertEqual(st, 404, path)

    # -- metrics -------------------------------------------------------------

    def test_metrics_strict(self):
        self.add_inverter()
        self.wait_polling()
        sse_events(self.egwd.port, 1.0)
        st, h, body = t.http(self.egwd.port, "GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/plain; version=0.0.4"))
        fams = parse_prometheus(body.decode())
        for name, ftype in [("egw_device_poll_latency_seconds", "histogram"),
                            ("egw_device_errors_total", None), ("egw_device_timeouts_total", "counter"),
                            ("egw_device_reconnects_total", "counter"),
                            ("egw_device_last_good_read_timestamp_seconds", "gauge"),
                            ("egw_frequency_hz", "gauge"), ("egw_sse_clients", "gauge"),
                            ("egw_sse_events_total", "counter"),
                            # from the store and devices modules, same document
                            ("egw_store_backlog", "gauge"), ("egw_store_dropped_total", "counter"),
                            ("egw_frequency_read_lateness_seconds", "histogram")]:
            if ftype is None:
                continue
            self.assertIn(name, fams)
            self.assertEqual(fams[name]["type"], ftype, name)
        lat = [s for s in fams["egw_device_poll_latency_seconds"]["samples"]
               if s[0].endswith("_count") and s[1].get("device") == "inv1"]
        self.assertTrue(lat and lat[0][2] >= 1, lat)
        good = [s for s in fams["egw_device_last_good_read_timestamp_seconds"]["samples"]
                if s[1].get("device") == "inv1"]
        self.assertLess(abs(good[0][2] - time.time()), 30)
        hz = fams["egw_frequency_hz"]["samples"][0][2]
        self.assertTrue(45 < hz < 65)
        self.assertGreaterEqual(fams["egw_sse_events_total"]["samples"][0][2], 1)


if __name__ == "__main__":
    unittest.main()
