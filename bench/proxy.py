"""Modbus proxy benchmark: 10 clients each reading 10 times a second through
egwd's proxy (in front of `egw-sim --single-client`), for registers egwd's
polls cover (served from cache) and for registers they do not (forwarded),
against the same clients reading a second egw-sim directly (one that allows
several clients).  Prints latency percentiles and the device's request rate
(egw-sim's request counter), with egwd's own polls alone as the baseline.

The clients are build/modbus-load (bench/modbus_load.c: one C thread and
connection each, one request outstanding); --python uses Python threads
instead, whose own tail (GIL, 4-8 ms on a loaded machine) hides the proxy's.

Run: EGW_BUILD=build /usr/bin/python3 bench/proxy.py [--clients 10] [--rate 10] [--seconds 10]
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import egwtest as T  # noqa: E402

LOCAL = "127.0.0.1"


class Ctl:
    def __init__(self, port):
        self.s = socket.create_connection((LOCAL, port), timeout=5)
        self.f = self.s.makefile("rwb")

    def cmd(self, line):
        self.f.write(line.encode() + b"\n")
        self.f.flush()
        return self.f.readline().decode().strip()

    def requests(self):
        return json.loads(self.cmd("get"))["devices"][0]["requests"]


def client(port, fc, addr, count, rate, seconds, lat, errors):
    s = socket.create_connection((LOCAL, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    period = 1.0 / rate
    tid = 0
    end = time.monotonic() + seconds
    nxt = time.monotonic()
    want = 9 + 2 * count
    while time.monotonic() < end:
        tid = (tid + 1) & 0xFFFF
        req = struct.pack(">HHHBBHH", tid, 0, 6, 1, fc, addr, count)
        t0 = time.perf_counter()
        s.sendall(req)
        buf = b""
        while len(buf) < 9 or len(buf) < 6 + struct.unpack(">H", buf[4:6])[0]:
            chunk = s.recv(512)
            if not chunk:
                raise RuntimeError("connection closed")
            buf += chunk
        dt = time.perf_counter() - t0
        if len(buf) != want or struct.unpack(">H", buf[:2])[0] != tid:
            errors.append(buf[:9].hex())
        else:
            lat.append(dt)
        nxt += period
        time.sleep(max(0.0, nxt - time.monotonic()))
    s.close()


def run_clients(port, fc, addr, count, n, rate, seconds):
    lat, errors = [], []
    ts = [threading.Thread(target=client, args=(port, fc, addr, count, rate, seconds, lat, errors))
          for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, errors


def run_c_clients(port, fc, addr, count, n, rate, seconds):
    exe = os.path.join(os.environ.get("EGW_BUILD", "build"), "modbus-load")
    out = subprocess.run([exe, LOCAL, str(port), "1", str(fc), str(addr), str(count), str(n),
                          str(rate), str(seconds)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def summary(lat, errors):
    return {"reads": len(lat), "errors": len(errors), "p50_us": pct(lat, 50) * 1e6,
            "p90_us": pct(lat, 90) * 1e6, "p99_us": pct(lat, 99) * 1e6,
            "p999_us": pct(lat, 99.9) * 1e6, "max_us": max(lat) * 1e6 if lat else float("nan")}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")


def row(name, r, dev_rate):
    print(f"{name:34s} n={r['reads']:5d} err={r['errors']:3d}  p50 {r['p50_us']:6.0f} us  "
          f"p90 {r['p90_us']:6.0f} us  p99 {r['p99_us']:6.0f} us  p99.9 {r['p999_us']:6.0f} us  "
          f"max {r['max_us']:6.0f} us  device {dev_rate:6.1f} req/s")
    if "client_wake_p99_us" in r:
        print(f"{'':34s} client's own wake-up p50 {r['client_wake_p50_us']:6.0f} us  "
              f"p99 {r['client_wake_p99_us']:6.0f} us;  latency without it: "
              f"p50 {r['excl_wake_p50_us']:6.0f} us  p99 {r['excl_wake_p99_us']:6.0f} us")


class TC:
    """The bits of unittest.TestCase the egwtest helpers use."""

    def __init__(self):
        self.cleanups = []

    def addCleanup(self, fn, *a):
        self.cleanups.append((fn, a))

    def done(self):
        for fn, a in reversed(self.cleanups):
            try:
                fn(*a)
            except Exception:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--python", action="store_true", help="Python client threads, not modbus-load")
    a = ap.parse_args()

    def load(port, fc, addr, count):
        if a.python:
            return summary(*run_clients(port, fc, addr, count, a.clients, a.rate, a.seconds))
        return run_c_clients(port, fc, addr, count, a.clients, a.rate, a.seconds)
    results = {}
    tc = TC()
    try:
        sim = T.EgwSim(tc, [("sunspec", 1)], args=["--single-client"])
        ctl = Ctl(sim.control_port)
        ctl.cmd("freeze on")
        pport = T.free_port()
        egwd = T.Egwd(tc, set={"devices": [sim.device_settings(0, id="inv1")],
                               "proxy.enabled": True, "proxy.bind": LOCAL,
                               "proxy.port": pport})
        T.wait_until(lambda: any(d["state"] == "polling" and d["reading"]
                                 for d in egwd.get("/api/device")["devices"]), timeout=20)
        spec = json.loads(ctl.cmd("get"))["devices"][0]["frequency_reg"]
        cached = (spec["fc"], spec["addr"], 1)
        forwarded = (3, 40000, 2)  # the SunSpec marker: read at discovery, not polled

        r0, t0 = ctl.requests(), time.monotonic()
        time.sleep(a.seconds)
        base = (ctl.requests() - r0) / (time.monotonic() - t0)
        print(f"{a.clients} clients x {a.rate:g} reads/s, {a.seconds:g} s per phase")
        print(f"{'egwd polls alone':34s} device {base:6.1f} req/s")

        for name, (fc, addr, count) in (("proxy, cached register", cached),
                                        ("proxy, forwarded register", forwarded)):
            r0, t0 = ctl.requests(), time.monotonic()
            results[name] = load(pport, fc, addr, count)
            row(name, results[name], (ctl.requests() - r0) / (time.monotonic() - t0))
        print("proxy state:", json.dumps(egwd.state()["proxy"]))

        peer = T.EgwSim(tc, [("sunspec", 1)])
        pctl = Ctl(peer.control_port)
        for name, (fc, addr, count) in (("direct to egw-sim, same register", cached),
                                        ("direct to egw-sim, marker", forwarded)):
            r0, t0 = pctl.requests(), time.monotonic()
            results[name] = load(peer.servers[0]["port"], fc, addr, count)
            row(name, results[name], (pctl.requests() - r0) / (time.monotonic() - t0))
        for k in ("p50_us", "p99_us"):
            print(f"ratio {k[:-3]}: proxy cached / egw-sim direct = "
                  f"{results['proxy, cached register'][k] / results['direct to egw-sim, same register'][k]:.2f}, "
                  f"proxy forwarded / egw-sim direct = "
                  f"{results['proxy, forwarded register'][k] / results['direct to egw-sim, marker'][k]:.2f}")
    finally:
        tc.done()


if __name__ == "__main__":
    main()
