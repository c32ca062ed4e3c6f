"""Security checks against a real egwd on loopback.

Walks the route table that `egwd --list-routes` prints (method, path,
needs_token): every route that changes state refuses requests without the API
token and with a wrong one (401), and nothing changes; no route returns the
private key, the API token or a secret from the settings (mqtt.password is
set and looked for everywhere: /api/settings, /api/state, /metrics, /status,
the UI assets, the live stream); the key, token and settings files are mode
0600 and the state dir 0700; failed token attempts are rate limited across
routes without ever refusing the right token, and the limit ends with its
window.
Run with /usr/bin/python3; EGW_BUILD names the build directory.
"""
import base64
import os
import socket
import stat
import subprocess
import time
import unittest

from cryptography.hazmat.primitives import serialization

import egwtest as T

LOOP = {"http.bind": "127.0.0.1"}
SECRET = "pw-Zq7xK2mN9vR4tL8s"
# Routes whose GET has side effects beyond reading (none since scans and raw
# reads became POST).  Every route that is not GET must need the token.
KNOWN_GET_SIDE_EFFECTS = set()


def routes():
    out = subprocess.run([T.binary("egwd"), "--list-routes"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    res = []
    for line in out.splitlines():
        method, path, tok = line.split()
        res.append((method, path, tok == "1"))
    return res


def concrete(path):
    return path[:-1] + "some-id" if path.endswith("*") else path


def sse_sample(port, seconds=1.5):
    """The first bytes of /api/live for `seconds`."""
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(b"GET /api/live HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
    data = b""
    end = time.monotonic() + seconds
    s.settimeout(0.2)
    while time.monotonic() < end and len(data) < 1 << 20:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    s.close()
    return data


class SecurityTest(unittest.TestCase):

    def start(self, **kw):
        s = dict(LOOP)
        s.update(kw.pop("set", {}))
        return T.Egwd(self, set=s, **kw)

    def test_route_table_listed(self):
        r = routes()
        self.assertGreater(len(r), 10)
        self.assertIn(("POST", "/api/settings", True), r)
        self.assertIn(("GET", "/api/hello", False), r)

    def test_state_changing_routes_need_the_token(self):
        table = routes()
        changing = [(m, p) for m, p, tok in table if m != "GET"]
        self.assertTrue(changing)
        for m, p, tok in table:
            if m != "GET":
                self.assertTrue(tok, f"{m} {p} changes state but does not need the token")
        g = self.start()
        fails = 0
        for method, path in changing:
            if fails >= 8:  # stay under the rate limit (10 per 10 s)
                g.stop()
                g = self.start()
                fails = 0
            before = g.get("/api/settings")
            url = concrete(path)
            for hdr in ({}, {"Authorization": "Bearer " + "f" * 64},
                        {"Authorization": "Basic " + g.token},
                        {"Authorization": "Bearer " + g.token + "0"}):
                body = {"id": "x", "connection": "tcp", "host": "127.0.0.1",
                        "profile": "solaredge", "address": 0, "values": [1],
                        "http": {"port": 1234}}
                st, obj = T.http_json(g.port, method, url, body=body, headers=hdr)
                self.assertEqual(st, 401, f"{method} {url} with {hdr}: {st} {obj}")
                self.assertIn("error", obj)
                fails += 1
                if fails >= 8:
                    break
            self.assertEqual(g.get("/api/settings"), before, f"{method} {url} changed settings")
        # The right token passes the check on each of them (whatever the
        # handler then says about the body).
        g.stop()
        g = self.start()
        for method, path in changing:
            st, _, _ = T.http(g.port, method, concrete(path), body={}, headers=g.auth())
            self.assertNotIn(st, (401, 429), f"{method} {path} refused the right token")

    def test_no_secret_in_any_answer(self):
        g = self.start()
        st, obj = T.http_json(g.port, "POST", "/api/settings",
                              body={"mqtt": {"password": SECRET, "username": "egw"}},
                              headers=g.auth())
        self.assertEqual(st, 200, obj)
        self.assertEqual(obj["mqtt"]["password"], "***")
        token = g.token
        with open(os.path.join(g.state_dir, "device-key.pem"), "rb") as f:
            pem = f.read()
        key = serialization.load_pem_private_key(pem, password=None)
        d = key.private_numbers().private_value.to_bytes(32, "big")
        needles = {
            "mqtt.password": [SECRET.encode()],
            "api token": [token.encode(), token.upper().encode()],
            "private key": [d.hex().encode(), d.hex().upper().encode(),
                            base64.urlsafe_b64encode(d).rstrip(b"="),
                            base64.b64encode(d).rstrip(b"=")]
                           + [ln for ln in pem.splitlines() if ln and not ln.startswith(b"-----")],
        }
        answers = {}
        for method, path, _ in routes():
            if method != "GET" or path in KNOWN_GET_SIDE_EFFECTS:
                continue
            if path == "/api/live":
                answers[path] = sse_sample(g.port)
                continue
            st, hdrs, body = T.http(g.port, "GET", concrete(path))
            answers[path] = body + repr(hdrs).encode()
        for path in ("/api/state", "/metrics", "/status", "/api/settings", "/", "/app.js"):
            self.assertIn(path, answers)
        self.assertIn(b"***", answers["/api/settings"])
        for what, ns in needles.items():
            for path, body in answers.items():
                for n in ns:
                    self.assertNotIn(n, body, f"{what} found in GET {path}")
        # not in the process output either (the token is printed once at
        # creation, on purpose; the password and key never)
        out = g.output().encode()
        for n in needles["mqtt.password"] + needles["private key"]:
            self.assertNotIn(n, out)

    def test_secret_from_command_line_masked(self):
        g = self.start(set={"mqtt.password": SECRET})
        for path in ("/api/settings", "/api/state", "/metrics", "/status"):
            st, _, body = T.http(g.port, "GET", path)
            self.assertEqual(st, 200, path)
            self.assertNotIn(SECRET.encode(), body, path)
        self.assertEqual(g.get("/api/settings")["mqtt"]["password"], "***")
        self.assertNotIn(SECRET, g.output())

    def test_file_modes(self):
        g = self.start()
        st, obj = T.http_json(g.port, "POST", "/api/settings",
                              body={"mqtt": {"password": SECRET}}, headers=g.auth())
        self.assertEqual(st, 200, obj)
        self.assertEqual(stat.S_IMODE(os.stat(g.state_dir).st_mode) & 0o077, 0,
                         "state dir readable by others")
        for name in ("api-token", "device-key.pem", "settings.json"):
            p = os.path.join(g.state_dir, name)
            self.assertTrue(os.path.exists(p), name)
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600, name)
        # the store may hold nothing secret, but no one else may write it
        p = os.path.join(g.state_dir, "store.db")
        if os.path.exists(p):
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode) & 0o022, 0, "store.db")

    def test_failed_tokens_rate_limited_across_routes(self):
        """Ten wrong tokens from one address: its next wrong tokens get 429
        on every token route, but its right token is still accepted (the
        token is checked first: no one can lock the owner out)."""
        g = self.start()
        table = [(m, concrete(p)) for m, p, tok in routes() if tok]
        st0 = g.get("/api/settings")
        for i in range(10):
            m, p = table[i % len(table)]
            st, _, _ = T.http(g.port, m, p, body={}, headers={"Authorization": f"Bearer {i:064x}"})
            self.assertEqual(st, 401, f"attempt {i} on {m} {p}")
        # the 11th wrong attempt, on any route: 429 with Retry-After, a
        # second late (guessing is slowed)
        for m, p in table[:3]:
            t0 = time.monotonic()
            st, hdrs, _ = T.http(g.port, m, p, body={"harvest": {"poll_interval_ms": 777}},
                                 headers={"Authorization": "Bearer " + "e" * 64})
            self.assertEqual(st, 429, f"{m} {p} not rate limited")
            self.assertIn("retry-after", hdrs)
            self.assertGreater(time.monotonic() - t0, 0.8)
        self.assertEqual(g.get("/api/settings"), st0)
        # the right token from the same address, at once: accepted, not slowed
        t0 = time.monotonic()
        st, _, body = T.http(g.port, "POST", "/api/settings",
                             body={"harvest": {"poll_interval_ms": 777}}, headers=g.auth())
        self.assertEqual(st, 200, body[:200])
        self.assertLess(time.monotonic() - t0, 0.5)
        # reading stays open while limited
        self.assertEqual(T.http(g.port, "GET", "/api/hello")[0], 200)
        # the limit is per client address: another client (127.0.0.2 reaches
        # egwd's 127.0.0.1 on Linux) is refused with a wrong token like anyone
        # else (401, not 429) and gets in with the right one
        m, p = table[0]
        st, _, _ = T.http(g.port, m, p, body={}, headers={"Authorization": "Bearer " + "1" * 64},
                          source="127.0.0.2")
        self.assertEqual(st, 401)
        st, _, body = T.http(g.port, "POST", "/api/settings",
                             body={"harvest": {"poll_interval_ms": 778}}, headers=g.auth(),
                             source="127.0.0.2")
        self.assertEqual(st, 200, body[:200])
        # while 127.0.0.1's wrong tokens are still limited
        st, _, _ = T.http(g.port, m, p, body={}, headers={"Authorization": "Bearer " + "2" * 64})
        self.assertEqual(st, 429)
        m = T.http(g.port, "GET", "/metrics")[2].decode()
        self.assertRegex(m, r"egw_http_auth_failures_total\s+1\d")

    def test_failures_from_many_addresses_lock_no_one_out(self):
        """100 failures spread over many addresses: there is no limit over
        all addresses that they could fill.  The right token from a new
        address is accepted and a wrong one from a new address gets 401."""
        g = self.start()
        for i in range(100):
            src = f"127.0.{1 + i // 10}.{2 + i % 10}"
            st, _, _ = T.http(g.port, "POST", "/api/settings", body={},
                              headers={"Authorization": f"Bearer {i:064x}"}, source=src)
            self.assertEqual(st, 401, f"attempt {i} from {src}")
        st, _, body = T.http(g.port, "POST", "/api/settings",
                             body={"harvest": {"poll_interval_ms": 777}}, headers=g.auth(),
                             source="127.0.0.200")
        self.assertEqual(st, 200, body[:200])
        st, _, _ = T.http(g.port, "POST", "/api/settings", body={},
                          headers={"Authorization": "Bearer " + "3" * 64}, source="127.0.0.201")
        self.assertEqual(st, 401)
        self.assertEqual(T.http(g.port, "GET", "/api/hello")[0], 200)

if __name__ == "__main__":
    unittest.main()
