#!/usr/bin/python3
"""Fault matrix: egwd + egw-sim + tools/devbackend.py on a compressed timeline.

Each combination (device fault, backend fault, process fault) runs on its own
state dir:
  1. start egw-sim (solaredge + sdm630), devbackend and egwd with batches
     every 100 ms (--set harvest.batch_interval_ms=100);
  2. once batches flow, inject the device fault (egw-sim control interface)
     and the backend fault (devbackend /control) for FAULT_S seconds;
  3. midway, the process fault: kill -9 or SIGTERM, then egwd restarts on
     the same state dir;
  4. faults cleared, egwd is stopped and started once more with no device
     and no new batches (interval 1 h) until its store holds nothing
     undelivered, then stopped (that stop seals one more, empty, batch,
     which stays in the store for the next start).
Then it counts: made (meta.next_seq - 1 of the store), delivered (distinct
seqs the backend accepted), gaps (seqs covered by gap records), stored (rows
still in the store: at most that last batch), duplicates (accepted twice:
allowed after a kill -9 or stop between the backend's 200 and the ack), lost
(made but neither delivered, covered by a gap nor stored: must be 0), and
checks that every token the backend accepted verifies with PyJWT against
the key of /api/crypto and that seqs arrived in order (up to the uploads in
flight at once: backend.max_in_flight, 8, may swap among themselves).

  /usr/bin/python3 tests/fault_matrix.py [--full] [--only DEV,BACKEND,PROC]...
  EGW_BUILD=<build dir> (default <repo>/build)

Prints a table; exits 1 if any combination lost a batch, had a bad
signature, out-of-order delivery, or could not run.
"""
import argparse
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
import egwtest as T  # noqa: E402

DEVBACKEND = os.path.join(T.REPO, "tools", "devbackend.py")
DEVICE_FAULTS = {
    "none": None,
    "timeout": "fault timeout on",
    "exception": "fault exception 4",
    "garbage": "fault garbage on",
    "tid": "fault tid on",
    "drop": "fault drop on",
    "night": "fault night-sleep on",
}
BACKEND_FAULTS = ("none", "refuse", "500", "stall", "drop", "slow", "outage")
# "outage": the backend refuses while egwd seals a batch every 20 ms into a
# store capped at 1 MiB (store.max_bytes' minimum) until the store has half
# filled (then the process fault) and dropped rows (then the backend is back,
# at most OUTAGE_S later), so gap records must account for the dropped seqs.
OUTAGE_S = 120.0  # compact batches (~350 B stored) take ~30 s to half fill 1 MiB
# A 1 MiB store holds ~3,500 compact batches: drained at 1,000/s rather than
# the default 100/s so the check after the outage stays within its 30 s.
OUTAGE_SET = {"store.max_bytes": 1 << 20, "backend.rate_per_s": 1000}
OUTAGE_INTERVAL_MS = 20
PROCESS_FAULTS = ("none", "kill9", "sigterm")
FAULT_S = 2.0
LOOP = {"http.bind": "127.0.0.1"}


class Scope:
    """Enough of unittest.TestCase for egwtest (addCleanup)."""

    def __init__(self):
        self._cleanups = []

    def addCleanup(self, fn, *args):
        self._cleanups.append((fn, args))

    def close(self):
        while self._cleanups:
            fn, args = self._cleanups.pop()
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                print(f"cleanup: {e}", file=sys.stderr)


class Backend(T.Proc):
    def __init__(self, scope, egwd_port):
        super().__init__([T.PYTHON, DEVBACKEND, "--port", "0", "--control-port", "0",
                          "--egwd", f"http://127.0.0.1:{egwd_port}"], name="devbackend")
        scope.addCleanup(self.stop)
        m = re.search(r"ready port=(\d+) control_port=(\d+)", self.wait_output("ready port="))
        self.port, self.control_port = int(m.group(1)), int(m.group(2))

    def summary(self):
        return T.get_json(self.control_port, "/received")

    def records(self):
        return T.get_json(self.control_port, "/received/all")

    def control(self, **kw):
        st, obj = T.http_json(self.control_port, "POST", "/control", body=kw)
        if st != 200:
            raise RuntimeError(f"devbackend control {kw}: {st} {obj}")


class SimCtl:
    def __init__(self, scope, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        scope.addCleanup(self.sock.close)
        self.f = self.sock.makefile("rwb")

    def cmd(self, line):
        self.f.write(line.encode() + b"\n")
        self.f.flush()
        ans = self.f.readline().decode().strip()
        if not ans.startswith("ok"):
            raise RuntimeError(f"egw-sim {line!r}: {ans!r}")
        return ans


def start_egwd(scope, port, state, backend, sim, interval_ms, extra=None, devices=True):
    s = dict(LOOP)
    s.update(extra or {})
    s.update({"backend.data_urls": [f"http://127.0.0.1:{backend.port}/data"],
              "harvest.batch_interval_ms": interval_ms,
              "harvest.poll_interval_ms": 100,
              "devices": [sim.device_settings(0), sim.device_settings(1)] if devices else []})
    return T.Egwd(scope, state_dir=state, port=port, set=s)


def made_batches(state):
    db = sqlite3.connect(f"file:{os.path.join(state, 'store.db')}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
        left = {r[0] for r in db.execute("SELECT seq FROM rows")}
        return (row[0] - 1 if row else 0), left
    finally:
        db.close()


def run_one(dev, be_fault, proc_fault, verbose=False):
    scope = Scope()
    res = {"device": dev, "backend": be_fault, "process": proc_fault, "error": ""}
    try:
        state = tempfile.mkdtemp(prefix="egw-fm-")
        scope.addCleanup(shutil.rmtree, state, True)
        sim = T.EgwSim(scope, [("solaredge", 1), ("sdm630", 2)])
        ctl = SimCtl(scope, sim.control_port)
        port = T.free_port()
        be = Backend(scope, port)
        outage = be_fault == "outage"
        extra = OUTAGE_SET if outage else None
        interval = OUTAGE_INTERVAL_MS if outage else 100
        e = start_egwd(scope, port, state, be, sim, interval, extra)
        pem = T.get_json(port, "/api/crypto")["publicKey_pem"]
        key = serialization.load_pem_public_key(pem.encode())
        T.wait_until(lambda: be.summary()["unique"] >= 3, timeout=15, what="first batches")
        if DEVICE_FAULTS[dev]:
            ctl.cmd(DEVICE_FAULTS[dev])
        if outage:
            be.control(mode="refuse", for_s=OUTAGE_S)
            T.wait_until(lambda: e.state()["store"]["bytes"] >= 1 << 19, timeout=OUTAGE_S / 2,
                         interval=0.2, what="store half full")
            if verbose:
                print(e.state()["store"], file=sys.stderr)
        else:
            if be_fault != "none":
                be.control(mode=be_fault, for_s=FAULT_S, slow_ms=300)
            time.sleep(FAULT_S / 2)
        if proc_fault == "kill9":
            e.kill9()
        elif proc_fault == "sigterm":
            rc = e.stop()
            if rc != 0:
                raise RuntimeError(f"egwd exited {rc} on SIGTERM:\n{e.output()[-2000:]}")
        if proc_fault != "none":
            e = start_egwd(scope, port, state, be, sim, interval, extra)
        if outage:
            T.wait_until(lambda: e.state()["store"]["dropped"] > 0, timeout=OUTAGE_S / 2,
                         interval=0.2, what="store dropping rows")
            time.sleep(0.5)
        else:
            time.sleep(FAULT_S / 2)
        ctl.cmd("clear")
        be.control(mode="ok")
        time.sleep(0.5)
        rc = e.stop()
        if rc != 0:
            raise RuntimeError(f"egwd exited {rc}:\n{e.output()[-2000:]}")
        # Drain: no device and no new batches (an orderly stop seals the open
        # batch, which waits in the store for the next start: this one has
        # nothing open); everything committed must reach the backend.
        e = start_egwd(scope, port, state, be, sim, 3600000, extra, devices=False)

        def idle():
            up = e.state()["uploader"]
            return up["backlog"] == 0 and up["pending_seq"] == 0
        T.wait_until(idle, timeout=30, what="store drained")
        e.stop()
        made, left = made_batches(state)
        s = be.summary()
        recs = be.records()
        delivered = set(s["seqs"])
        gap_cov = set()
        for g in s["gap_records"]:
            for a, b in g.get("ranges") or []:
                gap_cov.update(range(a, b + 1))
        gap_seqs = {g["seq"] for g in s["gap_records"]}
        bad = 0
        for r in recs:
            try:
                p = pyjwt.decode(r["jwt"], key, algorithms=["ES256"],
                                 options={"verify_iat": False, "verify_exp": False})
                if p != r["payload"]:
                    bad += 1
            except pyjwt.PyJWTError:
                bad += 1
        # Rows still in the store are committed and wait for the next start:
        # the last stop seals the open batch (possibly empty) and keeps it.
        lost = sorted(set(range(1, made + 1)) - delivered - gap_cov - left)
        res.update(made=made, delivered=len(delivered - gap_seqs), gap_rows=len(gap_seqs),
                   gap_seqs=len(gap_cov), dup=s["duplicates"], lost=len(lost),
                   bad_sig=bad + s["bad_signatures"], order=s["reorder_max"], stored=len(left),
                   extra=len(delivered - set(range(1, made + 1))))
        if lost:
            res["error"] = f"lost seqs {lost[:10]}"
        elif bad or s["bad_signatures"]:
            res["error"] = "bad signature"
        elif s["reorder_max"] >= 8:
            res["error"] = "out of order beyond the upload window"
        elif len(left) > 1 or (left and max(left) != made):
            res["error"] = f"rows left undelivered in the store: {sorted(left)[:10]}"
        elif made < 5:
            res["error"] = "too few batches made"
        elif outage and not gap_seqs:
            res["error"] = "an outage past store.max_bytes left no gap record"
    except Exception as ex:  # noqa: BLE001 - reported in the table
        res["error"] = f"{type(ex).__name__}: {ex}"[:300]
    finally:
        scope.close()
    return res


def combos(full):
    if full:
        return list(itertools.product(DEVICE_FAULTS, BACKEND_FAULTS, PROCESS_FAULTS))
    out = []
    for p in PROCESS_FAULTS:
        out += [(d, "none", p) for d in DEVICE_FAULTS]
        out += [("none", b, p) for b in BACKEND_FAULTS if b not in ("none", "outage")]
    # a few doubles
    out += [("none", "outage", "none"), ("none", "outage", "kill9"),
            ("timeout", "stall", "kill9"), ("garbage", "drop", "sigterm"),
            ("drop", "refuse", "kill9"), ("night", "500", "none")]
    return out


COLS = ("device", "backend", "process", "made", "delivered", "gap_rows", "gap_seqs", "stored",
        "dup", "lost", "bad_sig", "order", "result")


def row(r):
    vals = [r.get(c, "-") for c in COLS[:-1]]
    vals.append("ok" if not r["error"] else "FAIL " + r["error"])
    return "| " + " | ".join(str(v) for v in vals) + " |"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="every combination (slow)")
    ap.add_argument("--only", action="append", default=[],
                    help="DEV,BACKEND,PROC (repeatable)")
    ap.add_argument("--json", help="also write the results to this file")
    a = ap.parse_args()
    todo = [tuple(o.split(",")) for o in a.only] or combos(a.full)
    for d, b, p in todo:
        if d not in DEVICE_FAULTS or b not in BACKEND_FAULTS or p not in PROCESS_FAULTS:
            ap.error(f"unknown combination {d},{b},{p}")
    print("| " + " | ".join(COLS) + " |")
    print("|" + "---|" * len(COLS))
    results = []
    t0 = time.monotonic()
    for d, b, p in todo:
        r = run_one(d, b, p)
        results.append(r)
        print(row(r), flush=True)
    tot = {k: sum(r.get(k, 0) or 0 for r in results)
           for k in ("made", "delivered", "gap_seqs", "stored", "dup", "lost", "bad_sig")}
    failed = [r for r in results if r["error"]]
    print(f"\n{len(results)} combinations in {time.monotonic() - t0:.0f} s: "
          f"made {tot['made']}, delivered {tot['delivered']}, gap seqs {tot['gap_seqs']}, "
          f"stored {tot['stored']}, "
          f"duplicates {tot['dup']}, lost {tot['lost']}, bad signatures {tot['bad_sig']}, "
          f"failed {len(failed)}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
