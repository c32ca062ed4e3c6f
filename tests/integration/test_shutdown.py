"""An orderly stop loses no reading: SIGTERM seals what was collected since the
last batch and commits it to the store before egwd exits."""
import os
import signal
import socket
import sqlite3
import time
import unittest

import egwtest as T

import sys
sys.path.insert(0, os.path.join(T.REPO, "tools"))
import egw_batch  # noqa: E402


class Shutdown(unittest.TestCase):
    def test_sigterm_seals_and_stores_the_open_batch(self):
        sim = T.EgwSim(self, [("solaredge", 1)])
        egwd = T.Egwd(self, set={
            "devices": [sim.device_settings(0)],
            "harvest.poll_interval_ms": 200,
            "harvest.batch_interval_ms": 600000,  # no batch would be sealed on its own
        })
        T.wait_until(lambda: egwd.state()["devices"][0]["state"] == "polling", timeout=15,
                     what="device polling")
        time.sleep(1.5)
        egwd.signal(signal.SIGTERM)
        self.assertEqual(egwd.wait(timeout=15), 0, egwd.output())
        db = sqlite3.connect(os.path.join(egwd.state_dir, "store.db"))
        rows = db.execute("SELECT seq, payload, jwt FROM rows ORDER BY seq").fetchall()
        db.close()
        self.assertGreaterEqual(len(rows), 1, egwd.output())
        seq, payload, jwt = rows[-1]
        # stored once: the token (packed), no payload beside it
        self.assertEqual(payload, "")
        jwt = dict(egw_batch.stored_tokens(os.path.join(egwd.state_dir, "store.db")))[seq]
        self.assertTrue(jwt and jwt.count(".") == 2, "stored signed")
        p = egw_batch.jwt_payload(jwt)
        self.assertEqual(p["seq"], seq)
        polls = egw_batch.decode(p)["devices"][0]["polls"]
        self.assertGreaterEqual(len([x for x in polls if x["reading"]]), 3, str(p)[:400])
        self.assertIn("stopping", egwd.output())


    def test_systemd_notify_ready_watchdog_stopping(self):
        """Type=notify with WatchdogSec in the unit: egwd must say READY=1,
        keep sending WATCHDOG=1 at half the interval, and STOPPING=1."""
        path = os.path.join(T.tempdir(self), "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        sock.settimeout(5)
        egwd = T.Egwd(self, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        msgs = []
        t0 = time.monotonic()
        while sum("WATCHDOG=1" in m for m in msgs) < 3 and time.monotonic() - t0 < 5:
            msgs.append(sock.recv(4096).decode())
        self.assertIn("READY=1", msgs[0])
        self.assertGreaterEqual(sum("WATCHDOG=1" in m for m in msgs), 3, msgs)
        # three keep-alives at 200 ms take at least ~400 ms after READY
        self.assertGreater(time.monotonic() - t0, 0.3)
        egwd.signal(signal.SIGTERM)
        self.assertEqual(egwd.wait(timeout=15), 0)
        rest = []
        try:
            while True:
                sock.settimeout(0.5)
                rest.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        self.assertTrue(any("STOPPING=1" in m for m in rest), rest)


if __name__ == "__main__":
    unittest.main()
