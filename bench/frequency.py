#!/usr/bin/python3
"""Frequency-read lateness and egwd's footprint.

Two phases, each with a fresh egwd polling egw-sim on loopback:

1. seed workload: one device (huawei), 10 Hz frequency reads, 1 s polls,
   10 s signed batches (the defaults) uploaded to tools/devbackend.py, no
   HTTP clients.  Reports egwd's CPU (utime+stime over wall time, % of one
   core) and its memory at the end: RSS, PSS and private memory side by side
   (bench/memstat.py: /proc/PID/smaps_rollup, read from outside), the peak
   RSS (VmHWM), and the mappings holding most private memory.
2. loaded: five devices of different profiles polled every second, the
   frequency read at 10 Hz from the first, and wrk hammering GET /api/state
   for the whole phase.  Reports how late each 10 Hz read started after its
   due time (p50 / p99 / p99.9 / max, from egwd's own 10 us histogram) and
   the HTTP rate wrk got, and egwd's memory at the end of the phase.

Usage: bench/frequency.py [--build DIR] [--duration SECONDS] [--seed-only]
[--set KEY=VALUE]... (default 600 s per phase; the recorded figure in
bench/frequency.md used 600).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import egwtest as T  # noqa: E402

sys.path.insert(0, HERE)
import memstat  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Case:
    """Enough of unittest.TestCase for egwtest's helpers (cleanups)."""

    def __init__(self):
        self.cleanups = []

    def addCleanup(self, fn, *a, **kw):
        self.cleanups.append((fn, a, kw))

    def cleanup(self):
        while self.cleanups:
            fn, a, kw = self.cleanups.pop()
            try:
                fn(*a, **kw)
            except Exception:
                pass


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def mem_kb(pid):
    """RSS, PSS, private (clean + dirty), private dirty, anonymous; peak RSS."""
    out = memstat.rollup(pid)
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                out["hwm_kb"] = int(line.split()[1])
    return out


class DevBackend(T.Proc):
    """tools/devbackend.py, receiving and verifying egwd's batches."""

    def __init__(self, case, egwd_port):
        super().__init__([T.PYTHON, os.path.join(T.REPO, "tools", "devbackend.py"),
                          "--port", "0", "--control-port", "0",
                          "--egwd", f"http://127.0.0.1:{egwd_port}"], name="devbackend")
        case.addCleanup(self.stop)
        out = self.wait_output("ready port=")
        m = re.search(r"ready port=(\d+) control_port=(\d+)", out)
        self.port, self.control_port = int(m.group(1)), int(m.group(2))

    def summary(self):
        return T.get_json(self.control_port, "/received")


EXTRA = {}
TOP = 10  # mappings listed by private memory


def start(case, profiles, backend=False):
    sim = T.EgwSim(case, [(p, 1) for p in profiles], args=["--log-level", "warn"])
    sim.wait_output("egw-sim: ready", timeout=10)
    devs = [sim.device_settings(i, id=f"{p}") for i, p in enumerate(profiles)]
    more = dict(EXTRA)
    port = T.free_port()
    be = None
    if backend:
        be = DevBackend(case, port)
        more["backend.data_urls"] = [f"http://127.0.0.1:{be.port}/data"]
    egwd = T.Egwd(case, port=port, set={"devices": devs, "http.bind": "127.0.0.1",
                                        "log_level": "warn", **more})
    T.wait_until(lambda: all(d["state"] == "polling" for d in egwd.state()["devices"]),
                 timeout=15, what="devices polling")
    return sim, egwd, be


def phase_seed(duration):
    case = Case()
    try:
        _, egwd, be = start(case, ["huawei"], backend=True)
        time.sleep(2)  # settle: first batch key, store open
        t0, c0 = time.monotonic(), cpu_ticks(egwd.pid)
        time.sleep(duration)
        t1, c1 = time.monotonic(), cpu_ticks(egwd.pid)
        mem = mem_kb(egwd.pid)
        top = memstat.breakdown(egwd.pid)
        st = egwd.state()
        fr = st["frequency"]
        rcv = be.summary()
        return {
            "cpu_pct": 100.0 * (c1 - c0) / CLK_TCK / (t1 - t0),
            "memory_kb": mem, "memory_top": top[:TOP],
            "memory_split": memstat.split(top), "threads": memstat.threads(egwd.pid),
            "egwd_memory_section": st.get("memory"),
            "batches_uploaded": st["store"].get("delivered"),
            "backend_received": {k: rcv.get(k) for k in ("count", "duplicates",
                                                           "bad_signatures", "missing")
                                 if k in rcv},
            "freq_reads": fr["reads"], "freq_errors": fr["errors"],
            "lateness_us": fr["lateness_us"],
            "polls_ok": st["devices"][0]["stats"]["polls_ok"],
        }
    finally:
        case.cleanup()


def phase_loaded(duration, connections):
    case = Case()
    try:
        _, egwd, _ = start(case, ["huawei", "sungrow", "solaredge", "sdm630", "sunspec"])
        url = f"http://127.0.0.1:{egwd.port}/api/state"
        wrk = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", url],
                             capture_output=True, text=True, timeout=duration + 60)
        rps = None
        for line in wrk.stdout.splitlines():
            if line.startswith("Requests/sec:"):
                rps = float(line.split()[1])
        st = egwd.state()
        fr = st["frequency"]
        return {
            "memory_kb": mem_kb(egwd.pid),
            "http_rps": rps, "wrk": wrk.stdout.strip().splitlines()[-3:],
            "freq_reads": fr["reads"], "freq_errors": fr["errors"],
            "freq_skipped": fr["skipped"], "lateness_us": fr["lateness_us"],
            "devices": {d["id"]: [d["state"], d["stats"]["polls_ok"], d["stats"]["errors"]]
                        for d in st["devices"]},
        }
    finally:
        case.cleanup()


def print_memory(seed):
    m = seed["memory_kb"]
    print(f"seed workload memory at the end ({seed['threads']} threads): {memstat.fmt(m)}; "
          f"peak RSS {m['hwm_kb']} kB; {seed['batches_uploaded']} batches uploaded")
    print(memstat.fmt_breakdown(seed["memory_top"], TOP, seed["memory_split"]))


def main():
    # a kill stops the simulator, backend and egwd too (the cleanups run)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("EGW_BUILD"))
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--batch-interval-ms", type=int, default=None,
                    help="harvest.batch_interval_ms (default 10000); 3600000 to see the "
                         "lateness without the 10 s batch seal")
    ap.add_argument("--seed-only", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an egwd setting for both phases (e.g. memory.trim_interval_s=10)")
    a = ap.parse_args()
    for kv in a.set:
        k, _, v = kv.partition("=")
        try:
            EXTRA[k] = json.loads(v)
        except ValueError:
            EXTRA[k] = v
    if a.batch_interval_ms:
        EXTRA["harvest.batch_interval_ms"] = a.batch_interval_ms
    if a.build:
        T.BUILD = os.path.abspath(a.build)
    if not shutil.which("wrk"):
        sys.exit("wrk not installed")
    load0 = os.getloadavg()
    seed = phase_seed(a.duration)
    if a.seed_only:
        sl = seed["lateness_us"]
        print(json.dumps(seed, indent=1))
        print(f"seed workload: CPU {seed['cpu_pct']:.3f} %, lateness p50 {sl['p50']:.0f} us, "
              f"p99 {sl['p99']:.0f} us, max {sl['max']:.0f} us over {sl['runs']} reads")
        print_memory(seed)
        return
    loaded = phase_loaded(a.duration, a.connections)
    load1 = os.getloadavg()
    print(json.dumps({"duration_s": a.duration, "cpus": os.cpu_count(),
                      "loadavg_start": load0, "loadavg_end": load1,
                      "seed": seed, "loaded": loaded}, indent=1))
    s, lo = seed, loaded["lateness_us"]
    print(f"\nseed workload: egwd CPU {s['cpu_pct']:.3f} % of one core; "
          f"frequency reads {s['freq_reads']}, errors {s['freq_errors']}")
    print_memory(s)
    print(f"loaded: egwd {memstat.fmt(loaded['memory_kb'])}")
    print(f"loaded ({a.connections} HTTP connections, {loaded['http_rps']} req/s, 5 devices): "
          f"frequency read lateness p50 {lo['p50']:.0f} us, p99 {lo['p99']:.0f} us, "
          f"p99.9 {lo['p999']:.0f} us, max {lo['max']:.0f} us over {lo['runs']} reads")
    sl = seed["lateness_us"]
    print(f"seed workload lateness: p50 {sl['p50']:.0f} us, p99 {sl['p99']:.0f} us, "
          f"max {sl['max']:.0f} us over {sl['runs']} reads")
    print(f"machine: {os.cpu_count()} CPUs, load average {load0[0]:.2f} at start, "
          f"{load1[0]:.2f} at end")


if __name__ == "__main__":
    main()
