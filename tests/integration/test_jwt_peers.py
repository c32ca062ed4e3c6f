"""egw's ES256 tokens against independent peers.

egw-jwt (our signer + JWT encoder) produces tokens that must verify with
PyJWT + cryptography (Debian) and with npm `jose` (tests/node), under the
PEM and the JWK form of the public key; one changed character in header,
payload or signature must fail all of them.  The other way round, tokens
PyJWT signs with the device key verify with our verifier, and alg=none or a
foreign key is refused.  Also through the ATECC608 backend: the real cryptoauthlib
on the emulated chip.
"""
import base64
import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

import jwt  # python3-jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.exceptions import InvalidSignature

# Self-contained (only the build dir convention of egwtest.py: $EGW_BUILD,
# default <repo>/build), so this file does not depend on the process helpers.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("EGW_BUILD", os.path.join(REPO, "build")))
NODE_DIR = os.path.join(REPO, "tests", "node")
NODE_VERIFY = os.path.join(NODE_DIR, "verify_jwt.mjs")

PAYLOADS = [
    {"a": 1},
    {"seq": 9007199254740991, "ts": 1764165600000, "neg": -42, "f": 0.5},
    {"unicode": "Grüße ☀ \u20ac", "quote": "a\"b\\c", "nested": {"x": [1, 2, {"y": None}], "t": True}},
    {"data": {str(1700000000000 + i * 1000): {"5016": i, "5017": 65535 - i} for i in range(50)}},
]


def binary(name):
    for sub in ("tools", ""):
        p = os.path.join(BUILD, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name} not built in {BUILD}")


def tempdir(testcase, prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    testcase.addCleanup(shutil.rmtree, d, True)
    return d


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def tamper(token, part):
    """Change one character in the middle of part 0, 1 or 2 to another valid one."""
    parts = token.split(".")
    p = parts[part]
    i = len(p) // 2
    parts[part] = p[:i] + ("A" if p[i] != "A" else "B") + p[i + 1:]
    return ".".join(parts)


class JwtPeers(unittest.TestCase):
    def setUp(self):
        self.tool = binary("egw-jwt")
        self.state = tempdir(self, "egw-jwt-")

    def run_tool(self, *args, env=None, check=True):
        e = dict(os.environ)
        if env:
            e.update(env)
        p = subprocess.run([self.tool, *args], capture_output=True, text=True, timeout=30, env=e)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def key_material(self, extra=(), env=None):
        pem = self.run_tool("--state-dir", self.state, *extra, "--pubkey-pem", env=env).stdout
        info = json.loads(self.run_tool("--state-dir", self.state, *extra, "--pubkey-json", env=env).stdout)
        serial = self.run_tool("--state-dir", self.state, *extra, "--serial", env=env).stdout.strip()
        return pem, info, serial

    def sign(self, payload, extra=(), env=None, **hdr):
        args = ["--state-dir", self.state, *extra, "--payload", json.dumps(payload)]
        for k, v in hdr.items():
            args += [f"--{k}", v]
        return self.run_tool(*args, env=env).stdout.strip()

    def node_verify(self, tokens, pem, jwk):
        if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "jose")):
            self.skipTest("node or tests/node/node_modules/jose missing (scripts/setup --test)")
        d = tempdir(self, "egw-jwt-node-")
        with open(os.path.join(d, "k.pem"), "w") as f:
            f.write(pem)
        with open(os.path.join(d, "k.jwk"), "w") as f:
            json.dump(jwk, f)
        p = subprocess.run(["node", NODE_VERIFY, "--pem", os.path.join(d, "k.pem"),
                            "--jwk", os.path.join(d, "k.jwk")],
                           input="\n".join(tokens) + "\n", capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
        self.assertEqual(len(lines), 2 * len(tokens), p.stdout)
        return [lines[2 * i:2 * i + 2] for i in range(len(tokens))]

    def check_tokens(self, tokens, payloads, pem, info, serial, model=None, dtype=None):
        pub = serialization.load_pem_public_key(pem.encode())
        self.assertIsInstance(pub, ec.EllipticCurvePublicKey)
        self.assertEqual(pub.curve.name, "secp256r1")
        nums = pub.public_numbers()
        # hex X||Y, PEM and JWK all name the same key
        self.assertEqual(info["publicKey"], "%064x%064x" % (nums.x, nums.y))
        self.assertEqual(info["publicKey_pem"], pem)
        jwk = info["publicKey_jwk"]
        self.assertEqual((jwk["kty"], jwk["crv"]), ("EC", "P-256"))
        self.assertEqual(int.from_bytes(b64url_decode(jwk["x"]), "big"), nums.x)
        self.assertEqual(int.from_bytes(b64url_decode(jwk["y"]), "big"), nums.y)
        self.assertNotIn("=", jwk["x"] + jwk["y"])
        self.assertRegex(serial, r"^[0-9a-f]{18}$")
        self.assertEqual(info["serialNumber"], serial)
        jwk_key = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(jwk))

        for tok, payload in zip(tokens, payloads):
            self.assertNotIn("=", tok)
            h64, p64, s64 = tok.split(".")
            # PyJWT, with the PEM and with the JWK
            self.assertEqual(jwt.decode(tok, pem, algorithms=["ES256"]), payload)
            self.assertEqual(jwt.decode(tok, jwk_key, algorithms=["ES256"]), payload)
            hdr = jwt.get_unverified_header(tok)
            want = {"alg": "ES256", "typ": "JWT", "device": serial, "opr": "production"}
            if model:
                want["model"] = model
            if dtype:
                want["dtype"] = dtype
            self.assertEqual(hdr, want)
            # canonical JSON: compact with sorted keys
            self.assertEqual(b64url_decode(h64), json.dumps(want, sort_keys=True, separators=(",", ":")).encode())
            # raw r||s, 64 bytes, checked with cryptography directly
            sig = b64url_decode(s64)
            self.assertEqual(len(sig), 64)
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            pub.verify(der, f"{h64}.{p64}".encode(), ec.ECDSA(hashes.SHA256()))

        # one changed character anywhere fails PyJWT and cryptography
        bad = [tamper(t, part) for t in tokens[:2] for part in (0, 1, 2)]
        for t in bad:
            with self.assertRaises(jwt.exceptions.InvalidTokenError, msg=t):
                jwt.decode(t, pem, algorithms=["ES256"])
            h64, p64, s64 = t.split(".")
            sig = b64url_decode(s64)
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            with self.assertRaises(InvalidSignature):
                pub.verify(der, f"{h64}.{p64}".encode(), ec.ECDSA(hashes.SHA256()))
        return bad

    def test_software_key_with_pyjwt_and_jose(self):
        pem, info, serial = self.key_material()
        key_path = os.path.join(self.state, "device-key.pem")
        self.assertEqual(stat.S_IMODE(os.stat(key_path).st_mode), 0o600)
        self.assertEqual(info["backend"], "software")
        tokens = [self.sign(p, model="sungrow_sh", dtype="hybrid") for p in PAYLOADS]
        bad = self.check_tokens(tokens, PAYLOADS, pem, info, serial, "sungrow_sh", "hybrid")

        # jose (node): good tokens verify with PEM and JWK, tampered ones fail both
        res = self.node_verify(tokens + bad, pem, info["publicKey_jwk"])
        for i, (via_pem, via_jwk) in enumerate(res):
            good = i < len(tokens)
            self.assertEqual(via_pem["ok"], good, via_pem)
            self.assertEqual(via_jwk["ok"], good, via_jwk)
            if good:
                self.assertEqual(via_pem["payload"], PAYLOADS[i])
                self.assertEqual(via_pem["header"]["device"], serial)
        # our own verifier agrees
        for t in tokens:
            self.assertEqual(self.run_tool("--state-dir", self.state, "--verify", t).returncode, 0)
        for t in bad:
            self.assertEqual(self.run_tool("--state-dir", self.state, "--verify", t, check=False).returncode, 1)

        # same identity after a restart of the tool (key reloaded, not recreated)
        pem2, info2, serial2 = self.key_material()
        self.assertEqual((pem2, serial2), (pem, serial))

    def test_our_verifier_against_pyjwt_tokens(self):
        pem, info, serial = self.key_material()
        with open(os.path.join(self.state, "device-key.pem"), "rb") as f:
            priv = serialization.load_pem_private_key(f.read(), None)
        good = jwt.encode({"from": "pyjwt", "n": 7}, priv, algorithm="ES256", headers={"device": serial})
        p = self.run_tool("--state-dir", self.state, "--verify", good)
        self.assertEqual(json.loads(p.stdout), {"from": "pyjwt", "n": 7})

        other = ec.generate_private_key(ec.SECP256R1())
        foreign = jwt.encode({"from": "elsewhere"}, other, algorithm="ES256")
        none_tok = jwt.encode({"a": 1}, None, algorithm="none")
        hs_tok = jwt.encode({"a": 1}, "secret", algorithm="HS256")
        for t in (foreign, none_tok, hs_tok, tamper(good, 1), good + "A", good.rsplit(".", 1)[0]):
            self.assertEqual(self.run_tool("--state-dir", self.state, "--verify", t, check=False).returncode,
                             1, t)

    def test_emulated_atecc_chip_with_pyjwt_and_jose(self):
        # The emulated ATECC608 behind /dev/i2c-1 (sim/atecc_emu.h), under the
        # real cryptoauthlib: provisioned by egwd, then used by egw-jwt.
        chip = tempdir(self, "egw-atecc-")
        env = {"EGW_ATECC_EMU_DIR": chip, "EGW_ATECC_EMU_DEV": "/dev/i2c-1",
               "LD_PRELOAD": os.path.join(BUILD, "sim", "libegw-atecc-shim.so"),
               "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
               + ":verify_asan_link_order=0"}
        extra = ("--atecc", "--i2c-bus", "/dev/i2c-1", "--i2c-address", "0x60")
        p = subprocess.run([os.path.join(BUILD, "egwd"), "--state-dir", self.state, "--chip-provision"],
                           capture_output=True, text=True, timeout=60, env=dict(os.environ, **env))
        if p.returncode != 0 and "built without cryptoauthlib" in p.stderr:
            self.skipTest("built without cryptoauthlib")
        self.assertEqual(p.returncode, 0, p.stderr)
        pem, info, serial = self.key_material(extra, env)
        self.assertEqual(info["backend"], "atecc608")
        self.assertIn("public key: 04" + info["publicKey"], p.stdout)
        tokens = [self.sign(p, extra, env, model="sim", dtype="pv") for p in PAYLOADS[:2]]
        bad = self.check_tokens(tokens, PAYLOADS[:2], pem, info, serial, "sim", "pv")
        res = self.node_verify(tokens + bad, pem, info["publicKey_jwk"])
        self.assertEqual([r[0]["ok"] and r[1]["ok"] for r in res], [True] * len(tokens) + [False] * len(bad))
        # the chip gone: signing fails, nothing is printed
        with open(os.path.join(chip, "faults"), "w") as f:
            f.write("absent")
        p = self.run_tool("--state-dir", self.state, *extra, "--payload", "{}", env=env, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stdout, "")


if __name__ == "__main__":
    unittest.main()
