"""Signed upload pipeline end to end: egwd (+ egw-sim when devices are wired)
and tools/devbackend.py as real processes on loopback.

Every token the backend accepted is verified again here with PyJWT against
the key egwd publishes at /api/crypto.  Run with /usr/bin/python3;
EGW_BUILD names the build directory.
"""
import json
import os
import random
import re
import sqlite3
import ssl
import time
import unittest

import datetime
import http.client
import ipaddress

import jwt as pyjwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import egwtest as T

import sys
sys.path.insert(0, os.path.join(T.REPO, "tools"))
import egw_batch  # noqa: E402

DEVBACKEND = os.path.join(T.REPO, "tools", "devbackend.py")
WINDOW = 8  # backend.max_in_flight's default


class DevBackend(T.Proc):
    def __init__(self, tc, egwd_port, *extra):
        super().__init__([T.PYTHON, DEVBACKEND, "--port", "0", "--control-port", "0",
                          "--egwd", f"http://127.0.0.1:{egwd_port}", *extra],
                         name="devbackend")
        tc.addCleanup(self.stop)
        out = self.wait_output("ready port=")
        m = re.search(r"ready port=(\d+) control_port=(\d+)", out)
        self.port, self.control_port = int(m.group(1)), int(m.group(2))

    @property
    def data_url(self):
        return f"http://127.0.0.1:{self.port}/data"

    @property
    def graphql_url(self):
        return f"http://127.0.0.1:{self.port}/graphql"

    def summary(self):
        return T.get_json(self.control_port, "/received")

    def records(self):
        return T.get_json(self.control_port, "/received/all")

    def control(self, **kw):
        st, obj = T.http_json(self.control_port, "POST", "/control", body=kw)
        assert st == 200, obj


def egwd_for(tc, port, backend_port, state_dir=None, interval_ms=100, extra=None, env=None,
             wait=True):
    s = {"backend.data_urls": [f"http://127.0.0.1:{backend_port}/data"],
         "harvest.batch_interval_ms": interval_ms}
    s.update(extra or {})
    return T.Egwd(tc, port=port, state_dir=state_dir, set=s, env=env, wait=wait)


def public_key(egwd):
    info = egwd.get("/api/crypto")
    return serialization.load_pem_public_key(info["publicKey_pem"].encode()), info


def verify_all(tc, records, key, serial):
    """Every accepted token verifies with PyJWT; returns the payloads."""
    out = []
    for r in records:
        tok = r["jwt"]
        hdr = pyjwt.get_unverified_header(tok)
        tc.assertEqual(hdr["alg"], "ES256")
        tc.assertEqual(hdr["typ"], "JWT")
        tc.assertEqual(hdr["device"], serial)
        tc.assertEqual(hdr["opr"], "production")
        tc.assertIn(hdr["dtype"], ("egw-batch", "egw-gap"))
        p = pyjwt.decode(tok, key, algorithms=["ES256"], options={"verify_iat": False})
        tc.assertEqual(p, r["payload"])
        out.append((hdr, p))
    return out


def store_rows(state_dir):
    """Seqs of the rows still in a stopped egwd's store, in order."""
    db = sqlite3.connect(f"file:{os.path.join(state_dir, 'store.db')}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT seq FROM rows ORDER BY seq")]
    finally:
        db.close()


def assert_all_delivered(tc, state_dir, be):
    """Everything committed reached the backend, except the batch an orderly
    stop seals last: it waits in the store for the next start, and it may
    already have reached the backend with its acknowledgement (the HTTP
    answer or the MQTT PUBACK) cut off by the stop (sent again at the next
    start, a duplicate its seq identifies)."""
    left = store_rows(state_dir)
    top = be.summary()["max_seq"]
    tc.assertIn(left, ([], [top], [top + 1]),
                f"rows left undelivered: {left[:10]} (backend max {top})")


def wait_idle(egwd, timeout=30.0):
    """Until egwd's store holds nothing undelivered."""
    def idle():
        up = egwd.state()["uploader"]
        return up["backlog"] == 0 and up["pending_seq"] == 0
    T.wait_until(idle, timeout=timeout, what="uploads drained")


def self_signed(d):
    """A self-signed certificate for 127.0.0.1 in d; returns (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cp, kp = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cp, kp


def stop_clean(tc, proc):
    """SIGTERM; egwd must exit 0 (under ASan/UBSan: no leak, no error report)."""
    rc = proc.stop()
    out = proc.output()
    tc.assertEqual(rc, 0, f"{proc.name} exit {rc}:\n{out[-3000:]}")
    tc.assertNotIn("runtime error:", out)
    tc.assertNotIn("Sanitizer", out)


def contiguous(tc, seqs, first=1):
    tc.assertEqual(seqs, list(range(first, first + len(seqs))),
                   f"seqs not contiguous: {seqs[:5]}..{seqs[-5:]}")


class PipelineTest(unittest.TestCase):

    def test_signed_batches_verified_and_name(self):
        port = T.free_port()
        be = DevBackend(self, port, "--name", "Roof Gateway")
        e = egwd_for(self, port, be.port, interval_ms=200, extra={
            "backend.graphql_url": be.graphql_url, "name.interval_ms": 200})
        key, info = public_key(e)
        T.wait_until(lambda: be.summary()["unique"] >= 5, timeout=15, what="5 batches")
        recs = be.records()
        got = verify_all(self, recs, key, info["serialNumber"])
        seqs = [p["seq"] for _, p in got]
        self.assertEqual(seqs, sorted(seqs))
        contiguous(self, seqs, seqs[0])
        now = time.time()
        prev_to = None
        for hdr, p in got:
            self.assertEqual(hdr["dtype"], "egw-batch")
            self.assertEqual(p["gateway"], info["serialNumber"])
            self.assertTrue(now - 60 < p["iat"] <= now + 1)
            self.assertLessEqual(p["from_ms"], p["to_ms"])
            if prev_to is not None:
                self.assertEqual(p["from_ms"], prev_to)   # windows follow each other
            prev_to = p["to_ms"]
            self.assertIsInstance(p["devices"], list)
        s = be.summary()
        self.assertEqual(s["bad_signatures"], 0)
        self.assertEqual(s["duplicates"], 0)
        # The name query reached the backend with our serial, and GET /api/name shows it.
        n = T.wait_until(lambda: e.get("/api/name")["known"] and e.get("/api/name"),
                         timeout=10, what="name known")
        self.assertEqual(n["name"], "Roof Gateway")
        self.assertIn(info["serialNumber"], be.summary()["graphql_ids"])
        st = e.state()
        self.assertGreaterEqual(st["uploader"]["acked"], 5)
        self.assertEqual(st["uploader"]["last_status"], 200)
        stop_clean(self, e)

    def test_batches_carry_device_readings_raw_and_frequency(self):
        sim = T.EgwSim(self, [("sungrow", 1)])
        port = T.free_port()
        be = DevBackend(self, port)
        e = egwd_for(self, port, be.port, interval_ms=1000, extra={
            "devices": [sim.device_settings(0, id="inv1")],
            "harvest.poll_interval_ms": 200, "frequency.interval_ms": 100})
        key, info = public_key(e)

        def with_data():
            for r in be.records():
                p = r["payload"]
                if (p.get("devices") and len(p["devices"][0]["polls"]) > 1
                        and p.get("frequency", {}).get("d")):
                    return r
            return None
        rec = T.wait_until(with_data, timeout=20, interval=0.2, what="a batch with data")
        (hdr, p), = verify_all(self, [rec], key, info["serialNumber"])
        self.assertEqual(hdr["model"], "sungrow")
        self.assertEqual(p["v"], 4)
        dec = egw_batch.decode(p)
        dev = dec["devices"][0]
        self.assertEqual(dev["id"], "inv1")
        self.assertEqual(dev["profile"], "sungrow")
        self.assertTrue(dev["serial"])
        # every poll: its complete register map {"<register address>": word},
        # stamped inside the window, and its reading in the data model
        self.assertGreater(len(dev["polls"]), 1)
        for poll in dev["polls"]:
            self.assertTrue(p["from_ms"] - 2000 <= poll["ts_ms"] <= p["to_ms"],
                            (poll["ts_ms"], p["from_ms"]))
            self.assertTrue(poll["raw"])
            for addr, word in poll["raw"].items():
                self.assertTrue(addr.isdigit())
                self.assertTrue(0 <= word <= 0xFFFF)
            self.assertLessEqual(set(poll["reading"]), {"pv", "battery", "meter", "inverter"})
            self.assertIn("pv", poll["reading"])
        # the first poll of a batch carries its blocks whole, as a keyframe
        self.assertTrue(all(k for k in p["devices"][0]["kf"]))
        # every number of the batch and of its decoding (readings, frequency
        # samples and stats): no float noise (json.dumps prints Python's
        # shortest repr)
        self.assertEqual(T.float_noise(json.dumps(p)), [])
        self.assertEqual(T.float_noise(json.dumps(dec)), [])
        fr = dec["frequency"]
        self.assertEqual(fr["device"], "inv1")
        self.assertEqual(fr["interval_ms"], 100)
        hz = [x[1] for x in fr["samples"]]
        self.assertTrue(all(45.0 < h < 65.0 for h in hz), hz[:5])
        self.assertTrue(all(repr(h) == repr(round(h, 3)) for h in hz), hz[:5])
        ts = [x[0] for x in fr["samples"]]
        self.assertEqual(ts, sorted(ts))
        stop_clean(self, e)

    def test_srcful_format_has_the_original_shape(self):
        """backend.format=srcful: each batch is the original gateway's payload,
        register maps keyed by the poll's time in ms, key registers on most
        polls and every block on every tenth, checked against that shape, for
        a profile with [key] rows (solaredge) and for profiles whose short
        polls read the registers behind the readings (huawei, sungrow)."""
        for profile in ("solaredge", "huawei", "sungrow"):
            with self.subTest(profile=profile):
                self._srcful_shape(profile)

    def _srcful_shape(self, profile):
        sim = T.EgwSim(self, [(profile, 1)])
        port = T.free_port()
        be = DevBackend(self, port)
        e = egwd_for(self, port, be.port, interval_ms=1000, extra={
            "devices": [sim.device_settings(0, id="inv1")], "backend.format": "srcful",
            "harvest.poll_interval_ms": 100})
        key, info = public_key(e)

        def maps():
            out = {}
            for r in be.records():
                out.update({k: v for k, v in r["payload"].items() if k.isdigit()})
            return out if len(out) >= 25 else None
        T.wait_until(maps, timeout=30, interval=0.3, what="25 polls")
        got = verify_all(self, be.records(), key, info["serialNumber"])
        sizes = []
        for hdr, p in got:
            # the original's shape: header device/model/dtype; payload
            # {"<ts_ms>": {"<addr>": value}} (plus seq and iat)
            self.assertRegex(hdr["device"], r"^[0-9a-f]+$")
            self.assertIsInstance(hdr["model"], str)
            self.assertIsInstance(hdr["dtype"], str)
            self.assertIsInstance(p.pop("seq"), int)
            self.assertIsInstance(p.pop("iat"), int)
            for ts, regs in sorted(p.items()):
                self.assertRegex(ts, r"^1[0-9]{12}$")
                self.assertIsInstance(regs, dict)
                for addr, v in regs.items():
                    self.assertRegex(addr, r"^[0-9]+$")
                    self.assertTrue(isinstance(v, int) and 0 <= v <= 0xFFFF)
                sizes.append(len(regs))
        self.assertIn(profile, {h["model"] for h, _ in got})
        full, key_only = max(sizes), min(sizes)
        self.assertLess(key_only * 3, full, sizes)  # key registers on most polls
        n_full = sum(1 for x in sizes if x == full)
        self.assertTrue(len(sizes) / 12 <= n_full <= len(sizes) / 8 + 2, sizes)
        stop_clean(self, e)

    def test_missed_polls_are_in_the_batch(self):
        """A scheduled poll that read nothing is a poll with "m" in the batch:
        -110 while the device times out, -107 for the polls due while it
        backs off (offline); the decoder shows them and polls resume."""
        import socket
        sim = T.EgwSim(self, [("huawei", 1)])
        sim.wait_output("egw-sim: ready", timeout=10)
        ctl = socket.create_connection(("127.0.0.1", sim.control_port), timeout=5)
        self.addCleanup(ctl.close)
        cf = ctl.makefile("rwb")

        def control(line):
            cf.write(line.encode() + b"\n")
            cf.flush()
            self.assertTrue(cf.readline().decode().startswith("ok"), line)
        port = T.free_port()
        be = DevBackend(self, port)
        e = egwd_for(self, port, be.port, interval_ms=1000, extra={
            "devices": [sim.device_settings(0, id="inv1")],
            "harvest.poll_interval_ms": 200, "modbus.timeout_ms": 300})

        def polls():
            out = []
            for r in be.records():
                if r["header"].get("dtype") != "egw-batch":
                    continue
                for d in egw_batch.decode(r["payload"])["devices"]:
                    out += d["polls"]
            return out
        T.wait_until(lambda: any(p["reading"] for p in polls()), timeout=20,
                     what="a reading")
        control("fault timeout on")

        def missed():
            m = {p["missed"] for p in polls() if p["missed"] is not None}
            return m if {-110, -107} <= m else None
        got = T.wait_until(missed, timeout=30, interval=0.3, what="missed polls")
        self.assertLessEqual(got, {-110, -107})
        for p in polls():
            if p["missed"] is not None:
                self.assertEqual((p["raw"], p["reading"]), ({}, None))
        for r in be.records():
            if r["payload"].get("devices"):
                self.assertEqual(r["payload"]["v"], 4)
        n = len(polls())
        control("clear")
        T.wait_until(lambda: any(p["reading"] for p in polls()[n:]), timeout=30,
                     what="readings again")
        stop_clean(self, e)

    def test_gzip_uploads_and_415_falls_back_to_plain(self):
        """backend.compression=auto sends gzip bodies to a backend that takes
        them; a backend answering 415 to gzip gets the same batches plain,
        none lost, none out of order."""
        for extra, gz in (((), True), (("--no-gzip",), False)):
            port = T.free_port()
            be = DevBackend(self, port, *extra)
            e = egwd_for(self, port, be.port, interval_ms=200)
            key, info = public_key(e)
            T.wait_until(lambda: be.summary()["unique"] >= 5, timeout=20, what="5 batches")
            wait_idle(e)
            got = verify_all(self, be.records(), key, info["serialNumber"])
            seqs = [p["seq"] for _, p in got]
            contiguous(self, seqs, seqs[0])
            s = be.summary()
            up = e.state()["uploader"]
            self.assertEqual(up["compression"], "auto")
            if gz:
                self.assertEqual(s["gzip_bodies"], s["count"])
                self.assertEqual(up["refused_gzip"], 0)
                self.assertLess(s["wire_bytes"], s["body_bytes"])
            else:
                self.assertEqual(s["gzip_bodies"], 0)
                self.assertEqual(s["refused_encoding"], 1)   # once, then plain
                self.assertEqual(up["refused_gzip"], 1)
            self.assertEqual((s["bad_signatures"], s["duplicates"], s["missing"]), (0, 0, []))
            self.assertEqual(up["failed"], 0)
            stop_clean(self, e)

    def test_memory_trim_while_harvesting(self):
        """memory.trim_interval_s=1 hands free heap back every second while
        egwd polls, samples the frequency, signs, stores and uploads: every
        batch still arrives, signed and in order; /api/state reports RSS, PSS
        and private memory consistently."""
        sim = T.EgwSim(self, [("solaredge", 1)])
        port = T.free_port()
        be = DevBackend(self, port)
        e = egwd_for(self, port, be.port, interval_ms=200, extra={
            "devices": [sim.device_settings(0, id="inv1")],
            "harvest.poll_interval_ms": 100, "frequency.interval_ms": 100,
            "memory.trim_interval_s": 1})
        key, info = public_key(e)
        T.wait_until(lambda: e.state()["memory"]["trims"] >= 5, timeout=20, what="5 trims")
        T.wait_until(lambda: be.summary()["unique"] >= 20, timeout=20, what="20 batches")
        m = e.state()["memory"]
        self.assertGreater(m["anon_kb"], 0)
        self.assertGreater(m["private_kb"], 0)
        self.assertLessEqual(m["pss_kb"], m["rss_kb"], m)
        self.assertLessEqual(m["private_kb"], m["pss_kb"] + 4, m)
        self.assertLessEqual(m["private_dirty_kb"], m["private_kb"], m)
        # code paths not run since the last trim come back: a web page
        st, _, page = T.http(e.port, "GET", "/")
        self.assertEqual(st, 200)
        self.assertIn(b"<html", page.lower())
        self.assertEqual(e.get("/api/device")["devices"][0]["state"], "polling")
        # 0 stops the trims
        st, o = T.http_json(e.port, "POST", "/api/settings",
                            body={"memory": {"trim_interval_s": 0}}, headers=e.auth())
        self.assertEqual(st, 200, o)
        n = e.state()["memory"]["trims"]
        time.sleep(2.5)
        self.assertEqual(e.state()["memory"]["trims"], n)
        wait_idle(e)
        got = verify_all(self, be.records(), key, info["serialNumber"])
        seqs = [p["seq"] for _, p in got]
        contiguous(self, seqs, seqs[0])
        self.assertTrue(any(p["devices"] and egw_batch.decode(p)["devices"][0]["polls"][0]["reading"]
                            for _, p in got))
        s = be.summary()
        self.assertEqual((s["bad_signatures"], s["duplicates"]), (0, 0))
        stop_clean(self, e)

    def test_tls_peer_is_verified(self):
        # An HTTPS backend whose certificate no CA vouches for: egwd must
        # refuse to upload to it (verification is never turned off).
        cert, key = self_signed(T.tempdir(self))
        port = T.free_port()
        be = DevBackend(self, port, "--tls-cert", cert, "--tls-key", key)
        url = f"https://127.0.0.1:{be.port}/data"
        e = T.Egwd(self, port=port, set={"backend.data_urls": [url],
                                         "harvest.batch_interval_ms": 100})
        up = T.wait_until(lambda: (lambda u: u["failed"] >= 2 and u)(e.state()["uploader"]),
                          timeout=15, what="failed TLS uploads")
        self.assertEqual(up["ok"], 0)
        self.assertEqual(up["acked"], 0)
        self.assertRegex(up["last_error_detail"].lower(), "certificate|ssl")
        self.assertGreater(up["backlog"], 0)
        self.assertEqual(be.summary()["requests"], 0)
        # The backend itself speaks TLS fine to a client that trusts its cert.
        ctx = ssl.create_default_context(cafile=cert)
        c = http.client.HTTPSConnection("127.0.0.1", be.port, context=ctx, timeout=5)
        c.request("POST", "/data", body=b"not-a-token")
        self.assertEqual(c.getresponse().status, 400)
        c.close()
        stop_clean(self, e)

    def test_settings_switch_backend_without_restart(self):
        port = T.free_port()
        a, b = DevBackend(self, port), DevBackend(self, port)
        e = egwd_for(self, port, a.port, interval_ms=100)
        T.wait_until(lambda: a.summary()["unique"] >= 3, timeout=15, what="batches at A")
        before = e.state()["uploader"]["attempts"]
        # An unrelated change keeps the uploader (its counters go on).
        st, obj = T.http_json(port, "POST", "/api/settings",
                              {"name": {"interval_ms": 5000}}, headers=e.auth())
        self.assertEqual(st, 200, obj)
        self.assertGreaterEqual(e.state()["uploader"]["attempts"], before)
        # New endpoint: uploads move to B, continuing the sequence.
        st, obj = T.http_json(port, "POST", "/api/settings",
                              {"backend": {"data_urls": [b.data_url]}}, headers=e.auth())
        self.assertEqual(st, 200, obj)
        T.wait_until(lambda: b.summary()["unique"] >= 3, timeout=15, what="batches at B")
        self.assertEqual(e.state()["uploader"]["urls"], [b.data_url])
        time.sleep(0.3)
        sa, sb = a.summary(), b.summary()
        # Nothing skipped at the switch: B starts at most right after A's last.
        self.assertLessEqual(sb["min_seq"], sa["max_seq"] + 1)
        self.assertEqual(sb["missing"], [])
        contiguous(self, sorted(set(sa["seqs"]) | set(sb["seqs"])), sa["seqs"][0])
        stop_clean(self, e)

    def test_outage_every_batch_once_in_order(self):
        port = T.free_port()
        be = DevBackend(self, port)
        e = egwd_for(self, port, be.port, interval_ms=100, extra={"backend.timeout_ms": 500})
        key, info = public_key(e)
        T.wait_until(lambda: be.summary()["unique"] >= 3, timeout=15, what="first batches")
        # Refused connections, 500s, dropped connections, then answers that
        # never come (timeouts): ~60 batches pile up meanwhile.
        for mode in ("refuse", "500", "drop", "stall"):
            be.control(mode=mode, for_s=1.5)
            time.sleep(1.5)
        be.control(mode="ok")
        sealed_during = e.state()["harvest"]["last_seq"]
        self.assertGreater(sealed_during, 30)
        # egwd catches up by itself while it keeps harvesting.
        T.wait_until(lambda: e.state()["uploader"]["last_acked_seq"] >= sealed_during,
                     timeout=30, what="caught up after the outage")
        # Stop sealing so the end state is well defined, then let it drain.
        stop_clean(self, e)
        log = e.output()
        # One outage, one line each way, not one per retry.
        self.assertEqual(log.count("retrying with backoff"), 1, log)
        self.assertEqual(log.count("backend answers again"), 1, log)
        e2 = egwd_for(self, port, be.port, state_dir=e.state_dir, interval_ms=3600000)
        wait_idle(e2)
        stop_clean(self, e2)
        assert_all_delivered(self, e.state_dir, be)
        s = be.summary()
        self.assertEqual(s["duplicates"], 0, "a batch arrived twice")
        self.assertEqual(s["bad_signatures"], 0)
        # Several uploads are in flight at once, so arrivals may swap within
        # the window, never across it.
        self.assertLess(s["reorder_max"], WINDOW)
        self.assertEqual(s["missing"], [])
        contiguous(self, s["seqs"])
        verify_all(self, be.records(), key, info["serialNumber"])

    def test_crash_kill9_then_everything_delivered(self):
        port = T.free_port()
        be = DevBackend(self, port)
        state = T.tempdir(self)
        rnd = random.Random(1234)
        e = egwd_for(self, port, be.port, state_dir=state, interval_ms=50)
        key, info = public_key(e)
        for i in range(6):
            # Slow answers keep an upload in flight when the kill lands.
            be.control(mode="slow" if i % 2 else "ok", slow_ms=150)
            time.sleep(rnd.uniform(0.3, 1.0))
            e.kill9()
            e = egwd_for(self, port, be.port, state_dir=state, interval_ms=50)
        be.control(mode="ok")
        time.sleep(0.5)
        stop_clean(self, e)
        # Final run: no new batches; everything committed must arrive.
        e = egwd_for(self, port, be.port, state_dir=state, interval_ms=3600000)
        wait_idle(e)
        stop_clean(self, e)
        assert_all_delivered(self, state, be)
        s = be.summary()
        self.assertEqual(s["bad_signatures"], 0)
        self.assertEqual(s["missing"], [])
        self.assertLess(s["reorder_max"], WINDOW)
        contiguous(self, s["seqs"])
        self.assertGreater(len(s["seqs"]), 30)
        # At least once: a kill between the backend's 200 and our ack resends
        # the batches of the window in flight, and an acknowledgement waiting
        # to ride on the next commit (the store saves a commit per batch so)
        # is resent too: never more than window + 2 per kill.
        self.assertLessEqual(s["duplicates"], 6 * (WINDOW + 2))
        verify_all(self, be.records(), key, info["serialNumber"])

    def test_window_in_flight_and_acks_in_order(self):
        port = T.free_port()
        be = DevBackend(self, port, "--mode", "slow", "--slow-ms", "300")
        # seq 5 is refused (500) until told otherwise, while later ones
        # are answered 200.
        be.control(fail_seqs=[5], fail_times=100000)
        e = egwd_for(self, port, be.port, interval_ms=50,
                     extra={"backend.max_in_flight": 6})
        key, info = public_key(e)
        T.wait_until(lambda: len([x for x in be.summary()["seqs"] if x > 5]) >= 5,
                     timeout=30, what="batches after the failing one delivered")
        # The store acknowledged nothing past the hole, and keeps it so.
        for _ in range(10):
            st = e.state()
            self.assertLessEqual(st["store"]["delivered"], 4, st["store"])
            self.assertLessEqual(st["uploader"]["last_acked_seq"], 4, st["uploader"])
            self.assertGreaterEqual(st["uploader"]["pending_seq"], 1)
            self.assertLessEqual(st["uploader"]["in_flight"], 6)
            time.sleep(0.05)
        s = be.summary()
        self.assertNotIn(5, s["seqs"])
        self.assertGreaterEqual(s["max_concurrent"], 3, s)
        self.assertLessEqual(s["max_concurrent"], 6, s)
        # Batches beyond the window wait for the hole: at most 5 after it.
        self.assertLessEqual(max(s["seqs"]), 5 + 5, s["seqs"])
        self.assertEqual(e.state()["uploader"]["max_in_flight"], 6)
        _, _, metrics = T.http(e.port, "GET", "/metrics")
        self.assertIn(b"egw_upload_max_in_flight 6", metrics)
        # The hole heals: everything arrives and is acknowledged in order.
        be.control(fail_seqs=[], mode="ok")
        T.wait_until(lambda: e.state()["store"]["delivered"] >= 30, timeout=60,
                     what="catching up after the hole")
        stop_clean(self, e)
        e2 = egwd_for(self, port, be.port, state_dir=e.state_dir, interval_ms=3600000)
        wait_idle(e2)
        stop_clean(self, e2)
        assert_all_delivered(self, e.state_dir, be)
        s = be.summary()
        self.assertEqual(s["missing"], [])
        self.assertEqual(s["bad_signatures"], 0)
        self.assertLess(s["reorder_max"], 6)
        contiguous(self, s["seqs"])
        verify_all(self, be.records(), key, info["serialNumber"])


if __name__ == "__main__":
    unittest.main()
