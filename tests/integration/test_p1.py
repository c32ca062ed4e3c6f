"""P1 smart meters end to end: egwd reads egw-sim's P1 meters (a DSMR 5
telegram every second, and the Swedish HAN variant) through TCP, as through
a ser2net bridge.

- egwd's reading of each meter equals, field for field and exactly, the
  telegram the simulator sent, decoded here independently (Decimal
  arithmetic, CRC-16/ARC checked) from a second connection to the same port,
  the DSMR meter's gas and water meters (M-Bus channels 1 and 2) included,
  each with the time it took its reading (Central European time in the
  telegram, UTC milliseconds in the API), and Home Assistant discovery
  announces them as gas and water sensors in m³;
- a meter that stops sending (egw-sim's timeout fault) is marked "backing
  off" after three telegram intervals, and polls again when it sends again;
- the device settings refuse P1 on a Modbus connection;
- the device scan lists a P1 bridge (a port that sends telegrams unasked).

Run with /usr/bin/python3; EGW_BUILD names the build directory.
"""
import datetime
import json
import os
import re
import shutil
import socket
import sys
import time
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import egwtest as T  # noqa: E402
from test_devices import Ctl, devices_by_id, stop_clean  # noqa: E402

LOCAL = "127.0.0.1"
LINE = re.compile(r"^(\d+)-(\d+):(\d+)\.(\d+)\.(\d+)(\(.*\))$")


def crc16_arc(data):
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class TelegramReader:
    """A client of the simulated meter's port: whole telegrams, CRC checked."""

    def __init__(self, tc, port):
        self.sock = socket.create_connection((LOCAL, port), timeout=5)
        tc.addCleanup(self.sock.close)
        self.buf = b""

    def next(self):
        while True:
            start = self.buf.find(b"/")
            bang = self.buf.find(b"!", start) if start >= 0 else -1
            if start >= 0 and bang >= 0 and len(self.buf) >= bang + 5:
                text, crc = self.buf[start:bang + 1], self.buf[bang + 1:bang + 5]
                self.buf = self.buf[bang + 5:]
                assert int(crc, 16) == crc16_arc(text), (text, crc)
                return text.decode()
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("meter closed the connection")
            self.buf += data


def mbus_time(s):
    """YYMMDDhhmmss + S (CEST, UTC+2) or W (CET, UTC+1): UTC milliseconds."""
    t = datetime.datetime.strptime(s[:12], "%y%m%d%H%M%S")
    off = datetime.timedelta(hours=2 if s[12] == "S" else 1)
    return int((t - off).replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def decode(text):
    """The meter group a telegram stands for, the identifier, and the M-Bus
    meters {channel: (kind, m3, ts_ms)}."""
    val, serial, mbus, types = {}, "", {}, {}
    for line in text.split("\r\n"):
        m = LINE.match(line)
        if not m:
            continue
        obis = ".".join(m.groups()[2:5]) if m.group(1) == "1" else None
        groups = re.findall(r"\(([^)]*)\)", m.group(6))
        if m.group(1) == "0" and m.group(3, 4) == ("24", "1"):
            types[int(m.group(2))] = {3: "gas", 7: "water"}[int(groups[0])]
            continue
        if m.group(1) == "0" and m.group(3, 4) == ("24", "2"):
            num, unit = groups[1].split("*")
            assert unit == "m3", line
            mbus[int(m.group(2))] = (Decimal(num), mbus_time(groups[0]))
            continue
        if m.group(1, 2, 3, 4, 5) == ("0", "0", "96", "1", "1"):
            serial = bytes.fromhex(groups[0]).decode()
            continue
        if obis is None or "*" not in groups[-1]:
            continue
        num, unit = groups[-1].split("*")
        scale = {"kW": 1000, "kWh": 1000, "V": 1, "A": 1}[unit]
        val[obis] = Decimal(num) * scale
    meter = {"W": val["1.7.0"] - val["2.7.0"]}
    for k, (imp, exp, v, a) in enumerate((("21", "22", "32", "31"), ("41", "42", "52", "51"),
                                          ("61", "62", "72", "71")), 1):
        meter[f"L{k}_W"] = val[imp + ".7.0"] - val[exp + ".7.0"]
        meter[f"L{k}_V"] = val[v + ".7.0"]
        meter[f"L{k}_A"] = val[a + ".7.0"]
    for name, code in (("total_import_Wh", "1"), ("total_export_Wh", "2")):
        if code + ".8.0" in val:
            meter[name] = val[code + ".8.0"]
        else:
            meter[name] = val[code + ".8.1"] + val[code + ".8.2"]
    meters = {types[ch]: (float(v), ts) for ch, (v, ts) in mbus.items()}
    return {k: float(v) for k, v in meter.items()}, serial, meters


class P1Test(unittest.TestCase):
    def setUp(self):
        self.sim = T.EgwSim(self, [], args=["--profile", "p1", "--port", "0",
                                            "--profile", "p1_se", "--port", "0"])
        self.sim.wait_output("egw-sim: ready", timeout=10)
        out = self.sim.output()
        self.ports = {m.group(1): int(m.group(2)) for m in
                      re.finditer(r"listening (p1|p1_se) tcp 127\.0\.0\.1:(\d+)", out)}
        self.assertEqual(set(self.ports), {"p1", "p1_se"}, out)
        self.ctl = Ctl(self, self.sim.control_port)
        devices = [{"id": name, "connection": "tcp", "host": LOCAL, "port": port,
                    "profile": "p1", "poll_interval_ms": 1000}
                   for name, port in sorted(self.ports.items())]
        self.egwd = T.Egwd(self, set={"devices": devices, "harvest.poll_interval_ms": 500})

    def devs(self):
        if not self.egwd.alive():
            raise RuntimeError(f"egwd exited:\n{self.egwd.output()[-4000:]}")
        return devices_by_id(self.egwd.state())

    def wait_state(self, dev, state, timeout):
        return T.wait_until(lambda: self.devs()[dev]["state"] == state and self.devs()[dev],
                            timeout=timeout, what=f"{dev} {state}")

    def test_decodes_the_simulated_meters_exactly(self):
        for name in ("p1", "p1_se"):
            self.wait_state(name, "polling", 15)
            reader = TelegramReader(self, self.ports[name])
            matched = None
            for _ in range(8):
                want, serial, meters = decode(reader.next())
                time.sleep(0.3)  # egwd got the same bytes at the same time
                got = self.devs()[name]
                if (got["reading"] or {}).get("meter") == want:
                    matched = (got, want, serial, meters)
                    break
            self.assertIsNotNone(matched, f"{name}: egwd {got['reading']} != telegram {want}")
            got, want, serial, meters = matched
            self.assertEqual(set(got["reading"]), {"meter"} | set(meters))
            for kind, (m3, ts) in meters.items():
                self.assertEqual(got["reading"][kind], {"total_m3": m3})
                mb = [x for x in got["stats"]["p1"]["mbus"] if x.get("kind") == kind]
                self.assertEqual(len(mb), 1, got["stats"]["p1"])
                self.assertEqual((mb[0]["value"], mb[0]["unit"], mb[0]["ts_ms"]), (m3, "m3", ts))
                # a reading of the last 5 minutes (the meters' period), not of the telegram
                self.assertLessEqual(ts, time.time() * 1000)
                self.assertGreater(ts, time.time() * 1000 - 310000)
            self.assertEqual(set(meters), {"gas", "water"} if name == "p1" else set())
            self.assertEqual(got["serial"], serial)
            self.assertEqual(got["profile"], "p1")
            self.assertEqual(got["connection"], {"connection": "tcp", "host": LOCAL,
                                                 "port": self.ports[name]})
            self.assertGreater(got["stats"]["p1"]["telegrams"], 0)
            self.assertEqual(got["stats"]["p1"]["crc_errors"], 0)
        self.assertTrue(self.devs()["p1"]["serial"])   # DSMR: the identifier
        self.assertEqual(self.devs()["p1_se"]["serial"], "")  # this HAN meter sends none
        _, _, body = T.http(self.egwd.port, "GET", "/api/state")
        self.assertEqual(T.float_noise(body), [])
        stop_clean(self, self.egwd)

    def test_meter_stops_and_comes_back(self):
        self.wait_state("p1", "polling", 15)
        self.ctl.ok("fault timeout on")  # the meters stop sending
        t0 = time.monotonic()
        d = self.wait_state("p1", "backing off", 10)
        self.assertGreaterEqual(time.monotonic() - t0, 2.0)  # three 1-s intervals, not one
        self.assertIn(d["stats"]["last_error"], ("Connection timed out", "timed out"))
        self.assertTrue(self.egwd.alive())
        self.ctl.ok("fault timeout off")
        good = self.devs()["p1"]["stats"]["last_good_ms"]
        self.wait_state("p1", "polling", 15)
        T.wait_until(lambda: self.devs()["p1"]["stats"]["last_good_ms"] > good, timeout=5,
                     what="a fresh telegram")
        self.wait_state("p1_se", "polling", 15)
        stop_clean(self, self.egwd)

    def test_p1_on_a_modbus_connection_is_refused(self):
        body = json.dumps({"devices": [{"connection": "rtu", "serial_port": "/dev/ttyUSB0",
                                        "profile": "p1"}]}).encode()
        st, _, resp = T.http(self.egwd.port, "POST", "/api/settings", body=body,
                             headers=dict(self.egwd.auth(), **{"Content-Type": "application/json"}))
        self.assertEqual(st, 400, resp)
        self.assertIn(b"devices[0].connection", resp)


class P1ScanTest(unittest.TestCase):
    """The device scan finds a P1 bridge by its telegrams: egw-sim's meter
    (which, like a bridge, answers no Modbus) is listed as a P1 meter with
    its identifier; a port that takes connections and says nothing is
    listened to for a bounded time and not listed; a closed port costs
    nothing."""

    def test_scan_finds_the_bridge(self):
        sim = T.EgwSim(self, [], args=["--profile", "p1", "--port", "0"])
        sim.wait_output("egw-sim: ready", timeout=10)
        port = int(re.search(r"listening p1 tcp 127\.0\.0\.1:(\d+)", sim.output()).group(1))
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind((LOCAL, T.free_port()))
        silent.listen(8)  # the kernel completes connections; nothing is ever sent
        closed = T.free_port()
        egwd = T.Egwd(self, set={"http.bind": LOCAL})
        ports = [port, silent.getsockname()[1], closed]
        st, o = T.http_json(egwd.port, "POST", "/api/device/scan",
                            body={"hosts": LOCAL, "ports": ports}, headers=egwd.auth())
        self.assertEqual(st, 202, o)

        def done():
            s = T.get_json(egwd.port, "/api/device/scan")["scan"]
            return not s["running"] and s

        s = T.wait_until(done, timeout=60, what="scan done")
        _, serial, _ = decode(TelegramReader(self, port).next())
        self.assertTrue(serial)
        self.assertEqual(s["results"], [{"host": LOCAL, "port": port, "profile": "p1",
                                         "connection": "tcp", "serial": serial}], s)
        self.assertEqual(s["done"], 3)
        # the silent port was given its listen window, not more (the header's
        # bound: 0.4 s Modbus + 2 s V5 + 11 s P1)
        self.assertGreaterEqual(s["finished_ms"] - s["started_ms"], 11000)
        self.assertLess(s["finished_ms"] - s["started_ms"], 30000)

        # The add form posts a scan result as it is, with an id: egwd polls
        # the meter it found.
        r = s["results"][0]
        body = {"connection": r["connection"], "host": r["host"], "port": r["port"],
                "profile": r["profile"], "id": "grid"}
        st, o = T.http_json(egwd.port, "POST", "/api/device", body=body, headers=egwd.auth())
        self.assertEqual(st, 201, o)
        d = T.wait_until(lambda: (lambda d: d["state"] == "polling" and d["reading"] and d)(
            devices_by_id(egwd.state())["grid"]), timeout=20, what="the scanned meter polls")
        self.assertEqual(d["serial"], serial)
        self.assertIn("W", d["reading"]["meter"])
        stop_clean(self, egwd)


class P1SupportedTest(unittest.TestCase):
    """/api/device/supported lists the P1 meter with its two lines and the
    serial line's settings, and a serial meter posted the way the add form
    posts it (connection serial, the DSMR 2.2 line, no unit id) is read."""

    def test_supported_and_added_as_the_form_posts(self):
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        path = os.ttyname(slave)
        egwd = T.Egwd(self)
        p1 = [p for p in T.get_json(egwd.port, "/api/device/supported")["profiles"]
              if p["name"] == "p1"]
        self.assertEqual(len(p1), 1)
        p1 = p1[0]
        self.assertEqual(p1["connections"], ["tcp", "serial"])
        self.assertEqual(p1["serial"], {"baudrate": 115200, "parity": "N", "databits": 8,
                                        "stopbits": 1, "dsmr22": {"baudrate": 9600, "parity": "E",
                                                                  "databits": 7, "stopbits": 1}})
        self.assertEqual((p1["dtype"], p1["identity"], p1["sunspec"]), ("meter", True, False))
        for f in ("meter.W", "meter.L1_V", "meter.total_import_Wh", "gas.total_m3"):
            self.assertIn(f, p1["reads"])
        line = dict(p1["serial"]["dsmr22"])
        body = dict(line, connection="serial", serial_port=path, profile="p1", id="m")
        st, o = T.http_json(egwd.port, "POST", "/api/device", body=body, headers=egwd.auth())
        self.assertEqual(st, 201, o)
        with open(os.path.join(T.REPO, "tests", "data", "p1", "dsmr22.txt"), "rb") as f:
            telegram = f.read()

        def polled():
            os.write(master, telegram)
            d = devices_by_id(egwd.state())["m"]
            return d["state"] == "polling" and d["reading"] and d
        d = T.wait_until(polled, timeout=15, interval=0.3, what="serial meter polling")
        self.assertEqual(d["reading"]["meter"]["W"], 1010.0)
        self.assertEqual(d["connection"], dict(line, connection="serial", serial_port=path))
        stop_clean(self, egwd)


@unittest.skipUnless(os.path.exists("/usr/sbin/mosquitto") and shutil.which("mosquitto_sub"),
                     "needs mosquitto and mosquitto-clients")
class P1MqttTest(unittest.TestCase):
    """The gas and water meters reach MQTT: Home Assistant discovery names
    them gas and water sensors in m³, and the state carries the telegram's
    values."""

    def test_gas_and_water_over_mqtt(self):
        from test_mqtt import Broker, Subscriber
        broker = Broker(self)
        broker.start()
        sub = Subscriber(self, broker.port)
        time.sleep(0.3)
        sim = T.EgwSim(self, [], args=["--profile", "p1", "--port", "0"])
        sim.wait_output("egw-sim: ready", timeout=10)
        port = int(re.search(r"listening p1 tcp 127\.0\.0\.1:(\d+)", sim.output()).group(1))
        egwd = T.Egwd(self, set={"devices": [{"id": "p1", "connection": "tcp", "host": LOCAL,
                                              "port": port, "profile": "p1",
                                              "poll_interval_ms": 1000}],
                                 "mqtt.enabled": True, "mqtt.host": LOCAL,
                                 "mqtt.port": broker.port})
        serial = egwd.state()["signer"]["serial"]
        node = f"egw_{serial}_p1"

        def configs():
            cfgs = {m[0]: json.loads(m[1]) for m in sub.messages()
                    if m[0].startswith(f"homeassistant/sensor/{node}/")}
            return (f"homeassistant/sensor/{node}/gas_total_m3/config" in cfgs and
                    f"homeassistant/sensor/{node}/water_total_m3/config" in cfgs and cfgs)

        try:
            cfgs = T.wait_until(configs, timeout=20, what="gas and water discovery")
        except TimeoutError:
            self.fail(sorted({m[0] for m in sub.messages()}))
        for kind in ("gas", "water"):
            c = cfgs[f"homeassistant/sensor/{node}/{kind}_total_m3/config"]
            self.assertEqual((c["device_class"], c["unit_of_measurement"], c["state_class"]),
                             (kind, "m\u00b3", "total_increasing"))
            self.assertEqual(c["value_template"], "{{ value_json.%s.total_m3 }}" % kind)
        states = [json.loads(m[1]) for m in sub.messages() if m[0] == f"egw/{serial}/p1/state"]
        self.assertTrue(states)
        api = devices_by_id(egwd.state())["p1"]["reading"]
        for kind in ("gas", "water"):
            self.assertGreater(states[-1][kind]["total_m3"], 0)
            self.assertLessEqual(states[-1][kind]["total_m3"], api[kind]["total_m3"])
        stop_clean(self, egwd)


class P1SerialTest(unittest.TestCase):
    """A DSMR 2.2 meter (no CRC) on a serial line at 9600 7E1: a pty here."""

    def test_dsmr22_on_a_serial_line(self):
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        path = os.ttyname(slave)
        with open(os.path.join(T.REPO, "tests", "data", "p1", "dsmr22.txt"), "rb") as f:
            telegram = f.read()
        egwd = T.Egwd(self, set={"devices": [{
            "id": "m", "connection": "serial", "serial_port": path, "baudrate": 9600,
            "parity": "E", "databits": 7, "profile": "p1", "poll_interval_ms": 1000}]})

        def polled():
            os.write(master, telegram)
            d = devices_by_id(egwd.state())["m"]
            return d["state"] == "polling" and d["reading"] and d
        d = T.wait_until(polled, timeout=15, interval=0.3, what="serial meter polling")
        self.assertEqual(d["reading"], {"meter": {"W": 1010.0, "total_import_Wh": 2003.0,
                                                  "total_export_Wh": 507.0}})
        self.assertEqual(d["serial"], "00000000000000")
        self.assertEqual(d["connection"], {"connection": "serial", "serial_port": path,
                                           "baudrate": 9600, "parity": "E", "databits": 7,
                                           "stopbits": 1})
        stop_clean(self, egwd)


if __name__ == "__main__":
    unittest.main()
