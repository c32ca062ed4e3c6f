"""The local API against a client on the home network acting as an attacker.

One test per class of the probe in RELIABILITY.md ("Hardening the local
API"): connection exhaustion from one address, DNS rebinding (Host check),
secrets in URLs masked in every answer and the log and a masked secret never
sent to another host, scans and raw reads behind the token and POST, control
characters in log lines, the security headers on every route, the settings
document's size and one shared copy for GET /api/settings, and
http.max_connections changed at run time.
Run with /usr/bin/python3; EGW_BUILD names the build directory.
"""
import http.client as httpclient
import json
import os
import select
import socket
import ssl
import subprocess
import threading
import time
import unittest

import egwtest as T
from egwtest import EgwSim

LOOP = {"http.bind": "127.0.0.1"}
HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options",
           "referrer-policy")


def routes():
    out = subprocess.run([T.binary("egwd"), "--list-routes"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    return [(m, p, tok == "1") for m, p, tok in (ln.split() for ln in out.splitlines())]


def raw_head(port, request, source=None, timeout=3.0):
    """The status line and headers of one raw request (lower-case names)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    try:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    hdrs = {}
    for ln in head[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(head[0].split()[1]), hdrs


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1])
    return 0


class Hardening(unittest.TestCase):

    def start(self, **kw):
        s = dict(LOOP)
        s.update(kw.pop("set", {}))
        return T.Egwd(self, set=s, **kw)

    # -- connections ----------------------------------------------------------

    def test_one_address_cannot_exhaust_connections(self):
        """127.0.0.2 opens 56 live streams and keeps reopening idle sockets
        as soon as they close; 127.0.0.1 still gets /api/hello within 1 s,
        every time, and a live stream of its own."""
        g = self.start()
        stop = threading.Event()
        held = {"live": 0, "max_open": 0}

        def attacker():
            socks, live = [], []
            for _ in range(56):
                try:
                    s = socket.create_connection(("127.0.0.1", g.port), timeout=1,
                                                 source_address=("127.0.0.2", 0))
                    s.sendall(b"GET /api/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    live.append(s)
                except OSError:
                    pass
            socks.extend(live)
            while not stop.is_set():
                r, _, _ = select.select(socks, [], [], 0.05) if socks else ([], [], [])
                for s in r:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        socks.remove(s)
                        s.close()
                    elif s in live and b" 200 " in data[:16]:
                        held["live"] += 1
                for _ in range(20):  # reopen idle sockets (no request at all)
                    if len(socks) >= 150:
                        break
                    try:
                        socks.append(socket.create_connection(
                            ("127.0.0.1", g.port), timeout=0.5, source_address=("127.0.0.2", 0)))
                    except OSError:
                        break
                held["max_open"] = max(held["max_open"], len(socks))
            for s in socks:
                s.close()

        th = threading.Thread(target=attacker)
        th.start()
        self.addCleanup(th.join)
        self.addCleanup(stop.set)
        time.sleep(1.5)  # the attacker holds everything it can
        times = []
        for _ in range(6):
            t0 = time.monotonic()
            try:
                st, _, body = T.http(g.port, "GET", "/api/hello", timeout=1.0)
            except OSError as e:
                st, body = None, repr(e).encode()
            dt = time.monotonic() - t0
            times.append(round(dt, 3))
            self.assertEqual(st, 200, f"hello from 127.0.0.1 failed after {dt:.2f} s: {body!r}")
            self.assertLess(dt, 1.0)
            time.sleep(0.5)
        st, hdrs = raw_head(g.port, b"GET /api/live HTTP/1.1\r\nHost: localhost\r\n\r\n",
                            timeout=1.0)
        self.assertEqual(st, 200)
        stop.set()
        th.join()
        print(f"\nhardening: hello under exhaustion {times} s; attacker held "
              f"{held['live']} live streams")
        self.assertLessEqual(held["live"], 8, "live streams per address are capped")
        self.assertTrue(g.alive())

    def test_max_connections_applies_at_run_time(self):
        g = self.start()
        st, o = T.http_json(g.port, "POST", "/api/settings",
                            body={"http": {"max_connections": 20}}, headers=g.auth())
        self.assertEqual(st, 200, o)

        def applied():
            h = T.get_json(g.port, "/api/state")["http"]
            return h if h["max_connections"] == 20 or h.get("rebind_error") else None
        h = T.wait_until(applied, timeout=5, what="max_connections applied")
        self.assertIsNone(h.get("rebind_error"), h)
        self.assertEqual(h["max_connections"], 20)
        self.assertEqual(T.get_json(g.port, "/api/hello")["message"], "Hello from egw")
        self.assertNotIn("Address already in use", g.output())

    def test_held_wrong_token_answers_at_rebind_and_stop(self):
        """Wrong tokens from a limited address are answered a second late
        (their connections suspended); a listener move and a stop meanwhile
        end them at once, and egwd goes on or exits cleanly (also under
        ASan)."""
        g = self.start()
        bad = {"Authorization": "Bearer " + "9" * 64}
        for _ in range(10):
            T.http(g.port, "POST", "/api/settings", body={}, headers=bad)
        for action in ("rebind", "stop"):
            out = []

            def wrong():
                try:
                    out.append(T.http(g.port, "POST", "/api/settings", body={}, headers=bad,
                                      timeout=5)[0])
                except OSError as e:
                    out.append(e)
            ths = [threading.Thread(target=wrong) for _ in range(5)]
            for th in ths:
                th.start()
            time.sleep(0.3)  # held
            if action == "rebind":
                st, o = T.http_json(g.port, "POST", "/api/settings",
                                    body={"http": {"max_connections": 30}}, headers=g.auth())
                self.assertEqual(st, 200, o)
            else:
                self.assertEqual(g.stop(), 0, g.output()[-3000:])
            for th in ths:
                th.join(10)
            self.assertEqual(len(out), 5)
            if action == "rebind":
                # a move closes the old listener's connections, these too
                self.assertTrue(all(o == 429 or isinstance(o, OSError) for o in out), out)
                T.wait_until(lambda: T.get_json(g.port, "/api/state")["http"]
                             ["max_connections"] == 30, timeout=5, what="rebind")
                self.assertEqual(T.get_json(g.port, "/api/hello")["message"], "Hello from egw")

    def test_held_wrong_token_answers_over_https(self):
        """The same over the HTTPS listener: wrong tokens held there while the
        listener moves (http.tls_port) and while egwd stops."""
        g = self.start()
        ctx = ssl.create_default_context(cafile=os.path.join(g.state_dir, "https-cert.pem"))
        bad = {"Authorization": "Bearer " + "9" * 64, "Content-Type": "application/json"}

        def post(port, out):
            c = httpclient.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
            try:
                c.request("POST", "/api/settings", body="{}", headers=bad)
                out.append(c.getresponse().status)
            except OSError as e:
                out.append(e)
            finally:
                c.close()
        warm = []
        for _ in range(10):
            post(g.tls_port, warm)
        self.assertEqual(warm, [401] * 10)
        # held a second, then answered (the HTTPS daemon is run for it)
        t0 = time.monotonic()
        post(g.tls_port, warm)
        self.assertEqual(warm[-1], 429)
        self.assertLess(time.monotonic() - t0, 2.5)
        self.assertGreater(time.monotonic() - t0, 0.8)
        for action in ("move", "stop"):
            out = []
            ths = [threading.Thread(target=post, args=(g.tls_port, out)) for _ in range(4)]
            for th in ths:
                th.start()
            time.sleep(0.4)  # held
            if action == "move":
                new_port = T.free_port()
                st, o = T.http_json(g.port, "POST", "/api/settings",
                                    body={"http": {"tls_port": new_port}}, headers=g.auth())
                self.assertEqual(st, 200, o)
            else:
                self.assertEqual(g.stop(), 0, g.output()[-3000:])
            for th in ths:
                th.join(10)
            self.assertEqual(len(out), 4)
            self.assertTrue(all(o == 429 or isinstance(o, OSError) for o in out), out)
            if action == "move":
                g.tls_port = new_port
                self.assertTrue(g.alive(), g.output()[-3000:])
                T.wait_until(lambda: T.get_json(g.port, "/api/state")["https"]["port"]
                             == new_port, timeout=5, what="the HTTPS listener moved")
                self.assertTrue(g.alive(), g.output()[-3000:])

    # -- DNS rebinding ----------------------------------------------------------

    def test_host_check_against_dns_rebinding(self):
        g = self.start()
        evil = {"Host": "rebind.attacker.example"}
        for method, path, body in (("GET", "/api/settings", None), ("GET", "/api/hello", None),
                                   ("GET", "/", None), ("GET", "/status", None),
                                   ("POST", "/api/device/scan", {"hosts": "127.0.0.1"}),
                                   ("POST", "/api/inverter/modbus/read", {"address": 0})):
            st, hdrs, data = T.http(g.port, method, path, body=body,
                                    headers=dict(evil, **g.auth()))
            self.assertEqual(st, 421, f"{method} {path}: {st} {data[:200]!r}")
            self.assertIn("error", json.loads(data))
            self.assertNotIn(b"mqtt", data)
        for h in ("rebind.attacker.example:%d" % g.port, "127.0.0.1.attacker.example",
                  "localhost.attacker.example", "[::1", "127.0.0.1:x", "[::1]x", "a b",
                  "local.attacker.example", "raspberrypi.fritz.box", "x_y"):
            st, _, _ = T.http(g.port, "GET", "/api/hello", headers={"Host": h})
            self.assertEqual(st, 421, h)
        host = socket.gethostname()
        # names public DNS cannot serve (one label, .local, .home.arpa,
        # .internal): how a gateway in a container is reached by name
        for h in ("localhost", f"localhost:{g.port}", "LocalHost", "127.0.0.1",
                  f"127.0.0.1:{g.port}", "[::1]", f"[::1]:{g.port}", host, f"{host}.local:80",
                  "raspberrypi", "raspberrypi.local:5000", "egw.home.arpa", "egw.internal"):
            st, _, data = T.http(g.port, "GET", "/api/settings", headers={"Host": h})
            self.assertEqual(st, 200, f"{h}: {data[:200]!r}")
        # a name the user allows
        st, hdrs, _ = T.http(g.port, "GET", "/api/hello", headers={"Host": "egw.home.example"})
        self.assertEqual(st, 421)
        st, o = T.http_json(g.port, "POST", "/api/settings",
                            body={"http": {"allowed_hosts": ["egw.home.example"]}},
                            headers=g.auth())
        self.assertEqual(st, 200, o)
        self.assertEqual(o["http"]["allowed_hosts"], ["egw.home.example"])
        for h in ("egw.home.example", "EGW.home.example:5000", "egw.home.example."):
            st, _, _ = T.http(g.port, "GET", "/api/hello", headers={"Host": h})
            self.assertEqual(st, 200, h)
        st, o = T.http_json(g.port, "POST", "/api/settings",
                            body={"http": {"allowed_hosts": ["not a name/"]}}, headers=g.auth())
        self.assertEqual((st, o.get("field")), (400, "http.allowed_hosts[0]"), o)
        # egwd --check (Host: localhost) still sees it running
        r = subprocess.run([T.binary("egwd"), "--check", "--port", str(g.port), "--set",
                            "http.bind=127.0.0.1", "--state-dir", g.state_dir],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)

    # -- secrets ----------------------------------------------------------------

    def test_credentials_in_urls_masked_everywhere(self):
        secrets = ["s3cr3t-pw-Qx", "K3y-Val-Zz9", "gql-pass-Wq4", "T0k-Val-Pp1"]
        data_url = f"http://egw-user:{secrets[0]}@127.0.0.1:9/data?api_key={secrets[1]}&site=7"
        gql_url = f"http://gq:{secrets[2]}@127.0.0.1:9/graphql?access_token={secrets[3]}"
        g = self.start(set={"backend.data_urls": json.dumps([data_url]),
                            "backend.graphql_url": gql_url, "name.interval_ms": 200,
                            "log_level": "debug"})
        # the uploader and the name query try (and fail) meanwhile
        T.wait_until(lambda: T.get_json(g.port, "/api/name")["attempts"] >= 1, timeout=10,
                     what="a name query attempt")
        answers = {}
        for path in ("/api/settings", "/api/state", "/api/name", "/status", "/metrics"):
            st, _, body = T.http(g.port, "GET", path)
            self.assertEqual(st, 200, path)
            answers[path] = body.decode()
        st, o = T.http_json(g.port, "POST", "/api/settings", body={"log_level": "debug"},
                            headers=g.auth())
        self.assertEqual(st, 200)
        answers["POST /api/settings"] = json.dumps(o)
        answers["log"] = g.output()
        for where, text in answers.items():
            for s in secrets:
                self.assertNotIn(s, text, f"{s} in {where}")
        masked = "http://***@127.0.0.1:9/data?api_key=***&site=7"
        sett = T.get_json(g.port, "/api/settings")
        self.assertEqual(sett["backend"]["data_urls"], [masked])
        self.assertEqual(sett["backend"]["graphql_url"],
                         "http://***@127.0.0.1:9/graphql?access_token=***")
        self.assertEqual(T.get_json(g.port, "/api/state")["uploader"]["urls"], [masked])
        self.assertIn("***@127.0.0.1:9/graphql", T.get_json(g.port, "/api/name")["url"])
        self.assertIn(masked, answers["log"])

        # GET, edit, POST back: the masked URL keeps the stored one
        st, o = T.http_json(g.port, "POST", "/api/settings",
                            body={"backend": sett["backend"]}, headers=g.auth())
        self.assertEqual(st, 200, o)
        with open(os.path.join(g.state_dir, "settings.json")) as f:
            saved = json.load(f)
        self.assertEqual(saved["backend"]["data_urls"], [data_url])
        self.assertEqual(saved["backend"]["graphql_url"], gql_url)
        # the same masked credentials for another host or port: refused,
        # nothing saved
        for url in ("http://***@evil.example/data?api_key=***&site=7",
                    "http://***@127.0.0.1:8/data?api_key=***&site=7"):
            st, o = T.http_json(g.port, "POST", "/api/settings",
                                body={"backend": {"data_urls": [url]}}, headers=g.auth())
            self.assertEqual((st, o.get("field")), (400, "backend.data_urls[0]"), o)
        st, o = T.http_json(g.port, "POST", "/api/settings",
                            body={"backend": {"graphql_url": "http://***@evil.example:9/graphql"
                                                              "?access_token=***"}},
                            headers=g.auth())
        self.assertEqual((st, o.get("field")), (400, "backend.graphql_url"), o)
        with open(os.path.join(g.state_dir, "settings.json")) as f:
            self.assertEqual(json.load(f)["backend"], saved["backend"])

    def test_masked_mqtt_password_not_sent_to_another_host(self):
        g = self.start()
        pw = "mq-pass-Hh7"
        st, o = T.http_json(g.port, "POST", "/api/settings",
                            body={"mqtt": {"host": "127.0.0.1", "port": 1884, "username": "u",
                                           "password": pw}}, headers=g.auth())
        self.assertEqual(st, 200, o)
        self.assertEqual(o["mqtt"]["password"], "***")
        for change in ({"host": "other.example"}, {"port": 1885},
                       {"host": "other.example", "port": 1883}):
            st, o = T.http_json(g.port, "POST", "/api/settings",
                                body={"mqtt": dict(change, password="***")}, headers=g.auth())
            self.assertEqual((st, o.get("field")), (400, "mqtt.password"), (change, o))
        with open(os.path.join(g.state_dir, "settings.json")) as f:
            m = json.load(f)["mqtt"]
        self.assertEqual((m["host"], m["port"], m["password"]), ("127.0.0.1", 1884, pw))
        # the same host and port: the stored password stays
        st, o = T.http_json(g.port, "POST", "/api/settings",
                            body={"mqtt": {"host": "127.0.0.1", "password": "***",
                                           "topic_prefix": "t2"}}, headers=g.auth())
        self.assertEqual(st, 200, o)
        # another host with the password typed again: fine
        st, o = T.http_json(g.port, "POST", "/api/settings",
                            body={"mqtt": {"host": "other.example", "password": "new-pw"}},
                            headers=g.auth())
        self.assertEqual(st, 200, o)
        with open(os.path.join(g.state_dir, "settings.json")) as f:
            m = json.load(f)["mqtt"]
        self.assertEqual((m["host"], m["password"], m["topic_prefix"]),
                         ("other.example", "new-pw", "t2"))
        self.assertNotIn(pw, g.output())

    # -- scans and raw reads ------------------------------------------------------

    def test_scan_needs_token_and_post(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        probe.listen(16)
        probe.setblocking(False)
        self.addCleanup(probe.close)
        pport = probe.getsockname()[1]
        g = self.start()
        # GET with the old query: 405, and no packet reaches the target
        st, o = T.http_json(g.port, "GET", f"/api/device/scan?hosts=127.0.0.1&ports={pport}")
        self.assertEqual(st, 405, o)
        self.assertIn("POST", o["error"])
        # an <img> or a form from another origin has no token: 401
        st, o = T.http_json(g.port, "POST", "/api/device/scan",
                            body={"hosts": "127.0.0.1", "ports": str(pport)})
        self.assertEqual(st, 401, o)
        st, _, _ = T.http(g.port, "POST", "/api/device/scan",
                          body=f"hosts=127.0.0.1&ports={pport}",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 401)
        time.sleep(0.5)
        r, _, _ = select.select([probe], [], [], 0)
        self.assertEqual(r, [], "a scan reached the target without the token")
        s = T.get_json(g.port, "/api/device/scan")["scan"]
        self.assertEqual((s["running"], s["total"]), (False, 0))
        self.assertNotIn("scan by client", g.output())
        # with the token: started, logged with who and what
        st, o = T.http_json(g.port, "POST", "/api/device/scan",
                            body={"hosts": "127.0.0.1", "ports": str(pport)}, headers=g.auth())
        self.assertEqual(st, 202, o)
        out = g.wait_output("scan by client 127.0.0.1")
        self.assertIn(f"hosts 127.0.0.1 ports {pport}", out)
        T.wait_until(lambda: select.select([probe], [], [], 0)[0], timeout=5,
                     what="the confirmed target probed")
        # rate limited: 3 a minute from one address
        codes = [T.http_json(g.port, "POST", "/api/device/scan",
                             body={"hosts": "127.0.0.1", "ports": str(pport)},
                             headers=g.auth())[0] for _ in range(3)]
        self.assertEqual(codes[-1], 429, codes)

    def test_raw_read_needs_token_and_post(self):
        sim = EgwSim(self, [("sunspec", 1)], control=False)
        g = self.start(set={"devices": json.dumps([sim.device_settings(0, id="inv1")])})
        T.wait_until(lambda: any(d.get("state") == "polling" for d in
                                 T.get_json(g.port, "/api/state")["devices"]),
                     timeout=15, what="polling")

        def reads():
            m = T.http(g.port, "GET", "/metrics")[2].decode()
            for ln in m.splitlines():
                if ln.startswith('egw_modbus_raw_requests_total{kind="read"}'):
                    return int(ln.split()[-1])
            return 0
        st, o = T.http_json(g.port, "GET", "/api/inverter/modbus?device=inv1&address=40000")
        self.assertEqual(st, 405, o)
        self.assertIn("POST /api/inverter/modbus/read", o["error"])
        body = {"device": "inv1", "address": 40000, "count": 2, "type": "str"}
        st, o = T.http_json(g.port, "POST", "/api/inverter/modbus/read", body=body)
        self.assertEqual(st, 401, o)
        self.assertEqual(reads(), 0)
        st, o = T.http_json(g.port, "POST", "/api/inverter/modbus/read", body=body,
                            headers=g.auth())
        self.assertEqual((st, o.get("value")), (200, "SunS"), o)
        self.assertEqual(reads(), 1)
        self.assertIn("modbus read by client 127.0.0.1 (token): device inv1", g.output())
        # rate limited: at most 10 a second from one address
        codes = []
        for _ in range(25):
            codes.append(T.http_json(g.port, "POST", "/api/inverter/modbus/read", body=body,
                                     headers=g.auth())[0])
        self.assertIn(429, codes)
        self.assertLessEqual(codes.count(200), 21, codes)

    # -- logs -------------------------------------------------------------------------

    def test_log_lines_escape_control_characters(self):
        g = self.start()
        forged = "2026-01-01T00:00:00.000Z info webui: modbus write by client 6.6.6.6"
        st, o = T.http_json(g.port, "POST", "/api/inverter/modbus",
                            body={"device": "x\n" + forged + "\r\x1b[2J", "address": 1,
                                  "value": 1}, headers=g.auth())
        self.assertEqual(st, 403, o)
        out = g.wait_output("modbus write refused")
        lines = out.splitlines()
        self.assertFalse([ln for ln in lines if ln.startswith(forged)], out[-2000:])
        self.assertTrue([ln for ln in lines if "device x\\n" + forged + "\\r\\x1b[2J" in ln],
                        out[-2000:])

    # -- headers ------------------------------------------------------------------------

    def test_security_headers_on_every_route(self):
        g = self.start()
        seen = 0
        for method, path, tok in routes():
            url = path[:-1] + "some-id" if path.endswith("*") else path
            if path == "/api/live":
                st, hdrs = raw_head(g.port, b"GET /api/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
            else:
                body = {} if method != "GET" else None
                st, hdrs, _ = T.http(g.port, method, url, body=body,
                                     headers=g.auth() if tok else None)
            for h in HEADERS:
                self.assertIn(h, hdrs, f"{method} {path} ({st}) has no {h}")
            self.assertIn("frame-ancestors 'none'", hdrs["content-security-policy"])
            self.assertEqual(hdrs["x-content-type-options"], "nosniff")
            seen += 1
        self.assertGreater(seen, 20)
        # error answers too: 401, 404, 405, 413, 421, 429
        big = {"Content-Length": str(10 << 20)}
        cases = [("POST", "/api/settings", {}), ("GET", "/nothing", None),
                 ("PUT", "/api/hello", None), ("GET", "/api/hello", {"Host": "evil.example"}),
                 ("POST", "/api/settings", dict(big))]
        for method, path, hdr in cases:
            if method == "POST" and hdr and "Content-Length" in hdr:
                st, hdrs = raw_head(g.port, b"POST /api/settings HTTP/1.1\r\nHost: localhost\r\n"
                                    b"Content-Length: 10485760\r\n\r\n")
            else:
                st, hdrs, _ = T.http(g.port, method, path, headers=hdr)
            self.assertGreaterEqual(st, 400)
            for h in HEADERS:
                self.assertIn(h, hdrs, f"{method} {path} ({st}) has no {h}")
        for i in range(11):
            st, hdrs, _ = T.http(g.port, "POST", "/api/settings", body={},
                                 headers={"Authorization": f"Bearer {i:064x}"})
        self.assertEqual(st, 429)
        for h in HEADERS:
            self.assertIn(h, hdrs)

    # -- settings memory ------------------------------------------------------------------

    def test_settings_size_bounded_and_served_from_one_copy(self):
        g = self.start(set={"http.max_body_bytes": 16 << 20})
        # the probe's 16 MiB allow-list: refused, naming the key
        huge = [{"device": "d" * 60000, "address": i} for i in range(270)]
        st, o = T.http_json(g.port, "POST", "/api/settings",
                            body={"modbus_write_allowlist": huge}, headers=g.auth(), timeout=60)
        self.assertEqual(st, 400, o)
        self.assertTrue(o.get("field", "").startswith("modbus_write_allowlist"), o)
        st, o = T.http_json(g.port, "POST", "/api/settings",
                            body={"modbus_write_allowlist": [{"device": "x" * 300,
                                                              "address": 1}]},
                            headers=g.auth())
        self.assertEqual((st, o.get("field")), (400, "modbus_write_allowlist[0]"), o)
        # the largest list allowed
        full = [{"device": "d%03d" % i + "x" * 200, "address": i} for i in range(256)]
        st, o = T.http_json(g.port, "POST", "/api/settings",
                            body={"modbus_write_allowlist": full}, headers=g.auth())
        self.assertEqual(st, 200, str(o)[:200])
        # 20 concurrent GETs whose clients do not read: one copy, not 20
        before = rss_kb(g.pid)
        socks = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /api/settings HTTP/1.1\r\nHost: localhost\r\n\r\n")
            socks.append(s)
        t0 = time.monotonic()
        st, _, _ = T.http(g.port, "GET", "/api/hello", timeout=2)
        stall = time.monotonic() - t0
        self.assertEqual(st, 200)
        grown = rss_kb(g.pid) - before
        # read them all together (with a receive buffer shrunk after the
        # connect, TCP itself goes on by zero-window probes, 8 KiB per 0.2 s)
        bufs = {s: b"" for s in socks}
        bodies = []
        deadline = time.monotonic() + 30
        while bufs and time.monotonic() < deadline:
            r, _, _ = select.select(list(bufs), [], [], 1.0)
            for s in r:
                chunk = s.recv(65536)
                bufs[s] += chunk
                data = bufs[s]
                done = not chunk
                if b"\r\n\r\n" in data:
                    head, rest = data.split(b"\r\n\r\n", 1)
                    n = int([ln.split(b":")[1] for ln in head.split(b"\r\n")
                             if ln.lower().startswith(b"content-length")][0])
                    if len(rest) >= n:
                        bodies.append(rest[:n])
                        done = True
                if done:
                    del bufs[s]
                    s.close()
        for s in bufs:
            s.close()
        self.assertEqual(len(bodies), 20)
        self.assertEqual(len(set(bodies)), 1)
        print(f"\nhardening: settings {len(bodies[0])} bytes, 20 concurrent GETs: RSS +{grown} kB, "
              f"hello {stall * 1000:.0f} ms; peak RSS {hwm_kb(g.pid)} kB")
        self.assertLess(grown, 8 * 1024)
        self.assertLess(stall, 0.5)


if __name__ == "__main__":
    unittest.main()
