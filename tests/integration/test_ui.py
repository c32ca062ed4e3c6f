"""Web UI in a real browser: egwd (no device) + egw-sim (a SunSpec inverter)
+ mosquitto, driven by tests/node/ui.mjs in headless Chromium.  Every page is
audited at desktop (1280x800) and phone (390x844) size (overflowing text, a
literal null/undefined/NaN, a sideways scroll) and screenshotted into
tests/out/screenshots/ (gitignored; the reviewed set is in doc/screenshots/).
A user turns MQTT on and adds a device that is not there through the forms,
and sees "Connection refused", without typing JSON; picks a P1 smart meter (the
fields of each line), scans egw-sim's P1 meter and adds it from the result."""
import os
import re
import shutil
import subprocess
import unittest

import egwtest as t
from test_mqtt import MOSQUITTO, Broker

NODE_DIR = os.path.join(t.REPO, "tests", "node")
SHOTS = os.path.join(t.REPO, "tests", "out", "screenshots")


@unittest.skipUnless(shutil.which("node") and os.path.exists("/usr/bin/chromium") and
                     os.path.isdir(os.path.join(NODE_DIR, "node_modules", "playwright-core")),
                     "needs node, /usr/bin/chromium and npm playwright-core (scripts/setup --test)")
class UiTest(unittest.TestCase):
    def test_ui_in_chromium(self):
        sim = t.EgwSim(self, [("sunspec", 1)], control=False)
        egwd = t.Egwd(self)
        os.makedirs(SHOTS, exist_ok=True)
        argv = ["node", os.path.join(NODE_DIR, "ui.mjs"),
                "--url", f"http://127.0.0.1:{egwd.port}", "--token", egwd.token,
                "--sim-port", str(sim.servers[0]["port"]), "--out", SHOTS,
                # a loopback port nothing listens on: the device there is refused
                "--dead-port", str(t.free_port())]
        p1 = t.EgwSim(self, [], args=["--profile", "p1", "--port", "0"], control=False)
        p1.wait_output("egw-sim: ready", timeout=10)
        argv += ["--p1-port", re.search(r"listening p1 tcp 127\.0\.0\.1:(\d+)", p1.output()).group(1)]
        if os.path.exists(MOSQUITTO):
            broker = Broker(self)
            broker.start()
            argv += ["--mqtt-port", str(broker.port)]
        r = subprocess.run(argv, cwd=NODE_DIR, capture_output=True, text=True, timeout=240)
        msg = f"ui.mjs failed:\n{r.stdout}\n{r.stderr}\negwd:\n{egwd.output()[-3000:]}"
        self.assertEqual(r.returncode, 0, msg)
        self.assertIn("ok - raw read of 40000 (str) gives SunS", r.stdout)
        self.assertIn('shows "Connection refused" right after adding', r.stdout)
        self.assertIn("ok - MQTT turned on through the form", r.stdout)
        self.assertIn("ok - /favicon.ico answers 200", r.stdout)
        self.assertIn("ok - the scan result fills the form as a P1 meter", r.stdout)
        self.assertIn("ok - the P1 meter added through the form reaches polling", r.stdout)
        self.assertIn("ok - desktop devices-p1-serial: nothing overflows", r.stdout)
        self.assertIn("ok - desktop devices-empty: nothing overflows", r.stdout)
        self.assertIn("ok - desktop overview-empty: nothing overflows", r.stdout)
        self.assertIn("ok - after the removal the overview shows no battery", r.stdout)
        self.assertIn("ok - a wrong token shows as an error (401)", r.stdout)
        self.assertIn("ok - the API's error for mqtt.port is shown at the port field", r.stdout)
        pages = ("overview", "devices", "device", "device-error", "settings", "identity", "status")
        for size in ("desktop", "phone"):
            for page in pages:
                self.assertIn(f"ok - {size} {page}: nothing overflows", r.stdout)
        for name in ("01-overview-empty", "03-devices", "04-overview-live", "05-device",
                     "06-settings", "07-identity", "08-phone-overview") + \
                tuple(f"{s}-{p}" for s in ("desktop", "phone") for p in pages):
            p = os.path.join(SHOTS, name + ".png")
            self.assertTrue(os.path.getsize(p) > 5000, p)
        self.assertTrue(egwd.alive(), egwd.output())

    def test_demo_power_flow_on_a_phone(self):
        """The demo's devices (scripts/demo: a SolarEdge inverter and an SDM630
        meter, one egw-sim home) on a 390 px phone: the flow's house load is
        what the API's readings give (meter import + inverter output, >= 0),
        directions are words, labels fit their circles; the screenshot is
        tests/out/screenshots/10-phone-demo-flow.png."""
        import json
        import socket
        sim = t.EgwSim(self, [("solaredge", 1), ("sdm630", 2)])
        sim.wait_output("egw-sim: ready", timeout=10)
        ctl = socket.create_connection(("127.0.0.1", sim.control_port), timeout=5)
        self.addCleanup(ctl.close)
        f = ctl.makefile("rwb")
        f.write(b"freeze on\n")
        f.flush()
        self.assertTrue(f.readline().startswith(b"ok"))
        devs = [sim.device_settings(i, id=s["profile"]) for i, s in enumerate(sim.servers)]
        egwd = t.Egwd(self, set={"devices": devs, "harvest.poll_interval_ms": 200})

        def both():
            by = {d["id"]: d for d in egwd.state().get("devices", [])}
            ok = all("W" in ((by.get(k) or {}).get("reading") or {}).get(g, {})
                     for k, g in (("solaredge", "inverter"), ("sdm630", "meter")))
            return by if ok else None
        by = t.wait_until(both, timeout=30, what="inverter and meter readings")
        os.makedirs(SHOTS, exist_ok=True)
        r = subprocess.run(["node", os.path.join(NODE_DIR, "demo_flow.mjs"), "--url",
                            f"http://127.0.0.1:{egwd.port}", "--out", SHOTS],
                           cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, f"demo_flow.mjs failed:\n{r.stdout}\n{r.stderr}")
        flow = json.loads(re.search(r"^flow (.*)$", r.stdout, re.M).group(1))
        by = both()
        grid = by["sdm630"]["reading"]["meter"]["W"]
        inv = by["solaredge"]["reading"]["inverter"]["W"]
        house = grid - inv

        def watts(text):
            m = re.fullmatch(r"([\d.,]+) (k?)W", text)
            self.assertIsNotNone(m, text)
            return float(m.group(1).replace(",", "")) * (1000 if m.group(2) else 1)
        self.assertGreaterEqual(house, 0)
        # the page rounds to 1 W, or 10 W in kW with two decimals
        self.assertAlmostEqual(watts(flow["house"][0]), house, delta=11)
        self.assertAlmostEqual(watts(flow["grid"][0]), abs(grid), delta=11)
        self.assertEqual(flow["grid"][1], "importing" if grid >= 5 else
                         "exporting" if grid <= -5 else "balanced")
        self.assertEqual(flow["battery"][0], "–")  # the demo has no battery
        self.assertGreater(os.path.getsize(os.path.join(SHOTS, "10-phone-demo-flow.png")), 3000)
        self.assertTrue(egwd.alive(), egwd.output())


if __name__ == "__main__":
    unittest.main()
