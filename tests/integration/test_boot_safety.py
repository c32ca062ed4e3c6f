"""Nothing the API accepts can stop the next start, and a settings file egwd
cannot use does not stop it either.

Each input a probe found to brick the gateway (saved with 200/201, then
"egwd exits 1" at the next start) is replayed through POST /api/settings or
POST /api/device: it must be refused with the field named and nothing saved,
or accepted; either way egwd must start again from what is on disk and
serve.  A hand-broken settings file boots into the UI with the problem shown
(the file kept aside as settings.json.rejected, the last known good settings
or the defaults running)."""
import json
import os
import random
import shutil
import socket
import subprocess
import unittest

import egwtest as t

NODE_DIR = os.path.join(t.REPO, "tests", "node")
SHOTS = os.path.join(t.REPO, "tests", "out", "screenshots")


def settings_bytes(e):
    p = os.path.join(e.state_dir, "settings.json")
    if not os.path.exists(p):
        return None
    with open(p, "rb") as f:
        return f.read()


def rtu(port="/dev/ttyEGW0", baud=9600, **kw):
    d = {"connection": "rtu", "serial_port": port, "baudrate": baud, "profile": "sdm630"}
    d.update(kw)
    return d


def tcp(**kw):
    d = {"connection": "tcp", "host": "127.0.0.1", "port": 1, "unit_id": 1, "profile": "huawei"}
    d.update(kw)
    return d


class BootSafety(unittest.TestCase):
    def start(self, state_dir=None, **kw):
        # Only http.bind as an override (loopback for tests); everything
        # else comes from the file under test.
        return t.Egwd(self, state_dir=state_dir, **kw)

    def restart_serves(self, e):
        """Stop e, start a new egwd on its state dir, check it serves what
        was saved: the file itself (not a fallback), the same settings."""
        saved = e.get("/api/settings")
        running = [d["id"] for d in e.get("/api/device")["devices"]]
        self.assertEqual(e.stop(), 0, e.output()[-2000:])
        e2 = self.start(state_dir=e.state_dir, port=e.port, tls_port=e.tls_port)
        st = e2.state()
        self.assertIn("devices", st)
        self.assertEqual(st["settings"]["source"], "file", st["settings"])
        self.assertIsNone(st["settings"].get("rejected"), st["settings"])
        # Devices saved without an id get the one they ran with written
        # into the file at the start.
        self.assertEqual([d["id"] for d in e2.get("/api/device")["devices"]], running)
        served = e2.get("/api/settings")
        for d, was in zip(served.get("devices", []), saved.get("devices", [])):
            if "id" not in was:
                d.pop("id", None)
        self.maxDiff = None
        self.assertEqual(served, saved)
        return e2

    # The probe's cases through POST /api/settings.
    SETTINGS_CASES = [
        ("devices[0].profile", {"devices": [tcp(profile="nosuch")]}),
        ("devices[0].profile", {"devices": [tcp(profile="")]}),
        ("devices[1].id", {"devices": [tcp(id="a"), tcp(id="a", unit_id=2)]}),
        ("devices[0].id", {"devices": [tcp(id="")]}),
        ("devices[0].id", {"devices": [tcp(id="x" * 64)]}),
        ("devices[0].name", {"devices": [tcp(name="")]}),
        ("devices[0].name", {"devices": [tcp(name="n" * 96)]}),
        ("devices[0].host", {"devices": [tcp(host="")]}),
        ("devices[0].host", {"devices": [tcp(host="h" * 256)]}),
        ("devices[0].host", {"devices": [tcp(host="not a host!")]}),
        ("devices[1].baudrate", {"devices": [rtu(unit_id=1), rtu(baud=19200, unit_id=2)]}),
        ("devices[0].serial_port", {"devices": [rtu(port="")]}),
        ("devices[1].host", {"devices": [tcp(), tcp(id="again")]}),
        ("http.bind", {"http": {"bind": "not-an-ip"}}),
        ("http.bind", {"http": {"bind": ""}}),
        ("http.bind", {"http": {"bind": "::1"}}),
        # TEST-NET-3: an address no machine here has.
        ("http.bind", {"http": {"bind": "203.0.113.7"}}),
        # Found by the random patches below: the signer could not open at
        # the next start.
        ("signer.i2c_bus", {"signer": {"backend": "atecc608", "i2c_bus": "software"}}),
    ]

    def test_settings_api_refuses_what_cannot_start(self):
        e = self.start()
        # A port another program listens on, and egwd's own HTTPS port: the
        # listener cannot move there (and a saved one stops the next start).
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", t.free_port()))
        taken.listen()
        cases = self.SETTINGS_CASES + [
            ("http.port", {"http": {"port": taken.getsockname()[1]}}),
            ("http.tls_port", {"http": {"tls_port": taken.getsockname()[1]}}),
            ("http.tls_port", {"http": {"tls_port": e.port}}),
            # The Modbus proxy the same: 2xx only once it listens.
            ("proxy.port", {"proxy": {"enabled": True, "bind": "127.0.0.1",
                                      "port": taken.getsockname()[1]}}),
            ("proxy.bind", {"proxy": {"enabled": True, "bind": "203.0.113.7",
                                      "port": t.free_port()}}),
        ]
        if e.state()["https"]["listening"]:
            cases.append(("http.port", {"http": {"port": e.tls_port}}))
        for field, body in cases:
            with self.subTest(field=field, body=json.dumps(body)[:80]):
                before = settings_bytes(e)
                st, obj = t.http_json(e.port, "POST", "/api/settings", body, headers=e.auth())
                self.assertEqual(st, 400, obj)
                self.assertEqual(obj.get("field"), field, obj)
                self.assertEqual(settings_bytes(e), before, "a refused change was saved")
        self.assertFalse(e.state()["proxy"]["enabled"])
        e = self.restart_serves(e)

    # The probe's cases through POST /api/device, the UI's own endpoint.
    def test_device_api_refuses_what_the_device_layer_refuses(self):
        e = self.start()
        st, obj = t.http_json(e.port, "POST", "/api/device", rtu(), headers=e.auth())
        self.assertEqual(st, 201, obj)
        cases = [
            ("serial_port", rtu(port="/dev/" + "x" * 300, unit_id=3)),
            ("name", tcp(name="")),
            ("baudrate", rtu(baud=19200, unit_id=2)),
            ("host", tcp(host="not a host!")),
            ("serial_port", rtu()),                    # the same device again
            ("profile", tcp(profile="nosuch")),
            ("baudrate", rtu(port="/dev/ttyEGW1", baud=12345)),
        ]
        for field, body in cases:
            with self.subTest(field=field, body=json.dumps(body)[:80]):
                before = settings_bytes(e)
                st, obj = t.http_json(e.port, "POST", "/api/device", body, headers=e.auth())
                self.assertEqual(st, 400, obj)
                self.assertEqual(obj.get("field"), field, obj)
                self.assertEqual(settings_bytes(e), before, "a refused device was saved")
        e = self.restart_serves(e)
        devs = e.get("/api/device")["devices"]
        self.assertEqual(len(devs), 1, devs)

    def test_random_bodies_save_only_what_starts(self):
        """Mutated device bodies through save -> restart: each is refused with
        a field named, or accepted and egwd starts again with it."""
        rnd = random.Random(20261203)
        values = ["", "x" * 300, "not a host!", "/dev/ttyS9", "127.0.0.1", "sunspec", "rtu",
                  "rtu-over-tcp", "tcp", "N", "Q", -1, 0, 1, 70000, 9600, 12345, 2.5, None,
                  True, [], {}, "a\nb", "dev1", "h" * 64]
        keys = ["connection", "host", "port", "unit_id", "profile", "serial_port", "baudrate",
                "parity", "stopbits", "id", "name", "poll_interval_ms", "colour"]
        e = self.start()
        accepted = 0
        for i in range(40):
            body = tcp(port=1000 + i) if rnd.random() < 0.5 else rtu(port=f"/dev/ttyEGW{i}")
            for _ in range(rnd.randint(1, 3)):
                body[rnd.choice(keys)] = rnd.choice(values)
            st, obj = t.http_json(e.port, "POST", "/api/device", body, headers=e.auth())
            self.assertIn(st, (201, 400), (body, obj))
            if st == 400:
                self.assertTrue(obj.get("field"), (body, obj))
            else:
                accepted += 1
            if i % 10 == 9:
                e = self.restart_serves(e)
        self.assertGreater(accepted, 0)
        self.restart_serves(e)

    def test_random_settings_save_only_what_starts(self):
        """Random patches of every settings key (from GET /api/settings)
        through save -> restart: each is refused with the field named and
        nothing saved, or accepted, and the next egwd starts from exactly
        that file and serves it."""
        # EGW_BOOT_FUZZ=SEED:ROUNDS runs another seed, or longer.
        seed, rounds = os.environ.get("EGW_BOOT_FUZZ", "20261204:120").split(":")
        rnd = random.Random(int(seed))
        e = self.start()
        # Ports nothing listens on (MQTT, backends, the proxy, devices): a
        # change may connect there, never to another test's server.
        idle = [t.free_port() for _ in range(3)]
        # The harness pins these on the command line; test_settings_api_...
        # covers them.
        pinned = {"http.port", "http.tls_port", "http.bind"}
        strings = ["", "x" * 300, "not a host!", "127.0.0.1", "localhost", "0.0.0.0", "::1",
                   "a\nb", "\u00e9t\u00e9", "***", "/nonexistent/egw/file.pem", "/dev/i2c-9",
                   "auto", "none", "gzip", "egw", "srcful", "debug", "error", "software",
                   "atecc608", "password", "jwt", "egw/<serial>/x",
                   f"http://user:pass@127.0.0.1:{idle[0]}/in?api_key=k",
                   f"https://127.0.0.1:{idle[1]}/graphql", "ftp://127.0.0.1/", "http://"]
        numbers = [0, 1, -1, 10, 255, 1023, 5000, 65535, 65536, 2 ** 31, 2 ** 63 - 1, 1.5,
                   1e300, "12"] + idle
        others = [None, True, False, [], {}, [1, 2], {"a": 1}]

        def flatten(doc, prefix=""):
            for k, v in doc.items():
                if isinstance(v, dict) and v and k != "devices":
                    yield from flatten(v, prefix + k + ".")
                else:
                    yield prefix + k, v

        keys = sorted(k for k, _ in flatten(e.get("/api/settings")) if k not in pinned)
        self.assertGreater(len(keys), 50, keys)

        def value_for(key, cur):
            r = rnd.random()
            if key == "devices":
                return [rnd.choice([tcp(port=rnd.choice(idle), unit_id=i + 1),
                                    rtu(port=f"/dev/ttyEGW{i}")]) for i in range(rnd.randint(0, 3))]
            if key.endswith("port") and r < 0.6:
                return rnd.choice(idle + [0, 65536, 502, "1883"])
            if r < 0.15:
                return rnd.choice(others)
            if isinstance(cur, bool):
                return rnd.choice([True, False, 0, "true"])
            if isinstance(cur, int):
                return rnd.choice(numbers + [cur, cur + 1, cur - 1, cur * 2])
            if isinstance(cur, list):
                return [rnd.choice(strings + numbers) for _ in range(rnd.randint(0, 3))]
            return rnd.choice(strings)

        accepted = refused = 0
        for i in range(int(rounds)):
            current = dict(flatten(e.get("/api/settings")))
            body = {}
            for key in rnd.sample(keys, rnd.randint(1, 4)):
                node = body
                *path, last = key.split(".")
                for p in path:
                    node = node.setdefault(p, {})
                node[last] = value_for(key, current.get(key))
            if rnd.random() < 0.1:
                body["no_such_key"] = 1
            before = settings_bytes(e)
            st, obj = t.http_json(e.port, "POST", "/api/settings", body, headers=e.auth())
            self.assertIn(st, (200, 400), (body, obj))
            if st == 400:
                refused += 1
                self.assertTrue(obj.get("field"), (body, obj))
                self.assertEqual(settings_bytes(e), before, (body, obj))
            else:
                accepted += 1
            if os.environ.get("EGW_BOOT_FUZZ_VERBOSE"):
                print(st, json.dumps(body)[:150], obj.get("field") if st == 400 else "")
            if i % 6 == 5:
                e = self.restart_serves(e)
        self.assertGreater(accepted, 5)
        self.assertGreater(refused, 5)
        self.restart_serves(e)

    def test_broken_file_boots_with_defaults_and_says_why(self):
        d = t.tempdir(self)
        with open(os.path.join(d, "settings.json"), "w") as f:
            f.write('{"devices": [{"connection": "tcp", "profile": "huawei", "host": ""}]}\n')
        e = self.start(state_dir=d)
        st = e.state()
        self.assertEqual(st["settings"]["source"], "defaults")
        self.assertIn("devices[0].host", st["settings"]["rejected"])
        self.assertTrue(os.path.exists(os.path.join(d, "settings.json.rejected")))
        notes = e.get("/api/notification")
        self.assertIn("devices[0].host", json.dumps(notes))
        # The UI is served, the status page says it, and the next start is clean.
        status, _, _ = t.http(e.port, "GET", "/")
        self.assertEqual(status, 200)
        status, _, page = t.http(e.port, "GET", "/status")
        self.assertEqual(status, 200)
        self.assertIn("Settings rejected", page.decode())
        self.assertIn("devices[0].host", page.decode())
        e.stop()
        e = self.start(state_dir=d)
        self.assertEqual(e.state()["settings"]["source"], "file")

    @unittest.skipUnless(shutil.which("node") and os.path.exists("/usr/bin/chromium") and
                         os.path.isdir(os.path.join(NODE_DIR, "node_modules", "playwright-core")),
                         "needs node, /usr/bin/chromium and npm playwright-core (scripts/setup --test)")
    def test_broken_file_shown_in_the_ui(self):
        """The refusal as a user sees it: the web UI in headless Chromium."""
        d = t.tempdir(self)
        with open(os.path.join(d, "settings.json"), "w") as f:
            f.write('{"devices": [{"connection": "rtu", "profile": "sdm630", "serial_port": ""}]}\n')
        e = self.start(state_dir=d)
        os.makedirs(SHOTS, exist_ok=True)
        r = subprocess.run(["node", os.path.join(NODE_DIR, "rejected.mjs"), "--port", str(e.port),
                            "--expect", "devices[0].serial_port", "--out", SHOTS],
                           cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, f"{r.stdout}\n{r.stderr}\negwd:\n{e.output()[-2000:]}")
        self.assertIn("ok - the refusal is shown", r.stdout)

    def test_malformed_file_boots_from_last_known_good(self):
        d = t.tempdir(self)
        e = self.start(state_dir=d)
        st, obj = t.http_json(e.port, "POST", "/api/device", tcp(id="inv", port=1502),
                              headers=e.auth())
        self.assertEqual(st, 201, obj)
        e.stop()
        self.assertTrue(os.path.exists(os.path.join(d, "settings.json.last-good")))
        with open(os.path.join(d, "settings.json"), "w") as f:
            f.write('{"devices": [')  # an editor that crashed mid-save
        e = self.start(state_dir=d)
        st = e.state()
        self.assertEqual(st["settings"]["source"], "last-known-good")
        self.assertIn("malformed JSON", st["settings"]["rejected"])
        self.assertEqual([x["id"] for x in e.get("/api/device")["devices"]], ["inv"])
        with open(os.path.join(d, "settings.json.rejected")) as f:
            self.assertEqual(f.read(), '{"devices": [')

    def test_hup_with_a_broken_file_keeps_running(self):
        d = t.tempdir(self)
        e = self.start(state_dir=d)
        with open(os.path.join(d, "settings.json"), "w") as f:
            f.write('{"http": {"port": "many"}}')
        e.signal(1)
        e.wait_output("SIGHUP: keeping the current settings", timeout=5)
        self.assertIn("devices", e.state())


if __name__ == "__main__":
    unittest.main()
