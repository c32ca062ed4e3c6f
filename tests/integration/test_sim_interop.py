"""egw-sim against independent Modbus clients: pymodbus, mbpoll (libmodbus)
and the npm package modbus-serial, over TCP, RTU on egw-sim's own pty, and
RTU through a socat pty pair.  Values read are checked against the control
interface's `get`; every fault of the control interface is observed by
pymodbus and then cleared.

Run: EGW_BUILD=/path/to/build /usr/bin/python3 -m unittest tests/integration/test_sim_interop.py
"""
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import egwtest as T  # noqa: E402

from pymodbus.client import ModbusSerialClient, ModbusTcpClient  # noqa: E402

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # expected failures are not news

NODE_DIR = os.path.join(T.REPO, "tests", "node")
LOCAL = "127.0.0.1"


def variant_lacks(dev, st, regs):
    """A device served from a vendor map (a Sungrow SG string inverter under
    the `sungrow` profile, a Solis string inverter) answers illegal data
    address for the blocks its model does not have, as the real device does."""
    vendor = dev.get("egw_profile", dev["profile"]) != dev["profile"] or "vendor_doc" in dev
    return vendor and (st, regs) == ("exc", 2)


class Sim:
    """egw-sim with a control connection; servers parsed from its ready lines."""

    def __init__(self, tc, args):
        self.ctl_port = T.free_port()
        argv = [T.binary("egw-sim")] + [str(a) for a in args] + ["--control-port", self.ctl_port]
        self.proc = T.Proc(argv, name="egw-sim")
        tc.addCleanup(self.proc.stop)
        tc.addCleanup(self.check_clean_exit, tc)
        out = self.proc.wait_output("egw-sim: ready", timeout=10)
        self.servers = []
        for line in out.splitlines():
            p = line.split()
            if p[:2] == ["egw-sim:", "listening"]:
                s = {"profile": p[2], "kind": p[3], "unit": int(p[6])}
                if p[3] == "tcp":
                    s["port"] = int(p[4].rsplit(":", 1)[1])
                else:
                    s["path"] = p[4]
                self.servers.append(s)
        self.sock = socket.create_connection((LOCAL, self.ctl_port), timeout=5)
        tc.addCleanup(self.sock.close)
        self.f = self.sock.makefile("rwb")

    def check_clean_exit(self, tc):
        """SIGTERM ends egw-sim with status 0 and no sanitizer report."""
        rc = self.proc.stop()
        out = self.proc.output()
        tc.assertEqual(rc, 0, out[-3000:])
        for bad in ("runtime error", "Sanitizer", "ERROR: "):
            tc.assertNotIn(bad, out)

    def cmd(self, line):
        self.f.write(line.encode() + b"\n")
        self.f.flush()
        ans = self.f.readline().decode().strip()
        return ans

    def ok(self, line):
        ans = self.cmd(line)
        if not ans.startswith("ok"):
            raise AssertionError(f"{line!r} -> {ans!r}")
        return ans

    def get(self):
        return json.loads(self.cmd("get"))


def decode(spec, regs, sf=None):
    """Decode a register described by get's frequency_reg."""
    words = list(regs[: spec["words"]])
    if spec["order"] == "little":
        words.reverse()
    raw = 0
    for w in words:
        raw = (raw << 16) | w
    t = spec["type"]
    if t == "I16":
        raw = struct.unpack(">h", struct.pack(">H", raw))[0]
    elif t == "I32":
        raw = struct.unpack(">i", struct.pack(">I", raw))[0]
    elif t == "F32":
        raw = struct.unpack(">f", struct.pack(">I", raw))[0]
    if sf is not None:
        return raw * 10.0 ** sf, 10.0 ** sf
    return raw * spec["scale"], spec["scale"]


def crc16(data):
    """CRC-16/MODBUS, for hand-made RTU frames."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def pm_read(client, fc, addr, count, unit):
    """('ok', regs) | ('exc', code) | ('err', text) from a pymodbus read."""
    try:
        if fc == 4:
            rr = client.read_input_registers(addr, count, slave=unit)
        else:
            rr = client.read_holding_registers(addr, count, slave=unit)
    except Exception as e:  # pymodbus raises or returns errors by version
        return ("err", f"{type(e).__name__}: {e}")
    if rr is None:
        return ("err", "None")
    if rr.isError():
        code = getattr(rr, "exception_code", None)
        if code is not None:
            return ("exc", code)
        return ("err", str(rr))
    return ("ok", list(rr.registers))


def tcp_client(port, timeout=1.0):
    # pymodbus 3.0 turns a fractional timeout into 0 (a non-blocking connect
    # that fails): connect with 1 s, then set the read timeout wanted.
    c = ModbusTcpClient(LOCAL, port=port, timeout=1, retries=0)
    c.connect()
    c.params.timeout = timeout
    return c


def read_hz_pymodbus(client, dev, unit):
    spec = dev["frequency_reg"]
    st, regs = pm_read(client, spec["fc"], spec["addr"], spec["words"], unit)
    if st != "ok":
        raise AssertionError(f"{dev['profile']}: frequency read -> {st} {regs}")
    sf = None
    if spec["sf_addr"] >= 0:
        st, sfr = pm_read(client, spec["fc"], spec["sf_addr"], 1, unit)
        if st != "ok":
            raise AssertionError(f"{dev['profile']}: sf read -> {st} {sfr}")
        sf = struct.unpack(">h", struct.pack(">H", sfr[0]))[0]
    return decode(spec, regs, sf)


def raw_request(port, tid, unit, fc, addr, count, timeout=1.0):
    """Send one MBAP request on a fresh socket; return the raw reply bytes."""
    with socket.create_connection((LOCAL, port), timeout=timeout) as s:
        s.sendall(struct.pack(">HHHBBHH", tid, 0, 6, unit, fc, addr, count))
        data = b""
        try:
            while len(data) < 7 or len(data) < 6 + struct.unpack(">H", data[4:6])[0]:
                chunk = s.recv(512)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        return data


class SimInterop(unittest.TestCase):

    def test_help_and_profiles(self):
        out = subprocess.run([T.binary("egw-sim"), "--help"], capture_output=True, text=True,
                             timeout=10)
        self.assertEqual(out.returncode, 0)
        for word in ("--profile", "--port", "--unit-id", "--rtu-pty", "--rtu-dev", "--host",
                     "--speed", "--seed", "--control-port", "--print-port", "--fault-timeout",
                     "--fault-exception", "--fault-tid", "--fault-garbage", "--fault-slow",
                     "--fault-drop", "--single-client", "--sleep", "--night-sleep",
                     "fault timeout on|off", "set <group.field>", "get", "clear",
                     "egw-sim: listening <profile> tcp <host>:<port> unit <id>"):
            self.assertIn(word, out.stdout, word)
        names = subprocess.run([T.binary("egw-sim"), "--list-profiles"], capture_output=True,
                               text=True, timeout=10).stdout.split()
        self.assertIn("sunspec", names)
        self.assertIn("sdm630", names)
        self.assertGreater(len(names), 10)
        bad = subprocess.run([T.binary("egw-sim"), "--profile", "nosuch", "--port", "0"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("unknown profile", bad.stderr)
        none = subprocess.run([T.binary("egw-sim"), "--profile", "sdm630"],
                              capture_output=True, text=True, timeout=10)
        self.assertEqual(none.returncode, 2)

    def test_every_profile_tcp(self):
        """Every profile on its own port: every block reads, and the grid
        frequency decodes to what `get` says, also after `set hz`."""
        names = subprocess.run([T.binary("egw-sim"), "--list-profiles"], capture_output=True,
                               text=True, timeout=10).stdout.split()
        args = []
        for n in names:
            args += ["--profile", n, "--port", "0"]
        sim = Sim(self, args + ["--seed", "4"])
        self.assertEqual(len(sim.servers), len(names))
        sim.ok("freeze on")
        devs = sim.get()["devices"]
        self.assertEqual([d["profile"] for d in devs], [s["profile"] for s in sim.servers])
        checked = 0
        for dev, srv in zip(devs, sim.servers):
            c = tcp_client(srv["port"])
            self.addCleanup(c.close)
            if dev["profile"] != "unknown":  # the identity-probe profile has no blocks
                self.assertTrue(dev["blocks"], dev["profile"])
            for fc, addr, count in dev["blocks"]:
                st, regs = pm_read(c, fc, addr, count, srv["unit"])
                if variant_lacks(dev, st, regs):
                    continue
                self.assertEqual(st, "ok", f"{dev['profile']} block {fc}/{addr}/{count}: {regs}")
                self.assertEqual(len(regs), count)
            if "frequency_reg" not in dev:
                continue
            hz, scale = read_hz_pymodbus(c, dev, srv["unit"])
            want = dev["reading"]["meter"]["Hz"]
            self.assertTrue(49.8 <= want <= 50.2)
            self.assertLessEqual(abs(hz - want), scale / 2 + 1e-9, dev["profile"])
            checked += 1
        self.assertGreater(checked, 10)
        # pin a value: every profile serves it
        sim.ok("set hz 49.87")
        for dev, srv in zip(devs, sim.servers):
            if "frequency_reg" not in dev:
                continue
            c = tcp_client(srv["port"])
            self.addCleanup(c.close)
            hz, scale = read_hz_pymodbus(c, dev, srv["unit"])
            self.assertLessEqual(abs(hz - 49.87), scale / 2 + 1e-9, dev["profile"])
        # an address no profile defines
        c = tcp_client(sim.servers[0]["port"])
        self.addCleanup(c.close)
        self.assertEqual(pm_read(c, 3, 1, 1, sim.servers[0]["unit"]), ("exc", 2))

    def test_every_profile_rtu_pty(self):
        """Every profile on one RTU line (a pty egw-sim creates), unit ids
        1..N: every block reads over RTU and the frequency matches `get`."""
        names = subprocess.run([T.binary("egw-sim"), "--list-profiles"], capture_output=True,
                               text=True, timeout=10).stdout.split()
        path = os.path.join(T.tempdir(self), "ttyALL")
        args = []
        for i, n in enumerate(names):
            args += ["--profile", n, "--rtu-pty", path, "--unit-id", i + 1]
        sim = Sim(self, args + ["--baud", "115200"])
        self.assertEqual([s["kind"] for s in sim.servers], ["rtu"] * len(names))
        sim.ok("freeze on")
        c = ModbusSerialClient(path, baudrate=115200, timeout=1, retries=0)
        self.assertTrue(c.connect())
        self.addCleanup(c.close)
        checked = 0
        for dev in sim.get()["devices"]:
            unit = dev["unit"]
            for fc, addr, count in dev["blocks"]:
                st, regs = pm_read(c, fc, addr, count, unit)
                if variant_lacks(dev, st, regs):
                    continue
                self.assertEqual(st, "ok", f"{dev['profile']} block {fc}/{addr}/{count}: {regs}")
                self.assertEqual(len(regs), count)
            if "frequency_reg" in dev:
                hz, scale = read_hz_pymodbus(c, dev, unit)
                self.assertLessEqual(abs(hz - dev["reading"]["meter"]["Hz"]), scale / 2 + 1e-9,
                                     dev["profile"])
                checked += 1
        self.assertGreater(checked, 10)

    def test_known_registers(self):
        """Register facts from the reference table, decoded by hand."""
        sim = Sim(self, ["--profile", "solaredge", "--port", "0",
                         "--profile", "sungrow", "--port", "0", "--unit-id", "3",
                         "--profile", "huawei", "--port", "0",
                         "--profile", "sdm630", "--port", "0", "--unit-id", "2"])
        sim.ok("freeze on")
        sim.ok("set hz 50.123")
        d = sim.get()["devices"]
        se, sg, hw, sdm = (tcp_client(s["port"]) for s in sim.servers)
        for c in (se, sg, hw, sdm):
            self.addCleanup(c.close)
        # SolarEdge: 40085 U16 Hz, scale 10^(I16 at 40086)
        st, r = pm_read(se, 3, 40085, 2, 1)
        self.assertEqual(st, "ok")
        sf = struct.unpack(">h", struct.pack(">H", r[1]))[0]
        self.assertAlmostEqual(r[0] * 10.0 ** sf, 50.123, delta=10.0 ** sf / 2 + 1e-9)
        # serial at 40052, 16 registers of text
        st, r = pm_read(se, 3, 40052, 16, 1)
        text = b"".join(struct.pack(">H", w) for w in r).rstrip(b"\0 ").decode()
        self.assertEqual(text, d[0]["serial"])
        self.assertTrue(text.startswith("SIM"))
        # Sungrow: input 5035 U16 0.1 Hz, unit 3
        st, r = pm_read(sg, 4, 5035, 1, 3)
        self.assertEqual(st, "ok")
        self.assertAlmostEqual(r[0] * 0.1, 50.1, delta=0.051)
        # Huawei: holding 32085 U16 0.01 Hz
        st, r = pm_read(hw, 3, 32085, 1, 1)
        self.assertEqual(st, "ok")
        self.assertAlmostEqual(r[0] * 0.01, 50.12, delta=0.0051)
        # SDM630: input 70, F32 high word first (Eastron SDM630 protocol: IEEE-754
        # big-endian; the reference's word-swapped order is a known mistake)
        st, r = pm_read(sdm, 4, 70, 2, 2)
        self.assertEqual(st, "ok")
        hz = struct.unpack(">f", struct.pack(">HH", r[0], r[1]))[0]
        self.assertAlmostEqual(hz, 50.123, delta=1e-4)
        # SDM630: total import, F32 big-endian kWh; serial U32 at holding 64512
        st, r = pm_read(sdm, 4, 72, 4, 2)
        self.assertEqual(st, "ok")
        imp = struct.unpack(">f", struct.pack(">HH", r[0], r[1]))[0] * 1000
        exp = struct.unpack(">f", struct.pack(">HH", r[2], r[3]))[0] * 1000
        m = d[3]["reading"]["meter"]
        self.assertAlmostEqual(imp, m["total_import_Wh"], delta=1e-6 * imp + 1)
        self.assertAlmostEqual(exp, m["total_export_Wh"], delta=1e-6 * exp + 1)
        st, r = pm_read(sdm, 3, 64512, 2, 2)
        self.assertEqual(st, "ok")
        self.assertEqual(str((r[0] << 16) | r[1]), d[3]["serial"])
        # Sungrow: phase A voltage, input 5018, U16 0.1 V
        st, r = pm_read(sg, 4, 5018, 1, 3)
        self.assertEqual(st, "ok")
        self.assertAlmostEqual(r[0] * 0.1, d[1]["reading"]["meter"]["L1_V"], delta=0.051)
        # an unsupported function (read coils): exception 1, illegal function
        rep = raw_request(sim.servers[0]["port"], 0x4242, 1, 1, 0, 8)
        self.assertEqual(rep, struct.pack(">HHHBBB", 0x4242, 0, 3, 1, 0x81, 1))
        # wrong unit on a TCP port: gateway target failed to respond
        self.assertEqual(pm_read(sdm, 4, 70, 2, 9), ("exc", 11))

    def test_sunspec_walk(self):
        """The generic SunSpec device: "SunS" marker, then a chain of models
        ending in 0xFFFF, walked with pymodbus as a SunSpec client does."""
        sim = Sim(self, ["--profile", "sunspec", "--port", "0"])
        c = tcp_client(sim.servers[0]["port"])
        self.addCleanup(c.close)
        st, r = pm_read(c, 3, 40000, 2, 1)
        self.assertEqual(st, "ok")
        self.assertEqual(struct.pack(">HH", *r), b"SunS")
        addr, models = 40002, []
        while len(models) < 20:
            st, hdr = pm_read(c, 3, addr, 2, 1)
            self.assertEqual(st, "ok", f"header at {addr}")
            if hdr[0] == 0xFFFF:
                break
            models.append(hdr[0])
            if hdr[1]:
                st, body = pm_read(c, 3, addr + 2, min(hdr[1], 125), 1)
                self.assertEqual(st, "ok", f"model {hdr[0]} at {addr}")
            addr += 2 + hdr[1]
        self.assertEqual(models[0], 1)
        for m in (1, 103, 160, 203, 802):
            self.assertIn(m, models)
        # the common model names the device: manufacturer, model, version
        for addr, n in ((40004, 16), (40020, 16), (40044, 8)):
            st, r = pm_read(c, 3, addr, n, 1)
            self.assertEqual(st, "ok")
            self.assertTrue(b"".join(struct.pack(">H", w) for w in r).strip(b"\0 "), addr)

    def test_sunspec_brands_walk(self):
        """egw-sim's SunSpec brands carry the map their real devices carry at
        40000: marker, common model 1 with manufacturer, model, version and
        serial, the models in the vendor's order, end marker."""
        want = {"solaredge_meter": ("SolarEdge", [1, 103, 1, 203]),
                "solaredge": ("SolarEdge", [1, 103]),
                "fronius_sf": ("Fronius", [1, 103, 120, 121, 122, 123, 160]),
                "fronius": ("Fronius", [1, 113, 120, 121, 122, 123, 160]),
                "sunspec_float": ("SunSpec", [1, 113, 120, 121, 122, 123, 124]),
                "sunspec_float1": ("SunSpec", [1, 111, 120, 122]),
                "sunspec_der": ("SunSpec", [1, 701, 702, 713, 714])}
        args = []
        for name in want:
            args += ["--profile", name, "--port", "0"]
        sim = Sim(self, args)
        serials = {d["profile"]: d["serial"] for d in sim.get()["devices"]}
        for srv in sim.servers:
            c = tcp_client(srv["port"])
            self.addCleanup(c.close)
            st, r = pm_read(c, 3, 40000, 2, 1)
            self.assertEqual((st, struct.pack(">HH", *r)), ("ok", b"SunS"), srv["profile"])

            def text(addr, n):
                st, r = pm_read(c, 3, addr, n, 1)
                self.assertEqual(st, "ok")
                return b"".join(struct.pack(">H", w) for w in r).rstrip(b"\0 ").decode()
            self.assertEqual(text(40004, 16), want[srv["profile"]][0])
            self.assertTrue(text(40020, 16))            # Md
            self.assertTrue(text(40044, 8))             # Vr
            self.assertEqual(text(40052, 16), serials[srv["profile"]])
            addr, models = 40002, []
            while len(models) < 20:
                st, hdr = pm_read(c, 3, addr, 2, 1)
                self.assertEqual(st, "ok", f"{srv['profile']} header at {addr}")
                if hdr[0] == 0xFFFF:
                    break
                models.append(hdr[0])
                addr += 2 + hdr[1]
            self.assertEqual(models, want[srv["profile"]][1], srv["profile"])

    def test_noise_in(self):
        """Random bytes on TCP and on the serial line: egw-sim survives (clean
        exit checked at cleanup, also under the sanitizers) and still answers."""
        import random
        rnd = random.Random(7)
        tmp = T.tempdir(self)
        path = os.path.join(tmp, "ttyNOISE")
        sim = Sim(self, ["--profile", "sdm630", "--port", "0",
                         "--profile", "sdm630", "--rtu-pty", path])
        port = sim.servers[0]["port"]
        for i in range(30):
            with socket.create_connection((LOCAL, port), timeout=1) as s:
                blob = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600)))
                if i % 3 == 0:  # a valid-looking MBAP header with junk after it
                    blob = struct.pack(">HHHB", i, 0, len(blob) + 1, 1) + blob[:250]
                try:
                    s.sendall(blob)
                    s.settimeout(0.05)
                    s.recv(1024)
                except OSError:
                    pass
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            for _ in range(20):
                os.write(fd, bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300))))
        finally:
            os.close(fd)
        c = tcp_client(port)
        self.addCleanup(c.close)
        self.assertEqual(pm_read(c, 4, 70, 2, 1)[0], "ok")
        time.sleep(0.3)  # the line drops partial frames after its silence
        r = ModbusSerialClient(path, baudrate=9600, timeout=1, retries=0)
        self.assertTrue(r.connect())
        self.addCleanup(r.close)
        self.assertEqual(pm_read(r, 4, 70, 2, 1)[0], "ok")

    def test_shared_port_comma_lists(self):
        """--profile a,b --port P --unit-id 1,2: one listener, two devices told
        apart by unit id; each device its own serial and physics."""
        port = T.free_port()
        sim = Sim(self, ["--profile", "huawei,sdm630", "--port", port, "--unit-id", "1,2"])
        self.assertEqual([(s["profile"], s["port"], s["unit"]) for s in sim.servers],
                         [("huawei", port, 1), ("sdm630", port, 2)])
        c = tcp_client(port)
        self.addCleanup(c.close)
        self.assertEqual(pm_read(c, 3, 32085, 1, 1)[0], "ok")
        self.assertEqual(pm_read(c, 4, 70, 2, 2)[0], "ok")
        self.assertEqual(pm_read(c, 3, 32085, 1, 2), ("exc", 2))  # the meter has no 32085
        self.assertEqual(pm_read(c, 3, 32085, 1, 0), ("exc", 11))  # unit 0: ambiguous here
        devs = sim.get()["devices"]
        self.assertEqual(devs[0]["serial"], f"SIMhuawei{port}")
        self.assertNotEqual(devs[0]["serial"], devs[1]["serial"])
        # a unit used twice on one endpoint is refused at start
        dup = subprocess.run([T.binary("egw-sim"), "--profile", "huawei,sdm630", "--port",
                              str(T.free_port())], capture_output=True, text=True, timeout=10)
        self.assertNotEqual(dup.returncode, 0)
        self.assertIn("unit 1 used twice", dup.stderr)

    def test_physics_over_time(self):
        """Sped up: counters grow and match integrated power; P = V x I."""
        sim = Sim(self, ["--profile", "sdm630", "--port", "0", "--speed", "600",
                         "--start", "10:00"])
        a = sim.get()["devices"][0]["reading"]["meter"]
        samples = []
        for _ in range(20):
            time.sleep(0.1)
            samples.append(sim.get())
        b = samples[-1]["devices"][0]["reading"]["meter"]
        self.assertGreater(b["total_import_Wh"] + b["total_export_Wh"],
                           a["total_import_Wh"] + a["total_export_Wh"])
        prev = a
        for s in samples:
            m = s["devices"][0]["reading"]["meter"]
            self.assertGreaterEqual(m["total_import_Wh"], prev["total_import_Wh"])
            self.assertGreaterEqual(m["total_export_Wh"], prev["total_export_Wh"])
            for ph in ("L1", "L2", "L3"):
                self.assertAlmostEqual(m[f"{ph}_V"] * m[f"{ph}_A"], m[f"{ph}_W"], delta=0.01)
                self.assertTrue(215 < m[f"{ph}_V"] < 245)
            self.assertTrue(49.8 <= m["Hz"] <= 50.2)
            prev = m
        self.assertGreater(samples[-1]["sim_time"] - samples[0]["sim_time"], 600)

    def test_writes(self):
        sim = Sim(self, ["--profile", "solaredge", "--port", "0"])
        port = sim.servers[0]["port"]
        c = tcp_client(port)
        self.addCleanup(c.close)
        blocks = sim.get()["devices"][0]["blocks"]
        fc, addr, count = next(b for b in blocks if b[0] == 3)
        target = addr + count - 1
        rr = c.write_register(target, 4242, slave=1)
        self.assertFalse(rr.isError(), rr)
        self.assertEqual(pm_read(c, 3, target, 1, 1), ("ok", [4242]))
        rr = c.write_registers(target - 1, [7, 8], slave=1)
        self.assertFalse(rr.isError(), rr)
        time.sleep(0.15)  # the next physics ticks keep what was written
        self.assertEqual(pm_read(c, 3, target - 1, 2, 1), ("ok", [7, 8]))
        rr = c.write_register(2, 1, slave=1)
        self.assertTrue(rr.isError())
        self.assertEqual(rr.exception_code, 2)

    def test_faults(self):
        sim = Sim(self, ["--profile", "huawei", "--port", "0"])
        port = sim.servers[0]["port"]
        good = ("ok",)

        def read(timeout=1.0):
            c = tcp_client(port, timeout=timeout)
            try:
                return pm_read(c, 3, 32085, 1, 1)
            finally:
                c.close()

        self.assertEqual(read()[0], "ok")

        # timeout: no answer at all
        sim.ok("fault timeout on")
        t0 = time.monotonic()
        st, _ = read(timeout=0.5)
        self.assertEqual(st, "err")
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        self.assertEqual(raw_request(port, 5, 1, 3, 32085, 1, timeout=0.3), b"")
        sim.ok("fault timeout off")
        self.assertEqual(read()[0], "ok")

        # exception code on demand
        sim.ok("fault exception 4")
        self.assertEqual(read(), ("exc", 4))
        sim.ok("fault exception 6")
        self.assertEqual(read(), ("exc", 6))
        sim.ok("fault exception off")
        self.assertEqual(read()[0], "ok")

        # wrong transaction id.  pymodbus 3.0's sync client files the answer
        # under the request's tid whatever the frame says, but the decoded
        # response keeps the frame's tid: compare it with the one sent.
        def tids():
            c = tcp_client(port)
            try:
                rr = c.read_holding_registers(32085, 1, slave=1)
                self.assertFalse(rr.isError(), rr)
                return rr.transaction_id, c.transaction.tid
            finally:
                c.close()

        got, sent = tids()
        self.assertEqual(got, sent)
        sim.ok("fault tid")
        got, sent = tids()
        self.assertNotEqual(got, sent)
        rep = raw_request(port, 0x0102, 1, 3, 32085, 1)
        self.assertGreaterEqual(len(rep), 9)
        self.assertNotEqual(struct.unpack(">H", rep[:2])[0], 0x0102)
        sim.ok("fault tid off")
        rep = raw_request(port, 0x0102, 1, 3, 32085, 1)
        self.assertEqual(struct.unpack(">H", rep[:2])[0], 0x0102)

        # garbage bytes instead of an answer
        sim.ok("fault garbage on")
        self.assertEqual(read(timeout=0.5)[0], "err")
        rep = raw_request(port, 7, 1, 3, 32085, 1, timeout=0.3)
        self.assertTrue(rep)
        self.assertNotEqual(rep[2:4], b"\0\0")  # not a Modbus/TCP frame
        sim.ok("fault garbage off")
        self.assertEqual(read()[0], "ok")

        # slow answers: correct but late
        sim.ok("fault slow 400")
        t0 = time.monotonic()
        self.assertEqual(read(timeout=2.0)[0], "ok")
        self.assertGreaterEqual(time.monotonic() - t0, 0.38)
        t0 = time.monotonic()
        self.assertEqual(read(timeout=0.2)[0], "err")  # a client with a short timeout gives up
        sim.ok("fault slow off")
        t0 = time.monotonic()
        self.assertEqual(read()[0], "ok")
        self.assertLess(time.monotonic() - t0, 0.3)

        # dropped connections
        c = tcp_client(port)
        self.addCleanup(c.close)
        self.assertEqual(pm_read(c, 3, 32085, 1, 1)[0], "ok")
        sim.ok("fault drop on")
        self.assertEqual(pm_read(c, 3, 32085, 1, 1)[0], "err")
        self.assertEqual(raw_request(port, 9, 1, 3, 32085, 1), b"")
        sim.ok("fault drop off")
        self.assertEqual(read()[0], "ok")

        # single client: a second concurrent client is reset
        sim.ok("fault single-client on")
        first = tcp_client(port)
        self.addCleanup(first.close)
        self.assertEqual(pm_read(first, 3, 32085, 1, 1)[0], "ok")
        self.assertEqual(read(timeout=0.5)[0], "err")
        self.assertEqual(pm_read(first, 3, 32085, 1, 1)[0], "ok")
        first.close()
        time.sleep(0.1)
        self.assertEqual(read()[0], "ok")  # the line is free again
        sim.ok("fault single-client off")

        # sleep: connection refused, then back on the same port
        sim.ok("sleep on")
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection((LOCAL, port), timeout=1).close()
        self.assertEqual(read(timeout=0.5)[0], "err")
        self.assertTrue(sim.get()["asleep"])
        sim.ok("sleep off")
        self.assertEqual(read()[0], "ok")

        # clear undoes everything at once
        sim.ok("fault exception 3")
        sim.ok("fault slow 100")
        sim.ok("set hz 49.9")
        sim.ok("clear")
        g = sim.get()
        self.assertFalse(any(v for v in g["faults"].values()))
        self.assertEqual(read()[0], "ok")
        self.assertTrue(sim.cmd("fault nosuch on").startswith("error"))
        self.assertTrue(sim.cmd("bogus").startswith("error"))
        self.assertTrue(sim.cmd("set pv.nosuch 1").startswith("error"))

    def test_night_sleep(self):
        # 19:59 at 240x: sunset (20:00) after 0.25 s real time
        sim = Sim(self, ["--profile", "solaredge", "--port", "0", "--start", "19:59",
                         "--speed", "240", "--night-sleep",
                         "--profile", "sdm630", "--port", "0", "--unit-id", "2"])
        port = sim.servers[0]["port"]
        self.assertFalse(sim.get()["asleep"])
        self.assertEqual(pm_read(tcp_client(port), 3, 40085, 1, 1)[0], "ok")
        T.wait_until(lambda: sim.get()["asleep"], timeout=5, what="night sleep")
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection((LOCAL, port), timeout=1).close()
        devs = sim.get()["devices"]
        self.assertTrue(devs[0]["night"] and devs[0]["asleep"])
        # the meter stays awake at night
        self.assertFalse(devs[1]["asleep"])
        m = tcp_client(sim.servers[1]["port"])
        self.addCleanup(m.close)
        self.assertEqual(pm_read(m, 4, 70, 2, 2)[0], "ok")
        sim.ok("fault night-sleep off")
        c = tcp_client(port)
        self.addCleanup(c.close)
        st, r = pm_read(c, 3, 40085, 1, 1)
        self.assertEqual(st, "ok")

    def test_rtu_pty_pymodbus(self):
        tmp = T.tempdir(self)
        path = os.path.join(tmp, "ttySIM")
        sim = Sim(self, ["--profile", "sdm630", "--rtu-pty", path, "--unit-id", "2",
                         "--profile", "sungrow", "--rtu-pty", path, "--unit-id", "5",
                         "--baud", "19200"])
        self.assertTrue(os.path.islink(path))
        self.assertEqual([s["kind"] for s in sim.servers], ["rtu", "rtu"])
        sim.ok("freeze on")
        sim.ok("set hz 49.93")
        c = ModbusSerialClient(path, baudrate=19200, timeout=1, retries=0)
        self.assertTrue(c.connect())
        self.addCleanup(c.close)
        st, r = pm_read(c, 4, 70, 2, 2)
        self.assertEqual(st, "ok", r)
        self.assertAlmostEqual(struct.unpack(">f", struct.pack(">HH", r[0], r[1]))[0], 49.93,
                               delta=1e-4)
        st, r = pm_read(c, 4, 5035, 1, 5)
        self.assertEqual(st, "ok", r)
        self.assertAlmostEqual(r[0] * 0.1, 49.9, delta=0.051)
        # broadcast write (unit 0, raw frame): the meter, which defines holding
        # 64512 (its serial), takes it; nobody answers
        frame = struct.pack(">BBHH", 0, 6, 64512, 0x1234)
        frame += struct.pack("<H", crc16(frame))
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, frame)
            import select
            self.assertEqual(select.select([fd], [], [], 0.3)[0], [], "broadcast answered")
        finally:
            os.close(fd)
        self.assertEqual(pm_read(c, 3, 64512, 1, 2), ("ok", [0x1234]))
        # exception over RTU; unknown unit: silence
        self.assertEqual(pm_read(c, 4, 60000, 1, 2), ("exc", 2))
        self.assertEqual(pm_read(c, 4, 70, 2, 9)[0], "err")
        # faults on the serial line
        sim.ok("fault exception 4")
        self.assertEqual(pm_read(c, 4, 70, 2, 2), ("exc", 4))
        sim.ok("fault exception off")
        sim.ok("fault timeout on")
        self.assertEqual(pm_read(c, 4, 70, 2, 2)[0], "err")
        sim.ok("fault timeout off")
        sim.ok("fault garbage on")
        self.assertEqual(pm_read(c, 4, 70, 2, 2)[0], "err")
        sim.ok("fault garbage off")
        time.sleep(0.2)
        sim.ok("sleep on")
        self.assertEqual(pm_read(c, 4, 70, 2, 2)[0], "err")
        sim.ok("clear")
        time.sleep(0.2)
        c.close()
        self.assertTrue(c.connect())
        self.assertEqual(pm_read(c, 4, 70, 2, 2)[0], "ok")
        sim.proc.stop()
        self.assertFalse(os.path.lexists(path))  # symlink removed on exit

    def _node(self, *args):
        out = subprocess.run(["node", os.path.join(NODE_DIR, "mb_read.mjs")] + [str(a) for a in args],
                             capture_output=True, text=True, timeout=20, cwd=NODE_DIR)
        try:
            return json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError(f"node: {out.stdout!r} {out.stderr!r}")

    def _mbpoll(self, *args):
        out = subprocess.run(["mbpoll", "-1", "-0", "-o", "2"] + [str(a) for a in args],
                             capture_output=True, text=True, timeout=20)
        vals = []
        for line in out.stdout.splitlines():
            line = line.strip()
            if line.startswith("[") and "]:" in line:
                vals.append(int(line.split(":", 1)[1].split()[0]))
        return out.returncode, vals, out.stdout + out.stderr

    @unittest.skipUnless(shutil.which("mbpoll") and shutil.which("node"), "mbpoll/node missing")
    def test_tcp_mbpoll_node(self):
        sim = Sim(self, ["--profile", "huawei", "--port", "0"])
        port = sim.servers[0]["port"]
        sim.ok("freeze on")
        sim.ok("set hz 50.07")
        want = round(50.07 / 0.01)
        rc, vals, out = self._mbpoll("-m", "tcp", "-p", port, "-a", 1, "-t", "4", "-r", 32085,
                                     "-c", 1, LOCAL)
        self.assertEqual(rc, 0, out)
        self.assertEqual(vals, [want], out)
        res = self._node("tcp", LOCAL, port, 1, 3, 32085, 1)
        self.assertEqual(res.get("data"), [want], res)
        # a whole block, as the gateway reads it
        blocks = sim.get()["devices"][0]["blocks"]
        fc, addr, count = blocks[0]
        res = self._node("tcp", LOCAL, port, 1, fc, addr, count)
        self.assertEqual(len(res.get("data", [])), count, res)
        c = tcp_client(port)
        self.addCleanup(c.close)
        self.assertEqual(pm_read(c, fc, addr, count, 1), ("ok", res["data"]))
        # an exception seen by node
        sim.ok("fault exception 4")
        res = self._node("tcp", LOCAL, port, 1, 3, 32085, 1)
        self.assertEqual(res.get("code"), 4, res)

    @unittest.skipUnless(shutil.which("socat") and shutil.which("mbpoll") and shutil.which("node"),
                         "socat/mbpoll/node missing")
    def test_rtu_socat_pair(self):
        tmp = T.tempdir(self)
        a, b = os.path.join(tmp, "simA"), os.path.join(tmp, "cliB")
        socat = T.Proc(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                       name="socat")
        self.addCleanup(socat.stop)
        T.wait_until(lambda: os.path.exists(a) and os.path.exists(b), timeout=5, what="socat ptys")
        sim = Sim(self, ["--profile", "solaredge", "--rtu-dev", a, "--unit-id", "7",
                         "--baud", "9600"])
        sim.ok("freeze on")
        sim.ok("set hz 49.96")
        dev = sim.get()["devices"][0]
        spec = dev["frequency_reg"]
        # mbpoll (libmodbus) over RTU
        rc, vals, out = self._mbpoll("-m", "rtu", "-b", 9600, "-P", "none", "-a", 7, "-t", "4",
                                     "-r", spec["addr"], "-c", 2, b)
        self.assertEqual(rc, 0, out)
        self.assertEqual(len(vals), 2, out)
        sf = struct.unpack(">h", struct.pack(">H", vals[1]))[0]
        self.assertAlmostEqual(vals[0] * 10.0 ** sf, 49.96, delta=10.0 ** sf / 2 + 1e-9)
        # modbus-serial over RTU
        res = self._node("rtu", b, 9600, 7, 3, spec["addr"], 2)
        self.assertEqual(res.get("data"), vals, res)
        # pymodbus over RTU on the same pair
        c = ModbusSerialClient(b, baudrate=9600, timeout=1, retries=0)
        self.assertTrue(c.connect())
        self.addCleanup(c.close)
        self.assertEqual(pm_read(c, 3, spec["addr"], 2, 7), ("ok", vals))
        sim.ok("fault slow 300")
        t0 = time.monotonic()
        self.assertEqual(pm_read(c, 3, spec["addr"], 2, 7), ("ok", vals))
        self.assertGreaterEqual(time.monotonic() - t0, 0.28)


if __name__ == "__main__":
    unittest.main()
