#!/usr/bin/python3
"""egw local development backend.

Receives the gateway's signed batches, verifies every signature, answers the
gateway-name GraphQL query, and can be told to misbehave so the gateway's
store-and-forward can be exercised.  Standard library plus Debian's
python3-jwt (PyJWT) and python3-cryptography only.  Run with /usr/bin/python3.

  devbackend.py --port 0 --egwd http://127.0.0.1:5000 --log received.jsonl

Endpoints (on --port; also on --control-port when given, which stays up while
the data port refuses connections):
  POST <data path>   (default /data; --data-path may repeat) body: compact JWS.
                     200 {"ok":true,"seq":N,"duplicate":bool} when the signature
                     verifies; 400 when malformed or the signature is bad;
                     503 while the public key is unknown (egwd unreachable).
  POST /graphql      gatewayName query -> {"data":{"gatewayConfiguration":
                     {"gatewayName":{"name": <name or null>}}}}
  GET  /received     summary: seqs, duplicates, bad signatures, missing seqs,
                     gap records, order violations.
  GET  /received/all every accepted record (header, payload, jwt, "batch": a
                     summary of the decoded batch), in arrival order.
  GET  /received/decoded  every accepted batch decoded (tools/egw_batch.py,
                     doc/batch-format.md): each poll's full register map,
                     reading, and the frequency samples.
  Uploads may be gzip-compressed (Content-Encoding: gzip) unless --no-gzip,
  which answers 415 to them; another Content-Encoding gets 415.
  POST /control      {"mode":"ok|refuse|500|stall|drop|slow","for_s":N,
                      "name":"..." or null,"slow_ms":N,
                      "fail_seqs":[seq,...],"fail_times":K}; after for_s the
                     mode returns to ok; a verified batch whose seq is in
                     fail_seqs is answered 500 (not recorded), K times each
                     (default 1; [] clears).  GET /control shows the state.
  POST /reset        forget everything received.

Modes: refuse = the data port stops listening (connection refused); 500 =
answer 500; stall = read the request, never answer (until the mode ends or the
client gives up); drop = read the request, then reset the connection; slow =
answer normally after slow_ms (--mode slow --slow-ms 100: a backend that answers
each upload after 100 ms).

The summary counts uploads being answered at once (max_concurrent: several
in flight from one gateway), arrivals with a lower seq than one already
received (out_of_order) and how far back the latest such arrival reached
(reorder_max: how many received seqs above it had arrived first; a gateway
with N uploads in flight stays below N).

MQTT: with --mqtt-host the backend also subscribes (mosquitto_sub, QoS 1,
persistent session) to the gateway's MQTT uplink topic and verifies, decodes
and records each message's payload exactly as an upload (its path is
"mqtt:<topic>"), so the demo and the tests can run either way:
  devbackend.py --port 0 --egwd http://127.0.0.1:5000 --mqtt-host 127.0.0.1 \
      --mqtt-port 8883 --mqtt-cafile ca.crt

HTTPS with --tls-cert/--tls-key (data port only; the control port stays
plain HTTP).  Loopback only unless --host says otherwise.  On start it prints one line
"devbackend ready port=P control_port=C" (C is 0 without --control-port).
"""
import argparse
import base64
import ctypes
import signal
import zlib
import json
import os
import re
import select
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import egw_batch  # noqa: E402

MODES = ("ok", "refuse", "500", "stall", "drop", "slow")
MAX_BODY = 1 << 20
NAME_RE = re.compile(r'gatewayName\s*\(\s*id\s*:\s*\\?"([^"\\]*)\\?"\s*\)')


def load_pem_key(pem):
    return serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)


def key_from_xy_hex(h):
    raw = bytes.fromhex(h)
    if len(raw) != 64:
        raise ValueError("public key must be 64 bytes X||Y")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class State:
    """Everything the backend knows; one lock guards it."""

    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.key = None
        self.key_source = None
        if args.pubkey_pem:
            with open(args.pubkey_pem) as f:
                self.key = load_pem_key(f.read())
            self.key_source = args.pubkey_pem
        self.name = args.name
        self.mode = args.mode
        self.mode_until = time.monotonic() + args.mode_for if args.mode_for else None
        self.slow_ms = args.slow_ms
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.tls = None
        if args.tls_cert:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(args.tls_cert, args.tls_key)
        self.mode_changed = threading.Condition(self.lock)
        self.reset()

    def reset(self):
        self.records = []          # accepted, in arrival order
        self.seqs = set()
        self.gap_covered = set()
        self.gap_records = []
        self.duplicates = 0
        self.bad_signatures = 0
        self.malformed = 0
        self.undecodable = 0       # verified, but not a batch egw_batch can read
        self.gzip_bodies = 0
        self.refused_encoding = 0
        self.wire_bytes = 0        # request bodies as received
        self.body_bytes = 0        # after Content-Encoding
        self.out_of_order = 0
        self.reorder_max = 0
        self.recent = []           # the last 256 new seqs, for reorder_max
        self.active = 0            # uploads being handled now
        self.max_concurrent = 0
        self.mqtt_messages = 0     # messages from the MQTT subscription
        self.fail_seqs = {}        # seq -> 500 answers still to give
        self.max_seq = None
        self.requests = 0
        self.graphql_queries = 0
        self.graphql_ids = []
        self.refused_by_mode = {m: 0 for m in MODES}

    def current_mode(self):
        """Caller holds the lock."""
        if self.mode_until is not None and time.monotonic() >= self.mode_until:
            self.mode = "ok"
            self.mode_until = None
            self.mode_changed.notify_all()
        return self.mode

    def set_mode(self, mode, for_s):
        with self.lock:
            self.mode = mode
            self.mode_until = time.monotonic() + for_s if for_s else None
            self.mode_changed.notify_all()

    def get_key(self):
        if self.key is not None:
            return self.key
        if not self.args.egwd:
            return None
        url = self.args.egwd.rstrip("/") + "/api/crypto"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                info = json.loads(r.read().decode())
        except (OSError, ValueError):
            return None
        try:
            if info.get("publicKey_pem"):
                key = load_pem_key(info["publicKey_pem"])
            else:
                key = key_from_xy_hex(info["publicKey"])
        except (ValueError, KeyError, TypeError):
            return None
        with self.lock:
            self.key = key
            self.key_source = url
        return key

    def summary(self):
        with self.lock:
            seqs = sorted(self.seqs)
            missing = []
            if seqs:
                lo, hi = seqs[0], seqs[-1]
                present = self.seqs | self.gap_covered
                run = None
                for s in range(lo, hi + 1):
                    if s not in present:
                        if run and run[1] == s - 1:
                            run[1] = s
                        else:
                            run = [s, s]
                            missing.append(run)
            return {
                "count": len(self.records),
                "unique": len(seqs),
                "seqs": seqs,
                "min_seq": seqs[0] if seqs else None,
                "max_seq": seqs[-1] if seqs else None,
                "duplicates": self.duplicates,
                "bad_signatures": self.bad_signatures,
                "malformed": self.malformed,
                "undecodable": self.undecodable,
                "gzip_bodies": self.gzip_bodies,
                "refused_encoding": self.refused_encoding,
                "wire_bytes": self.wire_bytes,
                "body_bytes": self.body_bytes,
                "out_of_order": self.out_of_order,
                "reorder_max": self.reorder_max,
                "max_concurrent": self.max_concurrent,
                "mqtt_messages": self.mqtt_messages,
                "fail_seqs": sorted(k for k, v in self.fail_seqs.items() if v),
                "missing": missing,
                "gap_records": self.gap_records,
                "requests": self.requests,
                "graphql_queries": self.graphql_queries,
                "graphql_ids": self.graphql_ids[-10:],
                "mode": self.current_mode(),
                "name": self.name,
                "key_source": self.key_source,
            }

    def ingest(self, path, token, honour_fail_seqs=True):
        """Verify, decode and record one signed batch (an HTTP upload's body
        or an MQTT message's payload).  Returns (HTTP status, answer)."""
        try:
            parts = token.split(".")
            if len(parts) != 3:
                raise ValueError("not a compact JWS")
            header = json.loads(b64url_decode(parts[0]))
            if header.get("alg") != "ES256":
                raise ValueError("alg must be ES256")
            if len(b64url_decode(parts[2])) != 64:
                raise ValueError("signature must be 64 bytes r||s")
        except (ValueError, UnicodeDecodeError, TypeError, AttributeError) as e:
            with self.lock:
                self.malformed += 1
            return 400, {"error": f"malformed token: {e}"}
        key = self.get_key()
        if key is None:
            return 503, {"error": "gateway public key unknown"}
        try:
            payload = pyjwt.decode(token, key, algorithms=["ES256"],
                                   options={"verify_exp": False, "verify_iat": False,
                                            "verify_nbf": False, "verify_aud": False})
        except pyjwt.InvalidTokenError as e:
            with self.lock:
                self.bad_signatures += 1
            return 400, {"error": f"bad signature: {e}"}
        if not isinstance(payload.get("seq"), int):
            with self.lock:
                self.malformed += 1
            return 400, {"error": "payload has no integer seq"}
        left = 0
        if honour_fail_seqs:
            with self.lock:
                left = self.fail_seqs.get(payload["seq"], 0)
                if left:
                    self.fail_seqs[payload["seq"]] = left - 1
        if left:
            return 500, {"error": f"told to fail seq {payload['seq']}"}
        # Signed by the gateway, so kept even if it does not decode (a
        # rejection would only make the gateway send it again).
        try:
            batch = egw_batch.summary(egw_batch.decode(payload))
        except egw_batch.BatchError as e:
            with self.lock:
                self.undecodable += 1
            batch = {"error": str(e)}
        seq, dup = self.accept(path, token, header, payload, batch)
        return 200, {"ok": True, "seq": seq, "duplicate": dup}

    def accept(self, path, token, header, payload, batch=None):
        """Record one verified upload.  Returns (seq, duplicate)."""
        seq = payload.get("seq")
        with self.lock:
            dup = seq in self.seqs
            if dup:
                self.duplicates += 1
            else:
                if self.max_seq is not None and isinstance(seq, int) and seq < self.max_seq:
                    self.out_of_order += 1
                    ahead = sum(1 for x in self.recent if x > seq)
                    self.reorder_max = max(self.reorder_max, ahead)
                if isinstance(seq, int):
                    self.recent.append(seq)
                    del self.recent[:-256]
                self.seqs.add(seq)
                if isinstance(seq, int):
                    self.max_seq = seq if self.max_seq is None else max(self.max_seq, seq)
                if header.get("dtype") == "egw-gap" or payload.get("type") == "gap":
                    rec = {"seq": seq, "reason": payload.get("reason"),
                           "ranges": payload.get("ranges"), "dropped": payload.get("dropped")}
                    self.gap_records.append(rec)
                    for r in payload.get("ranges") or []:
                        if isinstance(r, list) and len(r) == 2:
                            self.gap_covered.update(range(int(r[0]), int(r[1]) + 1))
            rec = {"t": time.time(), "path": path, "seq": seq, "duplicate": dup,
                   "header": header, "payload": payload, "jwt": token, "batch": batch}
            self.records.append(rec)
            if self.log:
                self.log.write(json.dumps(rec, sort_keys=True) + "\n")
        return seq, dup


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "egw-devbackend/1"
    st = None          # State, set by main
    control_only = False

    def log_message(self, fmt, *a):
        if self.st.args.verbose:
            sys.stderr.write("devbackend: " + (fmt % a) + "\n")

    def reply(self, code, obj):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n)

    def decode_body(self, body):
        """The body after its Content-Encoding, or None after a 4xx reply."""
        enc = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        with self.st.lock:
            self.st.wire_bytes += len(body)
        if enc == "identity":
            out = body
        elif enc == "gzip" and not self.st.args.no_gzip:
            try:
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out = d.decompress(body, MAX_BODY + 1)
                if len(out) > MAX_BODY or not d.eof:
                    raise ValueError("gzip body too large or truncated")
            except (zlib.error, ValueError) as e:
                with self.st.lock:
                    self.st.malformed += 1
                self.reply(400, {"error": f"bad gzip body: {e}"})
                return None
            with self.st.lock:
                self.st.gzip_bodies += 1
        else:
            with self.st.lock:
                self.st.refused_encoding += 1
            self.reply(415, {"error": f"Content-Encoding {enc} not accepted"})
            return None
        with self.st.lock:
            self.st.body_bytes += len(out)
        return out

    def misbehave(self):
        """Apply the failure mode to a data/graphql request whose body was read.
        Returns True when the request was handled (or dropped) here."""
        with self.st.lock:
            mode = self.st.current_mode()
            slow = self.st.slow_ms
            self.st.refused_by_mode[mode] = self.st.refused_by_mode.get(mode, 0) + 1
        if mode == "refuse":
            # The listener is closed, but a keep-alive connection opened
            # before would go on being served: close it unanswered, so the
            # client reconnects and is refused.
            self.close_connection = True
            self.connection.close()
            return True
        if mode == "500":
            self.reply(500, {"error": "told to fail"})
            return True
        if mode == "drop":
            # Reset, not a clean close: the client sees the connection die.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return True
        if mode == "stall":
            with self.st.lock:
                while self.st.current_mode() == "stall":
                    left = (self.st.mode_until - time.monotonic()) if self.st.mode_until else 1.0
                    self.st.mode_changed.wait(max(0.01, min(left, 1.0)))
            self.close_connection = True
            self.connection.close()
            return True
        if mode == "slow":
            time.sleep(slow / 1000.0)
        return False

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/received":
            self.reply(200, self.st.summary())
        elif path == "/received/all":
            with self.st.lock:
                recs = list(self.st.records)
            self.reply(200, recs)
        elif path == "/received/decoded":
            with self.st.lock:
                recs = list(self.st.records)
            out = []
            for r in recs:
                try:
                    out.append(egw_batch.decode(r["payload"]))
                except egw_batch.BatchError as e:
                    out.append({"seq": r["seq"], "error": str(e)})
            self.reply(200, out)
        elif path == "/control":
            with self.st.lock:
                m = self.st.current_mode()
                left = self.st.mode_until - time.monotonic() if self.st.mode_until else None
                self.reply(200, {"mode": m, "for_s": left, "name": self.st.name,
                                 "slow_ms": self.st.slow_ms})
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        try:
            body = self.read_body()
        except ValueError as e:
            self.close_connection = True
            self.reply(413, {"error": str(e)})
            return
        if path == "/control":
            self.control(body)
            return
        if path == "/reset":
            with self.st.lock:
                self.st.reset()
            self.reply(200, {"ok": True})
            return
        if self.control_only:
            self.reply(404, {"error": "control port"})
            return
        if path == "/graphql":
            with self.st.lock:
                self.st.requests += 1
            if not self.misbehave():
                self.graphql(body)
            return
        if path in self.st.args.data_path:
            with self.st.lock:
                self.st.requests += 1
                self.st.active += 1
                self.st.max_concurrent = max(self.st.max_concurrent, self.st.active)
            try:
                if not self.misbehave():
                    body = self.decode_body(body)
                    if body is not None:
                        self.upload(path, body)
            finally:
                with self.st.lock:
                    self.st.active -= 1
            return
        self.reply(404, {"error": "not found"})

    def control(self, body):
        try:
            req = json.loads(body.decode() or "{}")
            if not isinstance(req, dict):
                raise ValueError("expected an object")
            mode = req.get("mode")
            if mode is not None and mode not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}")
            for_s = req.get("for_s")
            if for_s is not None and (not isinstance(for_s, (int, float)) or for_s < 0):
                raise ValueError("for_s must be a number >= 0")
            slow = req.get("slow_ms")
            if slow is not None and (not isinstance(slow, int) or slow < 0):
                raise ValueError("slow_ms must be an integer >= 0")
            if "name" in req and req["name"] is not None and not isinstance(req["name"], str):
                raise ValueError("name must be a string or null")
            fail_seqs = req.get("fail_seqs")
            if fail_seqs is not None and (not isinstance(fail_seqs, list) or
                                          not all(isinstance(x, int) for x in fail_seqs)):
                raise ValueError("fail_seqs must be a list of integers")
            fail_times = req.get("fail_times", 1)
            if not isinstance(fail_times, int) or fail_times < 1:
                raise ValueError("fail_times must be an integer >= 1")
        except ValueError as e:
            self.reply(400, {"error": str(e)})
            return
        if "name" in req:
            with self.st.lock:
                self.st.name = req["name"]
        if slow is not None:
            with self.st.lock:
                self.st.slow_ms = slow
        if fail_seqs is not None:
            with self.st.lock:
                self.st.fail_seqs = {x: fail_times for x in fail_seqs}
        if mode is not None:
            self.st.set_mode(mode, for_s)
        self.reply(200, {"ok": True, "mode": mode, "name": self.st.name})

    def graphql(self, body):
        try:
            q = json.loads(body.decode())
            m = NAME_RE.search(q["query"])
            if not m:
                raise ValueError("unsupported query")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            self.reply(400, {"errors": [{"message": str(e)}]})
            return
        with self.st.lock:
            self.st.graphql_queries += 1
            self.st.graphql_ids.append(m.group(1))
            name = self.st.name
        self.reply(200, {"data": {"gatewayConfiguration": {"gatewayName": {"name": name}}}})

    def upload(self, path, body):
        code, obj = self.st.ingest(path, body.decode("ascii", "replace").strip())
        self.reply(code, obj)


class Listener:
    """Accept loop on one port; the data listener closes while mode is refuse
    and binds the same port again afterwards."""

    def __init__(self, st, host, port, control_only):
        self.st = st
        self.host = host
        self.control_only = control_only
        self.sock = self._bind(port)
        self.port = self.sock.getsockname()[1]

    def _bind(self, port):
        s = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, port))
        s.listen(64)
        return s

    def serve(self):
        handler = type("H", (Handler,), {"st": self.st, "control_only": self.control_only})
        while True:
            if not self.control_only:
                with self.st.lock:
                    refuse = self.st.current_mode() == "refuse"
                if refuse and self.sock:
                    self.sock.close()
                    self.sock = None
                elif not refuse and not self.sock:
                    try:
                        self.sock = self._bind(self.port)
                    except OSError:
                        time.sleep(0.05)
                        continue
            if not self.sock:
                time.sleep(0.02)
                continue
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
                continue
            try:
                conn, addr = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(self.st.args.idle_timeout)
            # Headers and body go out in separate writes: without this, Nagle
            # plus the client's delayed ACK adds ~40 ms to every answer.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._conn, args=(handler, conn, addr), daemon=True).start()

    def _conn(self, handler, conn, addr):
        try:
            if self.st.tls and not self.control_only:
                conn = self.st.tls.wrap_socket(conn, server_side=True)
            handler(conn, addr, self)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass


def _die_with_parent():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class MqttSubscriber:
    """The MQTT side: mosquitto_sub (mosquitto-clients) on the uplink's topic
    with a persistent session and QoS 1, each message's payload verified and
    recorded like an HTTP upload (path "mqtt:<topic>").  mosquitto_sub
    reconnects by itself when the broker restarts; the broker keeps the
    messages of the session meanwhile."""

    def __init__(self, st, args):
        self.st = st
        cmd = ["mosquitto_sub", "-h", args.mqtt_host, "-p", str(args.mqtt_port),
               "-t", args.mqtt_topic, "-q", "1", "-c", "-i", args.mqtt_client_id,
               "-k", "10", "-F", "%t %p"]
        if args.mqtt_cafile:
            cmd += ["--cafile", args.mqtt_cafile]
        if args.mqtt_user:
            cmd += ["-u", args.mqtt_user]
        if args.mqtt_password:
            cmd += ["-P", args.mqtt_password]
        # Goes with us even when we are killed (PR_SET_PDEATHSIG).
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sys.stderr,
                                     preexec_fn=_die_with_parent)
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        for line in self.proc.stdout:
            text = line.decode("ascii", "replace").strip()
            if not text:
                continue
            topic, _, token = text.partition(" ")
            with self.st.lock:
                self.st.mqtt_messages += 1
            # The broker took the message already: nothing to refuse.
            self.st.ingest("mqtt:" + topic, token, honour_fail_seqs=False)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="listen address (default loopback)")
    ap.add_argument("--port", type=int, default=8088, help="0 picks a free port")
    ap.add_argument("--control-port", type=int, default=None,
                    help="separate control port that stays up in refuse mode (0: pick)")
    ap.add_argument("--data-path", action="append", default=None,
                    help="upload path (repeatable; default /data)")
    ap.add_argument("--egwd", help="egwd base URL to fetch /api/crypto from")
    ap.add_argument("--pubkey-pem", help="gateway public key (PEM SubjectPublicKeyInfo)")
    ap.add_argument("--name", default=None, help="gateway name to answer (default: none)")
    ap.add_argument("--log", help="append every accepted record to this JSONL file")
    ap.add_argument("--mode", choices=MODES, default="ok")
    ap.add_argument("--mode-for", type=float, default=None, help="seconds, then back to ok")
    ap.add_argument("--slow-ms", type=int, default=2000)
    ap.add_argument("--idle-timeout", type=float, default=30.0)
    ap.add_argument("--tls-cert", help="serve HTTPS on the data port with this PEM certificate")
    ap.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    ap.add_argument("--no-gzip", action="store_true",
                    help="answer 415 to gzip-encoded uploads (a backend without it)")
    ap.add_argument("--mqtt-host", help="also take batches from this MQTT broker")
    ap.add_argument("--mqtt-port", type=int, default=1883)
    ap.add_argument("--mqtt-topic", default="egw/+/batches",
                    help="topic filter (default egw/+/batches: every gateway)")
    ap.add_argument("--mqtt-cafile", help="TLS to the broker, its certificate checked with this CA")
    ap.add_argument("--mqtt-user")
    ap.add_argument("--mqtt-password")
    ap.add_argument("--mqtt-client-id", default="egw-devbackend")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    args.data_path = args.data_path or ["/data"]
    if not args.pubkey_pem and not args.egwd:
        ap.error("give --pubkey-pem or --egwd to verify signatures")
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")

    st = State(args)
    # SIGTERM ends us through the finally below (the subscriber goes too).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sub = MqttSubscriber(st, args) if args.mqtt_host else None
    data = Listener(st, args.host, args.port, control_only=False)
    ctl = None
    if args.control_port is not None:
        ctl = Listener(st, args.host, args.control_port, control_only=True)
        threading.Thread(target=ctl.serve, daemon=True).start()
    print(f"devbackend ready port={data.port} control_port={ctl.port if ctl else 0}", flush=True)
    try:
        data.serve()
    except KeyboardInterrupt:
        pass
    finally:
        if sub:
            sub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
