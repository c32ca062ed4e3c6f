"""Web UI in a real browser: egwd (no device) + egw-sim (a SunSpec inverter),
driven by tests/node/ui.mjs in headless Chromium.  Screenshots of every page
go to tests/out/screenshots/ (gitignored)."""
import os
import shutil
import subprocess
import unittest

import egwtest as t

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
        r = subprocess.run(["node", os.path.join(NODE_DIR, "ui.mjs"),
                            "--url", f"http://127.0.0.1:{egwd.port}", "--token", egwd.token,
                            "--sim-port", str(sim.servers[0]["port"]), "--out", SHOTS],
                           cwd=NODE_DIR, capture_output=True, text=True, timeout=150)
        msg = f"ui.mjs failed:\n{r.stdout}\n{r.stderr}\negwd:\n{egwd.output()[-3000:]}"
        self.assertEqual(r.returncode, 0, msg)
        self.assertIn("ok - raw read of 40000 (str) gives SunS", r.stdout)
        for name in ("01-overview-empty", "03-devices", "04-overview-live", "05-device",
                     "06-settings", "07-identity", "08-phone-overview"):
            p = os.path.join(SHOTS, name + ".png")
            self.assertTrue(os.path.getsize(p) > 5000, p)
        self.assertTrue(egwd.alive(), egwd.output())


if __name__ == "__main__":
    unittest.main()
