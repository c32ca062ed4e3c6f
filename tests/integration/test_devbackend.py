"""tools/devbackend.py on its own: signature checks, the name query, the
failure modes and the /received summary, with tokens made here by PyJWT.
Run with /usr/bin/python3."""
import gzip
import json
import os
import re
import time
import unittest

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import egwtest as T

DEVBACKEND = os.path.join(T.REPO, "tools", "devbackend.py")


class DevBackendTest(unittest.TestCase):

    def setUp(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        d = T.tempdir(self)
        self.pem = os.path.join(d, "pub.pem")
        with open(self.pem, "wb") as f:
            f.write(self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.log = os.path.join(d, "received.jsonl")
        self.p = T.Proc([T.PYTHON, DEVBACKEND, "--port", "0", "--control-port", "0",
                         "--pubkey-pem", self.pem, "--log", self.log,
                         "--data-path", "/data", "--data-path", "/v2/data"], name="devbackend")
        self.addCleanup(self.p.stop)
        m = re.search(r"ready port=(\d+) control_port=(\d+)", self.p.wait_output("ready port="))
        self.port, self.cport = int(m.group(1)), int(m.group(2))

    def token(self, seq, key=None, **extra):
        payload = {"seq": seq, "iat": int(time.time()), **extra}
        return pyjwt.encode(payload, key or self.key, algorithm="ES256",
                            headers={"device": "01ab", "opr": "production",
                                     "dtype": extra.pop("dtype", "egw-batch")})

    def post(self, path, body, port=None, ctype="application/jwt"):
        try:
            st, _, data = T.http(port or self.port, "POST", path, body=body,
                                 headers={"Content-Type": ctype}, timeout=5)
            return st, data
        except OSError as e:
            return None, e

    def control(self, **kw):
        st, obj = T.http_json(self.cport, "POST", "/control", body=kw)
        self.assertEqual(st, 200, obj)

    def summary(self):
        return T.get_json(self.cport, "/received")

    def test_signatures_duplicates_missing(self):
        for s in (1, 2, 2, 4):
            st, body = self.post("/data", self.token(s))
            self.assertEqual(st, 200, body)
        self.assertEqual(self.post("/v2/data", self.token(5))[0], 200)
        other = ec.generate_private_key(ec.SECP256R1())
        self.assertEqual(self.post("/data", self.token(6, key=other))[0], 400)
        tok = self.token(7)
        h, p, sig = tok.split(".")
        self.assertEqual(self.post("/data", f"{h}.{p}.{sig[:-4]}AAAA")[0], 400)
        self.assertEqual(self.post("/data", "not-a-token")[0], 400)
        none_tok = pyjwt.encode({"seq": 8}, None, algorithm="none")
        self.assertEqual(self.post("/data", none_tok)[0], 400)
        self.assertEqual(self.post("/elsewhere", self.token(9))[0], 404)
        s = self.summary()
        self.assertEqual(s["seqs"], [1, 2, 4, 5])
        self.assertEqual(s["duplicates"], 1)
        self.assertEqual(s["bad_signatures"], 2)
        self.assertEqual(s["malformed"], 2)
        self.assertEqual(s["missing"], [[3, 3]])
        self.assertEqual(s["out_of_order"], 0)
        with open(self.log) as f:
            lines = [json.loads(x) for x in f]
        self.assertEqual([x["seq"] for x in lines], [1, 2, 2, 4, 5])
        self.assertEqual(lines[-1]["path"], "/v2/data")

    def test_gap_record_covers_missing(self):
        self.post("/data", self.token(1))
        self.post("/data", self.token(5, type="gap", ranges=[[2, 4]], dropped=3,
                                      reason="max_bytes", dtype="egw-gap"))
        self.post("/data", self.token(3))   # late and lower: out of order
        s = self.summary()
        self.assertEqual(s["missing"], [])
        self.assertEqual(len(s["gap_records"]), 1)
        self.assertEqual(s["out_of_order"], 1)

    def test_name_query(self):
        q = {"query": '{ gatewayConfiguration { gatewayName(id:"01ab") { name } } }'}
        st, body = self.post("/graphql", json.dumps(q), ctype="application/json")
        self.assertEqual(st, 200)
        self.assertIsNone(json.loads(body)["data"]["gatewayConfiguration"]["gatewayName"]["name"])
        self.control(name="Barn")
        st, body = self.post("/graphql", json.dumps(q), ctype="application/json")
        self.assertEqual(json.loads(body)["data"]["gatewayConfiguration"]["gatewayName"]["name"],
                         "Barn")
        self.assertEqual(self.post("/graphql", "{}")[0], 400)
        self.assertEqual(self.summary()["graphql_ids"], ["01ab", "01ab"])

    def test_compact_batch_decoded_gzip_accepted(self):
        # the example of doc/batch-format.md
        payload = {"v": 3, "seq": 1, "iat": 1700000010, "gateway": "01ab",
                   "from_ms": 1700000000000, "to_ms": 1700000010000,
                   "devices": [{"id": "inv1", "profile": "sungrow", "serial": "A123",
                                "blocks": [[3, 5016, 2], [4, 100, 3]],
                                "kf": ["C7j__w", "AAAAAAAA"],
                                "polls": [{"t": 100, "b": "3",
                                           "r": {"pv": {"W": -3000, "mppt1_V": 339.2}}},
                                          {"t": 500, "b": "3", "d": [0, 3100],
                                           "r": {"pv": {"W": -3100}}},
                                          {"t": 1000, "b": "0", "m": -110}]}],
                   "frequency": {"device": "inv1", "t0": 1700000000700, "iv": 100,
                                 "mhz": 49980, "d": [0, 40, None, 10]}}
        tok = pyjwt.encode(payload, self.key, algorithm="ES256", headers={"device": "01ab"})
        st, _, body = T.http(self.port, "POST", "/data", body=gzip.compress(tok.encode()),
                             headers={"Content-Type": "application/jwt",
                                      "Content-Encoding": "gzip"}, timeout=5)
        self.assertEqual(st, 200, body)
        st, _, body = T.http(self.port, "POST", "/data", body=tok.encode(),
                             headers={"Content-Encoding": "br"}, timeout=5)
        self.assertEqual(st, 415, body)
        s = self.summary()
        self.assertEqual((s["gzip_bodies"], s["refused_encoding"], s["undecodable"]), (1, 1, 0))
        dec = T.get_json(self.cport, "/received/decoded")
        self.assertEqual(len(dec), 1)
        polls = dec[0]["devices"][0]["polls"]
        self.assertEqual(polls[1]["raw"], {"100": 0, "101": 0, "102": 0, "5016": 3100,
                                           "5017": 65535})
        self.assertEqual(polls[1]["ts_ms"], 1700000000600)
        self.assertEqual(polls[1]["reading"], {"pv": {"W": -3100, "mppt1_V": 339.2}})
        self.assertEqual((polls[2]["raw"], polls[2]["reading"], polls[2]["missed"]),
                         ({}, None, -110))
        rec = T.get_json(self.cport, "/received/all")[0]
        self.assertEqual(rec["batch"]["devices"][0]["missed_polls"], [[1700000001600, -110]])
        self.assertEqual(dec[0]["frequency"]["samples"],
                         [[1700000000700, 49.98], [1700000000800, 50.02],
                          [1700000001000, 50.03]])
        self.assertEqual(dec[0]["frequency"]["missing"], [1700000000900])
        # a signed batch that does not decode is kept, and counted
        bad = dict(payload, seq=2, devices=[{"blocks": [], "kf": [], "polls": [{"t": 1}]}])
        tok = pyjwt.encode(bad, self.key, algorithm="ES256", headers={"device": "01ab"})
        self.assertEqual(self.post("/data", tok)[0], 200)
        self.assertEqual(self.summary()["undecodable"], 1)

    def test_modes(self):
        tok = self.token(1)
        self.control(mode="500", for_s=0.5)
        self.assertEqual(self.post("/data", tok)[0], 500)
        time.sleep(0.6)
        self.assertEqual(self.post("/data", tok)[0], 200)          # back to ok by itself
        self.control(mode="refuse", for_s=0.6)
        time.sleep(0.2)
        st, err = self.post("/data", tok)
        self.assertIsInstance(err, ConnectionRefusedError)
        time.sleep(0.7)
        self.assertEqual(self.post("/data", tok)[0], 200)          # listening again
        self.control(mode="drop")
        st, err = self.post("/data", tok)
        self.assertIsNone(st)
        self.control(mode="stall", for_s=0.5)
        t0 = time.monotonic()
        st, err = self.post("/data", tok)
        self.assertIsNone(st)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        self.control(mode="slow", slow_ms=300)
        t0 = time.monotonic()
        self.assertEqual(self.post("/data", self.token(2))[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.control(mode="ok")
        st, obj = T.http_json(self.cport, "POST", "/control", body={"mode": "bogus"})
        self.assertEqual(st, 400)
        s = self.summary()
        self.assertEqual(s["seqs"], [1, 2])
        self.assertEqual(s["duplicates"], 1)   # seq 1 accepted twice (after 500, after refuse)

    def test_loopback_only_by_default(self):
        # Both listeners are bound to 127.0.0.1 (read from /proc, no traffic).
        bound = {}
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, port = local.split(":")
                if state == "0A":
                    bound.setdefault(int(port, 16), set()).add(addr)
        self.assertEqual(bound.get(self.port), {"0100007F"})
        self.assertEqual(bound.get(self.cport), {"0100007F"})

if __name__ == "__main__":
    unittest.main()
