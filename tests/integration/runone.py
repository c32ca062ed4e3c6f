#!/usr/bin/python3
"""Run one integration test file with unittest; write counts as JSON."""
import importlib.util
import json
import os
import sys
import unittest

path, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
mod = importlib.util.module_from_spec(spec)
# unittest finds setUpModule/tearDownModule through sys.modules.
sys.modules[spec.name] = mod
res = {"passed": 0, "failed": 0, "failures": []}
try:
    spec.loader.exec_module(mod)
    suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
    r = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    bad = [t for t, _ in r.failures + r.errors] + list(r.unexpectedSuccesses)
    # A test with failing subtests counts once per failing subtest; the tests
    # that passed are those run minus every test that had any failure.
    failed_tests = {t.id().split(" ")[0] for t in bad}
    res["failed"] = len(bad)
    res["passed"] = max(0, r.testsRun - len(failed_tests) - len(r.skipped))
    res["failures"] = [t.id() for t in bad]
except Exception as e:  # import error etc.
    import traceback
    traceback.print_exc()
    res["failed"] = 1
    res["failures"] = [os.path.basename(path) + f" ({e.__class__.__name__})"]
with open(out, "w") as f:
    json.dump(res, f)
sys.exit(1 if res["failed"] else 0)
