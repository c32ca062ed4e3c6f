"""Device identity and the Home Assistant lifecycle against a real mosquitto:
ids chosen once and kept across restarts with devices removed, reordered and
re-added (same ids, same HA unique_ids, totals that never go back); removed
devices' retained discovery configs deleted from the broker (through the API,
and at the next start for a device removed while egwd was down); and every
discovery config checked against Home Assistant's documented MQTT schema and
naming rules."""
import json
import os
import re
import shutil
import subprocess
import time
import unittest

import egwtest as t
from test_mqtt import MOSQUITTO, Broker, Subscriber

PREFIX = "homeassistant"


def retained(port, topic_filter, wait=1):
    """{topic: payload} of the retained messages the broker holds for a filter
    (a fresh client: exactly what Home Assistant would find on connecting)."""
    r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic_filter,
                        "--retained-only", "-v", "-W", str(wait), "-F", "%t %p"],
                       capture_output=True, text=True, timeout=wait + 10)
    out = {}
    for line in r.stdout.splitlines():
        topic, _, payload = line.partition(" ")
        if payload:
            out[topic] = payload
    return out


def write_devices(state_dir, devices):
    """The settings file as a user edits it: only the device list."""
    with open(os.path.join(state_dir, "settings.json"), "w") as f:
        json.dump({"devices": devices}, f)


def read_devices(state_dir):
    with open(os.path.join(state_dir, "settings.json")) as f:
        return json.load(f)["devices"]


# Home Assistant's MQTT sensor / binary_sensor discovery keys and device
# keys (home-assistant.io/integrations/sensor.mqtt, binary_sensor.mqtt,
# "Device" in mqtt discovery); object_id is deprecated (2025.10) in favour of
# default_entity_id and is refused here.
COMMON_KEYS = {"availability", "availability_mode", "availability_template",
               "availability_topic", "device", "device_class", "default_entity_id",
               "enabled_by_default", "encoding", "entity_category", "entity_picture",
               "expire_after", "force_update", "icon", "json_attributes_template",
               "json_attributes_topic", "name", "payload_available", "payload_not_available",
               "platform", "qos", "state_topic", "unique_id", "value_template"}
SENSOR_KEYS = COMMON_KEYS | {"last_reset_value_template", "options", "state_class",
                             "suggested_display_precision", "unit_of_measurement"}
BINARY_KEYS = COMMON_KEYS | {"off_delay", "payload_off", "payload_on"}
DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer",
               "model", "model_id", "name", "serial_number", "suggested_area", "sw_version",
               "via_device"}
# Sensor device classes used here, with the units and state classes HA accepts.
DEVICE_CLASSES = {
    "power": ({"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"}, {"measurement"}),
    "energy": ({"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal",
                "Mcal", "Gcal"}, {"total", "total_increasing"}),
    "voltage": ({"V", "mV", "µV", "kV", "MV"}, {"measurement"}),
    "current": ({"A", "mA"}, {"measurement"}),
    "frequency": ({"Hz", "kHz", "MHz", "GHz"}, {"measurement"}),
    "temperature": ({"°C", "°F", "K"}, {"measurement"}),
    "battery": ({"%"}, {"measurement"}),
    "apparent_power": ({"VA", "kVA"}, {"measurement"}),
    "reactive_power": ({"var", "kvar"}, {"measurement"}),
    "power_factor": ({"%", None}, {"measurement"}),
    # no device class: a percentage HA has no class for (a battery's state of
    # health; the "battery" class would show it as its charge)
    None: ({"%"}, {"measurement"}),
}
TOPIC = re.compile(r"^" + PREFIX + r"/(sensor|binary_sensor)/([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)/config$")


def check_config(topic, cfg, devices_by_id):
    """Problems with one discovery config (empty when it follows HA's schema)."""
    bad = []
    m = TOPIC.match(topic)
    if not m:
        return [f"{topic}: not <prefix>/<component>/<node_id>/<object_id>/config"]
    component = m.group(1)
    allowed = SENSOR_KEYS if component == "sensor" else BINARY_KEYS
    extra = set(cfg) - allowed
    if extra:
        bad.append(f"{topic}: keys HA does not document: {sorted(extra)}")
    if "object_id" in cfg:
        bad.append(f"{topic}: deprecated object_id")
    for k in ("unique_id", "state_topic", "name", "default_entity_id", "device"):
        if k not in cfg:
            bad.append(f"{topic}: no {k}")
    if bad:
        return bad
    if not re.fullmatch(component + r"\.[a-z0-9_]+", cfg["default_entity_id"]):
        bad.append(f"{topic}: default_entity_id {cfg['default_entity_id']!r} is not "
                   f"{component}.<lowercase slug>")
    dev = cfg["device"]
    if set(dev) - DEVICE_KEYS:
        bad.append(f"{topic}: device keys HA does not document: {sorted(set(dev) - DEVICE_KEYS)}")
    if not dev.get("identifiers") or not isinstance(dev["identifiers"], list):
        bad.append(f"{topic}: device without identifiers")
    for k in ("name", "manufacturer", "model"):
        if not dev.get(k):
            bad.append(f"{topic}: device without {k}")
    url = dev.get("configuration_url", "")
    if not re.match(r"^https?://[^/]+/", url):
        bad.append(f"{topic}: configuration_url {url!r} is not the gateway's UI")
    name = cfg["name"]
    # HA's naming: the entity name is the entity's own part ("PV power"); HA
    # puts the device name in front, so it must not start with it.
    if not isinstance(name, str) or not name or name.lower().startswith(dev["name"].lower()):
        bad.append(f"{topic}: entity name {name!r} repeats the device name {dev['name']!r}")
    elif "_" in name or not name[0].isupper():
        bad.append(f"{topic}: entity name {name!r} is a key, not words")
    ec = cfg.get("entity_category")
    if ec is not None and ec not in ("diagnostic", "config"):
        bad.append(f"{topic}: entity_category {ec!r}")
    if component == "binary_sensor":
        return bad
    dc, unit, sc = cfg.get("device_class"), cfg.get("unit_of_measurement"), cfg.get("state_class")
    if dc not in DEVICE_CLASSES:
        bad.append(f"{topic}: device_class {dc!r} not checked")
        return bad
    units, classes = DEVICE_CLASSES[dc]
    if unit not in units:
        bad.append(f"{topic}: unit {unit!r} is not valid for device_class {dc}")
    if sc is not None and sc not in classes:
        bad.append(f"{topic}: state_class {sc!r} is not valid for device_class {dc}")
    if sc is None and ec != "diagnostic":
        bad.append(f"{topic}: a measurement without state_class")
    if "rated_power" in topic and (ec != "diagnostic" or sc is not None):
        bad.append(f"{topic}: a constant published as a measurement")
    p = cfg.get("suggested_display_precision")
    if not isinstance(p, int) or not 0 <= p <= 3:
        bad.append(f"{topic}: suggested_display_precision {p!r}")
    return bad


@unittest.skipUnless(os.path.exists(MOSQUITTO) and shutil.which("mosquitto_sub"),
                     "needs mosquitto and mosquitto-clients")
class HaLifecycleTest(unittest.TestCase):
    def setUp(self):
        self.broker = Broker(self)
        self.broker.start()
        self.sub = Subscriber(self, self.broker.port)
        time.sleep(0.3)
        self.sim = t.EgwSim(self, [("sungrow", 1), ("sdm630", 2), ("sunspec", 3)], control=False)
        self.mqtt = {"mqtt.enabled": True, "mqtt.host": "127.0.0.1",
                     "mqtt.port": self.broker.port}

    def states(self, serial):
        """{device id: [state JSON, ...]} as the subscriber received them."""
        out = {}
        for topic, payload, _ in self.sub.messages():
            parts = topic.split("/")
            if len(parts) == 4 and parts[:2] == ["egw", serial] and parts[3] == "state":
                out.setdefault(parts[2], []).append(json.loads(payload))
        return out

    def wait_states(self, serial, ids, after):
        """Until each device in ids published 2 states after the counts `after`."""
        def ok():
            s = self.states(serial)
            return all(len(s.get(i, [])) >= after.get(i, 0) + 2 for i in ids)
        t.wait_until(ok, timeout=30, what=f"states of {ids}")

    def uids(self, serial, dev_id):
        """The unique_ids of a device's retained discovery configs."""
        cfgs = retained(self.broker.port, f"{PREFIX}/sensor/egw_{serial}_{dev_id}/+/config")
        return {json.loads(p)["unique_id"] for p in cfgs.values()}

    def wait_gone(self, serial, dev_id):
        t.wait_until(lambda: not retained(self.broker.port,
                                          f"{PREFIX}/sensor/egw_{serial}_{dev_id}/+/config"),
                     timeout=20, what=f"{dev_id}'s retained configs deleted")
        avail = retained(self.broker.port, f"egw/{serial}/{dev_id}/availability")
        self.assertEqual(list(avail.values()), ["offline"], avail)

    def test_ids_kept_across_restarts_and_removed_devices_leave_ha(self):
        d = t.tempdir(self, "egw-ha-")
        inv, meter, ss = (self.sim.device_settings(i) for i in range(3))
        # 1. a settings file whose devices have no ids: egwd assigns them once
        write_devices(d, [inv, meter, ss])
        egwd = t.Egwd(self, state_dir=d, set=self.mqtt)
        serial = egwd.state()["signer"]["serial"]
        saved = read_devices(d)
        self.assertEqual([x.get("id") for x in saved], ["dev0", "dev1", "dev2"], saved)
        self.wait_states(serial, ["dev0", "dev1", "dev2"], {})
        profiles = {i: self.states(serial)[i][0]["profile"] for i in ("dev0", "dev1", "dev2")}
        self.assertEqual(profiles, {"dev0": "sungrow", "dev1": "sdm630", "dev2": "sunspec"})
        uids = {}
        t.wait_until(lambda: all(self.uids(serial, i) for i in profiles), timeout=15,
                     what="discovery of every device")
        for i in profiles:
            uids[i] = self.uids(serial, i)
            self.assertTrue(all(u.startswith(f"egw_{serial}_{i}_") for u in uids[i]), uids[i])
        self.assertEqual(egwd.stop(), 0)

        # 2. the first device removed and the others reordered, while egwd is down
        by_id = {x["id"]: x for x in saved}
        write_devices(d, [by_id["dev2"], by_id["dev1"]])
        count = {k: len(v) for k, v in self.states(serial).items()}
        egwd = t.Egwd(self, state_dir=d, set=self.mqtt)
        self.assertEqual([x["id"] for x in egwd.get("/api/device")["devices"]], ["dev2", "dev1"])
        self.wait_states(serial, ["dev2", "dev1"], count)
        self.wait_gone(serial, "dev0")
        self.assertGreaterEqual(egwd.state()["mqtt"]["removed"], len(uids["dev0"]))
        self.assertEqual(self.uids(serial, "dev1"), uids["dev1"])
        self.assertEqual(self.uids(serial, "dev2"), uids["dev2"])

        # 3. re-added through the API under its id; another removed through the API
        st, obj = t.http_json(egwd.port, "POST", "/api/device", dict(inv, id="dev0"),
                              headers=egwd.auth())
        self.assertEqual(st, 201, obj)
        count = {k: len(v) for k, v in self.states(serial).items()}
        self.wait_states(serial, ["dev0"], count)
        t.wait_until(lambda: self.uids(serial, "dev0") == uids["dev0"], timeout=15,
                     what="dev0 announced again under its unique_ids")
        st, obj = t.http_json(egwd.port, "DELETE", "/api/device?id=dev1", headers=egwd.auth())
        self.assertEqual(st, 200, obj)
        self.wait_gone(serial, "dev1")
        self.assertEqual(self.uids(serial, "dev2"), uids["dev2"])
        self.assertEqual(egwd.stop(), 0)

        # 4. the meter back at the front, by hand, under its id: everyone keeps theirs
        now = read_devices(d)
        self.assertEqual([x["id"] for x in now], ["dev2", "dev0"])
        write_devices(d, [by_id["dev1"]] + now)
        count = {k: len(v) for k, v in self.states(serial).items()}
        egwd = t.Egwd(self, state_dir=d, set=self.mqtt)
        self.wait_states(serial, ["dev0", "dev1", "dev2"], count)
        t.wait_until(lambda: all(self.uids(serial, i) == uids[i] for i in uids), timeout=15,
                     what="every device under its first unique_ids")
        self.assertEqual(egwd.stop(), 0)

        # Over all four runs: one device per id, and no total went backwards.
        for dev_id, seq in self.states(serial).items():
            self.assertEqual({s["profile"] for s in seq}, {profiles[dev_id]}, dev_id)
            for group, key in (("pv", "total_generation_Wh"), ("meter", "total_import_Wh"),
                               ("meter", "total_export_Wh"), ("battery", "total_charge_Wh"),
                               ("battery", "total_discharge_Wh")):
                vals = [s[group][key] for s in seq if key in s.get(group, {})]
                self.assertEqual(vals, sorted(vals), f"{dev_id} {group}.{key} went backwards")

    def test_discovery_follows_home_assistant_schema(self):
        devs = [self.sim.device_settings(0, id="roof", name="Roof inverter"),
                self.sim.device_settings(1, id="grid.meter"),
                self.sim.device_settings(2, id="garage")]
        egwd = t.Egwd(self, set=dict(self.mqtt, devices=devs))
        serial = egwd.state()["signer"]["serial"]
        self.wait_states(serial, ["roof", "grid.meter", "garage"], {})
        time.sleep(1)
        cfgs = {k: json.loads(v) for k, v in
                retained(self.broker.port, f"{PREFIX}/+/+/+/config", wait=2).items()}
        self.assertTrue(cfgs)
        bad, seen_uids, identifiers = [], {}, set()
        for topic, cfg in sorted(cfgs.items()):
            bad += check_config(topic, cfg, devs)
            uid = cfg.get("unique_id")
            if uid in seen_uids:
                bad.append(f"{topic}: unique_id {uid} also at {seen_uids[uid]}")
            seen_uids[uid] = topic
            identifiers.update(cfg.get("device", {}).get("identifiers", []))
        # via_device names a device that exists: the gateway's own
        gw = f"egw_{serial}"
        if gw not in identifiers:
            bad.append(f"no Home Assistant device for the gateway ({gw})")
        for topic, cfg in cfgs.items():
            via = cfg.get("device", {}).get("via_device")
            if topic.startswith(f"{PREFIX}/sensor/") and via != gw:
                bad.append(f"{topic}: via_device {via!r}, not the gateway {gw}")
        self.assertEqual(bad, [], "\n".join(bad))

        by_topic = lambda node, obj: cfgs.get(f"{PREFIX}/sensor/egw_{serial}_{node}/{obj}/config")
        pv = by_topic("roof", "pv_W")
        self.assertEqual(pv["name"], "PV power")
        self.assertEqual(pv["device"]["name"], "Roof inverter")
        self.assertEqual(pv["device"]["manufacturer"], "Sungrow")
        self.assertEqual(pv["device"]["configuration_url"], f"http://127.0.0.1:{egwd.port}/")
        state = egwd.get("/api/device")["devices"]
        roof = [x for x in state if x["id"] == "roof"][0]
        self.assertEqual(pv["device"].get("serial_number"), roof["serial"])
        self.assertEqual(by_topic("grid_meter", "meter_Hz")["name"], "Grid frequency")
        # today's yield: an energy sensor HA may see go back to 0 at midnight
        day = by_topic("roof", "pv_daily_generation_Wh")
        self.assertEqual((day["name"], day["device_class"], day["state_class"],
                          day["unit_of_measurement"]),
                         ("PV energy today", "energy", "total_increasing", "Wh"))
        # The meter has no PV and no battery: no entities for them.
        meter = [k for k in cfgs if f"egw_{serial}_grid_meter/" in k]
        self.assertTrue(meter)
        self.assertFalse([k for k in meter if "/pv_" in k or "/battery_" in k], meter)
        # The gateway's status entity carries egw's version.
        gwcfg = cfgs[f"{PREFIX}/binary_sensor/{gw}/status/config"]
        self.assertTrue(gwcfg["device"]["sw_version"])
        self.assertEqual(egwd.stop(), 0)


class IdentityTest(unittest.TestCase):
    def test_replaced_and_duplicate_units_are_reported(self):
        """A unit whose serial differs from the one last seen under its id (a
        replaced inverter, here while egwd was down) is reported in /api/state,
        not silently merged; one unit reached through two addresses is
        reported as a duplicate; the API refuses to add a device whose serial
        (from a scan) is already identified."""
        sim = t.EgwSim(self, [("sungrow", 1), ("sdm630", 2)], control=False)
        d = t.tempdir(self, "egw-ident-")
        write_devices(d, [sim.device_settings(0, id="inv")])
        egwd = t.Egwd(self, state_dir=d)

        def serial_of(dev_id):
            return [x for x in egwd.get("/api/device")["devices"] if x["id"] == dev_id][0]["serial"]
        serial = t.wait_until(lambda: serial_of("inv"), timeout=15, what="inv identified")
        with open(os.path.join(d, "device-serials.json")) as f:
            self.assertEqual(json.load(f), {"inv": serial})
        self.assertEqual(egwd.state()["identity"], {"replaced": [], "duplicates": []})
        st, obj = t.http_json(egwd.port, "POST", "/api/device",
                              sim.device_settings(1, serial=serial), headers=egwd.auth())
        self.assertEqual(st, 409, obj)
        self.assertIn("inv", json.dumps(obj))
        self.assertEqual(len(egwd.get("/api/device")["devices"]), 1)
        # Removed, then added back from a scan result (with its serial, without
        # an id): it gets its old id back, so its history carries on.
        st, obj = t.http_json(egwd.port, "DELETE", "/api/device?id=inv", headers=egwd.auth())
        self.assertEqual(st, 200, obj)
        st, obj = t.http_json(egwd.port, "POST", "/api/device",
                              sim.device_settings(0, serial=serial), headers=egwd.auth())
        self.assertEqual(st, 201, obj)
        self.assertEqual(obj["device"]["id"], "inv")
        self.assertNotIn("serial", read_devices(d)[0])
        self.assertEqual(egwd.stop(), 0)

        # Another unit was at this address before: egwd finds out at identification.
        with open(os.path.join(d, "device-serials.json"), "w") as f:
            json.dump({"inv": "OLD-UNIT-1"}, f)
        # ... and the same inverter added a second time under another address.
        write_devices(d, [sim.device_settings(0, id="inv"),
                          sim.device_settings(0, id="again", host="localhost")])
        egwd = t.Egwd(self, state_dir=d)
        ident = t.wait_until(lambda: (lambda i: i if i["replaced"] and i["duplicates"] else None)(
            egwd.state()["identity"]), timeout=15, what="replacement and duplicate reported")
        self.assertEqual([(r["id"], r["was"], r["serial"]) for r in ident["replaced"]],
                         [("inv", "OLD-UNIT-1", serial)])
        dup = ident["duplicates"][0]
        self.assertEqual({dup["id"], dup["same_as"]}, {"inv", "again"})
        self.assertEqual(dup["serial"], serial)
        self.assertEqual(egwd.stop(), 0)



@unittest.skipUnless(os.path.exists(MOSQUITTO) and shutil.which("mosquitto_sub"),
                     "needs mosquitto and mosquitto-clients")
class NoMeterTest(unittest.TestCase):
    """A hybrid inverter with no meter connected: no grid power, phase values
    or totals in the API, in MQTT states, as Home Assistant entities or in
    signed batches; its battery and the frequency it measures itself are
    there."""

    def test_hybrid_without_meter_has_no_grid_reading(self):
        """Sungrow (egw-sim sungrow_nometer): meter power reads 0x7FFFFFFF."""
        self.check_no_meter("sungrow_nometer")

    def test_huawei_hybrid_without_meter_has_no_grid_reading(self):
        """Huawei (egw-sim huawei_hybrid_nometer): the meter status (37100)
        says offline."""
        self.check_no_meter("huawei_hybrid_nometer")

    def check_no_meter(self, model):
        from test_pipeline import DevBackend, egwd_for, egw_batch
        broker = Broker(self)
        broker.start()
        sub = Subscriber(self, broker.port)
        time.sleep(0.3)
        sim = t.EgwSim(self, [(model, 1)], control=False)
        port = t.free_port()
        be = DevBackend(self, port)
        egwd = egwd_for(self, port, be.port, interval_ms=1000, extra={
            "devices": [sim.device_settings(0, id="hybrid")], "harvest.poll_interval_ms": 200,
            "mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": broker.port})
        serial = egwd.state()["signer"]["serial"]
        gone = ("W", "L1_W", "L2_W", "L3_W", "L1_A", "L2_A", "L3_A", "total_import_Wh",
                "total_export_Wh")

        def reading():
            d = egwd.get("/api/device")["devices"][0]
            return d["reading"] if d["state"] == "polling" and d["reading"] else None
        r = t.wait_until(reading, timeout=20, what="a reading")
        self.assertIn("SoC_nom_fract", r["battery"])
        self.assertIn("Hz", r["meter"])
        self.assertEqual([k for k in gone if k in r["meter"]], [], r)

        def states():
            return [json.loads(p) for tp, p, _ in sub.messages()
                    if tp == f"egw/{serial}/hybrid/state"]
        t.wait_until(lambda: len(states()) >= 2, timeout=20, what="MQTT states")
        for s in states():
            self.assertEqual([k for k in gone if k in s.get("meter", {})], [], s)
        node = f"{PREFIX}/sensor/egw_{serial}_hybrid"
        t.wait_until(lambda: f"{node}/battery_SoC_nom_fract/config"
                     in retained(broker.port, f"{node}/+/config"), timeout=15,
                     what="discovery")
        cfgs = retained(broker.port, f"{node}/+/config", wait=2)
        self.assertIn(f"{node}/meter_Hz/config", cfgs)
        self.assertEqual([k for k in cfgs if k.split("/")[-2] in
                          {"meter_" + g for g in gone}], [], sorted(cfgs))

        def batch():
            for rec in be.records():
                p = rec["payload"]
                if p.get("devices") and len(p["devices"][0]["polls"]) > 1:
                    return p
        p = t.wait_until(batch, timeout=30, interval=0.2, what="a batch with polls")
        polls = egw_batch.decode(p)["devices"][0]["polls"]
        self.assertTrue(all("battery" in x["reading"] for x in polls), polls[0])
        for x in polls:
            self.assertEqual([k for k in gone if k in x["reading"].get("meter", {})], [],
                             x["reading"])
        self.assertEqual(egwd.stop(), 0)


@unittest.skipUnless(os.path.exists(MOSQUITTO) and shutil.which("mosquitto_sub"),
                     "needs mosquitto and mosquitto-clients")
class NodeIdTest(unittest.TestCase):
    def test_ids_that_read_alike_get_their_own_entities(self):
        """Device ids "grid.meter" and "grid_meter" used to share one HA node
        and unique_ids (HA merged them into one device).  Now "grid_meter"
        keeps its node, "grid.meter" is escaped while both exist, and goes
        back to the node it always had once the other is removed."""
        broker = Broker(self)
        broker.start()
        sim = t.EgwSim(self, [("sdm630", 1), ("sdm630", 2)], control=False)
        devs = [sim.device_settings(0, id="grid.meter"), sim.device_settings(1, id="grid_meter")]
        egwd = t.Egwd(self, set={"devices": devs, "mqtt.enabled": True,
                                 "mqtt.host": "127.0.0.1", "mqtt.port": broker.port})
        serial = egwd.state()["signer"]["serial"]
        plain, escaped = f"egw_{serial}_grid_meter", f"egw_{serial}_grid_2emeter"

        def configs(node):
            return {k: json.loads(v) for k, v in
                    retained(broker.port, f"{PREFIX}/sensor/{node}/+/config").items()}
        t.wait_until(lambda: f"{PREFIX}/sensor/{plain}/meter_W/config" in configs(plain)
                     and f"{PREFIX}/sensor/{escaped}/meter_W/config" in configs(escaped),
                     timeout=20, what="both meters announced")
        time.sleep(1)
        a, b = configs(escaped), configs(plain)
        self.assertEqual({c["state_topic"] for c in a.values()},
                         {f"egw/{serial}/grid.meter/state"})
        self.assertEqual({c["state_topic"] for c in b.values()},
                         {f"egw/{serial}/grid_meter/state"})
        uids = [c["unique_id"] for c in list(a.values()) + list(b.values())]
        self.assertEqual(len(uids), len(set(uids)), uids)

        st, obj = t.http_json(egwd.port, "DELETE", "/api/device?id=grid_meter",
                              headers=egwd.auth())
        self.assertEqual(st, 200, obj)
        t.wait_until(lambda: not configs(escaped) and configs(plain) and
                     {c["state_topic"] for c in configs(plain).values()}
                     == {f"egw/{serial}/grid.meter/state"},
                     timeout=20, what="grid.meter back under its own node")
        self.assertEqual(egwd.stop(), 0)


if __name__ == "__main__":
    unittest.main()
