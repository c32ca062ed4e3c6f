"""The MQTT uplink of signed batches against a real mosquitto with TLS (a CA
made here with openssl).

mosquitto cannot check a JWT password (Debian ships no such plugin), so the
broker side of the login is an authenticating front in this file, as a fleet's
broker cluster (EMQX, VerneMQ, HiveMQ with JWT auth) would do it: it
terminates egwd's TLS (certificate of the test CA), reads the CONNECT packet,
verifies the password with PyJWT against the gateway's public key (ES256,
sub/iat/exp/jti, a jti never seen before, the user name and client id the
serial), answers CONNACK "not authorised" to anything else, and otherwise
passes the connection on, CONNECT included, to mosquitto over TLS.  The
development backend subscribes on mosquitto itself (mosquitto_sub, QoS 1,
persistent session) and verifies every batch.  Run with /usr/bin/python3."""
import os
import shutil
import socket
import ssl
import select
import threading
import time
import unittest

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization

import egwtest as T
import test_mqtt as M
import test_pipeline as PL


def _varint(buf, i):
    mul, val = 1, 0
    while True:
        b = buf[i]
        i += 1
        val += (b & 0x7F) * mul
        if not b & 0x80:
            return val, i
        mul *= 128
        if mul > 128 ** 3:
            raise ValueError("bad remaining length")


def _recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def read_connect(s):
    """The first packet of a connection; returns (raw bytes, fields)."""
    head = _recv_exact(s, 2)
    if head[0] != 0x10:
        raise ValueError(f"first packet type {head[0]:#x}, not CONNECT")
    raw = head
    while raw[-1] & 0x80:
        raw += _recv_exact(s, 1)
    n, _ = _varint(raw, 1)
    body = _recv_exact(s, n)
    raw += body

    def string(i):
        k = int.from_bytes(body[i:i + 2], "big")
        return body[i + 2:i + 2 + k], i + 2 + k

    proto, i = string(0)
    level, flags = body[i], body[i + 1]
    i += 4  # level, flags, keepalive
    if level == 5:
        plen, i = _varint(body, i)
        i += plen
    client_id, i = string(i)
    if flags & 0x04:  # will
        if level == 5:
            plen, i = _varint(body, i)
            i += plen
        _, i = string(i)
        _, i = string(i)
    user = pw = None
    if flags & 0x80:
        user, i = string(i)
    if flags & 0x40:
        pw, i = string(i)
    return raw, {"proto": proto.decode(), "level": level, "client_id": client_id.decode(),
                 "username": user.decode() if user is not None else None,
                 "password": pw.decode() if pw is not None else None}


class AuthFront:
    """The broker's login check in front of mosquitto (see the file comment)."""

    def __init__(self, tc, broker, ca, crt, key, lifetime_s):
        self.broker, self.ca, self.lifetime_s = broker, ca, lifetime_s
        self.key = self.serial = self.egwd_port = None
        self.lock = threading.Lock()
        self.accepted = []   # verified claims, one per accepted login
        self.rejected = []   # reasons
        self.refuse = False  # answer "server unavailable" to every login
        self.pairs = []
        self.srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.srv_ctx.load_cert_chain(crt, key)
        self.cli_ctx = ssl.create_default_context(cafile=ca)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = T.free_port()
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.stopping = False
        threading.Thread(target=self._accept_loop, daemon=True).start()
        tc.addCleanup(self.stop)

    def know(self, egwd_port):
        """The gateway to check logins against (its key from /api/crypto,
        fetched at its first login: egwd serves it before it connects)."""
        self.egwd_port = egwd_port
        self.key = self.serial = None

    def _fetch_key(self):
        info = T.get_json(self.egwd_port, "/api/crypto")
        self.key = serialization.load_pem_public_key(info["publicKey_pem"].encode())
        self.serial = info["serialNumber"]

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.drop_all()

    def drop_all(self):
        """Cut every connection at once (mid-publish when batches flow)."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        return len(pairs)

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def check(self, f):
        if self.key is None and self.egwd_port:
            try:
                self._fetch_key()
            except (OSError, AssertionError, ValueError) as e:
                return f"gateway key not available: {e}"
        if self.key is None:
            return "gateway key not known"
        if f["username"] != self.serial or f["client_id"] != self.serial:
            return f"user {f['username']!r} / client id {f['client_id']!r} is not the serial"
        try:
            c = pyjwt.decode(f["password"] or "", self.key, algorithms=["ES256"],
                             audience="127.0.0.1",
                             options={"require": ["sub", "iat", "exp", "jti", "aud"]})
        except pyjwt.InvalidTokenError as e:
            return f"password is not a valid JWT: {e}"
        if c["sub"] != self.serial:
            return "sub is not the serial"
        if c["exp"] - c["iat"] != self.lifetime_s:
            return f"lifetime {c['exp'] - c['iat']} s"
        if abs(c["iat"] - time.time()) > 60:
            return "iat far from now"
        with self.lock:
            if any(a["jti"] == c["jti"] for a in self.accepted):
                return "jti seen before (a replayed token)"
            self.accepted.append(c)
        return None

    def _serve(self, conn):
        try:
            conn.settimeout(10)
            down = self.srv_ctx.wrap_socket(conn, server_side=True)
            raw, f = read_connect(down)
        except (OSError, ValueError, ConnectionError):
            conn.close()
            return
        why = "refusing" if self.refuse else self.check(f)
        if why:
            with self.lock:
                self.rejected.append(why)
            try:
                down.sendall(b"\x20\x02\x00" + (b"\x03" if self.refuse else b"\x05"))
            finally:
                down.close()
            return
        try:
            up = self.cli_ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.broker.port),
                                                                   timeout=10),
                                          server_hostname="127.0.0.1")
            up.sendall(raw)
        except OSError:
            down.close()  # the broker is away: egwd sees the connection lost
            return
        with self.lock:
            self.pairs.append((down, up))
        self._pipe(down, up)

    def _pipe(self, a, b):
        other = {a: b, b: a}
        try:
            while True:
                ready = [s for s in (a, b) if s.pending()]
                if not ready:
                    ready, _, _ = select.select([a, b], [], [], 1.0)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        raise ConnectionError("closed")
                    other[s].sendall(data)
        except (OSError, ValueError, ConnectionError):
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass


def mqtt_settings(front_port, ca, interval_ms=100, lifetime_s=10, extra=None):
    s = {"uplink.mqtt.enabled": True, "uplink.mqtt.host": "127.0.0.1",
         "uplink.mqtt.port": front_port, "uplink.mqtt.ca_file": ca,
         "uplink.mqtt.jwt_lifetime_s": lifetime_s, "harvest.batch_interval_ms": interval_ms}
    s.update(extra or {})
    return s


def mqtt_backend(tc, egwd_port, broker, ca, client_id="egw-devbackend"):
    return PL.DevBackend(tc, egwd_port, "--mqtt-host", "127.0.0.1", "--mqtt-port",
                         str(broker.port), "--mqtt-cafile", ca, "--mqtt-client-id", client_id)


def uplink(e):
    return e.state()["uplink_mqtt"]


@unittest.skipUnless(os.path.exists(M.MOSQUITTO) and shutil.which("mosquitto_sub")
                     and shutil.which("openssl"), "needs mosquitto, mosquitto-clients, openssl")
class UplinkMqttTest(unittest.TestCase):

    def setUp(self):
        self.ca, crt, key = M.make_certs(self)
        self.broker = M.Broker(self, tls=(self.ca, crt, key))
        self.broker.start()
        self.front = AuthFront(self, self.broker, self.ca, crt, key, lifetime_s=10)

    def start_egwd(self, port, state_dir=None, interval_ms=100, extra=None):
        self.front.know(port)
        return T.Egwd(self, port=port, state_dir=state_dir,
                      set=mqtt_settings(self.front.port, self.ca, interval_ms, extra=extra))

    def test_batches_over_tls_with_jwt_through_faults(self):
        port = T.free_port()
        be = mqtt_backend(self, port, self.broker, self.ca)
        time.sleep(0.5)  # the subscription stands before anything is published
        state = T.tempdir(self)
        e = self.start_egwd(port, state)
        key, info = PL.public_key(e)
        serial = info["serialNumber"]
        T.wait_until(lambda: be.summary()["unique"] >= 10, timeout=30,
                     what="first batches over MQTT")
        st = uplink(e)
        self.assertTrue(st["connected"], st)
        self.assertEqual(st["auth"], "jwt")
        self.assertEqual(st["max_in_flight"], 8)
        self.assertIsNone(st["last_error"])
        self.assertEqual(self.front.rejected, [])
        rec = be.records()[0]
        self.assertEqual(rec["path"], f"mqtt:egw/{serial}/batches")
        _, _, metrics = T.http(e.port, "GET", "/metrics")
        self.assertIn(b"egw_uplink_mqtt_connected 1", metrics)
        self.assertIn(b"egw_uplink_mqtt_delivered_total ", metrics)

        # The token is renewed before it expires (10 s: at 8 s), with a
        # reconnect that the front verifies again (a new jti).
        T.wait_until(lambda: len(self.front.accepted) >= 2, timeout=30,
                     what="a renewed JWT before expiry")
        a, b = self.front.accepted[:2]
        self.assertNotEqual(a["jti"], b["jti"])
        self.assertLess(b["iat"], a["exp"])

        # Connections dropped while batches flow, three times.
        for _ in range(3):
            T.wait_until(lambda: uplink(e)["connected"], timeout=40, what="connected")
            time.sleep(0.3)
            self.front.drop_all()
        # The broker restarts (it keeps the subscriber's session).
        T.wait_until(lambda: uplink(e)["connected"], timeout=40, what="connected")
        self.broker.stop()
        time.sleep(1.0)
        self.broker.start()
        T.wait_until(lambda: uplink(e)["connected"], timeout=40,
                     what="reconnected after the broker restart")
        # egwd killed with batches in flight, then started again.
        time.sleep(0.5)
        e.kill9()
        e = self.start_egwd(port, state)
        T.wait_until(lambda: uplink(e)["connected"], timeout=40, what="connected after kill -9")
        time.sleep(1.0)
        PL.stop_clean(self, e)
        # No new batches: everything stored drains over MQTT.
        e = self.start_egwd(port, state, interval_ms=3600000)
        T.wait_until(lambda: e.state()["store"]["backlog"] == 0, timeout=60,
                     what="store drained over MQTT")
        st = uplink(e)
        self.assertEqual(st["in_flight"], 0)
        self.assertGreater(st["delivered"], 0)
        PL.stop_clean(self, e)
        PL.assert_all_delivered(self, state, be)
        s = T.wait_until(lambda: (lambda s: s if s["missing"] == [] else None)(be.summary()),
                         timeout=20, what="the subscriber has every batch")
        self.assertEqual(s["bad_signatures"], 0)
        self.assertEqual(s["malformed"], 0)
        self.assertLess(s["reorder_max"], 8)
        PL.contiguous(self, s["seqs"])
        self.assertGreater(len(s["seqs"]), 50)
        # Duplicates only as seq identifies them (the same token again).
        seen = {}
        for r in be.records():
            if r["seq"] in seen:
                self.assertEqual(seen[r["seq"]], r["jwt"], f"seq {r['seq']} with another body")
            seen[r["seq"]] = r["jwt"]
        PL.verify_all(self, be.records(), key, serial)
        self.assertEqual(self.front.rejected, [])
        self.assertGreaterEqual(len(self.front.accepted), 6)

    def test_wrong_password_refused_and_batches_kept(self):
        port = T.free_port()
        e = self.start_egwd(port, extra={"uplink.mqtt.auth": "password",
                                         "uplink.mqtt.password": "not-a-jwt"})
        T.wait_until(lambda: self.front.rejected and uplink(e)["refused"] >= 1, timeout=30,
                     what="the login refused")
        st = uplink(e)
        self.assertFalse(st["connected"])
        self.assertRegex((st["last_error"] or "").lower(), "not authori[sz]ed")
        self.assertIn("not a valid JWT", self.front.rejected[0])
        self.assertEqual(st["delivered"], 0)
        T.wait_until(lambda: e.state()["store"]["backlog"] >= 5, timeout=20,
                     what="batches kept in the store")
        self.assertEqual(uplink(e)["delivered"], 0)
        self.assertEqual(e.get("/api/settings")["uplink"]["mqtt"]["password"], "***")
        PL.stop_clean(self, e)

    def test_http_and_mqtt_side_by_side(self):
        """Each uplink tracks its own deliveries: a row leaves the store only
        once both delivered it."""
        port = T.free_port()
        http_be = PL.DevBackend(self, port)
        mqtt_be = mqtt_backend(self, port, self.broker, self.ca, client_id="egw-side")
        time.sleep(0.5)
        self.front.refuse = True  # the broker cluster is away at first
        e = self.start_egwd(port, extra={"backend.data_urls": [http_be.data_url]})
        T.wait_until(lambda: http_be.summary()["unique"] >= 20, timeout=30,
                     what="HTTP delivers meanwhile")
        st = e.state()
        # Delivered over HTTP, kept for MQTT.
        self.assertGreaterEqual(st["store"]["backlog"], 15, st["store"])
        self.assertEqual(st["store"]["delivered"], 0)
        self.assertGreaterEqual(st["uploader"]["last_acked_seq"], 20)
        self.assertEqual(uplink(e)["delivered"], 0)
        self.front.refuse = False
        T.wait_until(lambda: uplink(e)["delivered"] >= 20, timeout=60, what="MQTT catches up")
        PL.stop_clean(self, e)
        e = self.start_egwd(port, state_dir=e.state_dir, interval_ms=3600000,
                            extra={"backend.data_urls": [http_be.data_url]})
        T.wait_until(lambda: e.state()["store"]["backlog"] == 0, timeout=60,
                     what="both uplinks delivered everything")
        PL.stop_clean(self, e)
        for be in (http_be, mqtt_be):
            s = T.wait_until(lambda: (lambda s: s if s["missing"] == [] else None)(be.summary()),
                             timeout=20, what="every batch")
            self.assertEqual(s["bad_signatures"], 0)
            PL.contiguous(self, s["seqs"])
        self.assertEqual(http_be.summary()["seqs"], mqtt_be.summary()["seqs"])


if __name__ == "__main__":
    unittest.main()
