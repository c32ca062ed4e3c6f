"""HTTPS beside plain HTTP: egwd's own certificate, checked by real clients.

egwd listens on a free plain port and a free HTTPS port (http.tls_port); curl
(OpenSSL) talks to it with --cacert set to the generated certificate and with
--pinnedpubkey, the `openssl` command and python3-cryptography read the
certificate, headless Chromium loads the UI over HTTPS and over plain HTTP by a
host name (tests/node/tls.mjs).  Run with /usr/bin/python3; EGW_BUILD names the
build directory.
"""
import base64
import hashlib
import http.client as httpclient
import ipaddress
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import egwtest as T

NODE_DIR = os.path.join(T.REPO, "tests", "node")
SHOTS = os.path.join(T.REPO, "tests", "out", "screenshots")


def curl(url, *args, timeout=20):
    """curl -sS; returns (exit code, HTTP status or 0, body text, stderr)."""
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}",
                        *args, url], capture_output=True, text=True, timeout=timeout)
    body, _, code = p.stdout.rpartition("\n")
    return p.returncode, int(code or 0), body, p.stderr


def openssl_fingerprint(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]  # "sha256 Fingerprint=AB:CD:..."


def spki_pin(path):
    """curl --pinnedpubkey form: sha256// + base64 of the SubjectPublicKeyInfo's SHA-256."""
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def https_state(g):
    return g.state()["https"]


class HttpsTest(unittest.TestCase):
    def start(self, **kw):
        return T.Egwd(self, **kw)

    def cert_path(self, g):
        return os.path.join(g.state_dir, "https-cert.pem")

    def url(self, g, path="/api/hello", host="127.0.0.1"):
        return f"https://{host}:{g.tls_port}{path}"

    def test_curl_trusts_the_generated_certificate(self):
        g = self.start()
        cert = self.cert_path(g)
        st = https_state(g)
        self.assertTrue(st["listening"], st)
        self.assertEqual(st["port"], g.tls_port)
        self.assertIsNone(st["error"])
        # the certificate as trust anchor, by IP literal and by every name in it
        rc, code, body, err = curl(self.url(g), "--cacert", cert)
        self.assertEqual((rc, code), (0, 200), err)
        self.assertEqual(json.loads(body), {"message": "Hello from egw"})
        host = socket.gethostname()
        names = ["localhost"]
        if host != "localhost" and "." not in host:
            names += [host, host + ".local"]
        for name in names:
            # the TLS handshake with name verification is what counts here (a
            # Host check may answer 421 for a name it does not know)
            rc, code, _, err = curl(self.url(g, host=name), "--cacert", cert,
                                    "--resolve", f"{name}:{g.tls_port}:127.0.0.1")
            self.assertEqual(rc, 0, f"{name}: {err}")
            self.assertIn(code, (200, 421), name)
        # a name the certificate does not carry is refused by curl (60: peer
        # certificate cannot be authenticated)
        rc, _, _, err = curl(self.url(g, host="elsewhere.example"), "--cacert", cert,
                             "--resolve", f"elsewhere.example:{g.tls_port}:127.0.0.1")
        self.assertEqual(rc, 60, err)
        # without the anchor curl refuses it; pinned by its public key it is accepted
        rc, _, _, _ = curl(self.url(g))
        self.assertNotEqual(rc, 0)
        rc, code, _, err = curl(self.url(g), "-k", "--pinnedpubkey", spki_pin(cert))
        self.assertEqual((rc, code), (0, 200), err)
        rc, _, _, _ = curl(self.url(g), "-k", "--pinnedpubkey",
                           "sha256//" + base64.b64encode(b"\0" * 32).decode())
        self.assertNotEqual(rc, 0)
        # plain HTTP is where it was
        self.assertEqual(T.get_json(g.port, "/api/hello"), {"message": "Hello from egw"})

    def test_fingerprint_everywhere_and_the_certificate(self):
        g = self.start()
        cert = self.cert_path(g)
        fp = openssl_fingerprint(cert)
        self.assertRegex(fp, r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")
        self.assertEqual(https_state(g)["fingerprint_sha256"], fp)
        out = g.output()
        self.assertIn(f"egwd: created HTTPS certificate {cert} (SHA-256 {fp})", out)
        self.assertIn(f"listening on https://127.0.0.1:{g.tls_port}/ (certificate SHA-256 {fp})",
                      out)
        st, _, page = T.http(g.port, "GET", "/status")
        self.assertEqual(st, 200)
        self.assertIn(fp, page.decode())
        # the status page over HTTPS too
        rc, code, body, err = curl(self.url(g, "/status"), "--cacert", cert)
        self.assertEqual((rc, code), (0, 200), err)
        self.assertIn(fp, body)

        with open(cert, "rb") as f:
            c = x509.load_pem_x509_certificate(f.read())
        self.assertIsInstance(c.public_key(), ec.EllipticCurvePublicKey)
        self.assertEqual(c.public_key().curve.name, "secp256r1")
        days = (c.not_valid_after - c.not_valid_before).days
        self.assertTrue(3640 <= days <= 3660, days)
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = san.get_values_for_type(x509.IPAddress)
        self.assertIn("localhost", dns)
        self.assertIn(ipaddress.ip_address("127.0.0.1"), ips)
        self.assertIn(ipaddress.ip_address("::1"), ips)
        bc = c.extensions.get_extension_for_class(x509.BasicConstraints)
        self.assertFalse(bc.value.ca)
        # files: the key private, the certificate public
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(g.state_dir, "https-key.pem")).st_mode),
                         0o600)
        self.assertEqual(stat.S_IMODE(os.stat(cert).st_mode), 0o644)
        # its own key, not the device's signing key
        with open(os.path.join(g.state_dir, "https-key.pem"), "rb") as f:
            tls_key = serialization.load_pem_private_key(f.read(), None)
        self.assertEqual(tls_key.public_key().public_numbers(), c.public_key().public_numbers())
        dev = T.get_json(g.port, "/api/crypto")["publicKey_pem"]
        dev_key = serialization.load_pem_public_key(dev.encode())
        self.assertNotEqual(dev_key.public_numbers(), c.public_key().public_numbers())

    def test_token_post_over_https(self):
        g = self.start()
        cert = self.cert_path(g)
        body = json.dumps({"harvest": {"batch_interval_ms": 4321}})
        rc, code, out, err = curl(self.url(g, "/api/settings"), "--cacert", cert, "-X", "POST",
                                  "-H", "Content-Type: application/json", "--data", body)
        self.assertEqual((rc, code), (0, 401), out + err)
        rc, code, out, err = curl(self.url(g, "/api/settings"), "--cacert", cert, "-X", "POST",
                                  "-H", "Content-Type: application/json",
                                  "-H", f"Authorization: Bearer {g.token}", "--data", body)
        self.assertEqual((rc, code), (0, 200), out + err)
        self.assertEqual(json.loads(out)["harvest"]["batch_interval_ms"], 4321)
        self.assertEqual(g.get("/api/settings")["harvest"]["batch_interval_ms"], 4321)
        # keep-alive over TLS: several requests on one connection (Python's ssl)
        ctx = ssl.create_default_context(cafile=cert)
        c = httpclient.HTTPSConnection("127.0.0.1", g.tls_port, context=ctx, timeout=10)
        try:
            for path in ("/api/hello", "/api/version", "/api/state"):
                c.request("GET", path)
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 200, path)
            self.assertEqual(c.sock.version(), "TLSv1.3")
        finally:
            c.close()

    def test_held_answers_over_https(self):
        """Wrong tokens from a limited address are answered late (the
        connection is suspended meanwhile): over HTTPS too, and the listener
        can stop while one is held."""
        g = self.start()
        ctx = ssl.create_default_context(cafile=self.cert_path(g))

        def wrong_token():
            c = httpclient.HTTPSConnection("127.0.0.1", g.tls_port, context=ctx, timeout=5)
            try:
                c.request("POST", "/api/settings", body="{}",
                          headers={"Authorization": "Bearer " + "0" * 64,
                                   "Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                return r.status
            finally:
                c.close()

        codes = [wrong_token() for _ in range(10)]
        self.assertEqual(set(codes), {401})
        t0 = time.monotonic()
        self.assertEqual(wrong_token(), 429)  # held, then delivered
        self.assertGreater(time.monotonic() - t0, 0.5)
        # one held while the listener stops: egwd lives on
        held = {}

        def hold():
            try:
                held["status"] = wrong_token()
            except OSError as e:
                held["error"] = e
        th = threading.Thread(target=hold)
        th.start()
        T.wait_until(lambda: "egw_http" in T.http(g.port, "GET", "/metrics")[2].decode()
                     and th.is_alive(), what="request held")
        time.sleep(0.2)
        st, obj = T.http_json(g.port, "POST", "/api/settings", {"http": {"tls": False}},
                              headers=g.auth())
        self.assertEqual(st, 200, obj)
        th.join(10)
        self.assertFalse(th.is_alive())
        T.wait_until(lambda: not https_state(g)["listening"], what="https off")
        self.assertTrue(g.alive(), g.output()[-2000:])
        self.assertEqual(T.get_json(g.port, "/api/hello"), {"message": "Hello from egw"})

    def test_certificate_survives_restart(self):
        g = self.start()
        fp = https_state(g)["fingerprint_sha256"]
        self.assertEqual(g.stop(), 0)
        g2 = self.start(state_dir=g.state_dir)
        self.assertEqual(https_state(g2)["fingerprint_sha256"], fp)
        self.assertNotIn("created HTTPS certificate", g2.output())
        rc, code, _, err = curl(self.url(g2), "--cacert", self.cert_path(g))
        self.assertEqual((rc, code), (0, 200), err)

    def test_runtime_changes_apply_without_restart(self):
        g = self.start()
        auth = g.auth()
        cert = self.cert_path(g)
        # off: the HTTPS port closes, plain HTTP goes on
        st, obj = T.http_json(g.port, "POST", "/api/settings", {"http": {"tls": False}},
                              headers=auth)
        self.assertEqual(st, 200, obj)
        T.wait_until(lambda: not https_state(g)["listening"], what="https off")
        rc, _, _, _ = curl(self.url(g), "--cacert", cert)
        self.assertNotEqual(rc, 0)
        # on again, on another port, with the same certificate
        new_port = T.free_port()
        st, obj = T.http_json(g.port, "POST", "/api/settings",
                              {"http": {"tls": True, "tls_port": new_port}}, headers=auth)
        self.assertEqual(st, 200, obj)
        T.wait_until(lambda: https_state(g)["port"] == new_port and
                     https_state(g)["listening"], what="https on the new port")
        rc, code, _, err = curl(f"https://127.0.0.1:{new_port}/api/hello", "--cacert", cert)
        self.assertEqual((rc, code), (0, 200), err)
        # a value the schema refuses never gets saved
        for bad in (0, 70000, "5443", None):
            st, obj = T.http_json(g.port, "POST", "/api/settings", {"http": {"tls_port": bad}},
                                  headers=auth)
            self.assertEqual(st, 400, (bad, obj))
            self.assertIn("http.tls_port", json.dumps(obj))
        # a port someone else holds (or the plain port): refused, nothing
        # saved, egwd stays on its old one
        with socket.socket() as s:
            s.bind(("127.0.0.1", T.free_port()))
            s.listen()
            taken = s.getsockname()[1]
            for port in (taken, g.port):
                st, obj = T.http_json(g.port, "POST", "/api/settings",
                                      {"http": {"tls_port": port}}, headers=auth)
                self.assertEqual(st, 400, obj)
                self.assertEqual(obj["field"], "http.tls_port", obj)
                self.assertIn(f"cannot listen on 127.0.0.1:{port}", obj["error"])
            self.assertEqual(https_state(g)["port"], new_port)
            self.assertIsNone(https_state(g)["error"])
            with open(os.path.join(g.state_dir, "settings.json")) as f:
                self.assertEqual(json.load(f)["http"]["tls_port"], new_port)
            rc, code, _, _ = curl(f"https://127.0.0.1:{new_port}/api/hello", "--cacert", cert)
            self.assertEqual((rc, code), (0, 200))
        # ...and a restart with a taken port on the command line still
        # starts and serves (test_a_taken_port_or_bad_files_never_stop_egwd)
        self.assertEqual(g.stop(), 0)
        g2 = self.start(state_dir=g.state_dir, tls_port=taken)
        self.assertTrue(https_state(g2)["listening"])

    def test_open_connections_counted_across_a_plain_rebind(self):
        """HTTPS connections stay open while the plain listener moves: the
        count of open connections (plain and HTTPS, which the slow-client
        deadline uses) keeps them, and drops to what is left when they close."""
        g = self.start()
        ctx = ssl.create_default_context(cafile=self.cert_path(g))
        conns = []
        for _ in range(3):
            c = httpclient.HTTPSConnection("127.0.0.1", g.tls_port, context=ctx, timeout=10)
            c.request("GET", "/api/hello")
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            conns.append(c)
            self.addCleanup(c.close)

        def open_on(port):
            # counted while this very request is open: one plain connection
            _, _, body = T.http(port, "GET", "/api/state", headers=g.auth())
            return json.loads(body)["http"]["open_connections"]
        T.wait_until(lambda: open_on(g.port) == 4, what="3 HTTPS + 1 plain open")
        new = T.free_port()
        st, obj = T.http_json(g.port, "POST", "/api/settings", {"http": {"port": new}},
                              headers=g.auth())
        self.assertEqual(st, 200, obj)

        def moved():
            try:
                return T.http(new, "GET", "/api/hello", timeout=1.0)[0] == 200
            except OSError:
                return False
        T.wait_until(moved, timeout=10, what="egwd on the new port")
        T.wait_until(lambda: open_on(new) == 4, what="the HTTPS connections still counted")
        for c in conns:
            c.request("GET", "/api/hello")  # still served after the move
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            c.close()
        T.wait_until(lambda: open_on(new) == 1, what="only the plain request left")

    def test_a_taken_port_or_bad_files_never_stop_egwd(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            taken = s.getsockname()[1]
            g = self.start(tls_port=taken)
            st = https_state(g)
            self.assertFalse(st["listening"])
            self.assertIn("cannot listen", st["error"])
        # the port free again: egwd takes it by itself, and said it once
        T.wait_until(lambda: https_state(g)["listening"], timeout=15, what="https retried")
        self.assertIsNone(https_state(g)["error"])
        self.assertEqual(g.output().count(f"cannot listen on 127.0.0.1:{taken}"), 1)
        self.assertEqual(g.stop(), 0)
        # a certificate file that is not one: kept as it is, plain HTTP serves
        cert = self.cert_path(g)
        with open(cert, "w") as f:
            f.write("not a certificate\n")
        g2 = self.start(state_dir=g.state_dir)
        st = https_state(g2)
        self.assertFalse(st["listening"])
        self.assertIn("not a PEM certificate", st["error"])
        self.assertIn(cert, st["error"])
        with open(cert) as f:
            self.assertEqual(f.read(), "not a certificate\n")
        st_code, page_hdr, page = T.http(g2.port, "GET", "/status")
        self.assertEqual(st_code, 200)
        self.assertIn("not a PEM certificate", page.decode())
        # a key without its certificate (a crash between the two writes): a new pair
        self.assertEqual(g2.stop(), 0)
        os.remove(cert)
        g3 = self.start(state_dir=g.state_dir)
        self.assertTrue(https_state(g3)["listening"])
        self.assertIn("created HTTPS certificate", g3.output())
        # a key that is not the certificate's: refused, both files kept
        self.assertEqual(g3.stop(), 0)
        key = os.path.join(g.state_dir, "https-key.pem")
        other = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                                "ec_paramgen_curve:P-256"], capture_output=True, check=True).stdout
        with open(key, "wb") as f:
            f.write(other)
        g4 = self.start(state_dir=g.state_dir)
        self.assertIn("the key does not match the certificate", https_state(g4)["error"])
        with open(key, "rb") as f:
            self.assertEqual(f.read(), other)
        self.assertEqual(T.get_json(g4.port, "/api/hello"), {"message": "Hello from egw"})

    def test_silent_sockets_on_the_tls_port(self):
        """Sockets that never finish a TLS handshake hold the HTTPS listener's
        slots only until the request deadline, and never the plain one's."""
        g = self.start(set={"http.max_connections": 8, "http.request_timeout_s": 1})
        cert = self.cert_path(g)
        cpu0 = cpu_seconds(g.pid)
        socks = [socket.create_connection(("127.0.0.1", g.tls_port)) for _ in range(8)]
        self.addCleanup(lambda: [s.close() for s in socks])
        # the plain listener has its own slots
        self.assertEqual(T.get_json(g.port, "/api/hello"), {"message": "Hello from egw"})
        # egwd closes the silent ones (a TLS alert at most, then EOF or a reset),
        # then serves HTTPS again
        for s in socks:
            s.settimeout(5)
            try:
                while s.recv(64):
                    pass
            except ConnectionResetError:
                pass
        # and does not spin meanwhile (libmicrohttpd 0.9.75 with TURBO did)
        self.assertLess(cpu_seconds(g.pid) - cpu0, 0.5)
        rc, code, _, err = curl(self.url(g), "--cacert", cert)
        self.assertEqual((rc, code), (0, 200), err)
        self.assertTrue(g.alive())

    def test_own_certificate_files(self):
        d = T.tempdir(self)
        cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, check=True)
        g = self.start(set={"http.tls_cert": cert, "http.tls_key": key})
        self.assertEqual(https_state(g)["fingerprint_sha256"], openssl_fingerprint(cert))
        rc, code, _, err = curl(self.url(g), "--cacert", cert)
        self.assertEqual((rc, code), (0, 200), err)
        self.assertFalse(os.path.exists(os.path.join(g.state_dir, "https-key.pem")))
        # a path that does not exist: no certificate is made there
        g2 = self.start(set={"http.tls_cert": cert + ".missing", "http.tls_key": key})
        self.assertIn("does not exist", https_state(g2)["error"])
        self.assertFalse(os.path.exists(cert + ".missing"))

    @unittest.skipUnless(shutil.which("node") and os.path.exists("/usr/bin/chromium") and
                         os.path.isdir(os.path.join(NODE_DIR, "node_modules", "playwright-core")),
                         "needs node, /usr/bin/chromium and npm playwright-core (scripts/setup --test)")
    def test_ui_in_chromium_over_https_and_the_plain_http_notice(self):
        g = self.start()
        fp = https_state(g)["fingerprint_sha256"]
        # A name for this machine that is not a loopback name: the page decides
        # from location.hostname (Chromium maps the name to 127.0.0.1).
        host = socket.gethostname()
        if host in ("localhost", "") or host.startswith("127."):
            host = "gateway.example"
        os.makedirs(SHOTS, exist_ok=True)
        r = subprocess.run(["node", os.path.join(NODE_DIR, "tls.mjs"), "--port", str(g.port),
                            "--tls-port", str(g.tls_port), "--host", host, "--fingerprint", fp,
                            "--out", SHOTS],
                           cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
        msg = f"tls.mjs failed:\n{r.stdout}\n{r.stderr}\negwd:\n{g.output()[-3000:]}"
        self.assertEqual(r.returncode, 0, msg)
        self.assertIn("ok - live stream (server-sent events) open over https", r.stdout)
        self.assertIn("ok - notice links to", r.stdout)
        self.assertTrue(g.alive(), g.output())


if __name__ == "__main__":
    unittest.main()
