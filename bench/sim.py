#!/usr/bin/python3
"""egw-sim requests/s against a pymodbus server serving the same registers.

Both servers get the same load from the same client: egw-sim-load (C,
egw's codec; built with egw-sim) or, when it is missing, Python client
processes: N TCP connections sending fc 3 reads back to back for D seconds;
every answer's transaction id and byte count are checked.  The pymodbus server (3.0, asyncio, one process) is filled
with the very register values egw-sim serves for that block.

Two runs: one request outstanding per client (a plain Modbus master), and
--depth requests outstanding (Modbus/TCP pipelining by transaction id).
Besides requests/s (which on a 2-core machine also measures the client and
the loopback round trips), each server's own CPU time is read from /proc to
give requests per server CPU-second.

Usage: EGW_BUILD=build /usr/bin/python3 bench/sim.py [--clients 4] [--seconds 5]
           [--count 125] [--depth 8]
Prints the figures per server and the ratios egw-sim / pymodbus.
"""
import argparse
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.path.abspath(os.environ.get("EGW_BUILD", os.path.join(REPO, "build")))
PROFILE, UNIT, FC, ADDR = "huawei", 1, 3, 32000

PYMODBUS_SERVER = r"""
import logging, sys
from pymodbus.server import StartTcpServer
from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
port, addr = int(sys.argv[1]), int(sys.argv[2])
values = [int(v) for v in sys.argv[3].split(",")]
slave = ModbusSlaveContext(hr=ModbusSequentialDataBlock(addr, values), zero_mode=True)
StartTcpServer(context=ModbusServerContext(slaves=slave, single=True),
               address=("127.0.0.1", port))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} not open")


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_once(s, tid, count):
    s.sendall(struct.pack(">HHHBBHH", tid, 0, 6, UNIT, FC, ADDR, count))
    hdr = recv_exact(s, 7)
    rtid, proto, length, unit = struct.unpack(">HHHB", hdr)
    body = recv_exact(s, length - 1)
    if rtid != tid or proto != 0 or body[0] != FC or body[1] != 2 * count:
        raise ValueError(f"bad answer tid {rtid} != {tid} or {body[:2]!r}")
    return body[2:]


def client(port, count, seconds, out):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n, tid = 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(50):
            tid = (tid + 1) & 0xFFFF
            read_once(s, tid, count)
            n += 1
    s.close()
    out.put(n)


def load_python(port, clients, seconds, count):
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(port, count, seconds, q))
             for _ in range(clients)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    total = sum(q.get(timeout=seconds + 30) for _ in procs)
    for p in procs:
        p.join()
    return total / (time.monotonic() - t0)


def load(port, clients, seconds, count, depth):
    """Requests/s from egw-sim-load (C, egw's codec) when built, else from
    Python client processes (depth 1 only)."""
    tool = os.path.join(BUILD, "sim", "egw-sim-load")
    if not os.path.exists(tool):
        if depth != 1:
            return None
        return load_python(port, clients, seconds, count)
    out = subprocess.run([tool, str(port), str(clients), str(seconds), str(FC), str(ADDR),
                          str(count), str(UNIT), str(depth)], capture_output=True, text=True,
                         timeout=seconds + 30)
    if out.returncode != 0:
        raise RuntimeError(f"egw-sim-load: {out.stderr.strip()}")
    return float(out.stdout.split()[2])


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(proc, port, a, depth):
    c0 = cpu_seconds(proc.pid)
    rps = load(port, a.clients, a.seconds, a.count, depth)
    cpu = cpu_seconds(proc.pid) - c0
    if rps is None:
        return None, None
    return rps, rps * a.seconds / cpu if cpu > 0 else float("inf")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--count", type=int, default=125)
    ap.add_argument("--depth", type=int, default=8,
                    help="outstanding requests per client in the pipelined run")
    a = ap.parse_args()

    sim_port = free_port()
    sim = subprocess.Popen([os.path.join(BUILD, "sim", "egw-sim"), "--profile", PROFILE,
                            "--port", str(sim_port), "--unit-id", str(UNIT), "--log-level",
                            "warn"], stdout=subprocess.DEVNULL)
    pm = None
    results = {}
    try:
        wait_port(sim_port, sim)
        with socket.create_connection(("127.0.0.1", sim_port)) as s:
            regs = read_once(s, 1, a.count)
        values = struct.unpack(f">{a.count}H", regs)
        pm_port = free_port()
        pm = subprocess.Popen([sys.executable, "-c", PYMODBUS_SERVER, str(pm_port), str(ADDR),
                               ",".join(map(str, values))], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        wait_port(pm_port, pm)
        with socket.create_connection(("127.0.0.1", pm_port)) as s:
            if read_once(s, 1, a.count) != regs:
                raise AssertionError("pymodbus serves different registers")
        for depth in (1, a.depth):
            results[depth] = (measure(sim, sim_port, a, depth), measure(pm, pm_port, a, depth))
    finally:
        for p in (sim, pm):
            if p:
                p.terminate()
                p.wait(timeout=10)
    tool = "egw-sim-load (C)" if os.path.exists(os.path.join(BUILD, "sim", "egw-sim-load")) \
        else "Python sockets"
    print(f"load: {a.clients} clients ({tool}) x {a.seconds:g} s, fc 3 read of {a.count} "
          f"registers at {ADDR} ({PROFILE}), both servers on 127.0.0.1, {os.cpu_count()} cores")
    for depth, ((s_rps, s_eff), (p_rps, p_eff)) in results.items():
        if s_rps is None:
            print(f"depth {depth}: skipped (needs egw-sim-load)")
            continue
        print(f"depth {depth} (requests outstanding per client):")
        print(f"  egw-sim:  {s_rps:10.0f} requests/s  {s_eff:10.0f} requests per server CPU-second")
        print(f"  pymodbus: {p_rps:10.0f} requests/s  {p_eff:10.0f} requests per server CPU-second")
        print(f"  ratio egw-sim/pymodbus: {s_rps / p_rps:.1f}x requests/s, "
              f"{s_eff / p_eff:.1f}x per CPU-second")


if __name__ == "__main__":
    main()
