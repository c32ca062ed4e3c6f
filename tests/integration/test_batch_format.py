"""The compact batch format (doc/batch-format.md): random register sequences
encoded by the gateway's own collector, signed and stored
(tests/unit/batch_roundtrip.c), verified with PyJWT and decoded with
tools/egw_batch.py / tools/egw-batch: every poll's register map, failed
blocks and reading, and every frequency sample, come back as they went in.
Run with /usr/bin/python3."""
import json
import math
import os
import subprocess
import sys
import unittest

import jwt as pyjwt

import egwtest as T

sys.path.insert(0, os.path.join(T.REPO, "tools"))
import egw_batch  # noqa: E402

EGW_BATCH = os.path.join(T.REPO, "tools", "egw-batch")


def generate(testcase, n, seed):
    out = os.path.join(T.tempdir(testcase), "batches.jsonl")
    subprocess.run([os.path.join(T.BUILD, "tests", "unit", "batch_roundtrip"), out, str(n),
                    str(seed)], check=True, timeout=300)
    with open(out, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def same_reading(a, b):
    if a is None or b is None:
        return a is None and b is None
    if set(a) != set(b):
        return False
    for g in a:
        if set(a[g]) != set(b[g]):
            return False
        for k in a[g]:
            x, y = a[g][k], b[g][k]
            if not math.isclose(x, y, rel_tol=1e-13, abs_tol=1e-12):
                return False
    return True


class BatchFormatTest(unittest.TestCase):

    def check(self, rec):
        token = rec["jwt"]
        payload = pyjwt.decode(token, options={"verify_signature": False})
        self.assertEqual(payload["v"], 4)
        self.assertIsInstance(payload["seq"], int)
        self.assertIsInstance(payload["iat"], int)
        dec = egw_batch.decode(payload)
        exp = rec["expected"]
        # the batch lists devices in the order their first poll came
        self.assertEqual(sorted(d["id"] for d in dec["devices"]),
                         sorted(d["id"] for d in exp["devices"]))
        byid = {d["id"]: d for d in exp["devices"]}
        for dd in dec["devices"]:
            de = byid[dd["id"]]
            self.assertEqual(len(dd["polls"]), len(de["polls"]), dd["id"])
            for i, (pd, pe) in enumerate(zip(dd["polls"], de["polls"])):
                where = f"seq {payload['seq']} {dd['id']} poll {i}"
                self.assertEqual(pd["ts_ms"], pe["ts_ms"], where)
                self.assertEqual(pd["raw"], pe["raw"], where)
                self.assertEqual(pd["failed"], pe["failed"], where)
                self.assertEqual(pd["missed"], pe["missed"], where)
                self.assertTrue(same_reading(pd["reading"], pe["reading"]),
                                f"{where}: {pd['reading']} != {pe['reading']}")
        fe, fd = exp["frequency"], dec["frequency"]
        if fe is None:
            self.assertIsNone(fd)
        else:
            self.assertEqual([[t, round(hz * 1000)] for t, hz in fd["samples"]],
                             fe["samples"])
            self.assertEqual(fd["missing"], fe["missing"])
            for _, hz in fd["samples"]:
                self.assertEqual(repr(hz), repr(round(hz, 3)))  # no float noise

    def test_random_sequences_round_trip(self):
        recs = generate(self, 60, 1) + generate(self, 60, 7)
        self.assertEqual(len(recs), 120)
        polls = sum(len(d["polls"]) for r in recs for d in r["expected"]["devices"])
        self.assertGreater(polls, 300)
        missed = sum(1 for r in recs for d in r["expected"]["devices"] for p in d["polls"]
                     if p["missed"] is not None)
        self.assertGreater(missed, 10)
        for rec in recs:
            self.check(rec)

    def test_egw_batch_command(self):
        recs = generate(self, 5, 3)
        d = T.tempdir(self)
        path = os.path.join(d, "b.jwt")
        with open(path, "w", encoding="utf-8") as f:
            for r in recs:
                f.write(r["jwt"] + "\n")
        out = subprocess.run([T.PYTHON, EGW_BATCH, "decode", path], check=True,
                             capture_output=True, text=True, timeout=60).stdout.splitlines()
        self.assertEqual(len(out), 5)
        for line, rec in zip(out, recs):
            dec = json.loads(line)
            byid = {d["id"]: d for d in rec["expected"]["devices"]}
            for dd in dec["devices"]:
                de = byid[dd["id"]]
                self.assertEqual([p["raw"] for p in dd["polls"]],
                                 [p["raw"] for p in de["polls"]])
        # a damaged batch: a clear message and status 1, no traceback
        bad = os.path.join(d, "bad.json")
        p = json.loads(json.dumps(pyjwt.decode(recs[0]["jwt"],
                                               options={"verify_signature": False})))
        p["devices"] = [{"blocks": [[3, 0, 2]], "kf": ["AAAAAA"], "polls": [
            {"t": 1, "b": "1", "d": [5, 1]}]}]
        with open(bad, "w", encoding="utf-8") as f:
            json.dump(p, f)
        r = subprocess.run([T.PYTHON, EGW_BATCH, "decode", bad], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("polls[0].d[0]", r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    def test_decoder_fuzz_corpus_and_short_run(self):
        fz = os.path.join(T.REPO, "fuzz", "fuzz_batch_decode.py")
        env = dict(os.environ, EGW_FUZZ_BUILD=T.tempdir(self))
        for extra in (["--replay"], ["-t", "5", "-s", "11"]):
            r = subprocess.run([T.PYTHON, fz, *extra], capture_output=True, text=True,
                               timeout=120, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("crashes=0", r.stdout)


if __name__ == "__main__":
    unittest.main()
