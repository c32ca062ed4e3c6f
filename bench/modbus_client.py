#!/usr/bin/python3
"""Modbus client benchmark: egw's client against libmodbus and pymodbus.

    bench/modbus_client.py [--build DIR] [-n REQUESTS] [--count REGS]

For each server -- the pymodbus server of the interop test
(tests/integration/mb_pymodbus_server.py) and egw-sim (C, when built) -- every
client reads `count` holding registers N times back to back on one
connection, one request in flight, and we report requests/s and the p50/p99
round trip:
  egw       tools/egw-mbread --repeat N (timing measured inside, in C)
  libmodbus modbus_read_registers() in a loop, called through ctypes on
            Debian's libmodbus.so.5 (the library mbpoll uses); timing with
            perf_counter around each call (ctypes adds ~1 us a call)
  pymodbus  ModbusTcpClient.read_holding_registers() in a loop
  mbpoll    one `mbpoll -1` process per read (its poll loop sleeps >= 10 ms
            between polls, so only whole invocations can be timed): reported
            for reference, not in the ratio
Ratios compare each client's requests/s with egw's, measured in the same run,
after 1000 warm-up reads.
Only 127.0.0.1 and ports picked at run time are used.
"""
import argparse
import ctypes
import logging
import os
import re
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port}")


def pct(lat, p):
    lat = sorted(lat)
    return lat[min(len(lat) - 1, int(len(lat) * p / 100))]


def summary(name, lat_us, total_s):
    return {"client": name, "n": len(lat_us), "rate": len(lat_us) / total_s,
            "p50": pct(lat_us, 50), "p99": pct(lat_us, 99)}


def bench_egw(build, port, addr, count, n):
    exe = os.path.join(build, "tools", "egw-mbread")
    r = subprocess.run([exe, "--host", "127.0.0.1", "--port", str(port), "--unit", "1", "--fc", "3",
                        "--addr", str(addr), "--count", str(count), "--repeat", str(n)],
                       capture_output=True, text=True, timeout=300)
    m = re.search(r"# n=(\d+) ok=(\d+) err=(\d+) time=([\d.]+)s rate=([\d.]+)/s p50=(\d+)us p99=(\d+)us",
                  r.stdout)
    if not m or int(m.group(2)) != n:
        raise RuntimeError(f"egw-mbread failed: {r.stdout[-300:]} {r.stderr[-300:]}")
    return {"client": "egw", "n": n, "rate": float(m.group(5)), "p50": int(m.group(6)),
            "p99": int(m.group(7))}


def bench_libmodbus(port, addr, count, n):
    lib = ctypes.CDLL("libmodbus.so.5")
    lib.modbus_new_tcp.restype = ctypes.c_void_p
    lib.modbus_new_tcp.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.modbus_connect.argtypes = [ctypes.c_void_p]
    lib.modbus_set_slave.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.modbus_read_registers.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                          ctypes.POINTER(ctypes.c_uint16)]
    lib.modbus_close.argtypes = [ctypes.c_void_p]
    lib.modbus_free.argtypes = [ctypes.c_void_p]
    ctx = lib.modbus_new_tcp(b"127.0.0.1", port)
    if not ctx or lib.modbus_connect(ctx) != 0:
        raise RuntimeError("libmodbus connect failed")
    lib.modbus_set_slave(ctx, 1)
    buf = (ctypes.c_uint16 * count)()
    read = lib.modbus_read_registers
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        a = time.perf_counter()
        if read(ctx, addr, count, buf) != count:
            raise RuntimeError("libmodbus read failed")
        lat.append((time.perf_counter() - a) * 1e6)
    total = time.perf_counter() - t0
    lib.modbus_close(ctx)
    lib.modbus_free(ctx)
    return summary("libmodbus", lat, total)


def bench_pymodbus(port, addr, count, n):
    from pymodbus.client import ModbusTcpClient
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=5)
    if not c.connect():
        raise RuntimeError("pymodbus connect failed")
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        a = time.perf_counter()
        rr = c.read_holding_registers(addr, count, slave=1)
        if rr.isError():
            raise RuntimeError(f"pymodbus read failed: {rr}")
        lat.append((time.perf_counter() - a) * 1e6)
    total = time.perf_counter() - t0
    c.close()
    return summary("pymodbus", lat, total)


def bench_mbpoll(port, addr, count, n):
    argv = ["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-t", "4", "-0", "-r", str(addr),
            "-c", str(count), "-1", "-q", "127.0.0.1"]
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        a = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"mbpoll failed: {r.stdout[-200:]} {r.stderr[-200:]}")
        lat.append((time.perf_counter() - a) * 1e6)
    return summary("mbpoll (per process)", lat, time.perf_counter() - t0)


def run_server(kind, build):
    port = free_port()
    if kind == "pymodbus":
        argv = ["/usr/bin/python3", os.path.join(REPO, "tests", "integration", "mb_pymodbus_server.py"),
                "--port", str(port)]
        addr = 10
    else:
        argv = [os.path.join(build, "sim", "egw-sim"), "--profile", "sunspec", "--port", str(port)]
        addr = 40000
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port, p)
    except Exception:
        p.kill()
        p.wait()
        raise
    return p, port, addr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("EGW_BUILD", os.path.join(REPO, "build")))
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--mbpoll-runs", type=int, default=20)
    a = ap.parse_args()
    servers = ["pymodbus"]
    if os.path.exists(os.path.join(a.build, "sim", "egw-sim")):
        servers.append("egw-sim")
    print(f"# {a.n} reads of {a.count} holding registers, one connection, one request in flight")
    for kind in servers:
        p, port, addr = run_server(kind, a.build)
        try:
            # warm the server up (a fresh Python server is slow for its first
            # thousand requests) so no client pays for it
            bench_libmodbus(port, addr, a.count, 1000)
            rows = [bench_egw(a.build, port, addr, a.count, a.n),
                    bench_libmodbus(port, addr, a.count, a.n),
                    bench_pymodbus(port, addr, a.count, a.n),
                    bench_mbpoll(port, addr, a.count, a.mbpoll_runs)]
        finally:
            p.terminate()
            p.wait()
        egw = rows[0]["rate"]
        print(f"\nserver: {kind}")
        print(f"{'client':22} {'req/s':>10} {'p50 us':>9} {'p99 us':>9} {'egw/client':>11}")
        for r in rows:
            ratio = "" if r["client"].startswith("mbpoll") else f"{egw / r['rate']:.2f}x"
            print(f"{r['client']:22} {r['rate']:10.0f} {r['p50']:9.0f} {r['p99']:9.0f} {ratio:>11}")


if __name__ == "__main__":
    main()
