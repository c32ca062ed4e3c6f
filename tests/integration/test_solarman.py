"""Solarman V5 data loggers end to end: egwd polls a Deye inverter behind
egw-sim's simulated logger (--solarman-port), Modbus RTU inside V5 frames.

- the simulated logger speaks V5 as the protocol document describes it
  (pysolarmanv5's "Solarman V5 Protocol"): checked here by a client written
  from that document alone, not from egw's codec (no Debian or npm package
  speaks V5, so there is no third-party peer to run);
- egwd's reading of the device equals what the simulator serves, as for a
  device on Modbus TCP, and its serial is the one read by the client above;
- every fault of the simulated logger (heartbeats between answers, another
  serial number, a bad checksum, a dropped connection, slow answers, a stale
  sequence byte, a Modbus exception inside a valid frame, garbage): egwd
  keeps running, shows the device's state and error, and polls again when
  the fault ends;
- the device settings: "solarman" needs logger_serial, port 8899 by default.

Run with /usr/bin/python3; EGW_BUILD names the build directory.
"""
import json
import os
import re
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import egwtest as T  # noqa: E402
from test_devices import Ctl, compare, devices_by_id, stop_clean  # noqa: E402

LOCAL = "127.0.0.1"
LOGGER = 2712345678


def crc16_modbus(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class V5Client:
    """A V5 client from the protocol document: header (0xA5, payload length
    u16 LE, control u16 LE, two sequence bytes, logger serial u32 LE),
    payload, checksum (sum of the bytes between start and checksum, mod 256)
    and 0x15."""

    def __init__(self, tc, port):
        self.sock = socket.create_connection((LOCAL, port), timeout=5)
        tc.addCleanup(self.sock.close)
        self.buf = b""
        self.seq = 0x30

    @staticmethod
    def frame(control, seq, serial, payload):
        body = struct.pack("<HHBBI", len(payload), control, seq, 0, serial) + payload
        return b"\xa5" + body + bytes([sum(body) & 0xFF, 0x15])

    def read_frame(self):
        while True:
            if len(self.buf) >= 3:
                assert self.buf[0] == 0xA5, self.buf.hex()
                n = 11 + struct.unpack("<H", self.buf[1:3])[0] + 2
                if len(self.buf) >= n:
                    f, self.buf = self.buf[:n], self.buf[n:]
                    assert f[-1] == 0x15 and f[-2] == sum(f[1:-2]) & 0xFF, f.hex()
                    length, control, s0, s1, serial = struct.unpack("<HHBBI", f[1:11])
                    return control, s0, serial, f[11:-2]
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("logger closed the connection")
            self.buf += data

    def read_holding(self, serial, unit, addr, count):
        """(logger serial in the answer, registers or None when the answer
        carries no Modbus frame)."""
        self.seq = (self.seq + 1) & 0xFF
        rtu = struct.pack(">BBHH", unit, 3, addr, count)
        rtu += struct.pack("<H", crc16_modbus(rtu))
        # frame type 2, sensor type 0, three zero time fields, the RTU frame
        self.sock.sendall(self.frame(0x4510, self.seq, serial, b"\x02" + bytes(14) + rtu))
        while True:
            control, s0, got_serial, payload = self.read_frame()
            if control == 0x1510:
                break  # anything else is the logger's own frame
        assert s0 == self.seq, (s0, self.seq)
        assert payload[0] == 0x02 and payload[1] == 0x01, payload.hex()
        working, power_on, offset = struct.unpack("<III", payload[2:14])
        # total working time + offset time = the logger's clock (now)
        assert abs(working + offset - time.time()) < 5, (working, offset)
        rtu = payload[14:]
        if not rtu:
            return got_serial, None
        assert crc16_modbus(rtu[:-2]) == struct.unpack("<H", rtu[-2:])[0], rtu.hex()
        assert rtu[0] == unit and rtu[1] == 3 and rtu[2] == 2 * count, rtu.hex()
        return got_serial, list(struct.unpack(f">{count}H", rtu[3:3 + 2 * count]))


def start_logger(tc, profile="deye"):
    port_ctl = T.free_port()
    sim = T.Proc([T.binary("egw-sim"), "--profile", profile, "--solarman-port", "0",
                  "--logger-serial", str(LOGGER), "--control-port", str(port_ctl)],
                 name="egw-sim")
    tc.addCleanup(sim.stop)
    out = sim.wait_output("egw-sim: ready", timeout=10)
    m = re.search(r"listening \S+ tcp 127\.0\.0\.1:(\d+) unit 1 solarman (\d+)", out)
    tc.assertIsNotNone(m, out)
    tc.assertEqual(int(m.group(2)), LOGGER)
    return sim, int(m.group(1)), Ctl(tc, port_ctl)


def settings(port, **extra):
    d = {"id": "deye", "connection": "solarman", "host": LOCAL, "port": port,
         "logger_serial": LOGGER, "unit_id": 1, "profile": "deye"}
    d.update(extra)
    return d


class TestLoggerProtocol(unittest.TestCase):
    def test_logger_speaks_v5_as_documented(self):
        sim, port, ctl = start_logger(self)
        c = V5Client(self, port)
        serial, regs = c.read_holding(LOGGER, 1, 3, 5)  # Deye: serial, 10 ASCII bytes
        self.assertEqual(serial, LOGGER)
        text = b"".join(struct.pack(">H", r) for r in regs).rstrip(b"\0").decode()
        self.assertEqual(text, ctl.get()["devices"][0]["serial"])
        # A request for another serial: an empty answer under the logger's own.
        serial, regs = c.read_holding(1, 1, 3, 5)
        self.assertEqual((serial, regs), (LOGGER, None))
        # Heartbeats come between answers and are frames of their own.
        ctl.ok("fault heartbeat on")
        serial, regs = c.read_holding(LOGGER, 1, 3, 5)
        self.assertEqual(serial, LOGGER)
        self.assertEqual(len(regs), 5)


class TestSolarman(unittest.TestCase):
    def setUp(self):
        self.sim, self.port, self.ctl = start_logger(self)
        self.egwd = T.Egwd(self, set={"devices": [settings(self.port)],
                                      "harvest.poll_interval_ms": 300,
                                      "modbus.timeout_ms": 300, "http.bind": LOCAL,
                                      # 10 Hz frequency reads are not for a logger
                                      "frequency.interval_ms": 60000})

    def dev(self):
        if not self.egwd.alive():
            raise RuntimeError(f"egwd exited:\n{self.egwd.output()[-4000:]}")
        return devices_by_id(self.egwd.state())["deye"]

    def wait_state(self, states, timeout=15.0):
        return T.wait_until(lambda: self.dev()["state"] in states and self.dev(),
                            timeout=timeout, what=f"state in {states}")

    def wait_polling(self, timeout=20.0):
        d = self.wait_state(("polling",), timeout)
        good = d["stats"]["last_good_ms"] or 0
        T.wait_until(lambda: (self.dev()["stats"]["last_good_ms"] or 0) > good,
                     timeout=timeout, what="a fresh good poll")
        return self.dev()

    def recover(self):
        self.ctl.ok("clear")
        self.wait_polling()

    def test_polls_and_decodes_like_the_simulator(self):
        self.ctl.ok("freeze on")
        d = self.wait_polling()
        time.sleep(3.5)  # a verbose poll after the freeze
        d = self.dev()
        truth = self.ctl.get()["devices"][0]
        problems = []
        n = compare(d, truth, problems)
        self.assertFalse(problems, "\n".join(problems))
        self.assertGreater(n, 5)
        self.assertEqual(d["serial"], truth["serial"])
        self.assertEqual(d["connection"], {"connection": "solarman", "host": LOCAL,
                                           "port": self.port, "logger_serial": LOGGER,
                                           "unit_id": 1, "proxy_unit_id": 1})
        m = d["stats"]["modbus"]
        self.assertEqual(m["bytes_garbage"], 0)
        self.assertEqual(m["unsolicited"], 0)
        self.assertEqual(m["connects"], 1)
        _, _, body = T.http(self.egwd.port, "GET", "/api/state")
        self.assertEqual(T.float_noise(body), [])
        stop_clean(self, self.egwd)

    def test_faults(self):
        d = self.wait_polling()
        serial = d["serial"]

        # Heartbeats between answers: skipped, counted, polling goes on.
        self.ctl.ok("fault heartbeat on")
        T.wait_until(lambda: self.dev()["stats"]["modbus"]["unsolicited"] > 3, timeout=10,
                     what="heartbeats counted")
        polls = self.dev()["stats"]["polls_ok"]
        T.wait_until(lambda: self.dev()["stats"]["polls_ok"] > polls + 2, timeout=10,
                     what="polls with heartbeats")
        self.assertEqual(self.dev()["state"], "polling")
        self.recover()

        # Another logger answers: refused, with the error shown.
        self.ctl.ok("fault logger-serial on")
        d = self.wait_state(("backing off", "connecting", "identifying", "asleep"))
        T.wait_until(lambda: self.dev()["stats"]["last_error"]
                     == "data logger serial number mismatch", timeout=10,
                     what="serial mismatch shown")
        self.recover()

        # A garbled checksum: the frame is rejected, the request fails.
        self.ctl.ok("fault checksum on")
        self.wait_state(("backing off", "connecting", "identifying", "asleep"))
        T.wait_until(lambda: self.dev()["stats"]["last_error"] == "CRC mismatch",
                     timeout=10, what="checksum error shown")
        self.assertGreater(self.dev()["stats"]["modbus"]["bytes_garbage"], 0)
        self.recover()

        # The logger drops the connection on every request.
        errors = self.dev()["stats"]["errors"]
        self.ctl.ok("fault drop on")
        T.wait_until(lambda: self.dev()["stats"]["errors"] > errors, timeout=10,
                     what="errors from drops")
        self.wait_state(("backing off", "connecting", "identifying", "asleep"))
        connects = self.dev()["stats"]["modbus"]["connects"]
        self.recover()
        self.assertGreater(self.dev()["stats"]["modbus"]["connects"], connects)

        # Slow answers within the logger timeout (2 s at least): still polling.
        self.ctl.ok("fault slow 500")
        T.wait_until(lambda: self.dev()["stats"]["latency_last_ms"] >= 500, timeout=15,
                     what="slow latency seen")
        self.assertEqual(self.dev()["state"], "polling")
        # ... and too slow: timeouts, then back off.
        self.ctl.ok("fault slow 3000")
        self.wait_state(("backing off", "connecting", "identifying", "asleep"), timeout=30)
        self.assertGreater(self.dev()["stats"]["timeouts"], 0)
        self.recover()

        # A stale sequence byte: the answer is not taken for ours.
        self.ctl.ok("fault tid on")
        self.wait_state(("backing off", "connecting", "identifying", "asleep"), timeout=30)
        self.assertGreater(self.dev()["stats"]["modbus"]["tid_mismatches"], 0)
        self.recover()

        # A Modbus exception inside a valid V5 frame: the device's exception path.
        self.ctl.ok("fault exception 4")
        self.wait_state(("backing off", "connecting", "identifying"))
        self.assertGreater(self.dev()["stats"]["exceptions"], 0)
        self.recover()

        # Garbage instead of answers.
        errors = self.dev()["stats"]["errors"]
        self.ctl.ok("fault garbage on")
        T.wait_until(lambda: self.dev()["stats"]["errors"] > errors, timeout=15,
                     what="errors from garbage")
        self.recover()

        self.assertEqual(self.dev()["serial"], serial)
        st, _, _ = T.http(self.egwd.port, "GET", "/api/hello")
        self.assertEqual(st, 200)
        stop_clean(self, self.egwd)


class TestWrongSerial(unittest.TestCase):
    def test_a_logger_serial_that_is_not_the_loggers(self):
        """The logger answers a request for another serial under its own:
        egwd refuses it and says why, and keeps running."""
        sim, port, ctl = start_logger(self)
        egwd = T.Egwd(self, set={"devices": [settings(port, logger_serial=LOGGER + 1)],
                                 "harvest.poll_interval_ms": 300, "http.bind": LOCAL})

        def refused():
            d = devices_by_id(egwd.state())["deye"]
            return d["stats"]["last_error"] == "data logger serial number mismatch" and d

        d = T.wait_until(refused, timeout=20, what="serial mismatch shown")
        self.assertNotEqual(d["state"], "polling")
        self.assertFalse(d["reading"])
        self.assertIn("data logger serial number mismatch", egwd.output())
        stop_clean(self, egwd)


class TestScan(unittest.TestCase):
    def test_scan_finds_the_logger_and_the_inverter_behind_it(self):
        sim, port, ctl = start_logger(self)
        egwd = T.Egwd(self, set={"http.bind": LOCAL})
        # Not port 8899 (ports here are chosen at run time): the probe turns
        # to V5 because the port takes the connection and no Modbus TCP.
        st, o = T.http_json(egwd.port, "POST", "/api/device/scan",
                            body={"hosts": LOCAL, "ports": str(port)}, headers=egwd.auth())
        self.assertEqual(st, 202, o)

        def done():
            s = T.get_json(egwd.port, "/api/device/scan")["scan"]
            return not s["running"] and s

        s = T.wait_until(done, timeout=60, what="scan done")
        self.assertEqual(len(s["results"]), 1, s)
        r = s["results"][0]
        self.assertEqual((r["connection"], r["logger_serial"], r["port"], r["profile"]),
                         ("solarman", LOGGER, port, "deye"), r)
        self.assertEqual(r["serial"], ctl.get()["devices"][0]["serial"])
        stop_clean(self, egwd)


class TestSettings(unittest.TestCase):
    def test_solarman_settings(self):
        egwd = T.Egwd(self, set={"http.bind": LOCAL})
        cases = [
            ({"connection": "solarman", "host": LOCAL, "profile": "deye"},
             "devices[0].logger_serial"),
            ({"connection": "tcp", "host": LOCAL, "profile": "deye", "logger_serial": 5},
             "devices[0].logger_serial"),
            ({"connection": "solarman", "host": LOCAL, "profile": "deye",
              "logger_serial": 4294967296}, "devices[0].logger_serial"),
        ]
        for dev, key in cases:
            st, _, body = T.http(egwd.port, "POST", "/api/settings",
                                 body={"devices": [dev]}, headers=egwd.auth())
            self.assertEqual(st, 400, body)
            self.assertIn(key, body.decode() if isinstance(body, bytes) else body)
        two = [dict(settings(8899, id="a")), dict(settings(8899, id="b", unit_id=2,
                                                                logger_serial=LOGGER + 1))]
        st, _, body = T.http(egwd.port, "POST", "/api/settings",
                             body={"devices": two}, headers=egwd.auth())
        self.assertEqual(st, 400, body)
        ok = {"connection": "solarman", "host": LOCAL, "profile": "deye", "logger_serial": 7,
              "id": "x"}
        st, _, body = T.http(egwd.port, "POST", "/api/settings",
                             body={"devices": [ok]}, headers=egwd.auth())
        self.assertEqual(st, 200, body)
        d = T.wait_until(lambda: devices_by_id(egwd.state()).get("x"), timeout=10,
                         what="device x")
        self.assertEqual(d["connection"]["port"], 8899)
        self.assertEqual(d["connection"]["logger_serial"], 7)
        stop_clean(self, egwd)


if __name__ == "__main__":
    unittest.main()
