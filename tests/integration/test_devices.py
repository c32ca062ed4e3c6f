"""Device drivers end to end: egwd polls egw-sim over Modbus TCP on loopback.

- every profile egw-sim serves (its --list-profiles, "sunspec" included) is
  polled by one egwd; each device must reach "polling" with its serial, and
  every decoded value egwd shows in /api/state must match what the simulator
  reports through its control interface (`get`), not what egwd says;
- every fault class the simulator injects (timeout, exception, wrong tid,
  garbage, slow, drop, single-client, sleep): egwd keeps running and serving
  /api/state, reports the device's state, and recovers when the fault ends;
- the frequency samples in /api/state advance at about 10 Hz.

Run with /usr/bin/python3; EGW_BUILD names the build directory.
"""
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import egwtest as T  # noqa: E402
from test_mqtt import MOSQUITTO, Broker, Subscriber  # noqa: E402

sys.path.insert(0, os.path.join(T.REPO, "tools"))
import egw_batch  # noqa: E402

LOCAL = "127.0.0.1"

# Absolute tolerance per unit: one step of the coarsest scale the profiles use
# (0.1 V, 0.1 A, 0.01 Hz, 0.1 C, 1 W or 10 W on some, kWh counters), on top
# of a relative 0.5 %.
ABS_TOL = {"W": 10.0, "V": 0.11, "A": 0.11, "Hz": 0.011, "C": 0.11, "Wh": 1000.0,
           "fraction": 0.011, "VA": 10.0, "var": 10.0, "PF": 0.011}


def unit_of(group, name):
    if name.endswith("_Wh"):
        return "Wh"
    if name == "Hz":
        return "Hz"
    if name.startswith("SoC") or name.startswith("SoH"):
        return "fraction"
    if name.endswith("_C"):
        return "C"
    return name.rsplit("_", 1)[-1] if "_" in name else name


class Ctl:
    """egw-sim's control connection: one command line, one answer line."""

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
        return ans

    def get(self):
        return json.loads(self.cmd("get"))


def list_profiles():
    out = subprocess.run([T.binary("egw-sim"), "--list-profiles"], check=True,
                         capture_output=True, text=True, timeout=10).stdout
    return [p.strip() for p in out.split() if p.strip()]


def start_sim(tc, profiles, args=()):
    sim = T.EgwSim(tc, [(p, 1) for p in profiles], args=args)
    sim.wait_output("egw-sim: ready", timeout=10)
    return sim, Ctl(tc, sim.control_port)


def devices_by_id(st):
    return {d["id"]: d for d in st.get("devices", [])}


def stop_clean(tc, egwd):
    """SIGTERM: egwd must exit 0 (under ASan this also means no leak report)."""
    out = egwd.output
    rc = egwd.stop()
    tc.assertEqual(rc, 0, f"egwd exit status {rc}:\n{out()[-3000:]}")


def compare(d, want, problems):
    """Check egwd's device d against the simulator's device want; append what
    differs to problems; return the number of values compared."""
    dev_id = d["id"]
    # The serial register's value, or (profiles without one) the address.
    if d["serial"] != want["serial"] and not d["serial"].startswith(f"{LOCAL}:"):
        # Integer serial registers carry the simulator's serial as a number.
        if not d["serial"].isdigit():
            problems.append(f"{dev_id}: serial {d['serial']!r}, sim {want['serial']!r}")
    n = 0
    for group, fields in (d["reading"] or {}).items():
        for name, v in fields.items():
            w = want["reading"].get(group, {}).get(name)
            if w is None:
                problems.append(f"{dev_id}: {group}.{name}={v} but the sim serves none")
                continue
            tol = ABS_TOL.get(unit_of(group, name), 1.0) + 0.005 * abs(w)
            if not (isinstance(v, (int, float)) and math.isfinite(v)) or abs(v - w) > tol:
                problems.append(f"{dev_id}: {group}.{name} egwd {v} sim {w}")
            n += 1
    if n == 0:
        problems.append(f"{dev_id}: no decoded value")
    return n


class TestOneHome(unittest.TestCase):
    """The demo's devices (a SolarEdge inverter and an SDM630 meter) in one
    egw-sim are one home: what egwd decodes balances, meter = house load +
    inverter AC power, and the house load is never negative."""

    def test_demo_home_balances(self):
        sim, ctl = start_sim(self, ["solaredge", "sdm630"])
        ctl.ok("freeze on")
        devs = [sim.device_settings(i, id=s["profile"]) for i, s in enumerate(sim.servers)]
        egwd = T.Egwd(self, set={"devices": devs, "harvest.poll_interval_ms": 200,
                                 "modbus.timeout_ms": 1000, "http.bind": LOCAL})
        truth = {d["profile"]: d for d in ctl.get()["devices"]}

        def both():
            by = devices_by_id(egwd.state())
            ok = all(by.get(k, {}).get("reading") and "W" in by[k]["reading"].get(g, {})
                     for k, g in (("solaredge", "inverter"), ("sdm630", "meter")))
            return by if ok else None
        time.sleep(2.5)  # a verbose poll after the freeze
        by = T.wait_until(both, timeout=20, what="inverter and meter readings")
        inv = by["solaredge"]["reading"]
        grid = by["sdm630"]["reading"]["meter"]["W"]
        house = grid - inv["inverter"]["W"]
        load = truth["solaredge"]["home_load_W"]
        self.assertGreaterEqual(load, 0)
        self.assertGreaterEqual(house, -1)
        self.assertAlmostEqual(house, load, delta=2 + 0.002 * load)
        # the inverter has no meter of its own: no meter power, no battery
        self.assertNotIn("W", inv.get("meter", {}))
        self.assertNotIn("battery", inv)
        # PV DC power and AC power are told apart: DC is at least the AC output
        self.assertLessEqual(inv["pv"]["W"], inv["inverter"]["W"] + 1)
        stop_clean(self, egwd)

    def test_solis_hybrid_home_balances(self):
        """A Solis hybrid alone is the home: its own grid meter (33263, import
        positive once decoded) is the house load plus its AC power, and that
        AC power is what its PV and battery (signed by 33135) leave over."""
        sim, ctl = start_sim(self, ["solis_hybrid"])
        ctl.ok("freeze on")
        devs = [sim.device_settings(0, id="sh")]
        egwd = T.Egwd(self, set={"devices": devs, "harvest.poll_interval_ms": 200,
                                 "modbus.timeout_ms": 1000, "http.bind": LOCAL})
        truth = ctl.get()["devices"][0]

        def full():
            r = devices_by_id(egwd.state()).get("sh", {}).get("reading") or {}
            ok = "W" in r.get("meter", {}) and "W" in r.get("battery", {})
            return r if ok else None
        time.sleep(2.5)  # a verbose poll after the freeze
        r = T.wait_until(full, timeout=20, what="the hybrid's meter and battery")
        load = truth["home_load_W"]
        house = r["meter"]["W"] - r["inverter"]["W"]
        self.assertGreaterEqual(load, 0)
        self.assertAlmostEqual(house, load, delta=2 + 0.002 * load)
        want = truth["reading"]["battery"]["W"]
        self.assertAlmostEqual(r["battery"]["W"], want, delta=1.5)
        # the AC side carries the PV less what the battery takes (DC PV is at
        # least the AC share of it: conversion losses)
        self.assertLessEqual(r["pv"]["W"] + r["battery"]["W"], r["inverter"]["W"] + 2)
        stop_clean(self, egwd)


class TestEveryProfile(unittest.TestCase):
    def test_every_profile_polls_and_decodes_like_the_simulator(self):
        profiles = list_profiles()
        self.assertIn("sunspec", profiles)
        self.assertGreaterEqual(len(profiles), 10)
        sim, ctl = start_sim(self, profiles)
        # Stop the sim clock so the values egwd read are the values `get` shows.
        ctl.ok("freeze on")
        devs = [sim.device_settings(i, id=s["profile"]) for i, s in enumerate(sim.servers)]
        extra = {}
        # every profile's readings also go out over MQTT and into signed
        # batches: both are walked for float noise below
        mqtt = os.path.exists(MOSQUITTO) and shutil.which("mosquitto_sub")
        if mqtt:
            broker = Broker(self)
            broker.start()
            sub = Subscriber(self, broker.port)
            extra = {"mqtt.enabled": True, "mqtt.host": LOCAL, "mqtt.port": broker.port}
        egwd = T.Egwd(self, set={"devices": devs, "harvest.poll_interval_ms": 200,
                                 "harvest.batch_interval_ms": 1000,
                                 "modbus.timeout_ms": 1000, "http.bind": LOCAL, **extra})
        truth = {d["profile"]: d for d in ctl.get()["devices"]}

        def all_polling():
            st = egwd.state()
            by = devices_by_id(st)
            bad = {i: (d["state"], d["serial"]) for i, d in by.items()
                   if d["state"] != "polling" or not d["serial"] or not d.get("reading")}
            return st if not bad and len(by) == len(profiles) else None

        try:
            st = T.wait_until(all_polling, timeout=20, what="every device polling")
        except TimeoutError:
            st = egwd.state()
            self.fail("not every device polls: " + json.dumps(
                {d["id"]: [d["state"], d["serial"], d["stats"]["last_error"]]
                 for d in st["devices"]}) + "\n" + egwd.output()[-3000:])
        # Short-poll profiles read their full blocks every 10th poll (2 s here):
        # make sure a verbose poll happened after the freeze.
        time.sleep(2.5)
        st = egwd.state()
        problems = []
        compared = 0
        for dev_id, d in devices_by_id(st).items():
            compared += compare(d, truth[dev_id], problems)
        self.assertFalse(problems, "\n".join(problems))
        self.assertGreater(compared, 3 * len(profiles))
        # Only what exists: a Sungrow string inverter (no battery, no meter
        # registers) publishes no battery object and no meter power or totals,
        # and its lifetime yield from 5003-5004, never 0.
        sg = devices_by_id(st)["sungrow_sg"]["reading"]
        self.assertNotIn("battery", sg)
        for k in ("W", "total_import_Wh", "total_export_Wh"):
            self.assertNotIn(k, sg.get("meter", {}))
        self.assertGreater(sg["pv"]["total_generation_Wh"], 0)
        self.assertLess(sg["inverter"]["W"], 0)
        # A Sungrow hybrid with no meter (meter power 0x7FFFFFFF): no grid
        # reading, no 0 W grid meter; its battery and its own AC measurements stay.
        # The same for a Huawei hybrid whose meter status (37100) is offline.
        for dev_id in ("sungrow_nometer", "huawei_hybrid_nometer"):
            nm = devices_by_id(st)[dev_id]["reading"]
            self.assertIn("SoC_nom_fract", nm["battery"], dev_id)
            self.assertIn("Hz", nm["meter"], dev_id)
            self.assertGreater(nm["meter"]["Hz"], 45, dev_id)
            for k in ("W", "L1_W", "L1_A", "total_import_Wh", "total_export_Wh"):
                self.assertNotIn(k, nm["meter"], (dev_id, nm))
        # A Ferroamp EnergyHub with no battery (its ESO counts 0, its battery
        # registers 0): no battery object; with one, its battery and the hub's
        # grid CTs; both publish PV in W (the hub counts kW).
        fa = devices_by_id(st)["ferroamp"]["reading"]
        fn = devices_by_id(st)["ferroamp_nobattery"]["reading"]
        self.assertNotIn("battery", fn, fn)
        self.assertIn("SoC_nom_fract", fa["battery"], fa)
        for r in (fa, fn):
            self.assertLess(r["pv"]["W"], -100, r)
            self.assertGreater(r["pv"]["total_generation_Wh"], 0, r)
            for k in ("W", "Hz", "L1_V", "total_import_Wh", "total_export_Wh"):
                self.assertIn(k, r["meter"], r)
        # A Solis hybrid: its battery (power and current signed by the
        # direction register 33135) and its grid meter (export-positive in
        # the document, import positive here), checked against the sim above;
        # installed without a battery (0 V, no BMS): no battery object.
        sh = devices_by_id(st)["solis_hybrid"]["reading"]
        for k in ("W", "A", "V", "SoC_nom_fract", "SoH_fract", "total_charge_Wh",
                  "total_discharge_Wh"):
            self.assertIn(k, sh.get("battery", {}), sh)
        for k in ("W", "L1_V", "L2_A", "L3_W", "total_import_Wh", "total_export_Wh"):
            self.assertIn(k, sh.get("meter", {}), sh)
        shb = devices_by_id(st)["solis_hybrid_nobattery"]["reading"]
        self.assertNotIn("battery", shb, shb)
        self.assertIn("W", shb["meter"], shb)
        self.assertLess(shb["pv"]["W"], -100, shb)
        # The fuller data model from SunSpec: the inverter's AC side (101-103,
        # 111-113, 701), the PV strings' power (160, 714), the battery's state
        # of health (802, 713); per phase powers add up to the AC power.
        by = devices_by_id(st)
        for dev_id, keys in (
                ("sunspec", {"inverter": ("VA", "var", "PF", "A", "L1_V", "L3_V", "L1_A",
                                          "L3_A"),
                             "pv": ("mppt1_W", "mppt2_W"), "battery": ("SoH_fract",)}),
                ("sunspec_float", {"inverter": ("VA", "var", "PF", "A", "L2_V", "L2_A")}),
                ("sunspec_der", {"inverter": ("VA", "PF", "L1_W", "L2_W", "L3_W", "L3_V"),
                                 "pv": ("mppt1_W",), "battery": ("SoH_fract",)}),
                ("sunspec_storage", {"inverter": ("VA", "var", "PF", "L1_A"),
                                     "battery": ("SoH_fract",)}),
                # SMA's own map (30777-30813, 30949, 30977-30981, 30773/30961)
                ("sma", {"inverter": ("VA", "var", "PF", "A", "L1_V", "L2_V", "L3_V",
                                      "L1_A", "L2_A", "L3_A", "L1_W", "L2_W", "L3_W"),
                         "pv": ("mppt1_W", "mppt2_W")})):
            if dev_id not in by:
                continue
            r = by[dev_id]["reading"]
            for group, names in keys.items():
                for k in names:
                    self.assertIn(k, r.get(group, {}), (dev_id, group, r))
        for dev_id in ("sunspec_der", "sma"):
            inv = by[dev_id]["reading"]["inverter"]
            self.assertAlmostEqual(inv["L1_W"] + inv["L2_W"] + inv["L3_W"], inv["W"], delta=3,
                                   msg=dev_id)
            self.assertLessEqual(abs(inv["W"]), inv["VA"] + 1, dev_id)
        pv = by["sma"]["reading"]["pv"]
        self.assertAlmostEqual(pv["mppt1_W"] + pv["mppt2_W"], -pv["W"], delta=1)
        self.assertGreater(pv["mppt1_W"], 0)
        self.assertNotIn("L2_V", by["sunspec_float1"]["reading"]["inverter"])
        # Numbers at their resolution: no float noise anywhere /api/state or
        # /api/device prints (every profile's values, SDM630 floats included).
        for path in ("/api/state", "/api/device"):
            _, _, body = T.http(egwd.port, "GET", path, headers=egwd.auth())
            self.assertEqual(T.float_noise(body), [], path)
        # and no counter anywhere is published as 0
        for dev_id, d in devices_by_id(st).items():
            for group, fields in (d["reading"] or {}).items():
                for name, v in fields.items():
                    if name.startswith("total_"):
                        self.assertNotEqual(v, 0, f"{dev_id}: {group}.{name}")
        # Today's yield: every device whose vendor document has a day register
        # publishes what the simulator served there (to the register's step:
        # Huawei 0.01 kWh, SMA 1 Wh, the others 0.1 kWh), more than 0 at the
        # simulated noon and no more than the lifetime yield; every other
        # device has no pv.daily_generation_Wh.
        daily_step = {"huawei": 10, "huawei_hybrid": 10, "huawei_hybrid_nometer": 10,
                      "sungrow": 100, "sungrow_sf": 100, "sungrow_nometer": 100,
                      "sungrow_sg": 100, "deye": 100, "deye_micro": 100, "solis": 100,
                      "solis_hybrid": 100, "solis_hybrid_nobattery": 100,
                      "growatt": 100, "goodwe": 100, "sma": 1}
        for dev_id in daily_step:
            self.assertIn(dev_id, profiles)
        for dev_id, d in devices_by_id(st).items():
            pv = (d["reading"] or {}).get("pv", {})
            if dev_id not in daily_step:
                self.assertNotIn("daily_generation_Wh", pv, dev_id)
                continue
            self.assertIn("daily_generation_Wh", pv, (dev_id, pv))
            day = pv["daily_generation_Wh"]
            served = truth[dev_id]["reading"]["pv"]["daily_generation_Wh"]
            self.assertLessEqual(abs(day - served), daily_step[dev_id] / 2 + 1e-6,
                                 (dev_id, day, served))
            self.assertGreater(day, 0, dev_id)
            self.assertLessEqual(day, pv["total_generation_Wh"], dev_id)

        # Frequency: the primary device (the first) is read at 10 Hz.
        f0 = egwd.state()["frequency"]
        time.sleep(1.0)
        f1 = egwd.state()["frequency"]
        self.assertEqual(f1["device"], profiles[0])
        self.assertEqual(f1["interval_ms"], 100)
        t0 = f0["latest"]["ts_ms"]
        new = [s for s in f1["samples"] if s[0] > t0]
        # ~10 in a second (slack for a loaded or sanitised test machine)
        self.assertGreaterEqual(len(new), 6, f1)
        self.assertLessEqual(len(new), 14, f1)
        self.assertGreaterEqual(f1["stats_1s"]["n"], 6)
        hz = truth[profiles[0]]["reading"]["meter"]["Hz"]
        self.assertAlmostEqual(f1["latest"]["hz"], hz, delta=0.011)
        self.assertLessEqual(f1["stats_1s"]["min"], f1["stats_1s"]["mean"])
        self.assertLessEqual(f1["stats_1s"]["mean"], f1["stats_1s"]["max"])
        for k in ("p50", "p99", "max"):
            self.assertIn(k, f1["lateness_us"])
        # MQTT: every device's state messages, every number without float noise
        if mqtt:
            serial = egwd.state()["signer"]["serial"]
            topics = {f"egw/{serial}/{p}/state" for p in profiles}
            T.wait_until(lambda: topics <= {m[0] for m in sub.messages()}, timeout=20,
                         what="a state message of every device")
            states = [m for m in sub.messages() if m[0] in topics]
            for m in states:
                self.assertEqual(T.float_noise(m[1]), [], m)
        sealed = egwd.state()["harvest"]["sealed"]
        T.wait_until(lambda: egwd.state()["harvest"]["sealed"] >= sealed + 1, timeout=20,
                     what="a batch sealed after every device polled")
        stop_clean(self, egwd)
        # Signed batches: every device's readings, every number of the payload
        # and of its decoding without float noise
        toks = [t for _, t in
                egw_batch.stored_tokens(os.path.join(egwd.state_dir, "store.db"))]
        seen = set()
        for tok in toks:
            p = egw_batch.jwt_payload(tok)
            dec = egw_batch.decode(p)
            self.assertEqual(T.float_noise(json.dumps(p)), [])
            self.assertEqual(T.float_noise(json.dumps(dec)), [])
            for d in dec["devices"]:
                if any(poll.get("reading") for poll in d["polls"]):
                    seen.add(d["id"])
        self.assertEqual(seen, set(profiles))


# What each SunSpec brand's egw-sim map serves (its vendor document, cited in
# sim/vendor.c): SolarEdge's model 103 (with meter 1's model 203 on
# solaredge_meter), Fronius's 103 or 113 with 120, 122 and 160.  egwd reads
# them through the SunSpec walk: each field listed is published, no other.
SS_INVERTER_AC = ("W", "VA", "var", "PF", "A", "L1_V", "L2_V", "L3_V", "L1_A", "L2_A", "L3_A")
SS_BRANDS = {
    "solaredge": {"pv": ("W", "total_generation_Wh", "heatsink_C"),
                  "inverter": SS_INVERTER_AC, "meter": ("Hz",)},
    "solaredge_meter": {"pv": ("W", "total_generation_Wh", "heatsink_C"),
                        "inverter": SS_INVERTER_AC,
                        "meter": ("Hz", "W", "L1_W", "L2_W", "L3_W", "L1_V", "L2_V", "L3_V",
                                  "L1_A", "L2_A", "L3_A", "total_import_Wh",
                                  "total_export_Wh")},
    "solaredge_us": {"pv": ("W", "total_generation_Wh", "heatsink_C"),
                     "inverter": SS_INVERTER_AC, "meter": ("Hz",)},
    # Fronius: DCW not implemented, pv.W from model 160's two inputs
    "fronius_sf": {"pv": ("W", "total_generation_Wh", "heatsink_C", "rated_power_W",
                          "mppt1_V", "mppt1_A", "mppt1_W", "mppt2_V", "mppt2_A", "mppt2_W"),
                   "inverter": SS_INVERTER_AC, "meter": ("Hz",)},
    "fronius": {"pv": ("W", "total_generation_Wh", "heatsink_C", "rated_power_W",
                       "mppt1_V", "mppt1_A", "mppt1_W", "mppt2_V", "mppt2_A", "mppt2_W"),
                "inverter": SS_INVERTER_AC, "meter": ("Hz",)},
}


class TestSunSpecBrands(unittest.TestCase):
    """The solaredge, solaredge_us, fronius and fronius_sf profiles read a
    device through the SunSpec walk: every field of the models it serves is
    published with the value egw-sim served, nothing else (no meter object
    beyond the grid frequency for a SolarEdge without a meter, no battery),
    pv.W is the DC power and inverter.W the AC power, and the device keeps
    its brand's profile name."""

    def test_every_field_of_each_brand(self):
        names = list(SS_BRANDS)
        sim, ctl = start_sim(self, names)
        ctl.ok("freeze on")
        devs = [sim.device_settings(i, id=s["profile"]) for i, s in enumerate(sim.servers)]
        egwd = T.Egwd(self, set={"devices": devs, "harvest.poll_interval_ms": 200,
                                 "modbus.timeout_ms": 1000, "http.bind": LOCAL})
        truth = {d["profile"]: d for d in ctl.get()["devices"]}

        def all_polling():
            by = devices_by_id(egwd.state())
            ok = all(by.get(n, {}).get("state") == "polling" and by[n].get("reading")
                     for n in names)
            return by if ok else None
        T.wait_until(all_polling, timeout=20, what="every SunSpec brand polling")
        time.sleep(2.5)  # a verbose poll after the freeze
        by = devices_by_id(egwd.state())
        problems = []
        for n in names:
            d = by[n]
            self.assertEqual(d["profile"], truth[n]["egw_profile"], n)
            self.assertEqual(d["serial"], truth[n]["serial"], n)
            compare(d, truth[n], problems)
            got = {g: sorted(f) for g, f in d["reading"].items()}
            want = {g: sorted(f) for g, f in SS_BRANDS[n].items()}
            self.assertEqual(got, want, n)
            r = d["reading"]
            # PV DC power and AC power are told apart: both negative while
            # producing, the DC side at least the AC output
            self.assertLess(r["inverter"]["W"], 0, n)
            self.assertLess(r["pv"]["W"], 0, n)
            self.assertLessEqual(r["pv"]["W"], r["inverter"]["W"] + 1, n)
            for k in ("total_generation_Wh", "total_import_Wh", "total_export_Wh"):
                for g in r.values():
                    self.assertNotEqual(g.get(k), 0, (n, k))
        self.assertFalse(problems, "\n".join(problems))
        # /api/device/supported lists what the walk of each brand's documented
        # map reads: the AC side, and SolarEdge's meter 1
        _, _, body = T.http(egwd.port, "GET", "/api/device/supported", headers=egwd.auth())
        sup = {p["name"]: p for p in json.loads(body)["profiles"]}
        for n in ("solaredge", "solaredge_us", "fronius", "fronius_sf"):
            self.assertTrue(sup[n]["sunspec"], n)
            self.assertEqual(sup[n]["family"], "sunspec", n)
            for k in ("inverter.VA", "inverter.PF", "inverter.L1_V", "pv.W"):
                self.assertIn(k, sup[n]["reads"], n)
        self.assertIn("meter.L1_W", sup["solaredge"]["reads"])
        self.assertIn("pv.mppt2_W", sup["fronius"]["reads"])
        stop_clean(self, egwd)


class TestUnsupportedBlocks(unittest.TestCase):
    """A Sungrow SG string inverter read with the SH hybrid's `sungrow`
    profile answers exception 2 (illegal data address) for the hybrid-only
    blocks.  egwd asks for each such block once, then skips it (not on every
    poll), keeps its values absent (never 0), and lists it in /api/state."""

    def test_sungrow_sg_exception_2(self):
        sim, ctl = start_sim(self, ["sungrow_sg"])
        dev = sim.device_settings(0, id="sg")
        self.assertEqual(dev["profile"], "sungrow")
        egwd = T.Egwd(self, set={"devices": [dev], "harvest.poll_interval_ms": 100,
                                 "modbus.timeout_ms": 1000, "http.bind": LOCAL})

        def listed():
            d = devices_by_id(egwd.state()).get("sg", {})
            return d if d.get("state") == "polling" and d.get("unsupported_blocks") else None
        d = T.wait_until(listed, timeout=20, what="the SG polling with refused blocks")
        refused = {(b["fc"], b["addr"]) for b in d["unsupported_blocks"]}
        self.assertIn((4, 12999), refused)  # the 13000 battery and energy block
        exc0, polls0 = d["stats"]["exceptions"], d["stats"]["polls"]

        def later():
            d = devices_by_id(egwd.state())["sg"]
            return d if d["stats"]["polls"] >= polls0 + 20 else None
        d = T.wait_until(later, timeout=30, what="20 more polls")
        # nothing refused again: the blocks were not asked for
        self.assertEqual(d["stats"]["exceptions"], exc0, d["stats"])
        self.assertEqual({(b["fc"], b["addr"]) for b in d["unsupported_blocks"]}, refused)
        for b in d["unsupported_blocks"]:
            self.assertGreater(b["retry_in_s"], 0)
        self.assertGreaterEqual(max(b["skipped"] for b in d["unsupported_blocks"]), 1)
        # its values absent, never 0; the string inverter's own values there
        rd = d["reading"]
        self.assertNotIn("battery", rd)
        for k in ("W", "total_import_Wh", "total_export_Wh"):
            self.assertNotIn(k, rd.get("meter", {}))
        self.assertGreater(rd["pv"]["total_generation_Wh"], 0)
        stop_clean(self, egwd)


class TestSerialLines(unittest.TestCase):
    """RTU: two units sharing one serial line (the simulator's pty), and the
    same frames tunnelled over TCP (rtu-over-tcp, through socat)."""

    def check(self, sim, ctl, devs):
        ctl.ok("freeze on")
        egwd = T.Egwd(self, set={"devices": devs, "harvest.poll_interval_ms": 300,
                                 "modbus.timeout_ms": 1000, "http.bind": LOCAL})

        def ready():
            by = devices_by_id(egwd.state())
            return all(d["state"] == "polling" and d["serial"] and d["reading"]
                       for d in by.values()) and by

        try:
            T.wait_until(ready, timeout=20, what="serial devices polling")
        except TimeoutError:
            self.fail(json.dumps(egwd.state()["devices"])[:3000] + "\n" + egwd.output()[-3000:])
        time.sleep(3.5)  # a verbose poll after the freeze
        by = devices_by_id(egwd.state())
        truth = ctl.get()["devices"]
        problems = []
        for i, dv in enumerate(devs):
            compare(by[dv["id"]], truth[i], problems)
        self.assertFalse(problems, "\n".join(problems))
        return egwd, by

    def test_rtu_two_units_on_one_line(self):
        d = T.tempdir(self)
        path = os.path.join(d, "pty")
        sim = T.Proc([T.binary("egw-sim"), "--profile", "sdm630", "--rtu-pty", path, "--unit-id", 2,
                      "--profile", "sungrow", "--rtu-pty", path, "--unit-id", 5,
                      "--control-port", T.free_port()], name="egw-sim")
        self.addCleanup(sim.stop)
        out = sim.wait_output("egw-sim: ready", timeout=10)
        ctl_port = int([ln for ln in out.splitlines() if "control tcp" in ln][0].rsplit(":", 1)[1])
        ctl = Ctl(self, ctl_port)
        devs = [{"id": "meter", "connection": "rtu", "serial_port": path, "baudrate": 9600,
                 "parity": "N", "unit_id": 2, "profile": "sdm630"},
                {"id": "inverter", "connection": "rtu", "serial_port": path, "baudrate": 9600,
                 "parity": "N", "unit_id": 5, "profile": "sungrow"}]
        egwd, by = self.check(sim, ctl, devs)
        stop_clean(self, egwd)
        for dv in by.values():
            self.assertEqual(dv["stats"]["modbus"]["devices_on_link"], 2)
            self.assertEqual(dv["connection"]["connection"], "rtu")

    def test_rtu_over_tcp(self):
        if not shutil.which("socat"):
            self.skipTest("socat not installed")
        d = T.tempdir(self)
        path = os.path.join(d, "pty")
        sim = T.Proc([T.binary("egw-sim"), "--profile", "solaredge", "--rtu-pty", path,
                      "--unit-id", 3, "--control-port", T.free_port()], name="egw-sim")
        self.addCleanup(sim.stop)
        out = sim.wait_output("egw-sim: ready", timeout=10)
        ctl_port = int([ln for ln in out.splitlines() if "control tcp" in ln][0].rsplit(":", 1)[1])
        ctl = Ctl(self, ctl_port)
        port = T.free_port()
        bridge = T.Proc(["socat", "-d", "-d", f"TCP-LISTEN:{port},bind={LOCAL},reuseaddr",
                         f"OPEN:{path},rawer"], name="socat")
        self.addCleanup(bridge.stop)
        bridge.wait_output("listening on", timeout=10)  # one session: no probe connection
        devs = [{"id": "se", "connection": "rtu-over-tcp", "host": LOCAL, "port": port,
                 "unit_id": 3, "profile": "solaredge"}]
        egwd, by = self.check(sim, ctl, devs)
        stop_clean(self, egwd)
        self.assertEqual(by["se"]["connection"]["connection"], "rtu-over-tcp")


class TestHostNames(unittest.TestCase):
    """A device given by host name is looked up off the loop thread and
    polled; a name that does not resolve leaves that device retrying with its
    error shown, and the others polling."""

    def test_named_and_unresolvable_hosts(self):
        sim = T.EgwSim(self, [("solaredge", 1)], control=False)
        devs = [sim.device_settings(0, id="named", host="localhost"),
                sim.device_settings(0, id="nowhere", host="no-such-host.invalid")]
        egwd = T.Egwd(self, set={"devices": devs, "harvest.poll_interval_ms": 300,
                                 "http.bind": LOCAL})

        def named_polling():
            by = devices_by_id(egwd.state())
            return by["named"]["state"] == "polling" and by["named"]["serial"] and by

        by = T.wait_until(named_polling, timeout=20, what="device 'localhost' polling")
        time.sleep(1.0)
        by = devices_by_id(egwd.state())
        self.assertNotEqual(by["nowhere"]["state"], "polling", json.dumps(by["nowhere"]))
        self.assertEqual(by["nowhere"]["stats"]["last_error"], "host name not found")
        self.assertIn(by["nowhere"]["state"], ("connecting", "backing off", "disconnected"))
        st, _, _ = T.http(egwd.port, "GET", "/api/hello")
        self.assertEqual(st, 200)
        stop_clean(self, egwd)


class TestFaults(unittest.TestCase):
    """One simulated inverter, every fault class in turn."""

    def setUp(self):
        self.sim, self.ctl = start_sim(self, ["huawei"])
        self.egwd = T.Egwd(self, set={
            "devices": [self.sim.device_settings(0, id="inv")],
            "harvest.poll_interval_ms": 200, "modbus.timeout_ms": 300, "http.bind": LOCAL})
        self.wait_polling()

    def dev(self):
        if not self.egwd.alive():
            raise RuntimeError(f"egwd exited {self.egwd.p.returncode}:\n{self.egwd.output()[-4000:]}")
        st = self.egwd.state()
        return devices_by_id(st)["inv"]

    def wait_state(self, states, timeout=8.0):
        return T.wait_until(lambda: self.dev()["state"] in states and self.dev(),
                            timeout=timeout, what=f"state in {states}")

    def wait_polling(self, timeout=10.0):
        d = self.wait_state(("polling",), timeout)
        good = d["stats"]["last_good_ms"] or 0
        # ... and reading again (a fresh complete poll after this point).
        T.wait_until(lambda: (self.dev()["stats"]["last_good_ms"] or 0) > good,
                     timeout=timeout, what="a fresh good poll")
        d = self.dev()
        self.assertTrue(d["serial"])
        return d

    def recover(self, timeout=10.0):
        self.ctl.ok("clear")
        self.wait_polling(timeout)
        self.assertTrue(self.egwd.alive())

    def test_faults(self):
        serial = self.dev()["serial"]
        self.assertTrue(serial)

        # No answers: the device stops polling and backs off.
        self.ctl.ok("fault timeout on")
        self.wait_state(("backing off", "connecting", "identifying", "asleep"))
        self.assertGreater(self.dev()["stats"]["timeouts"], 0)
        self.recover()

        # Every request refused with an exception.
        self.ctl.ok("fault exception 4")
        self.wait_state(("backing off", "connecting", "identifying"))
        self.assertGreater(self.dev()["stats"]["exceptions"], 0)
        self.recover()

        # Wrong transaction ids: stale answers are drained, requests time out.
        self.ctl.ok("fault tid on")
        self.wait_state(("backing off", "connecting", "identifying", "asleep"))
        self.assertGreater(self.dev()["stats"]["modbus"]["tid_mismatches"], 0)
        self.recover()

        # Garbage instead of answers.
        errors = self.dev()["stats"]["errors"]
        self.ctl.ok("fault garbage on")
        T.wait_until(lambda: self.dev()["stats"]["errors"] > errors, timeout=5,
                     what="errors from garbage")
        self.wait_state(("backing off", "connecting", "identifying", "asleep"))
        self.recover()

        # Slow answers (under the timeout): still polling, latency shows it.
        self.ctl.ok("fault slow 120")
        T.wait_until(lambda: self.dev()["stats"]["latency_last_ms"] >= 120, timeout=5,
                     what="slow latency seen")
        self.assertEqual(self.dev()["state"], "polling")
        self.recover()
        T.wait_until(lambda: self.dev()["stats"]["latency_last_ms"] < 120, timeout=5,
                     what="fast again")

        # The connection is dropped on every request.
        errors = self.dev()["stats"]["errors"]
        self.ctl.ok("fault drop on")
        T.wait_until(lambda: self.dev()["stats"]["errors"] > errors, timeout=5,
                     what="errors from drops")
        self.wait_state(("backing off", "connecting", "identifying", "asleep"))
        self.recover()

        # Single client: egwd holds its connection; a second client is turned away.
        self.ctl.ok("fault single-client on")
        port = self.sim.servers[0]["port"]
        polls = self.dev()["stats"]["polls_ok"]
        try:
            with socket.create_connection((LOCAL, port), timeout=2) as other:
                # A read request from the intruder (unit 1, fc 3, 30000, 1 register).
                other.sendall(bytes([0, 1, 0, 0, 0, 6, 1, 3, 0x75, 0x30, 0, 1]))
                other.settimeout(2)
                got = other.recv(64)
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            got = b""  # turned away (reset at once, or never answered)
        self.assertEqual(got, b"", "the second client was served")
        time.sleep(1.0)
        d = self.dev()
        self.assertEqual(d["state"], "polling")
        self.assertGreater(d["stats"]["polls_ok"], polls + 2)
        self.recover()

        # Night: the inverter refuses connections.  egwd goes asleep, not into an
        # error storm, and wakes up when the inverter does.
        self.ctl.ok("sleep on")
        d = self.wait_state(("asleep",), timeout=15)
        attempts = d["fsm"]["counts"].get("asleep -> connecting", 0)
        time.sleep(2.0)
        d = self.dev()
        # sleep retry is 30 polls (6 s here): at most one attempt in 2 s
        self.assertLessEqual(d["fsm"]["counts"].get("asleep -> connecting", 0), attempts + 1)
        self.ctl.ok("sleep off")
        self.wait_polling(timeout=12)
        self.assertEqual(self.dev()["serial"], serial)
        self.assertTrue(self.egwd.alive())
        st, _, _ = T.http(self.egwd.port, "GET", "/")
        self.assertEqual(st, 200)
        stop_clean(self, self.egwd)


if __name__ == "__main__":
    unittest.main()
