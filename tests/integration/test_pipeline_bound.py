"""Store at its bound while the backend is down: the oldest batches are
dropped, a signed gap record says which, and once the backend is back every
seq is either delivered or inside a delivered gap record.  Helpers shared with
test_pipeline.py.  Run with /usr/bin/python3; EGW_BUILD names the build dir."""
import unittest

import egwtest as T
from test_pipeline import WINDOW, DevBackend, egwd_for, public_key, stop_clean, verify_all, wait_idle


class PipelineBoundTest(unittest.TestCase):

    def test_store_bound_gap_record_signed(self):
        port = T.free_port()
        be = DevBackend(self, port, "--mode", "refuse")
        # 1 MiB (the smallest store.max_bytes) of batches at 10 ms, each
        # with a simulated inverter's polls (every 20 ms) to fill it sooner.
        sim = T.EgwSim(self, [("solaredge", 1)])
        e = egwd_for(self, port, be.port, interval_ms=10,
                     extra={"store.max_bytes": 1048576, "harvest.poll_interval_ms": 20,
                            "devices": [sim.device_settings(0, id="inv")]})
        key, info = public_key(e)
        # Generous waits: a loaded machine fills and drains the store slowly.
        T.wait_until(lambda: e.state()["harvest"]["dropped_rows"] > 0, timeout=180,
                     interval=0.5, what="store over its bound")
        stop_clean(self, e)
        # The backlog (a few thousand small batches) drains above the
        # default 100 uploads/s: the rate limit is not what is tested.
        e = egwd_for(self, port, be.port, state_dir=e.state_dir, interval_ms=3600000,
                     extra={"store.max_bytes": 1048576, "backend.rate_per_s": 1000})
        be.control(mode="ok")
        T.wait_until(lambda: be.summary()["gap_records"], timeout=360, interval=0.5,
                     what="gap record delivered")
        wait_idle(e, timeout=120)
        s = be.summary()
        self.assertEqual(s["bad_signatures"], 0)
        self.assertGreaterEqual(len(s["gap_records"]), 1)
        # Nothing vanished silently: every seq is delivered or inside a gap.
        self.assertEqual(s["missing"], [])
        self.assertEqual(s["duplicates"], 0)
        self.assertLess(s["reorder_max"], WINDOW)  # swaps within the uploads in flight only
        gaps = [(h, p) for h, p in verify_all(self, be.records(), key, info["serialNumber"])
                if h["dtype"] == "egw-gap"]
        self.assertTrue(gaps)
        for h, p in gaps:
            self.assertEqual(p["type"], "gap")
            self.assertTrue(p["ranges"])
            self.assertIn("max_bytes", p["reason"])
        # The oldest were dropped: the first gap starts at the first seq.
        self.assertEqual(gaps[0][1]["ranges"][0][0], 1)
        stop_clean(self, e)


if __name__ == "__main__":
    unittest.main()
