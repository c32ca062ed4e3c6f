"""The FCR step-test harness's evaluation (bench/fcr/fcreval.py) on
synthetic traces: a battery that follows the static activation with a small
delay and a fast ramp passes every criterion; one trace per criterion breaks
only that one and fails it.  Also the sine tests' gain and phase, the
write-delay percentiles and a gnuplot PNG (gnuplot-nox, installed by
scripts/setup --test).

Run: /usr/bin/python3 -m unittest tests/integration/test_fcr_eval.py
"""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "fcr"))
import fcreval as E  # noqa: E402

UP = {"fcr-d-up": 3000}
DOWN = {"fcr-d-down": 3000}
N = {"fcr-n": 2000}


def battery(seq, products, delay=0.3, ramp=10000.0, gain=1.0, dt=0.05, shape=None):
    """A synthetic battery: W follows -gain x activation(f(t - delay)) at
    most `ramp` W/s; shape(t, W, ref) may bend the result."""
    ref = sum(products.values())
    w, out, t = 0.0, [], 0.0
    while t <= seq["duration"] + 1e-9:
        target = -gain * E.activation(E.freq_at(seq, max(0.0, t - delay)), products)
        w += max(-ramp * dt, min(ramp * dt, target - w))
        out.append((round(t, 3), shape(t, w, ref) if shape else w))
        t += dt
    return out


def ramp_result(products, **kw):
    name = "fcr-d-up-ramp" if "fcr-d-up" in products else "fcr-d-down-ramp"
    seq = E.sequences(next(iter(products)), hold=20.0)[name]
    res = E.evaluate(seq, battery(seq, products, **kw), products)
    rr = [r for r in res if r["kind"] == "ramp"]
    assert len(rr) == 1
    return seq, rr[0]


def verdicts(r):
    return {c["name"]: c["ok"] for c in r["criteria"]}


class TestRamp(unittest.TestCase):
    def test_ideal_passes_both_directions(self):
        for prods in (UP, DOWN):
            seq, r = ramp_result(prods)
            self.assertTrue(r["ok"], r)
            self.assertEqual(abs(r["steady_state_W"]), 3000)
            c = {x["name"]: x for x in r["criteria"]}
            # ideal: full at 1.67 s after the ramp start, +0.3 s delay
            self.assertAlmostEqual(c["power at 7.5 s"]["value"], 1.0, places=3)
            self.assertGreater(c["energy over 7.5 s"]["value"], 6.0)

    def test_sequence_is_the_test_program_ramp(self):
        seq = E.sequences("fcr-d-up")["fcr-d-up-ramp"]
        ev = [e for e in seq["events"] if e[0] == "ramp"][0]
        self.assertEqual((ev[2], ev[3]), (49.9, 49.0))
        t0 = ev[1]
        self.assertAlmostEqual(E.freq_at(seq, t0 + 1.0), 49.9 - 0.24, places=9)
        self.assertAlmostEqual(E.freq_at(seq, t0 + 3.75), 49.0, places=9)
        self.assertEqual(E.freq_at(seq, t0 + 10), 49.0)

    def test_power_at_7_5_s_fails_alone(self):
        # a dip right at 7.5 s: power fails, energy, fall-back and steady state hold
        def dip(t, w, ref):
            return w * 0.5 if 15.0 + 7.3 <= t <= 15.0 + 7.7 else w
        _, r = ramp_result(UP, shape=dip)
        v = verdicts(r)
        self.assertFalse(v["power at 7.5 s"])
        self.assertTrue(v["energy over 7.5 s"])
        self.assertTrue(v["stationary activation"])
        self.assertFalse(r["ok"])

    def test_energy_fails_alone(self):
        # 4.5 s late, then at once: full power at 7.5 s, too little energy
        _, r = ramp_result(UP, delay=4.5, ramp=1e6)
        v = verdicts(r)
        self.assertTrue(v["power at 7.5 s"])
        self.assertFalse(v["energy over 7.5 s"])
        self.assertTrue(v["no fall-back after 7.5 s (lowest activation)"])
        self.assertTrue(v["stationary activation"])

    def test_fall_back_fails_alone(self):
        def sag(t, w, ref):
            return w * 0.7 if 15.0 + 10 <= t <= 15.0 + 14 else w
        _, r = ramp_result(DOWN, shape=sag)
        v = verdicts(r)
        self.assertTrue(v["power at 7.5 s"])
        self.assertTrue(v["energy over 7.5 s"])
        self.assertFalse(v["no fall-back after 7.5 s (lowest activation)"])
        self.assertTrue(v["stationary activation"])

    def test_steady_state_window(self):
        _, r = ramp_result(UP, gain=0.9)      # -10 %: below -5 %
        v = verdicts(r)
        self.assertFalse(v["stationary activation"])
        self.assertTrue(v["power at 7.5 s"])
        _, r = ramp_result(UP, gain=1.25)     # +25 %: above +20 %
        self.assertFalse(verdicts(r)["stationary activation"])
        _, r = ramp_result(UP, gain=1.15)     # +15 %: inside
        self.assertTrue(r["ok"], r)

    def test_slow_battery_fails_dynamics(self):
        _, r = ramp_result(UP, ramp=200.0)
        v = verdicts(r)
        self.assertFalse(v["power at 7.5 s"])
        self.assertFalse(v["energy over 7.5 s"])


class TestSteps(unittest.TestCase):
    def test_fcr_n_steps(self):
        seq = E.sequences("fcr-n", hold=20.0)["fcr-n-steps"]
        steps = [e for e in seq["events"] if e[0] == "step"]
        self.assertEqual([e[3] for e in steps], [49.9, 50.0, 50.1, 50.0, 49.95, 50.0, 50.05, 50.0])
        res = E.evaluate(seq, battery(seq, N), N)
        self.assertTrue(all(r["ok"] for r in res), res)
        full = [r for r in res if r["f_after"] == 49.9][0]
        self.assertAlmostEqual(full["expected_W"], 2000)
        self.assertLess(full["t63_s"], 0.6)
        res = E.evaluate(seq, battery(seq, N, gain=0.8), N)
        bad = [r for r in res if not r["ok"]]
        self.assertEqual(len(bad), 8)   # every step that moves the activation

    def test_fcr_d_steps_hold_zero_in_band(self):
        seq = E.sequences("fcr-d-down", hold=20.0)["fcr-d-down-steps"]
        self.assertEqual([e[3] for e in seq["events"]], [50.3, 50.0, 50.5, 50.0, 51.0, 50.0])
        res = E.evaluate(seq, battery(seq, DOWN), DOWN)
        self.assertTrue(all(r["ok"] for r in res), res)
        half = [r for r in res if r["f_after"] == 50.3][0]
        self.assertAlmostEqual(half["expected_W"], -1500)


class TestSines(unittest.TestCase):
    def test_gain_and_phase(self):
        """An ideal battery: gain 1; a pure delay d lags by 360 d / T degrees."""
        for prods in (N, UP, DOWN):
            name = next(iter(prods)) + "-sine-10s"
            seq = E.sequences(next(iter(prods)), sines=True)[name]
            for delay, lag in ((0.0, 0.0), (0.3, -10.8), (1.0, -36.0)):
                r = [x for x in E.evaluate(seq, battery(seq, prods, delay=delay, ramp=1e6), prods)
                     if x["kind"] == "sine"][0]
                self.assertAlmostEqual(r["gain_pu"], 1.0, delta=0.01, msg=name)
                self.assertAlmostEqual(r["phase_deg"], lag, delta=1.0, msg=f"{name} {delay}")
            # half the response: half the gain
            r = [x for x in E.evaluate(seq, battery(seq, prods, gain=0.5), prods)
                 if x["kind"] == "sine"][0]
            self.assertAlmostEqual(r["gain_pu"], 0.5, delta=0.01)


    def test_step_after_a_sine_is_not_judged(self):
        seq = E.sequences("fcr-d-up", sines=True)["fcr-d-up-sine-10s"]
        # a battery that follows the static activation exactly
        trace = [(k * 0.05, -E.activation(E.freq_at(seq, k * 0.05), {"fcr-d-up": 3000}))
                 for k in range(int(seq["duration"] / 0.05))]
        res = E.evaluate(seq, trace, {"fcr-d-up": 3000})
        kinds = [r["kind"] for r in res]
        self.assertIn("sine", kinds)
        after = res[kinds.index("sine") + 1]
        self.assertEqual(after["kind"], "step")
        self.assertIsNone(after["ok"])
        self.assertIn("follows a sine", after["note"])
        before = res[kinds.index("sine") - 1]
        self.assertTrue(before["ok"])


class TestDelaysAndPlots(unittest.TestCase):
    def test_write_delays(self):
        seq = E.sequences("fcr-d-up")["fcr-d-up-ramp"]
        # writes 120 ms after every 100 ms sample of the frequency
        cmds, last = [], None
        t = 0.0
        while t < seq["duration"]:
            sp = round(-E.activation(E.freq_at(seq, t), UP))
            if sp != last:
                cmds.append((t + 0.12, sp))
                last = sp
            t = round(t + 0.1, 6)
        d = E.write_delays(seq, cmds, UP)
        self.assertGreater(len(d), 10)
        p = E.percentiles(d)
        self.assertGreaterEqual(p["p50"], 0.12 - 1e-6)
        self.assertLessEqual(p["max"], 0.12 + 0.1 + 1e-6)

    def test_gnuplot_png(self):
        seq = E.sequences("fcr-d-up")["fcr-d-up-ramp"]
        tr = battery(seq, UP)
        with tempfile.TemporaryDirectory() as d:
            csv = os.path.join(d, "t.csv")
            with open(csv, "w") as f:
                f.write("t,Hz,setpoint_W,battery_W,theoretical_W\n")
                for t, w in tr:
                    a = -E.activation(E.freq_at(seq, t), UP)
                    f.write(f"{t},{E.freq_at(seq, t):.4f},{a:.1f},{w:.1f},{a:.1f}\n")
            png = os.path.join(d, "t.png")
            script = E.gnuplot_script("FCR-D up ramp (synthetic)", csv, png)
            subprocess.run(["gnuplot"], input=script.encode(), check=True, timeout=60)
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main()
