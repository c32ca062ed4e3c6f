#!/usr/bin/python3
"""Frequency-read lateness and egwd's footprint.

Two phases, each with a fresh egwd polling egw-sim on loopback:

1. seed workload: one device (huawei), 10 Hz frequency reads, 1 s polls,
   10 s signed batches (the defaults), no HTTP clients.  Reports egwd's CPU
   (utime+stime over wall time, % of one core) and memory (VmRSS at the end,
   VmHWM peak).
2. loaded: five devices of different profiles polled every second, the
   frequency read at 10 Hz from the first, and wrk hammering GET /api/state
   for the whole phase.  Reports how late each 10 Hz read started after its
   due time (p50 / p99 / p99.9 / max, from egwd's own 10 us histogram) and
   the HTTP rate wrk got.

Usage: bench/frequency.py [--build DIR] [--duration SECONDS] (default 600 s
per phase; the recorded figure in bench/frequency.md used 600).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import egwtest as T  # noqa: E402

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
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


EXTRA = {}


def start(case, profiles):
    sim = T.EgwSim(case, [(p, 1) for p in profiles], args=["--log-level", "warn"])
    sim.wait_output("egw-sim: ready", timeout=10)
    devs = [sim.device_settings(i, id=f"{p}") for i, p in enumerate(profiles)]
    egwd = T.Egwd(case, set={"devices": devs, "http.bind": "127.0.0.1", "log_level": "warn",
                             **EXTRA})
    T.wait_until(lambda: all(d["state"] == "polling" for d in egwd.state()["devices"]),
                 timeout=15, what="devices polling")
    return sim, egwd


def phase_seed(duration):
    case = Case()
    try:
        _, egwd = start(case, ["huawei"])
        time.sleep(2)  # settle: first batch key, store open
        t0, c0 = time.monotonic(), cpu_ticks(egwd.pid)
        time.sleep(duration)
        t1, c1 = time.monotonic(), cpu_ticks(egwd.pid)
        mem = mem_kb(egwd.pid)
        st = egwd.state()
        fr = st["frequency"]
        return {
            "cpu_pct": 100.0 * (c1 - c0) / CLK_TCK / (t1 - t0),
            "rss_kb": mem["VmRSS"], "hwm_kb": mem["VmHWM"],
            "rss_anon_kb": mem.get("RssAnon"), "rss_file_kb": mem.get("RssFile"),
            "freq_reads": fr["reads"], "freq_errors": fr["errors"],
            "lateness_us": fr["lateness_us"],
            "polls_ok": st["devices"][0]["stats"]["polls_ok"],
        }
    finally:
        case.cleanup()


def phase_loaded(duration, connections):
    case = Case()
    try:
        _, egwd = start(case, ["huawei", "sungrow", "solaredge", "sdm630", "sunspec"])
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
            "http_rps": rps, "wrk": wrk.stdout.strip().splitlines()[-3:],
            "freq_reads": fr["reads"], "freq_errors": fr["errors"],
            "freq_skipped": fr["skipped"], "lateness_us": fr["lateness_us"],
            "devices": {d["id"]: [d["state"], d["stats"]["polls_ok"], d["stats"]["errors"]]
                        for d in st["devices"]},
        }
    finally:
        case.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("EGW_BUILD"))
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--batch-interval-ms", type=int, default=None,
                    help="harvest.batch_interval_ms (default 10000); 3600000 to see the "
                         "lateness without the 10 s batch seal")
    ap.add_argument("--seed-only", action="store_true")
    a = ap.parse_args()
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
        return
    loaded = phase_loaded(a.duration, a.connections)
    load1 = os.getloadavg()
    print(json.dumps({"duration_s": a.duration, "cpus": os.cpu_count(),
                      "loadavg_start": load0, "loadavg_end": load1,
                      "seed": seed, "loaded": loaded}, indent=1))
    s, lo = seed, loaded["lateness_us"]
    print(f"\nseed workload: egwd CPU {s['cpu_pct']:.3f} % of one core, RSS {s['rss_kb']} kB "
          f"(peak {s['hwm_kb']} kB; private {s['rss_anon_kb']} kB, shared libraries and files "
          f"{s['rss_file_kb']} kB); frequency reads {s['freq_reads']}, errors {s['freq_errors']}")
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
