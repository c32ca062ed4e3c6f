"""egwd's Modbus TCP proxy in front of an `egw-sim --single-client` inverter,
read by clients nobody here wrote (pymodbus, mbpoll, npm modbus-serial) at the
same time while egwd polls.

Run: EGW_BUILD=<build dir> /usr/bin/python3 -m unittest tests/integration/test_proxy.py
"""
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import egwtest as T  # noqa: E402

from pymodbus.client import ModbusTcpClient  # noqa: E402

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

NODE_DIR = os.path.join(T.REPO, "tests", "node")
LOCAL = "127.0.0.1"
SUNS = [0x5375, 0x6E53]  # "SunS" at 40000, the SunSpec marker


def pm_read(client, addr, count, unit, fc=3):
    """('ok', regs) | ('exc', code) | ('err', text)."""
    try:
        if fc == 4:
            rr = client.read_input_registers(addr, count, slave=unit)
        else:
            rr = client.read_holding_registers(addr, count, slave=unit)
    except Exception as e:  # pymodbus raises or returns errors by version
        return ("err", f"{type(e).__name__}: {e}")
    if rr.isError():
        code = getattr(rr, "exception_code", None)
        return ("exc", code) if code is not None else ("err", str(rr))
    return ("ok", list(rr.registers))


def pm_write(client, addr, value, unit):
    try:
        rr = client.write_register(addr, value, slave=unit)
    except Exception as e:
        return ("err", f"{type(e).__name__}: {e}")
    if rr.isError():
        code = getattr(rr, "exception_code", None)
        return ("exc", code) if code is not None else ("err", str(rr))
    return ("ok", None)


class SimCtl:
    """egw-sim's control port, one command per line."""

    def __init__(self, tc, port):
        self.sock = socket.create_connection((LOCAL, port), timeout=5)
        tc.addCleanup(self.sock.close)
        self.f = self.sock.makefile("rwb")

    def cmd(self, line):
        self.f.write(line.encode() + b"\n")
        self.f.flush()
        return self.f.readline().decode().strip()

    def ok(self, line):
        ans = self.cmd(line)
        if not ans.startswith("ok"):
            raise AssertionError(f"{line!r} -> {ans!r}")

    def get(self):
        return json.loads(self.cmd("get"))


class ProxyTest(unittest.TestCase):
    def start(self, extra_set=None, extra_devices=()):
        self.sim = T.EgwSim(self, [("sunspec", 1)], args=["--single-client"])
        self.ctl = SimCtl(self, self.sim.control_port)
        self.ctl.ok("freeze on")
        self.ctl.ok("set hz 50.07")
        self.pport = T.free_port()
        dev = self.sim.device_settings(0, id="inv1")
        s = {"devices": [dev] + list(extra_devices), "proxy.enabled": True,
             "proxy.bind": LOCAL, "proxy.port": self.pport,
             "harvest.poll_interval_ms": 200, "modbus.timeout_ms": 500}
        s.update(extra_set or {})
        self.egwd = T.Egwd(self, set=s)
        self.wait_polling()

    def wait_polling(self, dev="inv1"):
        def polling():
            for d in self.egwd.get("/api/device")["devices"]:
                if d["id"] == dev and d["state"] == "polling" and d["reading"]:
                    return d
        return T.wait_until(polling, timeout=15, what=f"{dev} polling")

    def device(self, dev="inv1"):
        for d in self.egwd.get("/api/device")["devices"]:
            if d["id"] == dev:
                return d

    def proxy_state(self):
        return self.egwd.state()["proxy"]

    def client(self):
        c = ModbusTcpClient(LOCAL, port=int(self.pport), timeout=3, retries=0)
        self.assertTrue(c.connect())
        self.addCleanup(c.close)
        return c

    def freq(self):
        """(fc, addr, words, sf_addr) of the frequency register the sim serves."""
        spec = self.sim_dev()["frequency_reg"]
        return spec

    def sim_dev(self):
        return self.ctl.get()["devices"][0]

    def hz_of(self, read):
        spec = self.freq()
        st, regs = read(spec["fc"], spec["addr"], spec["words"])
        self.assertEqual(st, "ok", regs)
        raw = regs[0]
        if spec["type"] == "I16":
            raw = struct.unpack(">h", struct.pack(">H", raw))[0]
        st, sfr = read(spec["fc"], spec["sf_addr"], 1)
        self.assertEqual(st, "ok", sfr)
        sf = struct.unpack(">h", struct.pack(">H", sfr[0]))[0]
        return round(raw * 10.0 ** sf, 6)

    # ------------------------------------------------------------------

    def test_many_clients_read_what_the_device_holds(self):
        self.start()
        spec = self.freq()
        self.assertEqual(spec["words"], 1, spec)

        c = self.client()
        self.assertEqual(pm_read(c, 40000, 2, 1), ("ok", SUNS))
        self.assertEqual(self.hz_of(lambda fc, a, n: pm_read(c, a, n, 1, fc)), 50.07)
        want = pm_read(c, spec["addr"], 1, 1, spec["fc"])[1]

        errors = []
        results = {"pymodbus": 0, "mbpoll": 0, "node": 0}

        def pymodbus_loop():
            cl = ModbusTcpClient(LOCAL, port=int(self.pport), timeout=3, retries=0)
            cl.connect()
            try:
                for _ in range(30):
                    r = pm_read(cl, 40000, 2, 1)
                    if r != ("ok", SUNS):
                        errors.append(("pymodbus SunS", r))
                    r = pm_read(cl, spec["addr"], 1, 1, spec["fc"])
                    if r != ("ok", want):
                        errors.append(("pymodbus hz", r))
                    results["pymodbus"] += 1
            finally:
                cl.close()

        def mbpoll_loop():
            for _ in range(5):
                out = subprocess.run(["mbpoll", "-1", "-0", "-o", "2", "-m", "tcp",
                                      "-p", str(self.pport), "-a", "1", "-t", "4", "-r", "40000",
                                      "-c", "2", LOCAL],
                                     capture_output=True, text=True, timeout=20)
                vals = [int(line.split(":", 1)[1].split()[0])
                        for line in out.stdout.splitlines()
                        if line.strip().startswith("[") and "]:" in line]
                if out.returncode != 0 or vals != SUNS:
                    errors.append(("mbpoll", out.returncode, vals, out.stdout[-300:]))
                results["mbpoll"] += 1

        def node_loop():
            for _ in range(3):
                out = subprocess.run(["node", os.path.join(NODE_DIR, "mb_read.mjs"), "tcp",
                                      LOCAL, str(self.pport), "1", str(spec["fc"]),
                                      str(spec["addr"]), "1"],
                                     capture_output=True, text=True, timeout=20, cwd=NODE_DIR)
                try:
                    res = json.loads(out.stdout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    res = {"error": out.stdout + out.stderr}
                if res.get("data") != want:
                    errors.append(("node", res))
                results["node"] += 1

        threads = [threading.Thread(target=pymodbus_loop) for _ in range(3)]
        if shutil.which("mbpoll"):
            threads.append(threading.Thread(target=mbpoll_loop))
        if shutil.which("node") and os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
            threads.append(threading.Thread(target=node_loop))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(errors, [])
        self.assertEqual(results["pymodbus"], 90)
        if shutil.which("mbpoll"):
            self.assertEqual(results["mbpoll"], 5)
        if shutil.which("node") and os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
            self.assertEqual(results["node"], 3)
        ps = self.proxy_state()
        self.assertGreater(ps["cached"], 0, ps)
        self.assertGreater(ps["clients_total"], 3, ps)
        # the device accepted one client: egwd's connection never broke
        d = self.device()
        self.assertEqual(d["state"], "polling")
        self.assertEqual(d["stats"]["modbus"]["reconnects"], 0, d["stats"])
        m = T.http(self.egwd.port, "GET", "/metrics")[2].decode()
        self.assertIn('egw_proxy_requests_total{outcome="cached"}', m)
        self.assertIn("egw_proxy_clients ", m)

    def test_cached_reads_cause_no_device_traffic(self):
        self.start()
        spec = self.freq()
        c = self.client()
        pm_read(c, spec["addr"], 1, 1, spec["fc"])  # the first may precede a poll
        before = self.device()["stats"]
        ps0 = self.proxy_state()
        for _ in range(50):
            self.assertEqual(pm_read(c, spec["addr"], 1, 1, spec["fc"])[0], "ok")
        after = self.device()["stats"]
        ps1 = self.proxy_state()
        self.assertEqual(ps1["cached"] - ps0["cached"], 50, ps1)
        self.assertEqual(ps1["forwarded"], ps0["forwarded"], ps1)
        # every request the Modbus client sent was one of egwd's own
        extra = ((after["modbus"]["requests"] - before["modbus"]["requests"])
                 - (after["reads"] - before["reads"]))
        self.assertLessEqual(extra, 1, (before, after))

        # a register no poll reads is forwarded, once per read, on the same connection
        f0 = ps1["forwarded"]
        for _ in range(5):
            self.assertEqual(pm_read(c, 40000, 2, 1), ("ok", SUNS))
        ps2 = self.proxy_state()
        self.assertEqual(ps2["forwarded"] - f0 + ps2["cached"] - ps1["cached"], 5, ps2)
        self.assertGreaterEqual(ps2["forwarded"] - f0, 1, ps2)
        self.assertEqual(self.device()["stats"]["modbus"]["reconnects"], 0)

    def test_exceptions_unknown_unit_and_dead_device(self):
        dead = {"connection": "tcp", "host": LOCAL, "port": int(T.free_port()), "unit_id": 1,
                "profile": "sunspec", "id": "dead", "proxy_unit_id": 7}
        self.start(extra_devices=[dead])
        c = self.client()
        self.assertEqual(pm_read(c, 40000, 2, 99), ("exc", 10))
        self.assertEqual(pm_read(c, 40000, 2, 7), ("exc", 11))
        # the client is still served afterwards
        self.assertEqual(pm_read(c, 40000, 2, 1), ("ok", SUNS))
        ps = self.proxy_state()
        self.assertEqual(ps["unknown_unit"], 1, ps)
        self.assertEqual(ps["no_answer"], 1, ps)

    def test_device_faults_and_coalescing(self):
        self.start()
        c = self.client()
        # a slow device: identical uncached reads from several clients share one request
        self.ctl.ok("fault slow 300")
        got = []

        def one():
            cl = ModbusTcpClient(LOCAL, port=int(self.pport), timeout=3, retries=0)
            cl.connect()
            got.append(pm_read(cl, 40000, 2, 1))
            cl.close()
        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(got, [("ok", SUNS)] * 5)
        self.assertGreater(self.proxy_state()["coalesced"], 0, self.proxy_state())
        self.ctl.ok("fault slow off")
        # the device's own exception is passed on
        self.ctl.ok("fault exception 4")
        self.assertEqual(pm_read(c, 40000, 2, 1), ("exc", 4))
        self.ctl.ok("fault exception off")
        # a device that stops answering: 0B, and egwd recovers the device afterwards
        self.ctl.ok("fault timeout on")
        self.assertEqual(pm_read(c, 40000, 2, 1), ("exc", 11))
        self.ctl.ok("clear")
        self.ctl.ok("freeze on")
        self.wait_polling()
        T.wait_until(lambda: pm_read(c, 40000, 2, 1) == ("ok", SUNS), timeout=15,
                     what="reads through the proxy again")

    def test_device_drops_the_connection(self):
        """The device closes its connection when a request arrives: every
        proxy client gets its own answer or exception 0B within its timeout,
        never a hang, another request's registers or a closed socket; egwd
        reconnects and the proxy serves the device again."""
        self.start()
        spec = self.freq()
        hz = pm_read(self.client(), spec["addr"], 1, 1, spec["fc"])
        self.assertEqual(hz[0], "ok", hz)
        self.ctl.ok("fault drop on")
        bad = []
        seen = {"ok": 0, "exc": 0}

        def raw_client(k):
            # raw frames, so a wrong transaction id or a swapped answer is seen
            s = socket.create_connection((LOCAL, int(self.pport)), timeout=10)
            try:
                for i in range(12):
                    tid = (k << 8) | i
                    addr, n, fc = (40000, 2, 3) if i % 2 else (spec["addr"], 1, spec["fc"])
                    s.sendall(struct.pack(">HHHBBHH", tid, 0, 6, 1, fc, addr, n))
                    hdr = s.recv(7, socket.MSG_WAITALL)
                    if len(hdr) < 7:
                        bad.append((k, i, "closed"))
                        return
                    rtid, _, ln, unit = struct.unpack(">HHHB", hdr)
                    pdu = s.recv(ln - 1, socket.MSG_WAITALL)
                    if rtid != tid or unit != 1:
                        bad.append((k, i, "tid/unit", rtid, unit))
                    elif pdu[0] == fc | 0x80:
                        if pdu[1] != 0x0B:
                            bad.append((k, i, "exception", pdu[1]))
                        seen["exc"] += 1
                    elif pdu[0] != fc or pdu[1] != 2 * n:
                        bad.append((k, i, "answer", pdu.hex()))
                    else:
                        regs = list(struct.unpack(f">{n}H", pdu[2:]))
                        if addr == 40000 and regs != SUNS:
                            bad.append((k, i, "registers", regs))
                        if addr != 40000 and regs != hz[1]:
                            bad.append((k, i, "frequency", regs, hz[1]))
                        seen["ok"] += 1
            except socket.timeout:
                bad.append((k, "hang"))
            finally:
                s.close()

        threads = [threading.Thread(target=raw_client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        # several requests of one client queued on the device when it drops:
        # each answer matches its own request
        s = socket.create_connection((LOCAL, int(self.pport)), timeout=10)
        self.addCleanup(s.close)
        reqs = {0x7000 + i: (3, 40000 + (i % 3), 2 - (i % 3 == 2)) for i in range(3)}
        for _ in range(4):
            s.sendall(b"".join(struct.pack(">HHHBBHH", tid, 0, 6, 1, fc, a, n)
                               for tid, (fc, a, n) in reqs.items()))
            for _ in reqs:
                rtid, _, ln, _ = struct.unpack(">HHHB", s.recv(7, socket.MSG_WAITALL))
                pdu = s.recv(ln - 1, socket.MSG_WAITALL)
                fc, a, n = reqs[rtid]
                if pdu[0] == fc | 0x80:
                    self.assertEqual(pdu[1], 0x0B, (rtid, pdu.hex()))
                    seen["exc"] += 1
                else:
                    self.assertEqual((pdu[0], pdu[1]), (fc, 2 * n), (rtid, pdu.hex()))
                    seen["ok"] += 1
        self.assertEqual(bad, [])
        self.assertEqual(seen["ok"] + seen["exc"], 60, seen)
        self.assertGreater(seen["exc"], 0, seen)
        self.assertGreater(self.proxy_state()["no_answer"], 0, self.proxy_state())
        self.assertTrue(self.egwd.alive(), "egwd exited")
        # the device comes back: egwd reconnects, and so does the proxy's path
        self.ctl.ok("fault drop off")
        self.wait_polling()
        c = self.client()
        T.wait_until(lambda: pm_read(c, 40000, 2, 1) == ("ok", SUNS), timeout=15,
                     what="reads through the proxy again")
        self.assertGreater(self.device()["stats"]["modbus"]["reconnects"], 0)

    def test_duplicate_proxy_unit_refused(self):
        self.start()
        other = {"connection": "tcp", "host": LOCAL, "port": int(T.free_port()), "unit_id": 3,
                 "profile": "sunspec", "id": "other", "proxy_unit_id": 1}
        st, o = T.http_json(self.egwd.port, "POST", "/api/settings",
                            body={"devices": [self.sim.device_settings(0, id="inv1"), other]},
                            headers=self.egwd.auth())
        self.assertEqual(st, 400, o)
        self.assertIn("devices[1].proxy_unit_id", json.dumps(o))

    def test_writes(self):
        self.start(extra_set={"modbus_write_allowlist": [{"address": 40068}]})
        c = self.client()
        self.assertEqual(self.sim_dev()["writes"], 0)
        self.assertEqual(pm_write(c, 40068, 9, 1), ("exc", 1))
        ps = self.proxy_state()
        self.assertEqual(ps["refused"], 1, ps)
        st, o = T.http_json(self.egwd.port, "POST", "/api/settings",
                            body={"proxy": {"allow_writes": True}}, headers=self.egwd.auth())
        self.assertEqual(st, 200, o)
        self.assertEqual(pm_write(c, 40069, 9, 1), ("exc", 1))  # not in the allow-list
        self.assertEqual(pm_write(c, 40068, 9, 1), ("ok", None), self.egwd.output()[-1500:])
        # on the device: egw-sim acknowledged exactly the one allowed write (the
        # refused ones never reached it), and the value reads back through the proxy
        self.assertEqual(self.sim_dev()["writes"], 1)
        T.wait_until(lambda: pm_read(c, 40068, 1, 1) == ("ok", [9]), timeout=5,
                     what="written value read back")
        ps = self.proxy_state()
        self.assertEqual((ps["writes_ok"], ps["refused"]), (1, 2), ps)
        self.assertIn("write from 127.0.0.1", self.egwd.output())
        self.assertEqual(self.device()["stats"]["modbus"]["reconnects"], 0)

    def test_slow_and_garbage_clients_do_not_delay_polls(self):
        self.start()
        # a client that floods uncached reads and never reads its answers
        slow = socket.create_connection((LOCAL, int(self.pport)), timeout=5)
        self.addCleanup(slow.close)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        req = b"".join(struct.pack(">HHHBBHH", i, 0, 6, 1, 3, 40000, 2) for i in range(2000))
        slow.setblocking(False)
        try:
            slow.send(req)
        except BlockingIOError:
            pass
        # a client that sends garbage is dropped
        g = socket.create_connection((LOCAL, int(self.pport)), timeout=5)
        self.addCleanup(g.close)
        g.sendall(b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(g.recv(64), b"")
        # half a frame: nothing answered, nobody else affected
        h = socket.create_connection((LOCAL, int(self.pport)), timeout=5)
        self.addCleanup(h.close)
        h.sendall(b"\x00\x01\x00\x00\x00\x06\x01")

        polls0 = self.device()["stats"]["polls"]
        t0 = time.monotonic()
        c = self.client()
        worst = 0.0
        for _ in range(20):
            a = time.monotonic()
            self.assertEqual(pm_read(c, 40000, 2, 1), ("ok", SUNS))
            worst = max(worst, time.monotonic() - a)
        T.wait_until(lambda: self.device()["stats"]["polls"] >= polls0 + 5, timeout=3,
                     what="polls go on at 5 Hz")
        self.assertLess(worst, 1.0)
        d = self.device()
        self.assertEqual(d["state"], "polling")
        self.assertEqual(d["stats"]["overruns"], 0, d["stats"])
        self.assertLess(time.monotonic() - t0, 10)


if __name__ == "__main__":
    unittest.main()
