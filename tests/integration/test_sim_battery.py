"""egw-sim's controllable batteries, driven by pymodbus (not egwd) through the
vendors' control registers: the power follows a setpoint after the
simulated delay and within the ramp, the power and state-of-charge limits
hold, the state of charge integrates the power, and the remote-control
timeout hands the battery back to its own mode.  Also the grid-frequency
sequences of the control port (hold, ramp, sine) at better than 10 mHz.

Timing is judged on the simulator's own record (`trace read`: sim time of
each command and of each 20 Hz sample), never on when this script happened
to read, so a loaded machine does not change the verdict.

Run: EGW_BUILD=/path/to/build /usr/bin/python3 -m unittest tests/integration/test_sim_battery.py
"""
import json
import logging
import math
import os
import socket
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import egwtest as T  # noqa: E402

from pymodbus.client import ModbusTcpClient  # noqa: E402

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

LOCAL = "127.0.0.1"
DELAY_S = 0.2          # egw-sim's default reaction time
RAMP_W_S = 5000.0      # set below for every device
CAP_WH = 10000.0       # default battery


class Sim:
    """egw-sim with the three controllable batteries and an SDM630."""

    PROFILES = ("sungrow_sf", "huawei_hybrid", "sunspec_storage", "sdm630")

    def __init__(self, tc, extra=()):
        self.ctl_port = T.free_port()
        argv = [T.binary("egw-sim")]
        for p in self.PROFILES:
            argv += ["--profile", p, "--port", "0"]
        argv += list(extra) + ["--control-port", str(self.ctl_port)]
        self.proc = T.Proc(argv, name="egw-sim")
        tc.addCleanup(self._stop, tc)
        out = self.proc.wait_output("egw-sim: ready", timeout=15)
        self.port = {}
        for line in out.splitlines():
            p = line.split()
            if p[:2] == ["egw-sim:", "listening"] and p[3] == "tcp":
                self.port[p[2]] = int(p[4].rsplit(":", 1)[1])
        self.sock = socket.create_connection((LOCAL, self.ctl_port), timeout=10)
        tc.addCleanup(self.sock.close)
        self.f = self.sock.makefile("rwb")
        self.ok(f"battery ramp_w_s {RAMP_W_S:g}")
        self.clients = {}

    def _stop(self, tc):
        for c in self.clients.values():
            c.close()
        rc = self.proc.stop()
        out = self.proc.output()
        tc.assertEqual(rc, 0, out[-3000:])
        for bad in ("runtime error", "Sanitizer", "ERROR: "):
            tc.assertNotIn(bad, out)

    def cmd(self, line):
        self.f.write(line.encode() + b"\n")
        self.f.flush()
        return self.f.readline().decode().strip()

    def ok(self, line):
        ans = self.cmd(line)
        if not ans.startswith("ok"):
            raise AssertionError(f"{line!r} -> {ans!r}")
        return ans

    def dev(self, idx):
        return json.loads(self.cmd("get"))["devices"][idx]

    def bc(self, idx):
        return self.dev(idx)["battery_control"]

    def client(self, profile):
        if profile not in self.clients:
            c = ModbusTcpClient(LOCAL, port=self.port[profile], timeout=5)
            assert c.connect()
            self.clients[profile] = c
        return self.clients[profile]

    def write(self, profile, addr, values):
        c = self.client(profile)
        if isinstance(values, int):
            rr = c.write_register(addr, values, slave=1)
        else:
            rr = c.write_registers(addr, list(values), slave=1)
        assert not rr.isError(), rr

    def hold(self, profile, addr, n):
        rr = self.client(profile).read_holding_registers(addr, n, slave=1)
        assert not rr.isError(), rr
        return rr.registers

    def inp(self, profile, addr, n):
        rr = self.client(profile).read_input_registers(addr, n, slave=1)
        assert not rr.isError(), rr
        return rr.registers

    def trace(self):
        return json.loads(self.cmd("trace read"))


def s32(hi, lo):
    return struct.unpack(">i", struct.pack(">HH", hi, lo))[0]


def s16(w):
    return struct.unpack(">h", struct.pack(">H", w))[0]


class Collector:
    """Accumulates `trace read` answers (the sim hands out each row once)."""

    def __init__(self, sim):
        self.sim = sim
        self.samples = []
        self.commands = []

    def poll(self):
        tr = self.sim.trace()
        self.samples += tr["samples"]
        self.commands += tr["commands"]
        return self

    def until(self, pred, timeout=20.0, what="trace condition"):
        T.wait_until(lambda: pred(self.poll()), timeout=timeout, interval=0.1, what=what)
        return self


def check_follow(tc, col, setpoint, t_cmd):
    """From t_cmd on: the target reaches `setpoint` no earlier than the delay,
    the power never moves faster than the ramp, and ends at the setpoint."""
    after = [r for r in col.samples if r[0] >= t_cmd - 1e-9]
    first = next(r for r in after if abs(r[3] - setpoint) < 0.5)
    tc.assertGreaterEqual(first[0], t_cmd + DELAY_S - 1e-6, "the setpoint acted before the delay")
    # a loaded machine may hold a tick back; only "far too late" is a failure
    tc.assertLess(first[0], t_cmd + DELAY_S + 2.0, "the setpoint took far longer than the delay")
    for a, b in zip(after, after[1:]):
        dt = b[0] - a[0]
        if dt > 0:
            # sample times are printed to 1 ms
            tc.assertLessEqual(abs(b[4] - a[4]), RAMP_W_S * (dt + 0.002) + 0.2,
                               f"ramp exceeded between {a} and {b}")
    tc.assertAlmostEqual(after[-1][4], setpoint, delta=0.5)


def lapse_time(col, t_cmd):
    """Sim time of the first sample out of remote control after the command
    at t_cmd had taken effect."""
    i = next(i for i, r in enumerate(col.samples) if r[0] >= t_cmd and r[2])
    return next(r[0] for r in col.samples[i:] if not r[2])


def soc_check(tc, samples):
    """SoC integrates the power: trapezoid over the samples, 1 % tolerance."""
    e = 0.0
    for a, b in zip(samples, samples[1:]):
        e += (a[4] + b[4]) / 2 * (b[0] - a[0]) / 3600.0
    d_soc = samples[-1][5] - samples[0][5]
    tc.assertGreater(abs(e), 2.0, "too little energy to judge")
    tc.assertAlmostEqual(d_soc * CAP_WH, e, delta=abs(e) * 0.02 + 0.2)


class TestSimBattery(unittest.TestCase):
    def test_sungrow_forced_mode(self):
        """13050 (doc) = 2 forced mode, [0xBB, 3000] at 13051-13052: discharge
        3 kW after the delay, within the ramp; input 13022 / 13000 report it;
        SoC integrates; 13050 = 0 hands back to self-consumption."""
        sim = Sim(self)
        sim.ok("trace on 0")
        col = Collector(sim)
        sim.write("sungrow_sf", 13049, [2, 0xBB, 3000])
        col.until(lambda c: c.commands and c.samples and c.samples[-1][0] > c.commands[-1][0] + 5)
        t_cmd = col.commands[-1][0]
        self.assertEqual(col.commands[-1][1:], [True, -3000.0, -3000.0])
        check_follow(self, col, -3000.0, t_cmd)
        regs = sim.inp("sungrow_sf", 13000, 23)
        self.assertEqual(regs[21], 3000)          # 13022 battery power, W
        self.assertTrue(regs[0] & 4)              # 13001 running state: discharging
        soc_check(self, [r for r in col.samples if r[0] >= t_cmd])
        self.assertTrue(sim.bc(0)["remote"])
        # charge 2 kW by the command register alone
        sim.write("sungrow_sf", 13050, [0xAA, 2000])
        col.until(lambda c: c.samples[-1][0] > c.commands[-1][0] + 1.5)
        check_follow(self, col, 2000.0, col.commands[-1][0])
        # release
        sim.write("sungrow_sf", 13049, 0)
        col.until(lambda c: not c.samples[-1][2], what="back to self-consumption")
        self.assertFalse(sim.bc(0)["remote"])
        self.assertEqual(sim.hold("sungrow_sf", 13049, 3), [0, 0xAA, 2000])  # as written

    def test_limits(self):
        """A setpoint above the battery's power limit is held at the limit;
        charging stops at the SoC ceiling and discharging at the floor."""
        sim = Sim(self)
        sim.ok("trace on 0")
        col = Collector(sim)
        sim.write("sungrow_sf", 13049, [2, 0xAA, 9000])
        col.until(lambda c: c.samples and c.commands and c.samples[-1][0] > c.commands[-1][0] + 2)
        self.assertAlmostEqual(col.samples[-1][3], 5000.0, delta=0.5)
        self.assertAlmostEqual(col.samples[-1][4], 5000.0, delta=0.5)
        soc = col.samples[-1][5]
        sim.ok(f"battery soc_max {soc + 0.0005:.5f} 0")
        col.until(lambda c: c.samples[-1][4] == 0.0, what="charging stops at soc_max")
        self.assertLessEqual(max(r[5] for r in col.samples), soc + 0.0005 + 1e-5)
        sim.write("sungrow_sf", 13050, [0xBB, 5000])
        soc = col.poll().samples[-1][5]
        sim.ok(f"battery soc_min {soc - 0.0005:.5f} 0")
        col.until(lambda c: c.samples[-1][3] == 0.0 and c.samples[-1][4] == 0.0
                  and any(r[4] < 0 for r in c.samples), what="discharging stops at soc_min")
        self.assertGreaterEqual(col.samples[-1][5], soc - 0.0005 - 1e-5)

    def test_huawei_forcible_with_period(self):
        """47246 = 0 (duration), 47083 = 1 min, 47249 = 2500, 47100 = 2: a
        forced discharge of 2.5 kW that ends by itself one minute of sim time
        after the 47100 write (the clock runs 10x for the wait), back to the
        working mode; a later write of the power alone changes the power but
        does not restart the period, however often it is written."""
        sim = Sim(self)
        sim.ok("trace on 1")
        col = Collector(sim)
        sim.write("huawei_hybrid", 47246, 0)
        sim.write("huawei_hybrid", 47083, 1)
        sim.write("huawei_hybrid", 47249, [0, 2500])
        self.assertEqual(col.poll().commands, [], "no command before 47100")
        sim.write("huawei_hybrid", 47100, 2)
        col.until(lambda c: c.commands and c.samples and c.samples[-1][0] > c.commands[-1][0] + 6.5)
        t_start = col.commands[-1][0]
        check_follow(self, col, -2500.0, t_start)
        r = sim.hold("huawei_hybrid", 37760, 7)
        self.assertEqual(s32(r[5], r[6]), -2500)   # 37765 charge/discharge power
        r = sim.hold("huawei_hybrid", 37001, 2)
        self.assertEqual(s32(r[0], r[1]), -2500)   # 37001 ESU1 power
        sim.write("huawei_hybrid", 47249, [0, 2000])
        col.until(lambda c: len(c.commands) >= 2 and c.samples[-1][0] > c.commands[-1][0] + 1)
        t_power = col.commands[-1][0]
        self.assertGreater(t_power - t_start, 6.0)
        check_follow(self, col, -2000.0, t_power)
        sim.write("huawei_hybrid", 47249, [0, 1800])   # counts from 47100, not from t_power
        col.until(lambda c: len(c.commands) >= 3 and c.samples[-1][0] > c.commands[-1][0] + 1)
        check_follow(self, col, -1800.0, col.commands[-1][0])
        self.assertAlmostEqual(sim.bc(1)["reverts_in_s"], 60 - (col.samples[-1][0] - t_start), delta=3)
        sim.ok("set speed 10")
        col.until(lambda c: not c.samples[-1][2], timeout=30, what="the forced period ends")
        t_end = lapse_time(col, t_start)
        self.assertGreaterEqual(t_end, t_start + 60.0 - 1e-6)
        # a tick at 10x is 0.5 s of sim time (5 s allows for a held-back
        # tick); restarting the period at t_power would end it after t_start + 66
        self.assertLess(t_end, t_start + 65.0)
        self.assertEqual(sim.bc(1)["lapses"], 1)

    def test_sunspec_124_window_and_revert(self):
        """Model 124: InOutWRte_RvrtTms = 3 s, [OutWRte, InWRte] = [-40 %,
        40 %] of WChaMax 5000 W, StorCtl_Mod = 3: charge 2 kW (802 W reads
        -2000, discharge positive); with no further write the rates revert
        after 3 s."""
        sim = Sim(self)
        base = 40122
        hdr = sim.hold("sunspec_storage", base, 2)
        self.assertEqual(hdr, [124, 24])
        sim.ok("trace on 2")
        col = Collector(sim)
        sim.write("sunspec_storage", base + 15, 3)
        sim.write("sunspec_storage", base + 12, [(-4000) & 0xFFFF, 4000])
        sim.write("sunspec_storage", base + 5, 3)
        col.until(lambda c: len(c.commands) >= 3 and c.samples[-1][0] > c.commands[-1][0] + 1.5)
        t_cmd = col.commands[-1][0]
        self.assertEqual(col.commands[-1][1:], [True, 2000.0, 2000.0])
        check_follow(self, col, 2000.0, t_cmd)
        r = sim.hold("sunspec_storage", 40148, 64)
        self.assertEqual(r[0], 802)
        self.assertEqual(s16(r[47]), -2000)        # W, discharge positive, W_SF 0
        self.assertEqual(s16(r[63]), 0)
        col.until(lambda c: not c.samples[-1][2], timeout=20, what="rates revert")
        t_end = lapse_time(col, t_cmd)
        self.assertGreaterEqual(t_end, t_cmd + 3.0 - 1e-6)
        # one-sided: only the discharge limit at 0 % (no discharging)
        sim.write("sunspec_storage", base + 15, 0)
        sim.write("sunspec_storage", base + 12, [0, 10000])
        sim.write("sunspec_storage", base + 5, 2)
        col.until(lambda c: c.samples[-1][0] > c.commands[-1][0] + 0.5)
        self.assertEqual(col.commands[-1][1:], [True, 0.0, None])
        self.assertGreaterEqual(min(r[3] for r in col.samples if r[0] > col.commands[-1][0] + DELAY_S), 0.0)

    def test_frequency_sequences(self):
        """hold 49.9 Hz 1 s, ramp to 49.0 at 0.24 Hz/s, then a 4 s sine of
        0.1 Hz around 50: the SDM630's float register and the trace follow
        them, at better than 1 mHz."""
        sim = Sim(self)
        sim.ok("trace on 3")
        col = Collector(sim)
        for line in ("freq hold 49.9 1", "freq ramp 49.0 0.24", "freq hold 50.0 0.5",
                     "freq sine 50.0 0.1 4 1"):
            sim.ok(line)
        t0 = float(sim.ok("freq play").split()[-1])
        col.until(lambda c: c.samples and c.samples[-1][0] > t0 + 10.5, timeout=40)
        seq = [r for r in col.samples if r[0] >= t0]
        fine = 0
        for t, hz, *_ in seq:
            e = t - t0
            if abs(e - 4.75) < 0.005:
                continue  # the jump 49.0 -> 50.0: times are printed to 1 ms
            if e < 1.0:
                want = 49.9
            elif e < 4.75:
                want = 49.9 - 0.24 * (e - 1.0)
            elif e < 5.25:
                want = 50.0
            elif e < 9.25:
                want = 50.0 + 0.1 * math.sin(2 * math.pi * (e - 5.25) / 4)
            else:
                want = 50.0
            self.assertAlmostEqual(hz, want, delta=0.0011, msg=f"at {e:.3f} s")
            if abs(round(hz * 100) - hz * 100) > 0.05:
                fine += 1
        self.assertGreater(fine, len(seq) // 2, "frequency only on a 10 mHz grid")
        words = sim.inp("sdm630", 70, 2)
        self.assertAlmostEqual(struct.unpack(">f", struct.pack(">HH", *words))[0], 50.0, delta=0.001)
        self.assertTrue(sim.ok("freq status").startswith("ok freq playing"))
        sim.ok("freq stop")
        self.assertIn("error", sim.cmd("freq ramp 49 0"))


if __name__ == "__main__":
    unittest.main()
