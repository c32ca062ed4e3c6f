"""FCR (frequency containment with the home battery) end to end.

egwd polls egw-sim's Huawei SUN2000+LUNA2000 (huawei_hybrid: holding
registers 47000-47759 writable there) as the battery and an SDM630 (frequency
as a float) as the frequency source; the test drives the simulated frequency
through egw-sim's control port and reads the battery's control registers
back over Modbus TCP itself (a raw client here, not egwd's), so what it checks
is what reached the device:

- activation follows the frequency (FCR-N, FCR-D up, FCR-D down), and the
  setpoint egwd reports is written to 47247/47249 and 47100;
- each safety case hands the battery back (47100 = 0): stale frequency, a
  failed battery device, SoC out of the window, FCR turned off, egwd stopped;
- settings refusals: a 10-mHz frequency source, a battery whose profile has
  no control table, an unknown device; FCR off writes nothing;
- the 1 Hz log is exported as CSV by GET /api/fcr/log.

Run with /usr/bin/python3; EGW_BUILD names the build directory.
"""
import csv
import io
import json
import os
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import egwtest as T  # noqa: E402

sys.path.insert(0, os.path.join(T.REPO, "tools"))
import egw_batch  # noqa: E402
import jwt as pyjwt  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

LOCAL = "127.0.0.1"
CMD, CHG, DIS, PERIOD, MODE = 47100, 47247, 47249, 47083, 47246


class Ctl:
    def __init__(self, tc, port):
        self.sock = socket.create_connection((LOCAL, port), timeout=5)
        tc.addCleanup(self.sock.close)
        self.f = self.sock.makefile("rwb")

    def cmd(self, line):
        self.f.write(line.encode() + b"\n")
        self.f.flush()
        ans = self.f.readline().decode().strip()
        if ans.startswith("error"):
            raise AssertionError(f"egw-sim: {line!r} -> {ans}")
        return ans


class Mb:
    """A minimal Modbus TCP client (function 3) to read what egwd wrote."""

    def __init__(self, tc, port, unit):
        self.port, self.unit, self.tid = port, unit, 0
        self.sock = None
        tc.addCleanup(self.close)

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def _recv(self, n):
        b = b""
        while len(b) < n:
            c = self.sock.recv(n - len(b))
            if not c:
                raise OSError("closed")
            b += c
        return b

    def read(self, addr, count):
        if not self.sock:
            self.sock = socket.create_connection((LOCAL, self.port), timeout=5)
        self.tid = (self.tid + 1) & 0xFFFF
        self.sock.sendall(struct.pack(">HHHBBHH", self.tid, 0, 6, self.unit, 3, addr, count))
        hdr = self._recv(7)
        _, _, ln, _ = struct.unpack(">HHHB", hdr)
        body = self._recv(ln - 1)
        if body[0] & 0x80:
            raise OSError(f"exception {body[1]}")
        return list(struct.unpack(">%dH" % (body[1] // 2), body[2:2 + body[1]]))

    def write(self, addr, values):
        if not self.sock:
            self.sock = socket.create_connection((LOCAL, self.port), timeout=5)
        self.tid = (self.tid + 1) & 0xFFFF
        n = len(values)
        pdu = struct.pack(">BHHB", 16, addr, n, 2 * n) + struct.pack(">%dH" % n, *values)
        self.sock.sendall(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, self.unit) + pdu)
        hdr = self._recv(7)
        body = self._recv(struct.unpack(">HHHB", hdr)[2] - 1)
        if body[0] & 0x80:
            raise OSError(f"exception {body[1]}")

    def u32(self, addr):
        w = self.read(addr, 2)
        return w[0] << 16 | w[1]


def settings(bsim, msim, **fcr):
    f = {
        "battery_device": "bat",
        "frequency_device": "meter",
        "products": [{"product": "fcr-n", "capacity_w": 2000},
                     {"product": "fcr-d-up", "capacity_w": 3000},
                     {"product": "fcr-d-down", "capacity_w": 3000}],
        "soc_min": 10, "soc_max": 90,
        "enabled": True,
    }
    f.update(fcr)
    return {
        "devices": [bsim.device_settings(0, id="bat"), msim.device_settings(0, id="meter")],
        "frequency": {"device": 1},
        "fcr": f,
    }


def expected_setpoint(hz):
    n = max(-1, min(1, (50.0 - hz) / 0.1)) * 2000
    up = max(0, min(1, (49.9 - hz) / 0.4)) * 3000
    down = max(0, min(1, (hz - 50.1) / 0.4)) * 3000
    return round(-(n + up) + down)


class FcrTest(unittest.TestCase):
    def start(self, **fcr):
        # two simulators, so that a fault on one leaves the other answering
        self.bsim = T.EgwSim(self, [("huawei_hybrid", 1)])
        self.msim = T.EgwSim(self, [("sdm630", 2)])
        self.bctl = Ctl(self, self.bsim.control_port)
        self.mctl = Ctl(self, self.msim.control_port)
        self.bctl.cmd("set soc 0.5")
        self.mctl.cmd("set hz 50.0")
        self.mb = Mb(self, self.bsim.servers[0]["port"], self.bsim.servers[0]["unit"])
        # the battery's own limits (47075/47077 maximum charging/discharging
        # power, U32 W): egw-sim's generic map holds 0 there until written
        self.mb.write(47075, [0, 5000, 0, 5000])
        self.sim_writes0 = self.sim_writes()  # that write, not egwd's
        self.egwd = T.Egwd(self, set={"harvest.poll_interval_ms": 200,
                                      "harvest.batch_interval_ms": 1000})
        # through the API, as a user turns it on: saved, and so checked alone
        st, body = T.http_json(self.egwd.port, "POST", "/api/settings",
                               settings(self.bsim, self.msim, **fcr), headers=self.egwd.auth())
        self.assertEqual(st, 200, body)
        return self.egwd

    def fcr(self):
        return self.egwd.state()["fcr"]

    def sim_writes(self):
        """Write requests the simulated battery acknowledged."""
        return json.loads(self.bctl.cmd("get"))["devices"][0]["writes"]

    def wait_battery(self, setpoint, timeout=15):
        """Waits until the battery's registers hold the setpoint (W, charging +)."""
        def ok():
            cmd = self.mb.read(CMD, 1)[0]
            chg, dis = self.mb.u32(CHG), self.mb.u32(DIS)
            if setpoint > 0:
                return cmd == 1 and abs(chg - setpoint) <= 1 and dis == 0
            if setpoint < 0:
                return cmd == 2 and abs(dis + setpoint) <= 1 and chg == 0
            return cmd == 0
        return T.wait_until(ok, timeout=timeout, what=f"battery setpoint {setpoint} W")

    def wait_released(self, timeout=15):
        T.wait_until(lambda: self.mb.read(CMD, 1)[0] == 0 and not self.fcr()["in_control"],
                     timeout=timeout, what="battery back in its own mode")

    def set_hz(self, hz):
        self.mctl.cmd(f"set hz {hz}")

    def test_activation_follows_frequency(self):
        self.start()
        T.wait_until(lambda: self.fcr()["state"] == "active", timeout=15, what="fcr active")
        self.assertEqual(self.mb.read(MODE, 1)[0], 0, "duration mode")
        self.assertEqual(self.mb.read(PERIOD, 1)[0], 2, "2-minute forced period")
        for hz in (49.95, 50.05, 49.7, 49.4, 50.3, 50.6, 50.0):
            self.set_hz(hz)
            sp = expected_setpoint(hz)
            if sp == 0:
                continue  # NEM may be at work in the normal band
            self.wait_battery(sp)
            st = T.wait_until(lambda: (lambda s: s if s["setpoint_W"] == sp else None)(self.fcr()),
                              what=f"state setpoint {sp}")
            self.assertAlmostEqual(st["f_Hz"], hz, places=3)
            prods = st["products"]
            self.assertEqual(set(prods), {"fcr-n", "fcr-d-up", "fcr-d-down"})
        st = self.fcr()
        self.assertEqual(T.float_noise(T.http(self.egwd.port, "GET", "/api/state")[2]), [])
        self.assertGreater(st["setpoints"], 3)
        self.assertEqual(st["write_errors"], 0)
        self.assertIsNotNone(st["delay_ms"]["p99"])
        m = T.http(self.egwd.port, "GET", "/metrics")[2].decode()
        self.assertIn("egw_fcr_writes_total", m)
        self.assertIn("egw_fcr_delay_seconds_bucket", m)
        self.assertIn('egw_fcr_delay_quantile_seconds{quantile="0.99"}', m)

    def test_stale_frequency_releases(self):
        self.start()
        self.set_hz(49.7)
        self.wait_battery(expected_setpoint(49.7))
        # the frequency meter stops answering: no sample for 1 s
        self.mctl.cmd("fault timeout on")
        self.wait_released()
        st = self.fcr()
        self.assertEqual(st["state"], "released")
        self.assertIn("frequency", st["reason"])
        # it answers again: FCR takes the battery back
        self.mctl.cmd("fault timeout off")
        self.wait_battery(expected_setpoint(49.7))

    def test_soc_exhausted_releases(self):
        self.start()
        self.set_hz(49.7)
        self.wait_battery(expected_setpoint(49.7))
        self.bctl.cmd("set soc 0.05")
        self.wait_released()
        self.assertEqual(self.fcr()["state"], "released")
        self.assertIn("state of charge", self.fcr()["reason"])
        self.bctl.cmd("set soc 0.5")
        self.wait_battery(expected_setpoint(49.7))

    def test_battery_device_failure_releases(self):
        self.start()
        self.set_hz(50.3)
        self.wait_battery(expected_setpoint(50.3))
        # the battery answers every request with exception 4 (device failure):
        # egwd stops controlling it; the release cannot reach it, so the
        # inverter's own forced period (47083, 2 min) is what ends the force
        self.assertEqual(self.mb.read(PERIOD, 1)[0], 2)
        self.bctl.cmd("fault exception 4")
        st = T.wait_until(lambda: (lambda s: s if s["state"] == "released" else None)(self.fcr()),
                          timeout=20, what="fcr released on a failed battery")
        self.assertIn("battery", st["reason"])
        self.bctl.cmd("fault exception off")
        # healthy again: the start-over writes the release, then takes it back
        self.wait_battery(expected_setpoint(50.3), timeout=30)

    def test_turn_off_and_stop_release(self):
        egwd = self.start()
        self.set_hz(49.7)
        self.wait_battery(expected_setpoint(49.7))
        st, body = T.http_json(egwd.port, "POST", "/api/settings", {"fcr": {"enabled": False}},
                                  headers=egwd.auth())
        self.assertEqual(st, 200, body)
        self.wait_released()
        self.assertEqual(self.fcr()["state"], "off")
        st, body = T.http_json(egwd.port, "POST", "/api/settings", {"fcr": {"enabled": True}},
                                  headers=egwd.auth())
        self.assertEqual(st, 200, body)
        self.wait_battery(expected_setpoint(49.7))
        self.assertEqual(egwd.stop(), 0, egwd.output()[-3000:])
        self.assertEqual(self.mb.read(CMD, 1)[0], 0, "egwd stopped: released")
        self.assertIn("back in its own mode", egwd.output())

    def test_crash_then_start_releases(self):
        """A crash leaves the battery forced (until the inverter's own period
        runs out, 47083 = 2 min); the next start hands it back first."""
        egwd = self.start()
        self.set_hz(49.7)
        self.wait_battery(expected_setpoint(49.7))
        self.assertEqual(self.mb.read(PERIOD, 1)[0], 2)
        egwd.kill9()
        self.assertEqual(self.mb.read(CMD, 1)[0], 2, "still forced after the crash")
        self.mctl.cmd("fault timeout on")  # no frequency: FCR cannot take it again
        egwd2 = T.Egwd(self, state_dir=egwd.state_dir)
        T.wait_until(lambda: self.mb.read(CMD, 1)[0] == 0, timeout=15,
                     what="released at start-up")
        egwd2.wait_output("back in its own mode")
        self.assertEqual(egwd2.state()["fcr"]["in_control"], False)

    def test_other_battery_named_releases_the_first(self):
        egwd = self.start()
        self.set_hz(49.7)
        self.wait_battery(expected_setpoint(49.7))
        ssim = T.EgwSim(self, [("sungrow_sf", 1)])
        sctl = Ctl(self, ssim.control_port)
        sctl.cmd("set soc 0.5")
        sctl.cmd("set pv.rated_power_W 8000")
        smb = Mb(self, ssim.servers[0]["port"], ssim.servers[0]["unit"])
        devs = settings(self.bsim, self.msim)["devices"] + [ssim.device_settings(0, id="sg")]
        st, body = T.http_json(egwd.port, "POST", "/api/settings",
                               {"devices": devs, "fcr": {"battery_device": "sg"}},
                               headers=egwd.auth())
        self.assertEqual(st, 200, body)
        T.wait_until(lambda: smb.read(13049, 3) == [2, 0xBB, -expected_setpoint(49.7)],
                     timeout=15, what="the Sungrow under control")
        self.assertEqual(self.mb.read(CMD, 1)[0], 0, "the Huawei handed back")

    def test_batches_carry_activation_records(self):
        egwd = self.start()
        self.set_hz(49.7)
        self.wait_battery(expected_setpoint(49.7))
        self.set_hz(50.3)
        self.wait_battery(expected_setpoint(50.3))
        sealed = egwd.state()["harvest"]["sealed"]
        T.wait_until(lambda: egwd.state()["harvest"]["sealed"] >= sealed + 2, timeout=20,
                     what="two more batches")
        info = egwd.get("/api/crypto")
        key = serialization.load_pem_public_key(info["publicKey_pem"].encode())
        self.assertEqual(egwd.stop(), 0, egwd.output()[-3000:])
        rows = [t for _, t in
                egw_batch.stored_tokens(os.path.join(egwd.state_dir, "store.db"))]
        recs = []
        for tok in rows:
            p = pyjwt.decode(tok, key, algorithms=["ES256"], options={"verify_iat": False})
            dec = egw_batch.decode(p)
            if dec.get("fcr"):
                self.assertEqual(dec["fcr"]["battery"], "bat")
                self.assertEqual(dec["fcr"]["interval_ms"], 100)
                recs += dec["fcr"]["records"]
        self.assertGreater(len(recs), 5)
        ts = [r[0] for r in recs]
        self.assertEqual(ts, sorted(ts))
        by_hz = {}
        for t, hz, sp, pw in recs:
            if sp is not None:
                by_hz.setdefault(round(hz, 3), set()).add(sp)
        self.assertIn(expected_setpoint(49.7), by_hz.get(49.7, set()), by_hz)
        self.assertIn(expected_setpoint(50.3), by_hz.get(50.3, set()), by_hz)
        # 10 Hz: consecutive records mostly one interval apart
        steps = [b - a for a, b in zip(ts, ts[1:])]
        self.assertGreater(sum(1 for s in steps if s == 100), len(steps) * 0.6, steps)

    def log_csv(self, fmt=None, span_ms=60000):
        now = int(time.time() * 1000)
        q = f"/api/fcr/log?from={now - span_ms}&to={now}" + (f"&format={fmt}" if fmt else "")
        st, hdr, body = T.http(self.egwd.port, "GET", q)
        self.assertEqual(st, 200, body)
        self.assertTrue(hdr["content-type"].startswith("text/csv"))
        return list(csv.DictReader(io.StringIO(body.decode()))), body

    def test_csv_log(self):
        egwd = self.start()
        self.set_hz(49.7)
        self.wait_battery(expected_setpoint(49.7))
        # egw's own columns (format=egw)
        def egw_rows():
            rows, body = self.log_csv("egw")
            return (rows, body) if sum(r["f_Hz"] == "49.700" for r in rows) >= 2 else None
        rows, body = T.wait_until(egw_rows, timeout=20, what="two 1 Hz lines at 49.7 Hz")
        self.assertEqual(list(rows[0].keys()),
                         ["time_utc", "ts_ms", "f_Hz", "setpoint_W", "measured_W", "state",
                          "fcr_n_W", "fcr_d_up_W", "fcr_d_down_W", "writes", "write_errors",
                          "cap_fcr_n_W", "cap_fcr_d_up_W", "cap_fcr_d_down_W"])
        active = [r for r in rows if r["state"] == "active" and r["f_Hz"] == "49.700"]
        self.assertTrue(active, body)
        self.assertEqual(int(active[-1]["setpoint_W"]), expected_setpoint(49.7))
        self.assertEqual(active[-1]["cap_fcr_d_up_W"], "3000")
        # the TSO export (the default): the columns of the requirements'
        # section 6, in MW and Hz, the battery discharging positive
        def tso_rows():
            rows, body = self.log_csv()
            pw = [float(x["Instantaneous active power [MW]"]) for x in rows
                  if x["Frequency [Hz]"] == "49.700" and x["Instantaneous active power [MW]"]]
            return (rows, body) if any(abs(p - 0.0035) < 0.0001 for p in pw) else None
        rows, body = T.wait_until(tso_rows, timeout=20, what="a TSO row at 3500 W discharging")
        self.assertEqual(list(rows[0].keys()), [
            "Timestamp UTC", "Frequency [Hz]", "Instantaneous active power [MW]",
            "Power baseline [MW]", "Activated FCR-N [MW]", "Activated FCR-D upwards [MW]",
            "Activated FCR-D downwards [MW]", "Maintained FCR-N capacity [MW]",
            "Maintained FCR-D upwards capacity [MW]", "Maintained FCR-D downwards capacity [MW]",
            "Regulating strength FCR-N [MW/Hz]", "Regulating strength FCR-D upwards [MW/Hz]",
            "Regulating strength FCR-D downwards [MW/Hz]", "Status FCR-N",
            "Status FCR-D upwards", "Status FCR-D downwards"])
        on = [r for r in rows if r["Frequency [Hz]"] == "49.700" and r["Status FCR-N"] == "on"]
        self.assertTrue(on, body)
        r = on[-1]
        self.assertRegex(r["Timestamp UTC"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(r["Activated FCR-N [MW]"], "0.002000")
        self.assertEqual(r["Activated FCR-D upwards [MW]"], "0.001500")
        self.assertEqual(r["Activated FCR-D downwards [MW]"], "0.000000")
        self.assertEqual(r["Maintained FCR-N capacity [MW]"], "0.002000")
        self.assertEqual(r["Maintained FCR-D upwards capacity [MW]"], "0.003000")
        self.assertEqual(r["Regulating strength FCR-N [MW/Hz]"], "0.020000")
        self.assertEqual(r["Regulating strength FCR-D downwards [MW/Hz]"], "0.007500")
        self.assertEqual((r["Status FCR-D upwards"], r["Status FCR-D downwards"]), ("on", "on"))
        # the baseline is the battery's power less the activation
        for x in on:
            if x["Instantaneous active power [MW]"]:
                self.assertAlmostEqual(float(x["Power baseline [MW]"]),
                                       float(x["Instantaneous active power [MW]"]) - 0.0035,
                                       places=6)
        st, _, _ = T.http(egwd.port, "GET", "/api/fcr/log?format=xml")
        self.assertEqual(st, 400)
        st, _, _ = T.http(egwd.port, "GET", "/api/fcr/log?from=0&to=999999999999")
        self.assertEqual(st, 400)
        st, _, _ = T.http(egwd.port, "GET", "/api/fcr/log?from=yesterday")
        self.assertEqual(st, 400)

    def test_every_write_counted(self):
        """The count egwd shows is the number of writes egw-sim acknowledged;
        the operational log carries them per second; the journal has the
        take and release at info level and no line per write."""
        egwd = self.start()
        for hz in (49.7, 50.3, 49.95, 49.4):
            self.set_hz(hz)
            self.wait_battery(expected_setpoint(hz))
        def log_sum():
            rows, _ = self.log_csv("egw", span_ms=300000)
            return sum(int(r["writes"] or 0) for r in rows)
        # the log's lines count the writes up to their second: at a quiet
        # moment (between keep-alives) their sum is the total
        T.wait_until(lambda: log_sum() == self.fcr()["writes"], timeout=30,
                     what="the log's per-second writes add up to the count")
        st, body = T.http_json(egwd.port, "POST", "/api/settings", {"fcr": {"enabled": False}},
                               headers=egwd.auth())
        self.assertEqual(st, 200, body)
        self.wait_released()
        st = self.fcr()
        self.assertEqual(st["write_errors"], 0)
        self.assertGreater(st["writes"], 10)
        self.assertEqual(st["writes"], self.sim_writes() - self.sim_writes0)
        m = T.http(egwd.port, "GET", "/metrics")[2].decode()
        self.assertIn(f"egw_fcr_writes_total {st['writes']}\n", m)
        self.assertIn("egw_fcr_write_errors_total 0\n", m)
        out = egwd.output()
        self.assertIn("under FCR control", out)
        self.assertIn("back in its own mode", out)
        self.assertNotIn(" write bat ", out)  # per-write lines are debug only


class FcrSungrowTest(unittest.TestCase):
    """The Sungrow SH table: EMS mode 13049, command and power 13050-13051."""

    def test_sungrow_writes_and_release(self):
        bsim = T.EgwSim(self, [("sungrow_sf", 1)])
        msim = T.EgwSim(self, [("sdm630", 2)])
        bctl, mctl = Ctl(self, bsim.control_port), Ctl(self, msim.control_port)
        bctl.cmd("set soc 0.5")
        bctl.cmd("set pv.rated_power_W 8000")  # the inverter's nominal power bounds both ways
        mctl.cmd("set hz 49.7")
        mb = Mb(self, bsim.servers[0]["port"], bsim.servers[0]["unit"])
        egwd = T.Egwd(self, set={"harvest.poll_interval_ms": 200})
        st, body = T.http_json(egwd.port, "POST", "/api/settings", settings(bsim, msim),
                               headers=egwd.auth())
        self.assertEqual(st, 200, body)
        want = expected_setpoint(49.7)
        T.wait_until(lambda: mb.read(13049, 3) == [2, 0xBB, -want], timeout=15,
                     what="forced mode, discharge %d W" % -want)
        mctl.cmd("set hz 50.3")
        T.wait_until(lambda: mb.read(13049, 3) == [2, 0xAA, expected_setpoint(50.3)],
                     timeout=15, what="forced mode, charge")
        self.assertEqual(egwd.stop(), 0, egwd.output()[-3000:])
        self.assertEqual(mb.read(13049, 3), [0, 0xCC, 0], "released on stop")


def sim_serves(name):
    import subprocess
    out = subprocess.run([T.binary("egw-sim"), "--list-profiles"], capture_output=True,
                         text=True, timeout=30).stdout
    return name in out.split()


class FcrSunSpecTest(unittest.TestCase):
    """SunSpec model 124 (found by the model walk): [OutWRte, InWRte] = [-r, r]
    then StorCtl_Mod = 3; released with StorCtl_Mod = 0."""

    @unittest.skipUnless(sim_serves("sunspec_storage"), "egw-sim has no SunSpec storage device")
    def test_sunspec_124(self):
        bsim = T.EgwSim(self, [("sunspec_storage", 1)])
        msim = T.EgwSim(self, [("sdm630", 2)])
        bctl, mctl = Ctl(self, bsim.control_port), Ctl(self, msim.control_port)
        bctl.cmd("set soc 0.5")
        mctl.cmd("set hz 49.7")
        mb = Mb(self, bsim.servers[0]["port"], bsim.servers[0]["unit"])
        egwd = T.Egwd(self, set={"harvest.poll_interval_ms": 200})
        st, body = T.http_json(egwd.port, "POST", "/api/settings", settings(bsim, msim),
                               headers=egwd.auth())
        self.assertEqual(st, 200, body)
        # find model 124 the way egwd does: walk from SunS at 40000
        addr = 40002
        while True:
            mid, ln = mb.read(addr, 2)
            self.assertNotEqual(mid, 0xFFFF, "no model 124")
            if mid == 124:
                break
            addr += 2 + ln
        wmax = mb.read(addr + 2, 1)[0] * 10 ** struct.unpack(">h", struct.pack(">H", mb.read(addr + 18, 1)[0]))[0]
        rsf = struct.unpack(">h", struct.pack(">H", mb.read(addr + 25, 1)[0]))[0]
        want = expected_setpoint(49.7)  # -3500 W
        r = round(abs(want) / wmax * 100 / 10 ** rsf)
        def window():
            w = mb.read(addr + 12, 2)
            out, inn = [struct.unpack(">h", struct.pack(">H", x))[0] for x in w]
            return mb.read(addr + 5, 1)[0] == 3 and out == r and inn == -r
        T.wait_until(window, timeout=15, what="model 124 window at %d W" % want)
        self.assertEqual(mb.read(addr + 15, 1)[0], 10, "revert timeout")
        self.assertEqual(egwd.state()["fcr"]["state"], "active")
        self.assertEqual(egwd.stop(), 0, egwd.output()[-3000:])
        self.assertEqual(mb.read(addr + 5, 1)[0], 0, "released on stop")


class FcrInverterTimeoutTest(unittest.TestCase):
    """When egwd cannot write the release (the battery fails every request)
    or is killed, the inverter's own remote-control timeout hands the
    battery back: SunSpec model 124's InOutWRte_RvrtTms, which egwd sets to
    10 s, in egw-sim (which reverts the rates that long after the last
    control write)."""

    @unittest.skipUnless(sim_serves("sunspec_storage"), "egw-sim has no SunSpec storage device")
    def test_failed_device_and_kill9_end_in_own_mode(self):
        bsim = T.EgwSim(self, [("sunspec_storage", 1)])
        msim = T.EgwSim(self, [("sdm630", 2)])
        bctl, mctl = Ctl(self, bsim.control_port), Ctl(self, msim.control_port)
        bctl.cmd("set soc 0.5")
        mctl.cmd("set hz 49.7")
        egwd = T.Egwd(self, set={"harvest.poll_interval_ms": 200})
        st, body = T.http_json(egwd.port, "POST", "/api/settings", settings(bsim, msim),
                               headers=egwd.auth())
        self.assertEqual(st, 200, body)

        def battery():
            return json.loads(bctl.cmd("get"))["devices"][0]["battery_control"]

        def remote():
            return battery()["remote"]
        T.wait_until(lambda: remote() and egwd.state()["fcr"]["state"] == "active",
                     timeout=20, what="battery under FCR control")
        # a failed device: every request answered with exception 4
        bctl.cmd("fault exception 4")
        T.wait_until(lambda: egwd.state()["fcr"]["state"] == "released", timeout=20,
                     what="FCR released on a failed battery")
        T.wait_until(lambda: not remote(), timeout=30,
                     what="the battery back in its own mode by its 10 s timeout")
        bctl.cmd("fault exception off")
        T.wait_until(remote, timeout=30, what="taken again once the battery answers")
        # kill -9: nobody releases; the inverter's timeout does
        egwd.kill9()
        T.wait_until(lambda: not remote(), timeout=30,
                     what="the battery back in its own mode after egwd was killed")
        self.assertGreaterEqual(battery()["lapses"], 2)


class FcrSettingsTest(unittest.TestCase):
    def test_refusals_and_off(self):
        sim = T.EgwSim(self, [("huawei_hybrid", 1), ("sdm630", 2), ("sungrow", 3)])
        mb = Mb(self, sim.servers[0]["port"], sim.servers[0]["unit"])
        before = mb.read(47000, 120) + mb.read(47240, 20)
        devices = [sim.device_settings(0, id="bat"), sim.device_settings(1, id="meter"),
                   sim.device_settings(2, id="sg")]
        # FCR off (the default) with every device: nothing is written.  The
        # devices are saved (API), not given with --set: what FCR names must
        # be in the saved settings, which a restart reads alone.
        egwd = T.Egwd(self, set={"harvest.poll_interval_ms": 200})
        st, body = T.http_json(egwd.port, "POST", "/api/settings",
                               {"devices": devices, "frequency": {"device": 1}},
                               headers=egwd.auth())
        self.assertEqual(st, 200, body)
        T.wait_until(lambda: all(d["state"] == "polling" for d in egwd.state()["devices"]),
                     timeout=15, what="devices polling")
        self.assertEqual(egwd.state()["fcr"]["state"], "off")
        time.sleep(1)
        self.assertEqual(mb.read(47000, 120) + mb.read(47240, 20), before)

        def refused(patch, key, words):
            st, body = T.http_json(egwd.port, "POST", "/api/settings", patch,
                                      headers=egwd.auth())
            self.assertEqual(st, 400, body)
            self.assertEqual(body.get("field"), key, body)
            for w in words:
                self.assertIn(w, body["error"])

        prods = [{"product": "fcr-d-up", "capacity_w": 3000}]
        # the inverter's 10-mHz frequency register
        refused({"frequency.device": 0, "fcr": {"enabled": True, "battery_device": "bat",
                                               "frequency_device": "bat", "products": prods}},
                "fcr.frequency_device", ["bat", "10 mHz", "5 mHz"])
        # a profile without battery control registers
        refused({"fcr": {"enabled": True, "battery_device": "sg", "frequency_device": "meter",
                         "products": prods}},
                "fcr.battery_device", ["sg", "cannot be controlled"])
        refused({"fcr": {"battery_device": "nope"}}, "fcr.battery_device", ["nope"])
        refused({"fcr": {"products": [{"product": "fcr-x", "capacity_w": 1}]}},
                "fcr.products[0]", ["fcr-n"])
        refused({"fcr": {"enabled": True}}, "fcr.products", ["no product"])
        refused({"fcr": {"soc_min": 80, "soc_max": 20}}, "fcr.soc_min", ["below"])
        # configured but not enabled: still nothing is written
        st, body = T.http_json(egwd.port, "POST", "/api/settings",
                               {"fcr": {"enabled": False, "battery_device": "bat",
                                        "frequency_device": "meter", "products": prods}},
                               headers=egwd.auth())
        self.assertEqual(st, 200, body)
        time.sleep(1)
        self.assertEqual(egwd.state()["fcr"]["state"], "off")
        self.assertEqual(egwd.state()["fcr"]["writes"], 0)
        self.assertEqual(mb.read(47000, 120) + mb.read(47240, 20), before)
        # a device list that would orphan a saved FCR battery is refused too
        st, body = T.http_json(egwd.port, "POST", "/api/settings", {"fcr": {"enabled": True}},
                               headers=egwd.auth())
        self.assertEqual(st, 200, body)
        refused({"devices": devices[1:], "frequency.device": 0}, "fcr.battery_device", ["bat"])
        # what was saved starts again
        self.assertEqual(egwd.stop(), 0, egwd.output()[-3000:])
        egwd2 = T.Egwd(self, state_dir=egwd.state_dir)
        T.wait_until(lambda: egwd2.state()["fcr"]["state"] in ("active", "waiting"),
                     timeout=15, what="fcr running after restart (%s)" % egwd2.output()[-1500:])


if __name__ == "__main__":
    unittest.main()
