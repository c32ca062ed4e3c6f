"""Short CI run of tests/fault_matrix.py: a few combinations of device,
backend and process faults; every batch must be delivered once or covered by
a gap record, with valid signatures and in order.  The full matrix:
/usr/bin/python3 tests/fault_matrix.py [--full]."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import fault_matrix as FM  # noqa: E402

SUBSET = [
    ("none", "none", "none"),
    ("timeout", "stall", "kill9"),
    ("garbage", "500", "sigterm"),
    ("drop", "refuse", "kill9"),
    ("tid", "drop", "none"),
    ("exception", "slow", "sigterm"),
    ("night", "refuse", "none"),
    ("none", "outage", "kill9"),
]


class FaultMatrixTest(unittest.TestCase):
    def test_subset(self):
        for combo in SUBSET:
            with self.subTest(combo=combo):
                r = FM.run_one(*combo)
                self.assertEqual(r["error"], "", FM.row(r))
                self.assertEqual(r["lost"], 0)
                self.assertEqual(r["bad_sig"], 0)
                # order: how far back an arrival reached; uploads in flight
                # at once (backend.max_in_flight, 8) may swap, no more.
                self.assertLess(r["order"], 8)
                self.assertGreater(r["delivered"], 5)


if __name__ == "__main__":
    unittest.main()
