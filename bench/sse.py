#!/usr/bin/python3
"""Live stream (SSE) fan-out benchmark.

Starts egw-sim (one SunSpec inverter) and egwd polling it, connects N clients
to /api/live (default 50, one Python process reading all sockets with
epoll), and for every frequency sample each client receives computes the
delay between egwd publishing it (the event's "t_us", wall clock in us) and
the client reading it.  Also reports egwd's memory (VmRSS, RssAnon, PSS)
before and with the clients, and checks that every client got every sample.

  EGW_BUILD=build /usr/bin/python3 bench/sse.py [--clients 50] [--seconds 20]

Targets (issue 5): p99 delay < 5 ms with 50 clients; egwd's own memory
(RssAnon) within the 4 MB budget of bench/http.md.
"""
import argparse
import json
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import egwtest as t  # noqa: E402


class _TC:
    """Enough of unittest.TestCase for egwtest's helpers."""

    def __init__(self):
        self.cleanups = []

    def addCleanup(self, fn, *args):
        self.cleanups.append((fn, args))

    def cleanup(self):
        for fn, args in reversed(self.cleanups):
            try:
                fn(*args)
            except Exception as e:  # keep cleaning up
                print("cleanup:", e, file=sys.stderr)


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1])
    except OSError:
        pass
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--no-settle", action="store_true",
                    help="measure at once, not after egwd's first memory trim (30 s after start)")
    a = ap.parse_args()

    tc = _TC()
    try:
        sim = t.EgwSim(tc, [("sunspec", 1)], control=False)
        egwd = t.Egwd(tc, set={"devices": [sim.device_settings(0, id="inv1")]})
        t.wait_until(lambda: egwd.get("/api/frequency").get("latest"), timeout=15,
                     what="frequency samples")
        if not a.no_settle:
            # the steady state: egwd unmaps its libraries' start-up pages 30 s
            # after start (memory.trim_interval_s)
            t.wait_until(lambda: egwd.state()["memory"]["trims"] >= 1, timeout=45,
                         interval=0.5, what="egwd's first memory trim")
        time.sleep(2)
        m0 = mem(egwd.pid)

        ep = select.epoll()
        socks = {}
        for i in range(a.clients):
            s = socket.create_connection(("127.0.0.1", egwd.port))
            s.sendall(b"GET /api/live HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
            s.setblocking(False)
            ep.register(s.fileno(), select.EPOLLIN)
            socks[s.fileno()] = [s, b"", {}]
        delays = []
        end = time.monotonic() + a.seconds
        m1 = None
        while time.monotonic() < end:
            for fd, _ in ep.poll(0.2):
                now_us = time.time() * 1e6
                s, buf, seen = socks[fd]
                d = s.recv(262144)
                if not d:
                    raise SystemExit(f"client {fd} closed by egwd")
                buf += d
                *blocks, buf = buf.split(b"\n\n")
                for b in blocks:
                    if b"event: freq" not in b:
                        continue
                    line = b[b.index(b"data: ") + 6:].split(b"\r\n")[0].split(b"\n")[0]
                    j = json.loads(line)
                    seen[j["ts_ms"]] = True
                    delays.append((now_us - j["t_us"]) / 1000)
                socks[fd][1] = buf
            if m1 is None and time.monotonic() > end - a.seconds / 2:
                m1 = mem(egwd.pid)
        counts = sorted(len(v[2]) for v in socks.values())
        st, _, body = t.http(egwd.port, "GET", "/metrics")
        sse = {l.split()[0]: l.split()[1] for l in body.decode().splitlines()
               if l.startswith("egw_sse_")}
        for s, _, _ in socks.values():
            s.close()
        m2 = mem(egwd.pid)
        res = {
            "clients": a.clients, "seconds": a.seconds, "samples_delivered": len(delays),
            "per_client_min": counts[0], "per_client_max": counts[-1],
            "delay_ms_p50": round(pct(delays, 50), 3), "delay_ms_p99": round(pct(delays, 99), 3),
            "delay_ms_p999": round(pct(delays, 99.9), 3), "delay_ms_max": round(max(delays), 3),
            "mem_kb_before": m0, "mem_kb_with_clients": m1, "mem_kb_after": m2, "sse_metrics": sse,
        }
        print(json.dumps(res, indent=1))
        ok = res["delay_ms_p99"] < 5 and m1["RssAnon"] < 4096 and counts[0] >= counts[-1] - 1
        print("PASS" if ok else "FAIL", "(p99 < 5 ms, RssAnon < 4 MB, every client got every sample)")
        return 0 if ok else 1
    finally:
        tc.cleanup()


if __name__ == "__main__":
    sys.exit(main())
