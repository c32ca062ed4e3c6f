#!/usr/bin/python3
"""Soak: the whole gateway for a given duration, watching egwd's resources.

Starts egw-sim with several devices, tools/devbackend.py with intermittent
faults (every --fault-every s one of 500 / stall / refuse / drop / slow for
--fault-s s), egwd polling all devices and sealing a batch every
--batch-ms, HTTP clients (state, metrics, status page, UI, settings, device
list) and SSE clients on /api/live that reconnect now and then.  Samples
egwd's RSS, open fds and CPU every --sample s and prints a table.

Fails (exit 1) when, comparing the first and the last quarter of the samples
after --warmup s, RSS grew by more than max(--rss-slack-kb, 10 %), open fds by
more than --fd-slack, when egwd died, or when the backend saw a bad signature,
a missing seq or an out-of-order delivery.

  /usr/bin/python3 tests/soak.py --duration 600 [--sample 10]
  /usr/bin/python3 tests/soak.py --duration 86400 --sample 60   (the long one)
  EGW_BUILD=<build dir> (default <repo>/build)
"""
import argparse
import json
import os
import random
import re
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
import egwtest as T  # noqa: E402
from fault_matrix import Backend, Scope  # noqa: E402

PROFILES = ["solaredge", "sdm630", "fronius", "sungrow", "huawei", "sma"]
TICK = os.sysconf("SC_CLK_TCK")


def proc_sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    return rss, fds, cpu


class Clients:
    """HTTP and SSE clients in threads; counts answers and errors."""

    def __init__(self, port, token, stop):
        self.port, self.token, self.stop = port, token, stop
        self.ok = self.err = self.sse_bytes = self.sse_conns = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.http_loop, args=(i,), daemon=True)
                        for i in range(2)]
        self.threads += [threading.Thread(target=self.sse_loop, args=(i,), daemon=True)
                         for i in range(2)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(timeout=10)

    def count(self, ok):
        with self.lock:
            if ok:
                self.ok += 1
            else:
                self.err += 1

    def http_loop(self, i):
        paths = ["/api/state", "/metrics", "/status", "/", "/app.js", "/api/settings",
                 "/api/device", "/api/notification", "/api/frequency", "/api/crypto"]
        rnd = random.Random(i)
        while not self.stop.is_set():
            p = rnd.choice(paths)
            try:
                st, _, _ = T.http(self.port, "GET", p, timeout=5)
                self.count(st == 200)
            except OSError:
                self.count(False)
            if rnd.random() < 0.02:  # a settings write now and then
                try:
                    st, _ = T.http_json(self.port, "POST", "/api/settings",
                                        body={"mqtt": {"topic_prefix": f"soak{rnd.randint(0, 9)}"}},
                                        headers={"Authorization": f"Bearer {self.token}"})
                    self.count(st == 200)
                except OSError:
                    self.count(False)
            self.stop.wait(0.1)

    def sse_loop(self, i):
        rnd = random.Random(100 + i)
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                s.sendall(b"GET /api/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
                with self.lock:
                    self.sse_conns += 1
                end = time.monotonic() + rnd.uniform(5, 30)
                s.settimeout(0.5)
                while time.monotonic() < end and not self.stop.is_set():
                    try:
                        d = s.recv(65536)
                    except socket.timeout:
                        continue
                    if not d:
                        break
                    with self.lock:
                        self.sse_bytes += len(d)
                s.close()
            except OSError:
                self.count(False)
                self.stop.wait(1)


def fault_loop(be, stop, every, dur):
    rnd = random.Random(3)
    modes = ["500", "stall", "refuse", "drop", "slow"]
    while not stop.wait(every):
        try:
            be.control(mode=rnd.choice(modes), for_s=dur, slow_ms=500)
        except (OSError, RuntimeError, AssertionError):
            pass


def growth(samples, key, warm):
    vals = [s[key] for s in samples if s["t"] >= warm]
    if len(vals) < 4:
        vals = [s[key] for s in samples]
    q = max(1, len(vals) // 4)
    return statistics.median(vals[:q]), statistics.median(vals[-q:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--sample", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=None, help="default: duration/10")
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--batch-ms", type=int, default=1000)
    ap.add_argument("--fault-every", type=float, default=60)
    ap.add_argument("--fault-s", type=float, default=10)
    ap.add_argument("--rss-slack-kb", type=int, default=2048)
    ap.add_argument("--fd-slack", type=int, default=4)
    ap.add_argument("--json", help="write samples and results here")
    a = ap.parse_args()
    warm = a.warmup if a.warmup is not None else a.duration / 10

    scope = Scope()
    stop = threading.Event()
    samples, problems = [], []
    try:
        sim = T.EgwSim(scope, [(PROFILES[i % len(PROFILES)], 1 + i // len(PROFILES))
                               for i in range(a.devices)])
        port = T.free_port()
        be = Backend(scope, port)
        state = T.tempdir(scope, "egw-soak-")
        e = T.Egwd(scope, state_dir=state, port=port, set={
            "http.bind": "127.0.0.1",
            "backend.data_urls": [f"http://127.0.0.1:{be.port}/data"],
            "harvest.batch_interval_ms": a.batch_ms,
            "devices": [sim.device_settings(i) for i in range(a.devices)]})
        clients = Clients(port, e.token, stop)
        clients.start()
        ft = threading.Thread(target=fault_loop, args=(be, stop, a.fault_every, a.fault_s),
                              daemon=True)
        ft.start()
        t0 = time.monotonic()
        _, _, cpu0 = proc_sample(e.pid)
        last_t, last_cpu = t0, cpu0
        print(f"{'t_s':>7} {'rss_kb':>8} {'fds':>5} {'cpu_%':>6} {'delivered':>9} "
              f"{'http_ok':>8} {'http_err':>8} {'sse_kb':>8}", flush=True)
        while True:
            now = time.monotonic()
            if not e.alive():
                problems.append(f"egwd died:\n{e.output()[-3000:]}")
                break
            rss, fds, cpu = proc_sample(e.pid)
            cpu_pct = 100.0 * (cpu - last_cpu) / max(now - last_t, 1e-3)
            last_t, last_cpu = now, cpu
            try:
                delivered = be.summary()["unique"]
            except (OSError, AssertionError):
                delivered = -1
            smp = {"t": round(now - t0, 1), "rss_kb": rss, "fds": fds, "cpu_pct": round(cpu_pct, 1),
                   "delivered": delivered, "http_ok": clients.ok, "http_err": clients.err,
                   "sse_kb": clients.sse_bytes // 1024}
            samples.append(smp)
            print(f"{smp['t']:>7} {rss:>8} {fds:>5} {smp['cpu_pct']:>6} {delivered:>9} "
                  f"{clients.ok:>8} {clients.err:>8} {smp['sse_kb']:>8}", flush=True)
            if now - t0 >= a.duration:
                break
            time.sleep(min(a.sample, max(0.0, a.duration - (now - t0)) + 0.01))
        stop.set()
        clients.join()
        if e.alive():
            be.control(mode="ok")
            T.wait_until(lambda: e.state()["uploader"]["backlog"] == 0, timeout=60,
                         what="backlog drained")
            rc = e.stop()
            if rc != 0:
                problems.append(f"egwd exited {rc} on SIGTERM")
            s = be.summary()
            if s["bad_signatures"] or s["missing"] or s["out_of_order"]:
                problems.append(f"backend: bad {s['bad_signatures']} missing {s['missing'][:5]} "
                                f"out of order {s['out_of_order']}")
        r0, r1 = growth(samples, "rss_kb", warm)
        f0, f1 = growth(samples, "fds", warm)
        if r1 - r0 > max(a.rss_slack_kb, r0 * 0.10):
            problems.append(f"RSS grew {r0} -> {r1} kB")
        if f1 - f0 > a.fd_slack:
            problems.append(f"open fds grew {f0} -> {f1}")
        cpu_avg = statistics.mean(s["cpu_pct"] for s in samples[1:]) if len(samples) > 1 else 0
        print(f"\nRSS {samples[0]['rss_kb']} -> {samples[-1]['rss_kb']} kB "
              f"(median first/last quarter after warm-up {r0} -> {r1}), "
              f"fds {samples[0]['fds']} -> {samples[-1]['fds']}, mean CPU {cpu_avg:.1f} %, "
              f"HTTP ok {clients.ok} err {clients.err}, SSE connections {clients.sse_conns}, "
              f"delivered {samples[-1]['delivered']}")
    except Exception as ex:  # noqa: BLE001 - reported
        problems.append(f"{type(ex).__name__}: {ex}")
    finally:
        stop.set()
        scope.close()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"samples": samples, "problems": problems}, f, indent=1)
    for p in problems:
        print("FAIL:", p)
    print("soak:", "FAIL" if problems else "ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
