#!/usr/bin/python3
"""egw's own added delay in FCR: from the frequency sample egwd receives to
the battery's acknowledgement of the setpoint write, while egw-sim's grid
frequency follows a sine (50 Hz +- 0.3 Hz, 10 s period), so nearly every
10 Hz sample changes the activation.  egwd measures the delay itself (a 1-ms
histogram, /api/state fcr.delay_ms and /metrics egw_fcr_delay_seconds); this
prints its percentiles and the write counts.

    /usr/bin/python3 bench/fcr_delay.py --build build --seconds 60

Battery: egw-sim's Huawei SUN2000 + LUNA2000 (forcible charge/discharge, two
writes per setpoint); frequency: an SDM630 (float) in a second egw-sim."""
import argparse
import json
import math
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()
    os.environ["EGW_BUILD"] = os.path.abspath(a.build)
    import egwtest as T
    import test_fcr as F
    out = {}

    class Run(F.FcrTest):
        def runTest(self):
            self.start()
            T.wait_until(lambda: self.fcr()["state"] == "active", timeout=15, what="active")
            t0 = time.monotonic()
            while time.monotonic() - t0 < a.seconds:
                t = time.monotonic() - t0
                self.set_hz("%.3f" % (50.0 + 0.3 * math.sin(2 * math.pi * t / 10)))
                time.sleep(0.05)
            st = self.fcr()
            out.update({k: st[k] for k in ("delay_ms", "setpoints", "coalesced", "writes",
                                           "write_errors")})
            out["load_average"] = os.getloadavg()

    r = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(Run())
    if not r.wasSuccessful():
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
