"""egwd core: routes, token, caps, keep-alive, signals, settings file.

Run: EGW_BUILD=/path/to/build /usr/bin/python3 -m unittest tests/integration/test_core.py
"""
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import egwtest  # noqa: E402
from egwtest import Egwd, http, http_json, get_json  # noqa: E402

LOOP = {"http.bind": "127.0.0.1"}


def raw(port, data, timeout=5.0, read_all=True):
    """Send raw bytes on a fresh socket; return everything read until close/timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if not read_all:
                    break
        except socket.timeout:
            pass
        return out


def status_of(resp):
    line = resp.split(b"\r\n", 1)[0]
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


class Routes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tc = unittest.TestCase()
        cls._cleanups_cls = []
        # One daemon for the read-only route checks.
        cls.g = Egwd(cls, set=dict(LOOP))

    @classmethod
    def addCleanup(cls, fn, *a, **kw):  # used by egwtest on the class
        cls._cleanups_cls.append((fn, a, kw))

    @classmethod
    def tearDownClass(cls):
        for fn, a, kw in reversed(cls._cleanups_cls):
            fn(*a, **kw)

    def test_hello_version_uptime(self):
        self.assertEqual(self.g.get("/api/hello"), {"message": "Hello from egw"})
        v = self.g.get("/api/version")
        self.assertEqual(v["version"], "0.1.0")
        for k in ("microhttpd", "jansson", "sqlite", "openssl"):
            self.assertIn(k, v)
        u1 = self.g.get("/api/uptime")["msek"]
        time.sleep(0.05)
        u2 = self.g.get("/api/uptime")["msek"]
        self.assertIsInstance(u1, int)
        self.assertGreaterEqual(u2 - u1, 40)

    def test_state(self):
        st = self.g.state()
        self.assertEqual(st["state"], "no device")
        gw = st["gateway"]
        self.assertEqual(gw["state"], "no device")
        self.assertGreaterEqual(gw["transitions"], 1)
        self.assertEqual(gw["counts"].get("starting -> no device"), 1)
        self.assertEqual(gw["recent"][0]["from"], "starting")
        self.assertIn("uptime_ms", st)

    def test_metrics(self):
        self.g.get("/api/hello")
        st, hdr, body = http(self.g.port, "GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(hdr["content-type"].startswith("text/plain; version=0.0.4"))
        text = body.decode()
        self.assertIn("egw_uptime_seconds ", text)
        self.assertRegex(text, r'egw_http_requests_total\{route="GET /api/hello",code="200"\} [1-9]')
        self.assertIn('egw_state_transitions_total{machine="gateway",from="starting",to="no device"} 1',
                      text)
        # /metrics lists the tasks queued at that moment; the periodic seal task
        # always is (the one-shot "http" timer only while libmicrohttpd has a
        # timeout pending, which made this check flaky).
        self.assertIn('egw_task_lateness_seconds_bucket{task="batch-seal",le="+Inf"}', text)
        # memory, in bytes, the same figures as /api/state's "memory" (kB)
        rss = int(re.search(r"^process_resident_memory_bytes (\d+)$", text, re.M).group(1))
        own = int(re.search(r"^egw_memory_private_bytes (\d+)$", text, re.M).group(1))
        self.assertTrue(0 < own < rss, (own, rss))
        m = self.g.state()["memory"]
        self.assertLess(abs(rss / 1024 - m["rss_kb"]), 2048, (rss, m))
        # every sample line is "name{labels} value" or "name value"
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                self.assertTrue(name, line)
                float(value)

    def test_status_page(self):
        st, hdr, body = http(self.g.port, "GET", "/status")
        self.assertEqual(st, 200)
        self.assertIn("text/html", hdr["content-type"])
        html = body.decode()
        self.assertIn('name="viewport"', html)
        self.assertIn("no device", html)
        self.assertNotIn("http://", html.replace('href="/', ""))  # no external assets

    def test_crypto_and_name(self):
        st, obj = http_json(self.g.port, "GET", "/api/crypto")
        if st == 200:
            self.assertRegex(obj["serialNumber"], r"^[0-9a-f]{18}$")
            self.assertIn("BEGIN PUBLIC KEY", obj["publicKey_pem"])
        else:
            self.assertEqual(st, 503)
            self.assertIn("error", obj)
        st, obj = http_json(self.g.port, "GET", "/api/name")
        self.assertIn(st, (200, 503))
        self.assertIsInstance(obj, dict)

    def test_settings_get_masks_password(self):
        s = self.g.get("/api/settings")
        self.assertEqual(s["http"]["port"], self.g.port)
        self.assertEqual(s["harvest"]["batch_interval_ms"], 10000)
        self.assertEqual(s["devices"], [])
        self.assertIn("password", s["mqtt"])

    def test_unknown_and_wrong_method(self):
        st, obj = http_json(self.g.port, "GET", "/api/nope")
        self.assertEqual(st, 404)
        self.assertIn("error", obj)
        st, hdr, body = http(self.g.port, "DELETE", "/api/hello")
        self.assertEqual(st, 405)
        self.assertEqual(hdr["allow"], "GET")
        self.assertEqual(json.loads(body)["error"], "method not allowed")

    def test_keep_alive(self):
        with socket.create_connection(("127.0.0.1", self.g.port), timeout=5) as s:
            req = b"GET /api/hello HTTP/1.1\r\nHost: localhost\r\n\r\n"
            s.sendall(req)
            first = s.recv(4096)
            self.assertEqual(status_of(first), 200)
            self.assertNotIn(b"Connection: close", first)
            s.sendall(req)  # same socket: still open
            second = s.recv(4096)
            self.assertEqual(status_of(second), 200)
            self.assertIn(b"Hello from egw", second)

    def test_malformed_http(self):
        for req in (b"GET /api/hello HTTP/1.1\r\n\r\n",               # no Host
                    b"GET /api/hello HTTP/1.1\r\nHost x\r\n\r\n",     # header without colon
                    b"GET /api/hello FOO\r\nHost: localhost\r\n\r\n",         # bad version
                    b"GET  HTTP/1.1\r\nHost: localhost\r\n\r\n",              # no path
                    b"POST /api/settings HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n"):
            self.assertEqual(status_of(raw(self.g.port, req)), 400, req)
        # a request line that is not HTTP at all: answered 400 or just closed
        self.assertIn(status_of(raw(self.g.port, b"GARBAGE\r\n\r\n")), (400, None))
        self.assertEqual(self.g.get("/api/hello")["message"], "Hello from egw")

    def test_oversized_header(self):
        # Just over the 16 KiB cap; the server answers and closes.  Reading
        # only the first segment: the unread rest of our request may make the
        # server's close a reset.
        big = b"GET /api/hello HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n"
        self.assertIn(status_of(raw(self.g.port, big, read_all=False)), (431, 400))
        self.assertEqual(self.g.get("/api/hello")["message"], "Hello from egw")


class Auth(unittest.TestCase):
    def test_token_file_and_401_429(self):
        g = Egwd(self, set=dict(LOOP))
        path = os.path.join(g.state_dir, "api-token")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        tok = g.token
        self.assertRegex(tok, r"^[0-9a-f]{64}$")
        # where it is, never the token: the output ends up in the journal
        self.assertNotIn(tok, g.output())
        self.assertIn(path, g.output())

        body = {"harvest": {"poll_interval_ms": 500}}
        st, obj = http_json(g.port, "POST", "/api/settings", body)
        self.assertEqual(st, 401)
        self.assertIn("error", obj)
        st, obj = http_json(g.port, "POST", "/api/settings", body,
                            headers={"Authorization": "Bearer " + "0" * 64})
        self.assertEqual(st, 401)
        st, obj = http_json(g.port, "POST", "/api/settings", body,
                            headers={"Authorization": "Bearer " + tok[:-1]})
        self.assertEqual(st, 401)
        st, obj = http_json(g.port, "POST", "/api/settings", body, headers=g.auth())
        self.assertEqual(st, 200, obj)
        self.assertEqual(obj["harvest"]["poll_interval_ms"], 500)
        self.assertEqual(g.get("/api/settings")["harvest"]["poll_interval_ms"], 500)
        with open(os.path.join(g.state_dir, "settings.json")) as f:
            self.assertEqual(json.load(f)["harvest"]["poll_interval_ms"], 500)

        # 3 failures so far; 7 more reach 10 in the window, then wrong tokens
        # get 429 and the right one is still accepted
        for _ in range(7):
            st, _ = http_json(g.port, "POST", "/api/settings", body,
                              headers={"Authorization": "Bearer nope"})
            self.assertEqual(st, 401)
        st, obj = http_json(g.port, "POST", "/api/settings", body,
                            headers={"Authorization": "Bearer nope"})
        self.assertEqual(st, 429, obj)
        st, obj = http_json(g.port, "POST", "/api/settings", body, headers=g.auth())
        self.assertEqual(st, 200, obj)
        # reading stays open
        self.assertEqual(g.get("/api/hello")["message"], "Hello from egw")
        g.stop()

        # second start: same token, not printed again
        g2 = Egwd(self, state_dir=g.state_dir, set=dict(LOOP))
        self.assertEqual(g2.token, tok)
        self.assertNotIn(tok, g2.output())

    def test_settings_post_validation(self):
        g = Egwd(self, set=dict(LOOP))
        st, obj = http_json(g.port, "POST", "/api/settings", {"http": {"port": "x"}}, headers=g.auth())
        self.assertEqual(st, 400)
        self.assertEqual(obj["field"], "http.port")
        st, obj = http_json(g.port, "POST", "/api/settings",
                            {"devices": [{"connection": "usb", "profile": "x", "host": "h"}]},
                            headers=g.auth())
        self.assertEqual(st, 400)
        self.assertEqual(obj["field"], "devices[0].connection")
        st, obj = http_json(g.port, "POST", "/api/settings", "{not json", headers=g.auth())
        self.assertEqual(st, 400)
        self.assertIn("malformed JSON", obj["error"])
        st, obj = http_json(g.port, "POST", "/api/settings", {"mqtt": {"password": "pw"}},
                            headers=g.auth())
        self.assertEqual(st, 200)
        self.assertEqual(obj["mqtt"]["password"], "***")
        self.assertFalse(os.path.exists(os.path.join(g.state_dir, "settings.json.tmp")))


class Caps(unittest.TestCase):
    def test_body_too_large(self):
        g = Egwd(self, set=dict(LOOP, **{"http.max_body_bytes": 2048}))
        big = {"mqtt": {"host": "h" * 5000}}
        st, obj = http_json(g.port, "POST", "/api/settings", big, headers=g.auth())
        self.assertEqual(st, 413)
        # chunked upload without Content-Length is capped too
        chunk = b"x" * 3000
        req = (b"POST /api/settings HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
               b"Authorization: Bearer " + g.token.encode() + b"\r\n\r\n" +
               b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n")
        self.assertEqual(status_of(raw(g.port, req, read_all=False)), 413)
        self.assertEqual(g.get("/api/hello")["message"], "Hello from egw")

    def test_too_many_connections(self):
        g = Egwd(self, set=dict(LOOP, **{"http.max_connections": 4}))
        socks = []
        try:
            for _ in range(10):
                s = socket.create_connection(("127.0.0.1", g.port), timeout=2)
                socks.append(s)
            time.sleep(0.2)
            # the ones over the cap are closed (or never answered); the daemon lives
            served = 0
            for s in socks:
                try:
                    s.sendall(b"GET /api/hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    if status_of(s.recv(4096)) == 200:
                        served += 1
                except OSError:
                    pass
            self.assertLessEqual(served, 4)
            self.assertGreaterEqual(served, 1)
        finally:
            for s in socks:
                s.close()
        egwtest.wait_until(lambda: http(g.port, "GET", "/api/hello", timeout=1)[0] == 200,
                           timeout=5, what="served again")
        self.assertTrue(g.alive())

    def test_slowloris_closed_while_others_served(self):
        g = Egwd(self, set=dict(LOOP, **{"http.request_timeout_s": 1}))
        slow = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        try:
            slow.sendall(b"GET /api/hello HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            t0 = time.monotonic()
            served = 0
            while time.monotonic() - t0 < 0.5:
                self.assertEqual(g.get("/api/hello")["message"], "Hello from egw")
                served += 1
            self.assertGreater(served, 5)
            # the idle one is still open while the others were served ...
            slow.setblocking(False)  # a socket with a timeout would wait in recv
            try:
                early = slow.recv(100)
                self.fail("idle connection answered or closed after %.2fs: %r"
                          % (time.monotonic() - t0, early))
            except BlockingIOError:
                pass
            slow.settimeout(5)
            data = slow.recv(4096)  # ... and closed by the server after the timeout
            elapsed = time.monotonic() - t0
            self.assertEqual(data, b"")
            self.assertGreater(elapsed, 0.5)
            self.assertLess(elapsed, 5.0)
        finally:
            slow.close()


class Garbage(unittest.TestCase):
    def test_random_requests_never_crash(self):
        """A few hundred malformed or hostile requests; the daemon answers or
        closes each one and keeps serving."""
        import random
        rnd = random.Random(1234)
        g = Egwd(self, set=dict(LOOP, **{"http.max_body_bytes": 4096}))
        tok = g.token.encode()
        paths = [b"/", b"/api/settings", b"/api/state", b"/metrics", b"/api/hello?x=%00",
                 b"/api/../../etc/passwd", b"/%2e%2e/", b"/api/settings/", b"//api//hello",
                 b"/" + b"a" * 3000, b"/api/device", b"/api/notification/1"]
        methods = [b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"get", b"PATCH"]
        bodies = [b"", b"{", b"[]", b"null", b'{"http":{"port":-1}}', b'{"devices":[{}]}',
                  b'{"mqtt":{"password":"***"}}', b'{"a":' * 200, bytes(range(256)),
                  b'{"devices":[' + b'{"connection":"tcp","host":"h","profile":"p"},' * 40 + b'{}]}']
        for i in range(300):
            m, p, b = rnd.choice(methods), rnd.choice(paths), rnd.choice(bodies)
            hdrs = [b"Host: localhost"]
            if rnd.random() < 0.5:
                hdrs.append(b"Authorization: Bearer " + (tok if rnd.random() < 0.5 else b"zz"))
            if rnd.random() < 0.8:
                hdrs.append(b"Content-Length: %d" % (len(b) if rnd.random() < 0.8 else rnd.randint(0, 99999)))
            if rnd.random() < 0.1:
                hdrs.append(b"Transfer-Encoding: chunked")
            req = m + b" " + p + b" HTTP/1.1\r\n" + b"\r\n".join(hdrs) + b"\r\n\r\n" + b
            if rnd.random() < 0.1:
                req = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 200)))
            try:
                resp = raw(g.port, req, timeout=0.1, read_all=False)
            except OSError:
                resp = b""
            st = status_of(resp)
            self.assertTrue(st is None or 100 <= st < 600, resp[:100])
            self.assertNotEqual(st, 500, (req[:200], resp[:300]))
            self.assertTrue(g.alive(), g.output()[-2000:])
        self.assertEqual(g.get("/api/hello")["message"], "Hello from egw")
        self.assertEqual(g.stop(), 0, g.output()[-2000:])


class WithDevice(unittest.TestCase):
    def test_gateway_running_and_device_in_state_metrics_status(self):
        sim = egwtest.EgwSim(self, [("solaredge", 1)])
        g = Egwd(self, set=dict(LOOP, devices=[sim.device_settings(0, id="inv")],
                                **{"harvest.poll_interval_ms": 200}))
        st = egwtest.wait_until(lambda: (lambda s: s if s["state"] == "running" else None)(g.state()),
                                timeout=10, what="gateway running")
        self.assertEqual(st["gateway"]["counts"].get("no device -> running", 0) +
                         st["gateway"]["counts"].get("starting -> running", 0) +
                         st["gateway"]["counts"].get("degraded -> running", 0), 1)
        dev = st["devices"][0]
        self.assertEqual(dev["id"], "inv")
        self.assertEqual(dev["state"], "polling")
        self.assertEqual(dev["profile"], "solaredge")
        _, _, body = http(g.port, "GET", "/metrics")
        text = body.decode()
        self.assertIn('egw_gateway_state{state="running"} 1', text)
        self.assertRegex(text, r'egw_state_transitions_total\{machine="device",device="inv",'
                               r'from="identifying",to="polling"\} 1')
        _, _, body = http(g.port, "GET", "/status")
        html = body.decode()
        self.assertIn("Devices (1)", html)
        self.assertIn("solaredge", html)

        # settings changed through the API reach the devices without a restart
        st, obj = http_json(g.port, "POST", "/api/settings", {"devices": []}, headers=g.auth())
        self.assertEqual(st, 200, obj)
        egwtest.wait_until(lambda: g.state()["state"] == "no device", timeout=5,
                           what="gateway back to no device")
        self.assertEqual(g.state()["devices"], [])


class Rebind(unittest.TestCase):
    """http.port, http.bind and http.max_connections apply without a restart:
    egwd listens on the new address first, then closes the old one; an
    address it cannot have leaves it where it was, with the reason shown."""

    def test_port_moves_and_a_taken_port_is_refused(self):
        g = Egwd(self, set=dict(LOOP))
        old, new = g.port, egwtest.free_port()
        # a live-stream client (a suspended connection) on the old listener
        live = socket.create_connection(("127.0.0.1", old), timeout=5)
        self.addCleanup(live.close)
        live.sendall(b"GET /api/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertIn(b"200", live.recv(4096))
        st, obj = http_json(old, "POST", "/api/settings",
                            {"http": {"port": new, "max_connections": 9}}, headers=g.auth())
        self.assertEqual(st, 200, obj)

        def moved():
            try:
                return http(new, "GET", "/api/hello", timeout=1.0)[0] == 200
            except OSError:
                return False
        egwtest.wait_until(moved, timeout=5, what="egwd on the new port")
        with self.assertRaises(OSError):
            http(old, "GET", "/api/hello", timeout=1.0)
        # the stream on the old listener was closed, not left hanging
        live.settimeout(5)
        try:
            while live.recv(4096):
                pass
        except ConnectionResetError:
            pass
        h = get_json(new, "/api/state")["http"]
        self.assertEqual(h["listening"], f"127.0.0.1:{new}")
        self.assertEqual(h["max_connections"], 9)
        self.assertIsNone(h["rebind_error"])
        # the change is saved: a restart comes back on the new port
        with open(os.path.join(g.state_dir, "settings.json")) as f:
            self.assertEqual(json.load(f)["http"]["port"], new)

        # a port someone else holds: refused, nothing saved (a saved one
        # would stop the next start), egwd stays on `new`
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", egwtest.free_port()))
            taken.listen(1)
            busy = taken.getsockname()[1]
            st, obj = http_json(new, "POST", "/api/settings", {"http": {"port": busy}},
                                headers=g.auth())
            self.assertEqual(st, 400, obj)
            self.assertEqual(obj["field"], "http.port", obj)
            self.assertIn("in use", obj["error"].lower())
            h = get_json(new, "/api/state")["http"]
            self.assertEqual(h["listening"], f"127.0.0.1:{new}")
            self.assertIsNone(h["rebind_error"])
            with open(os.path.join(g.state_dir, "settings.json")) as f:
                self.assertEqual(json.load(f)["http"]["port"], new)
        self.assertIn(f"settings change not applied: http.port: cannot listen on 127.0.0.1:{busy}",
                      g.output())
        self.assertTrue(g.alive())
        out = g.output
        self.assertEqual(g.stop(), 0, out()[-3000:])  # under ASan: no leak, no error

    def test_second_egwd_on_a_taken_port_fails_to_start(self):
        """No SO_REUSEPORT: a second egwd cannot quietly share the port."""
        g = Egwd(self, set=dict(LOOP))
        d = egwtest.tempdir(self)
        p = subprocess.run([egwtest.binary("egwd"), "--port", str(g.port), "--state-dir", d,
                            "--set", "http.bind=127.0.0.1"], capture_output=True, text=True,
                           timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("in use", (p.stdout + p.stderr).lower())
        self.assertTrue(g.alive())


class Lifecycle(unittest.TestCase):
    def test_sigterm_exits_zero_quickly(self):
        g = Egwd(self, set=dict(LOOP))
        t0 = time.monotonic()
        g.signal(signal.SIGTERM)
        self.assertEqual(g.wait(timeout=5), 0)
        self.assertLess(time.monotonic() - t0, 2.0)
        out = g.output()
        self.assertIn("-> stopping (SIGTERM)", out)
        self.assertNotIn("runtime error", out)       # UBSan
        self.assertNotIn("AddressSanitizer", out)    # ASan, leaks included

    def test_sighup_reloads(self):
        d = egwtest.tempdir(self)
        path = os.path.join(d, "settings.json")
        with open(path, "w") as f:
            json.dump({"harvest": {"batch_interval_ms": 2000}}, f)
        g = Egwd(self, state_dir=d, set=dict(LOOP))
        self.assertEqual(g.get("/api/settings")["harvest"]["batch_interval_ms"], 2000)
        with open(path, "w") as f:
            json.dump({"harvest": {"batch_interval_ms": 3000}}, f)
        g.signal(signal.SIGHUP)
        egwtest.wait_until(lambda: g.get("/api/settings")["harvest"]["batch_interval_ms"] == 3000,
                           timeout=5, what="reloaded")
        # an invalid file on HUP keeps the running settings and the daemon
        with open(path, "w") as f:
            f.write('{"harvest": {"batch_interval_ms": "soon"}}')
        g.signal(signal.SIGHUP)
        g.wait_output("harvest.batch_interval_ms: expected an integer")
        self.assertEqual(g.get("/api/settings")["harvest"]["batch_interval_ms"], 3000)

    def test_invalid_settings_file_is_set_aside(self):
        """A file egwd cannot use never stops it: kept as .rejected, named in
        the log with the key and the problem, the defaults running."""
        d = egwtest.tempdir(self)
        path = os.path.join(d, "settings.json")
        text = '{"http": {"max_connections": 0}}\n'
        with open(path, "w") as f:
            f.write(text)
        e = egwtest.Egwd(self, state_dir=d)
        self.assertIn("http.max_connections", e.output())
        self.assertIn("out of range", e.output())
        with open(path + ".rejected") as f:
            self.assertEqual(f.read(), text)
        self.assertEqual(e.state()["settings"]["source"], "defaults")
        e.stop()
        # malformed JSON too
        with open(path, "w") as f:
            f.write("{oops")
        e = egwtest.Egwd(self, state_dir=d)
        self.assertIn("malformed JSON", e.output())
        self.assertIn("malformed JSON", e.state()["settings"]["rejected"])

    def test_cli_help_version_set_check(self):
        egwd = egwtest.binary("egwd")
        p = subprocess.run([egwd, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        for flag in ("--port", "--state-dir", "--config", "--log-level", "--set", "--check",
                     "--help", "--version"):
            self.assertIn(flag, p.stdout)
        p = subprocess.run([egwd, "--version"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertIn("0.1.0", p.stdout)
        d = egwtest.tempdir(self)
        p = subprocess.run([egwd, "--state-dir", d, "--set", "http.nope=1"], capture_output=True,
                           text=True, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("http.nope: unknown key", p.stderr)

        port = egwtest.free_port()
        p = subprocess.run([egwd, "--state-dir", d, "--port", str(port), "--check"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 1)
        g = Egwd(self, state_dir=d, port=port, set=dict(LOOP))
        p = subprocess.run([egwd, "--state-dir", d, "--port", str(port), "--check"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(g.alive())

    def test_state_dir_created_0700_and_config_flag(self):
        base = egwtest.tempdir(self)
        d = os.path.join(base, "a", "b")
        cfg = os.path.join(base, "other.json")
        with open(cfg, "w") as f:
            json.dump({"name": {"interval_ms": 5000}}, f)
        g = Egwd(self, state_dir=d, set=dict(LOOP), args=["--config", cfg])
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)
        self.assertEqual(g.get("/api/settings")["name"]["interval_ms"], 5000)


if __name__ == "__main__":
    unittest.main()
