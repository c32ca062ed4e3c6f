"""MQTT publishing against a real mosquitto broker on a loopback port:
readings and Home Assistant discovery arrive; stopping the broker for a while
loses no reading (egwd queues them and publishes on reconnect)."""
import json
import os
import shutil
import socket
import signal
import subprocess
import time
import unittest

import egwtest as t

MOSQUITTO = "/usr/sbin/mosquitto"


class Broker:
    """mosquitto with a temporary config, persistent (so a restart keeps the
    test subscriber's session and its queued QoS 1 messages)."""

    def __init__(self, tc, port=None, tls=None, users=None):
        """tls: (ca, cert, key) paths; users: {name: password} (then no
        anonymous clients)."""
        self.dir = t.tempdir(tc, "egw-mqtt-")
        # Started as root, mosquitto runs as its own user: let it save its db.
        os.chmod(self.dir, 0o777)
        self.port = port or t.free_port()
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        extra = ""
        if tls:
            extra += "cafile {}\ncertfile {}\nkeyfile {}\n".format(*tls)
        if users:
            pw = os.path.join(self.dir, "passwords")
            for i, (name, password) in enumerate(users.items()):
                subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else [])
                               + [pw, name, password], check=True, capture_output=True)
            os.chmod(pw, 0o644)
            extra += f"password_file {pw}\n"
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\n{extra}"
                    f"allow_anonymous {'false' if users else 'true'}\n"
                    f"persistence true\npersistence_location {self.dir}/\n"
                    "max_queued_messages 100000\nlog_dest stderr\n")
        self.proc = None
        self.logs = []
        tc.addCleanup(self.stop)

    def start(self):
        if self.proc:
            self.logs.append(self.proc.output())
        self.proc = t.Proc([MOSQUITTO, "-c", self.conf, "-v"], name="mosquitto")
        t.wait_port(self.port, proc=self.proc)

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.logs.append(self.proc.output())
            self.proc = None


class Subscriber:
    """mosquitto_sub on '#', QoS 1, persistent session, one line per message."""

    def __init__(self, tc, port, extra=()):
        self.out = os.path.join(t.tempdir(tc, "egw-mqttsub-"), "sub.txt")
        self.f = open(self.out, "wb")
        self.p = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
                                   "-c", "-i", "egw-test-sub", "-t", "#", "-v", "-F", "%r %t %p"]
                                  + list(extra),
                                  stdout=self.f, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        tc.addCleanup(self.stop)

    def messages(self):
        msgs = []
        with open(self.out, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                parts = line.split(" ", 2)
                if len(parts) == 3 and parts[0] in ("0", "1"):
                    msgs.append((parts[1], parts[2], parts[0] == "1"))
        return msgs

    def stop(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(timeout=5)
        self.f.close()


@unittest.skipUnless(os.path.exists(MOSQUITTO) and shutil.which("mosquitto_sub"),
                     "needs mosquitto and mosquitto-clients")
class MqttTest(unittest.TestCase):
    def test_broker_by_host_name(self):
        """A broker given by name is looked up off the loop, then reached."""
        name = socket.gethostname()
        try:
            addr = socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0]
        except OSError:
            self.skipTest("this machine's name does not resolve")
        if not addr.startswith("127."):
            self.skipTest("this machine's name is not a loopback address")
        broker = Broker(self)
        broker.start()
        sub = Subscriber(self, broker.port)
        time.sleep(0.3)
        egwd = t.Egwd(self, set={"mqtt.enabled": True, "mqtt.host": name,
                                 "mqtt.port": broker.port})
        serial = egwd.state()["signer"]["serial"]
        t.wait_until(lambda: [m for m in sub.messages()
                              if m[0] == f"egw/{serial}/status" and m[1] == "online"],
                     timeout=15, what="online status through a named broker")

    def test_readings_discovery_and_outage(self):
        broker = Broker(self)
        broker.start()
        sub = Subscriber(self, broker.port)
        time.sleep(0.3)
        sim = t.EgwSim(self, [("sunspec", 1)], control=False)
        egwd = t.Egwd(self, set={
            "devices": [sim.device_settings(0, id="inv1")],
            "mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": broker.port})
        serial = egwd.state()["signer"]["serial"]
        node = f"egw_{serial}_inv1"
        state_topic = f"egw/{serial}/inv1/state"

        def have(pred):
            return [m for m in sub.messages() if pred(m)]

        t.wait_until(lambda: len(have(lambda m: m[0] == state_topic)) >= 3, timeout=20,
                     what="state messages")
        # Home Assistant discovery: retained, typed, pointing at our topics.
        cfgs = {m[0]: json.loads(m[1]) for m in have(lambda m: m[0].startswith("homeassistant/"))}
        pv = cfgs.get(f"homeassistant/sensor/{node}/pv_W/config")
        self.assertIsNotNone(pv, sorted(cfgs))
        self.assertEqual((pv["device_class"], pv["unit_of_measurement"], pv["state_class"]),
                         ("power", "W", "measurement"))
        self.assertEqual(pv["state_topic"], state_topic)
        self.assertEqual(pv["value_template"], "{{ value_json.pv.W }}")
        self.assertEqual(pv["unique_id"], f"{node}_pv_W")
        self.assertEqual(pv["device"]["identifiers"], [node])
        e = cfgs[f"homeassistant/sensor/{node}/meter_total_import_Wh/config"]
        self.assertEqual((e["device_class"], e["state_class"], e["unit_of_measurement"]),
                         ("energy", "total_increasing", "Wh"))
        soc = cfgs[f"homeassistant/sensor/{node}/battery_SoC_nom_fract/config"]
        self.assertEqual((soc["device_class"], soc["unit_of_measurement"]), ("battery", "%"))
        self.assertEqual(cfgs[f"homeassistant/sensor/{node}/meter_Hz/config"]["device_class"],
                         "frequency")
        # the inverter's AC side and the battery's state of health
        for obj, dc, unit in (("inverter_VA", "apparent_power", "VA"),
                              ("inverter_var", "reactive_power", "var"),
                              ("inverter_PF", "power_factor", "%"),
                              ("inverter_L1_V", "voltage", "V"),
                              ("pv_mppt1_W", "power", "W")):
            c = cfgs[f"homeassistant/sensor/{node}/{obj}/config"]
            self.assertEqual((c["device_class"], c["unit_of_measurement"]), (dc, unit), obj)
        self.assertIn("* 100", cfgs[f"homeassistant/sensor/{node}/inverter_PF/config"]
                      ["value_template"])
        soh = cfgs[f"homeassistant/sensor/{node}/battery_SoH_fract/config"]
        self.assertNotIn("device_class", soh)
        self.assertEqual((soh["unit_of_measurement"], soh["state_class"]), ("%", "measurement"))
        # The broker keeps discovery retained: a fresh client sees it at once.
        r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t",
                            f"homeassistant/sensor/{node}/pv_W/config", "-C", "1", "-W", "5"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(json.loads(r.stdout)["unique_id"], f"{node}_pv_W")
        self.assertTrue(have(lambda m: m[0] == f"egw/{serial}/status" and m[1] == "online"))
        self.assertTrue(have(lambda m: m[0] == f"egw/{serial}/inv1/availability" and m[1] == "online"))
        # every number printed in every state message: no float noise
        for m in have(lambda m: m[0] == state_topic):
            self.assertEqual(t.float_noise(m[1]), [], m[1])
        st = json.loads(have(lambda m: m[0] == state_topic)[-1][1])
        self.assertEqual((st["device"], st["profile"]), ("inv1", "sunspec"))
        self.assertLess(st["pv"]["W"], 0)
        self.assertTrue(45 < st["meter"]["Hz"] < 65)

        # Broker away for a while: readings queue up in egwd, none is lost.
        before = len(have(lambda m: m[0] == state_topic))
        broker.stop()
        time.sleep(4)
        st, _, body = t.http(egwd.port, "GET", "/metrics")
        backlog = [l for l in body.decode().splitlines() if l.startswith("egw_mqtt_backlog_messages ")]
        self.assertTrue(backlog and float(backlog[0].split()[1]) >= 2, backlog)
        broker.start()
        t.wait_until(lambda: len(have(lambda m: m[0] == state_topic)) >= before + 8, timeout=30,
                     what="state messages after the outage")
        def series():
            return sorted({json.loads(m[1])["ts_ms"] for m in have(lambda m: m[0] == state_topic)})

        def complete():
            ts = series()
            return all(b - a < 1600 for a, b in zip(ts, ts[1:]))
        try:
            t.wait_until(complete, timeout=20, what="every reading delivered")
        except TimeoutError:
            pass
        ts = series()
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        st, _, body = t.http(egwd.port, "GET", "/metrics")
        mq = [l for l in body.decode().splitlines() if l.startswith("egw_mqtt")]
        if max(gaps) >= 1600:
            broker.stop()
            with open("/tmp/egw-mqtt-fail.log", "w") as f:
                f.write("\n=====\n".join(broker.logs))
        self.assertLess(max(gaps), 1600, f"a reading went missing: gaps {gaps} {mq}")
        self.assertGreater(ts[-1] - ts[0], 8000)
        self.assertTrue(egwd.alive(), egwd.output())


def make_certs(tc):
    """A throw-away CA and a broker certificate for 127.0.0.1 (openssl CLI)."""
    d = t.tempdir(tc, "egw-mqtt-tls-")
    os.chmod(d, 0o755)
    ca, ca_key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    crt, key, csr = (os.path.join(d, n) for n in ("broker.crt", "broker.key", "broker.csr"))
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = lambda *a: subprocess.run(["openssl"] + list(a), check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=egw test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    for p in (ca, crt, key):
        os.chmod(p, 0o644)  # mosquitto reads them as its own user
    return ca, crt, key


@unittest.skipUnless(os.path.exists(MOSQUITTO) and shutil.which("mosquitto_sub")
                     and shutil.which("mosquitto_passwd") and shutil.which("openssl"),
                     "needs mosquitto, mosquitto-clients and openssl")
class MqttTlsTest(unittest.TestCase):
    def test_tls_and_password(self):
        """A broker with its own CA and passwords: egwd checks the certificate
        against mqtt.ca_file, logs in, and publishes; a wrong password or an
        unknown CA keeps it out, says why in /api/state, and a corrected
        setting applies without a restart."""
        ca, crt, key = make_certs(self)
        broker = Broker(self, tls=(ca, crt, key), users={"egw": "s3cret", "reader": "r"})
        broker.start()
        sub = Subscriber(self, broker.port, extra=["--cafile", ca, "-u", "reader", "-P", "r"])
        time.sleep(0.3)
        base = {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                "mqtt.tls": True, "mqtt.username": "egw"}

        # 1. the right CA, a wrong password: refused, the reason shown
        egwd = t.Egwd(self, set={**base, "mqtt.ca_file": ca, "mqtt.password": "wrong"})
        t.wait_until(lambda: (egwd.state()["mqtt"].get("last_error") or "") != "",
                     timeout=15, what="a refused login shown")
        m = egwd.state()["mqtt"]
        self.assertFalse(m["connected"])
        self.assertRegex(m["last_error"].lower(), "not authori[sz]ed|bad user name or password")
        serial = egwd.state()["signer"]["serial"]

        # 2. corrected through the API: connects without a restart
        st, obj = t.http_json(egwd.port, "POST", "/api/settings",
                              {"mqtt": {"password": "s3cret"}}, headers=egwd.auth())
        self.assertEqual(st, 200, obj)
        t.wait_until(lambda: egwd.state()["mqtt"]["connected"], timeout=20,
                     what="connected over TLS")
        self.assertIsNone(egwd.state()["mqtt"]["last_error"])
        t.wait_until(lambda: [x for x in sub.messages()
                              if x[0] == f"egw/{serial}/status" and x[1] == "online"],
                     timeout=15, what="online status through TLS")
        # the password is never shown back
        self.assertEqual(egwd.get("/api/settings")["mqtt"]["password"], "***")

        # 3. no ca_file: the system CAs do not know this broker's CA
        st, obj = t.http_json(egwd.port, "POST", "/api/settings", {"mqtt": {"ca_file": ""}},
                              headers=egwd.auth())
        self.assertEqual(st, 200, obj)
        t.wait_until(lambda: not egwd.state()["mqtt"]["connected"]
                     and egwd.state()["mqtt"]["last_error"], timeout=20,
                     what="TLS refused without the CA")
        self.assertRegex(egwd.state()["mqtt"]["last_error"].lower(), "certificate verify failed|tls error")
        self.assertTrue(egwd.alive())
        self.assertEqual(egwd.stop(), 0)


if __name__ == "__main__":
    unittest.main()
