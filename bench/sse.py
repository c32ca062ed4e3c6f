#!/usr/bin/python3
"""Live stream (SSE) fan-out benchmark.

Starts egw-sim (one SunSpec inverter), tools/devbackend.py and egwd polling
the inverter every second, reading the frequency at 10 Hz and uploading a
signed batch every 10 s (the seed workload), connects N clients
to /api/live (default 50, each from its own loopback address 127.0.0.N, one
Python process reading all sockets with epoll), and for every frequency sample each client receives computes the
delay between egwd publishing it (the event's "t_us", wall clock in us) and
the client reading it.  Also reports egwd's memory before, with and after
the clients: RSS, PSS and private memory side by side (bench/memstat.py,
/proc/PID/smaps_rollup read from outside), with the mappings that hold most
of the private memory while the clients are connected, and checks that every
client got every sample.

  EGW_BUILD=build /usr/bin/python3 bench/sse.py [--clients 50] [--seconds 20] [--warmup 0]

--warmup S runs the seed workload S more seconds before the clients connect
(the gateway's heap grows for the first minutes: SQLite's page cache fills).

Targets: p99 delay < 5 ms with 50 clients; egwd's private memory (its own
pages: Private_Dirty, i.e. heap, stacks and the libraries' relocated data)
at most 4 MB with the 50 clients connected.
"""
import argparse
import json
import os
import select
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import egwtest as t  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memstat  # noqa: E402
from frequency import DevBackend  # noqa: E402

PRIVATE_BUDGET_KB = 4096
TOP = 10


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
    return memstat.rollup(pid)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    # a kill stops the simulator, backend and egwd too (the cleanups run)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--no-settle", action="store_true",
                    help="measure at once, not after egwd's first malloc_trim (30 s after start)")
    ap.add_argument("--warmup", type=float, default=0,
                    help="seconds of seed workload before the clients connect, after the settle")
    a = ap.parse_args()

    tc = _TC()
    try:
        sim = t.EgwSim(tc, [("sunspec", 1)], control=False)
        port = t.free_port()
        be = DevBackend(tc, port)
        egwd = t.Egwd(tc, port=port, set={"devices": [sim.device_settings(0, id="inv1")],
                                          "backend.data_urls": [f"http://127.0.0.1:{be.port}/data"]})
        t.wait_until(lambda: egwd.get("/api/frequency").get("latest"), timeout=15,
                     what="frequency samples")
        if not a.no_settle:
            # the steady state: 30 s after start egwd hands the heap that
            # start-up freed back to the kernel (malloc_trim,
            # memory.trim_interval_s); it unmaps nothing
            t.wait_until(lambda: egwd.state()["memory"]["trims"] >= 1, timeout=45,
                         interval=0.5, what="egwd's first malloc_trim")
        time.sleep(2 + a.warmup)
        m0 = mem(egwd.pid)
        uptime_s = egwd.get("/api/uptime")["msek"] / 1000

        ep = select.epoll()
        socks = {}
        for i in range(a.clients):
            # each client from its own loopback address: egwd lets one address
            # hold only a few live streams (the rest are for other clients)
            s = socket.create_connection(("127.0.0.1", egwd.port),
                                         source_address=(f"127.0.{1 + i // 250}.{2 + i % 250}", 0))
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
                top = memstat.breakdown(egwd.pid)
                threads = memstat.threads(egwd.pid)
        counts = sorted(len(v[2]) for v in socks.values())
        st, _, body = t.http(egwd.port, "GET", "/metrics")
        sse = {l.split()[0]: l.split()[1] for l in body.decode().splitlines()
               if l.startswith("egw_sse_")}
        for s, _, _ in socks.values():
            s.close()
        # the connections' memory back: the loop closes them, then egwd's heap
        time.sleep(1)
        m2 = mem(egwd.pid)
        res = {
            "clients": a.clients, "seconds": a.seconds, "egwd_uptime_at_connect_s": uptime_s,
            "batches_uploaded": egwd.state()["store"].get("delivered"), "samples_delivered": len(delays),
            "per_client_min": counts[0], "per_client_max": counts[-1],
            "delay_ms_p50": round(pct(delays, 50), 3), "delay_ms_p99": round(pct(delays, 99), 3),
            "delay_ms_p999": round(pct(delays, 99.9), 3), "delay_ms_max": round(max(delays), 3),
            "mem_kb_before": m0, "mem_kb_with_clients": m1, "mem_kb_after": m2, "sse_metrics": sse,
        }
        print(json.dumps(res, indent=1))
        print(f"egwd memory before the clients: {memstat.fmt(m0)}")
        print(f"egwd memory with {a.clients} clients ({threads} threads): {memstat.fmt(m1)}")
        print(f"egwd memory after they left:   {memstat.fmt(m2)}")
        per = (m1["private_dirty_kb"] - m0["private_dirty_kb"]) / max(1, a.clients)
        print(f"private dirty per client: {per:.1f} kB")
        print(memstat.fmt_breakdown(top[:TOP], TOP, memstat.split(top)))
        ok = (res["delay_ms_p99"] < 5 and m1["private_dirty_kb"] <= PRIVATE_BUDGET_KB
              and counts[0] >= counts[-1] - 1)
        print("PASS" if ok else "FAIL", f"(p99 < 5 ms, private dirty <= {PRIVATE_BUDGET_KB} kB "
              "with the clients, every client got every sample)")
        return 0 if ok else 1
    finally:
        tc.cleanup()


if __name__ == "__main__":
    sys.exit(main())
