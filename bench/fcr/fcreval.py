"""FCR step-test sequences, their evaluation and plots (bench/fcr/steptest).

Pure functions over recorded traces, so that tests can feed them synthetic
traces (tests/integration/test_fcr_eval.py).

Sources (the Nordic TSOs' "Technical Requirements for Frequency Containment
Reserve Provision in the Nordic Synchronous Area", v1.1, March 2025, and its
Test Program / Supporting Document; section numbers as in those documents):
- products: FCR-N linear over 49.9-50.1 Hz (full upward at 49.9, full
  downward at 50.1); FCR-D upward linear from 49.9 Hz (0) to 49.5 Hz (full);
  FCR-D downward from 50.1 Hz to 50.5 Hz (requirements, sec. 3, "FCR
  products").
- FCR-D dynamic performance on the ramp test (requirements, sec. 3.2.3,
  "dynamic performance"; Test Program "FCR-D upwards / downwards ramp
  tests"): the frequency ramps at 0.24 Hz/s from the edge of the normal band
  (49.9 / 50.1 Hz) past full activation (to 49.0 / 51.0 Hz); 7.5 s after the
  ramp starts the activated power must be at least 0.86 x the steady-state
  activation and the activated energy over those 7.5 s at least 3.2 s x the
  steady-state activation; afterwards the activation must not fall back.
- stationary activation (sec. 3.2.2 and 3.3.2): within -5 % / +20 % of the
  theoretical (static) activation at the held frequency.
- step tests (Test Program, FCR-N and FCR-D step sequences): the frequency
  steps between held values, each held until the response is stationary; the
  stationary activation of each step is judged as above, and the response
  times to 63 % and 95 % of the step are reported.
- sine tests (Test Program, FCR-N and FCR-D sine tests): a sine of the given
  period around a centre frequency; the gain and phase of the response are
  one value of the transfer function F(jw) (Supporting Document, sec. 4.1.2).
  They are not judged: the stability and performance criteria (Supporting
  Document, sec. 4.2.2, 4.2.3, 4.3) combine F(jw) with the TSOs' grid and
  disturbance models, which are not reproduced here.

Sign conventions: battery W charging positive (egw's data model); an
activation is in "upward" watts (positive = the battery discharges). """
import math

NORMAL_LO, NORMAL_HI = 49.9, 50.1
RAMP_RATE = 0.24          # Hz/s, the FCR-D ramp test
P75_MIN = 0.86            # x steady-state activation at 7.5 s
E75_MIN_S = 3.2           # s x steady-state activation, energy over 7.5 s
SS_LO, SS_HI = 0.95, 1.20  # stationary activation window
FALLBACK_TOL = 0.05       # x steady state: how far the activation may dip after 7.5 s


def activation(f, products):
    """Static (theoretical) upward activation in W at frequency f for
    products {"fcr-n": W, "fcr-d-up": W, "fcr-d-down": W}."""
    a = 0.0
    c = products.get("fcr-n", 0)
    a += c * max(-1.0, min(1.0, (50.0 - f) / 0.1))
    c = products.get("fcr-d-up", 0)
    a += c * max(0.0, min(1.0, (NORMAL_LO - f) / 0.4))
    c = products.get("fcr-d-down", 0)
    a -= c * max(0.0, min(1.0, (f - NORMAL_HI) / 0.4))
    return a


# ---- sequences ---------------------------------------------------------------
# A sequence is a list of segments, as egw-sim's `freq` command takes them:
#   ("hold", hz, seconds) | ("ramp", hz_to, hz_per_s) | ("sine", centre, amp, period, cycles)
# plus a list of events to evaluate: ("step", t, f_before, f_after, t_end) or
# ("ramp", t0, f_start, f_end, t_hold_end) or ("sine", t0, centre, amp, period, cycles).

def _build(segs, start_hz=50.0):
    """Segments -> (segments with start/end/duration, events)."""
    out, events = [], []
    t, f = 0.0, start_hz
    for s in segs:
        if s[0] == "hold":
            _, hz, dur = s
            if hz != f and out:
                events.append(["step", t, f, hz, t + dur])
            out.append(("hold", hz, hz, t, dur))
            f = hz
        elif s[0] == "ramp":
            _, hz, rate = s
            dur = abs(hz - f) / rate
            events.append(["ramp", t, f, hz, None])
            out.append(("ramp", f, hz, t, dur))
            f = hz
        elif s[0] == "sine":
            _, c, a, period, cycles = s
            dur = period * cycles
            events.append(["sine", t, c, a, period, cycles])
            out.append(("sine", c, c, t, dur, a, period))
            f = c
        t += dur
    # a ramp's hold ends where the next different frequency starts
    for i, ev in enumerate(events):
        if ev[0] == "ramp":
            ev[4] = t
            t_ramp_end = ev[1] + abs(ev[3] - ev[2]) / RAMP_RATE
            for seg in out:
                if seg[3] >= t_ramp_end - 1e-9 and seg[0] == "hold" and seg[1] != ev[3]:
                    ev[4] = seg[3]
                    break
    return {"segments": segs, "timeline": out, "events": [tuple(e) for e in events],
            "duration": t}


def freq_at(seq, t):
    """The frequency of the sequence at t (s from its start), as egw-sim
    plays it."""
    for seg in seq["timeline"]:
        kind, f0, f1, start, dur = seg[:5]
        if t < start + dur:
            e = max(0.0, t - start)
            if kind == "ramp":
                return f0 + (f1 - f0) * e / dur
            if kind == "sine":
                return f0 + seg[5] * math.sin(2 * math.pi * e / seg[6])
            return f0
    return seq["timeline"][-1][2]


def sequences(product, hold=20.0, sines=False):
    """The test sequences for one product: {name: sequence}."""
    pre = 10.0
    if product == "fcr-n":
        steps = [("hold", 50.0, pre)]
        for hz in (49.9, 50.0, 50.1, 50.0, 49.95, 50.0, 50.05, 50.0):
            steps.append(("hold", hz, hold))
        out = {"fcr-n-steps": _build(steps)}
        if sines:
            # FCR-N sine tests: periods 10 to 70 s, amplitude 0.1 Hz
            for period in (10, 15, 25, 40, 60):
                out[f"fcr-n-sine-{period}s"] = _build(
                    [("hold", 50.0, pre), ("sine", 50.0, 0.1, period, 5), ("hold", 50.0, 5)])
        return out
    if product in ("fcr-d-up", "fcr-d-down"):
        up = product == "fcr-d-up"
        edge, far = (NORMAL_LO, 49.0) if up else (NORMAL_HI, 51.0)
        sgn = -1 if up else 1
        ramp = _build([("hold", 50.0, pre), ("hold", edge, 5.0), ("ramp", far, RAMP_RATE),
                       ("hold", far, max(hold, 15.0)), ("hold", 50.0, hold)])
        steps = [("hold", 50.0, pre)]
        for d in (0.2, 0.0, 0.4, 0.0, 0.9, 0.0):
            hz = round(50.0 + sgn * (0.1 + d), 3) if d else 50.0
            steps.append(("hold", hz, hold))
        out = {f"{product}-ramp": ramp, f"{product}-steps": _build(steps)}
        if sines:
            c = 49.7 if up else 50.3
            for period in (10, 15, 25):
                out[f"{product}-sine-{period}s"] = _build(
                    [("hold", 50.0, pre), ("hold", c, 10.0), ("sine", c, 0.1, period, 5),
                     ("hold", 50.0, 5)])
        return out
    raise ValueError(f"unknown product {product!r}")


# ---- trace helpers -----------------------------------------------------------
# A trace is a list of (t, W) with t in seconds from the sequence start and W
# the battery's measured power (charging positive).

def interp(trace, t):
    if t <= trace[0][0]:
        return trace[0][1]
    for (t0, w0), (t1, w1) in zip(trace, trace[1:]):
        if t0 <= t <= t1:
            return w0 if t1 == t0 else w0 + (w1 - w0) * (t - t0) / (t1 - t0)
    return trace[-1][1]


def mean_over(trace, a, b):
    pts = [w for t, w in trace if a <= t <= b]
    if not pts:
        return interp(trace, (a + b) / 2)
    return sum(pts) / len(pts)


def integral(trace, a, b, fn):
    """Trapezoid integral of fn(W) over [a, b]."""
    pts = [(a, interp(trace, a))] + [(t, w) for t, w in trace if a < t < b] + [(b, interp(trace, b))]
    s = 0.0
    for (t0, w0), (t1, w1) in zip(pts, pts[1:]):
        s += (fn(w0) + fn(w1)) / 2 * (t1 - t0)
    return s


def _crit(name, value, limit, ok, unit=""):
    return {"name": name, "value": value, "limit": limit, "ok": bool(ok), "unit": unit}


def eval_ramp(trace, ev, products):
    """FCR-D ramp test.  ev = ("ramp", t0, f_start, f_end, t_hold_end)."""
    _, t0, f0, f1, t_end = ev
    base = mean_over(trace, t0 - 2.0, t0)
    ss = activation(f1, products) - activation(f0, products)
    ref = abs(ss)
    sgn = 1 if ss >= 0 else -1

    def resp(w):
        return -(w - base) * sgn

    p75 = resp(interp(trace, t0 + 7.5))
    e75 = integral(trace, t0, t0 + 7.5, resp)
    after = [resp(w) for t, w in trace if t0 + 7.5 <= t <= t_end]
    floor = min(after) if after else p75
    keep = min(p75, ref) - FALLBACK_TOL * ref
    steady = resp(mean_over(trace, t_end - 5.0, t_end))
    crits = [
        _crit("power at 7.5 s", p75 / ref, P75_MIN, p75 >= P75_MIN * ref, "x steady state"),
        _crit("energy over 7.5 s", e75 / ref, E75_MIN_S, e75 >= E75_MIN_S * ref, "s x steady state"),
        _crit("no fall-back after 7.5 s (lowest activation)", floor / ref, keep / ref,
              floor >= keep, "x steady state"),
        _crit("stationary activation", steady / ref, [SS_LO, SS_HI],
              SS_LO * ref <= steady <= SS_HI * ref, "x theoretical"),
    ]
    return {"kind": "ramp", "t0": t0, "f_start": f0, "f_end": f1, "steady_state_W": ss,
            "criteria": crits, "ok": all(c["ok"] for c in crits)}


def eval_step(trace, ev, products, cap):
    """One step of a step sequence.  ev = ("step", t, f_before, f_after, t_end)."""
    _, t0, f0, f1, t_end = ev
    base = mean_over(trace, t0 - 2.0, t0)
    d = activation(f1, products) - activation(f0, products)
    steady = -(mean_over(trace, t_end - 5.0, t_end) - base)
    res = {"kind": "step", "t0": t0, "f_before": f0, "f_after": f1, "expected_W": d,
           "steady_W": steady}
    if abs(d) < 1e-6 * max(cap, 1):
        ok = abs(steady) <= (1 - SS_LO) * cap
        res["criteria"] = [_crit("no activation change (|change| / capacity)", abs(steady) / cap,
                                 1 - SS_LO, ok)]
    else:
        ratio = steady / d
        res["criteria"] = [_crit("stationary activation", ratio, [SS_LO, SS_HI],
                                 SS_LO <= ratio <= SS_HI, "x theoretical")]
        for frac in (0.63, 0.95):
            tr = next((t - t0 for t, w in trace if t0 <= t <= t_end and -(w - base) / d >= frac), None)
            res[f"t{int(frac * 100)}_s"] = tr
    res["ok"] = all(c["ok"] for c in res["criteria"])
    return res


def eval_sine(trace, ev, products):
    """Gain (p.u. of the static activation's amplitude) and phase (degrees,
    negative = lagging) of the response over the whole cycles but the first."""
    _, t0, c, a, period, cycles = ev
    w = 2 * math.pi / period
    a0, a1 = t0 + period, t0 + period * cycles
    pts = [(t, -(p)) for t, p in trace if a0 <= t <= a1]
    if len(pts) < 8:
        return {"kind": "sine", "period_s": period, "ok": None, "criteria": []}
    n = len(pts)
    mean = sum(p for _, p in pts) / n
    si = sum((p - mean) * math.sin(w * (t - t0)) for t, p in pts) * 2 / n
    co = sum((p - mean) * math.cos(w * (t - t0)) for t, p in pts) * 2 / n
    amp = math.hypot(si, co)
    # the static response to the sine: activation(c - a sin) ~ slope * a * sin
    ref = (activation(c - a, products) - activation(c + a, products)) / 2
    # the fit is r = amp sin(w t + theta); for f = c + a sin(w t) the ideal
    # upward response is -ref sin(w t) (frequency down, activation up), so
    # the response's phase against the ideal is theta - 180 degrees
    phase = math.degrees(math.atan2(co, si)) - (180 if ref >= 0 else 0)
    phase = (phase + 180) % 360 - 180
    return {"kind": "sine", "period_s": period, "gain_pu": amp / abs(ref) if ref else None,
            "phase_deg": phase, "ok": None, "criteria": []}


def evaluate(seq, trace, products):
    """All events of a sequence: list of results."""
    cap = sum(products.values())
    out = []
    for ev in seq["events"]:
        if ev[0] == "ramp":
            out.append(eval_ramp(trace, ev, products))
        elif ev[0] == "step":
            out.append(eval_step(trace, ev, products, cap))
        elif ev[0] == "sine":
            out.append(eval_sine(trace, ev, products))
    return unjudge_after_sine(out)


def unjudge_after_sine(results):
    """A step right after a sine is no step test: its "before" is the end of a
    cycle, not a stationary activation, so the change it measures is not the
    step's.  It stays in the results, not judged."""
    for prev, r in zip(results, results[1:]):
        if prev.get("kind") == "sine" and r.get("kind") == "step":
            r["ok"] = None
            r["note"] = "follows a sine (no stationary start): not judged"
            for c in r.get("criteria", []):
                c["ok"] = None
    return results


def percentiles(xs, ps=(50, 90, 99, 100)):
    if not xs:
        return {f"p{p}": None for p in ps}
    s = sorted(xs)
    out = {}
    for p in ps:
        k = min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))
        out["max" if p == 100 else f"p{p}"] = s[k]
    out["n"] = len(s)
    return out


def write_delays(seq, commands, products, tol_w=2.0):
    """Frequency change to setpoint write, as the battery saw it: for each
    write of a new setpoint (commands: (t, setpoint_W) from the sequence
    start), the time since the frequency first implied that setpoint (steps:
    the step; ramps: the instant the ramp crossed the frequency whose static
    activation is the setpoint).  Writes outside the events, and setpoints
    no frequency of the event implies, are skipped.  Includes the frequency
    sampling interval; egwd's own share is its delay_ms."""
    out = []
    evs = [e for e in seq["events"] if e[0] in ("step", "ramp")]
    for t, sp in commands:
        act = -sp
        ev = None
        for e in evs:
            if e[1] <= t:
                ev = e
        if ev is None:
            continue
        if ev[0] == "step":
            if abs(act - activation(ev[3], products)) <= tol_w and t <= ev[4]:
                prev = [c for c in commands if ev[1] <= c[0] < t and abs(-c[1] - act) <= tol_w]
                if not prev:
                    out.append(t - ev[1])
        else:
            _, t0, f0, f1, _ = ev
            dur = abs(f1 - f0) / RAMP_RATE
            a0, a1 = activation(f0, products), activation(f1, products)
            if not (min(a0, a1) + tol_w < act < max(a0, a1) - tol_w):
                continue
            lo, hi = t0, t0 + dur
            for _ in range(60):
                mid = (lo + hi) / 2
                if abs(activation(freq_at(seq, mid), products) - a0) < abs(act - a0):
                    lo = mid
                else:
                    hi = mid
            if t >= lo:
                out.append(t - lo)
    return out


# ---- plots -------------------------------------------------------------------

def gnuplot_script(title, data_file, png_file, theo=True):
    """A gnuplot script drawing frequency (right axis), the written setpoint,
    the measured battery power and the theoretical response (left axis).
    data_file columns: t, Hz, setpoint_W, battery_W, theoretical_W."""
    lines = [
        "set terminal pngcairo size 1100,600 font ',10'",
        f"set output '{png_file}'",
        f"set title '{title}' noenhanced",
        "set xlabel 'time (s)'",
        "set ylabel 'battery power (W, charging +)'",
        "set y2label 'frequency (Hz)'",
        "set ytics nomirror",
        "set y2tics",
        "set grid",
        "set key outside bottom center horizontal",
        "set datafile separator ','",
        "set datafile missing 'NaN'",
        f"plot '{data_file}' every ::1 using 1:2 axes x1y2 with lines lw 2 lc rgb '#1f77b4' title 'frequency', \\",
        "     '' every ::1 using 1:3 with steps lw 1.5 lc rgb '#ff7f0e' title 'setpoint written', \\",
        "     '' every ::1 using 1:4 with lines lw 2 lc rgb '#2ca02c' title 'battery power (measured)'"
        + (", \\" if theo else ""),
    ]
    if theo:
        lines.append("     '' every ::1 using 1:5 with lines dt 2 lc rgb '#7f7f7f' title 'theoretical'")
    return "\n".join(lines) + "\n"
