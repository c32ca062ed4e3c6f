"""The ATECC608 for real: egwd and Microchip's cryptoauthlib (its unchanged
Linux I2C HAL) against the emulated chip behind /dev/i2c-1 (sim/atecc_emu.c,
preloaded by egwtest.Chip); every test that talks to a chip says "emulated".
The build under test must have the chip backend on and link the real
library, and nothing installed may contain the emulator.

--chip-info and --chip-provision (twice, and a dry run); batches signed by the
chip verify with PyJWT and npm jose; signer.backend=atecc608 without a chip
stores but never signs with a software key; faults on the line (chip gone,
no wake, CRC errors both ways, a chip that stays busy, the watchdog expiring
mid-command or refusing a command, an unprovisioned chip, a chip whose data
zone was left unlocked) hold uploads back,
nothing unsigned leaves, nothing is lost, and everything is signed when the
chip answers again; a change of identity is refused until accepted.
"""
import json
import os
import shutil
import subprocess
import time
import unittest

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec

import egwtest as T
import test_pipeline as PL

NODE_DIR = os.path.join(T.REPO, "tests", "node")


def node_verify(tc, tokens, pem, jwk):
    """npm jose's verdict on each token, with the PEM and the JWK key."""
    if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "jose")):
        tc.skipTest("node or tests/node/node_modules/jose missing (scripts/setup --test)")
    d = T.tempdir(tc, "egw-jose-")
    with open(os.path.join(d, "k.pem"), "w") as f:
        f.write(pem)
    with open(os.path.join(d, "k.jwk"), "w") as f:
        json.dump(jwk, f)
    p = subprocess.run(["node", os.path.join(NODE_DIR, "verify_jwt.mjs"), "--pem", os.path.join(d, "k.pem"),
                        "--jwk", os.path.join(d, "k.jwk")],
                       input="\n".join(tokens) + "\n", capture_output=True, text=True, timeout=60)
    tc.assertEqual(p.returncode, 0, p.stderr)
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def chip_egwd(tc, chip, be, state_dir=None, backend="atecc608", args=(), wait=True, extra=None):
    s = {"backend.data_urls": [f"http://127.0.0.1:{be.port}/data"],
         "harvest.batch_interval_ms": 500, "signer.backend": backend}
    s.update(extra or {})
    return T.Egwd(tc, port=be.egwd_port, state_dir=state_dir, set=s, env=chip.env, args=args, wait=wait)


def backend(tc):
    port = T.free_port()
    be = PL.DevBackend(tc, port)
    be.egwd_port = port
    return be


def key_of(xy):
    return ec.EllipticCurvePublicNumbers(int(xy[:64], 16), int(xy[64:], 16), ec.SECP256R1()).public_key()


def devices(be):
    """seq -> the device header of each token received."""
    return {r["payload"]["seq"]: pyjwt.get_unverified_header(r["jwt"])["device"] for r in be.records()}


def signer(e):
    return e.state()["signer"]


def wait_delivered(tc, e, be, timeout=60):
    """Until every batch egwd has stored reached the backend."""
    def done():
        last = e.state()["harvest"]["last_seq"]
        return last > 0 and be.summary()["max_seq"] >= last
    T.wait_until(done, timeout=timeout, what="everything delivered")


def check_received(tc, be, key, serial):
    s = be.summary()
    tc.assertEqual(s["bad_signatures"], 0)
    tc.assertEqual(s["malformed"], 0)
    tc.assertEqual(s["missing"], [])
    tc.assertLess(s["reorder_max"], PL.WINDOW)  # swaps within the uploads in flight only
    PL.contiguous(tc, s["seqs"], s["seqs"][0])
    return PL.verify_all(tc, be.records(), key, serial)


def open_data_zone(chip):
    """Leaves the provisioned emulated chip as a provisioning run stopped just
    before the data lock: configuration locked for egw, key in slot 0, data
    zone open (LockValue, config byte 86, back to 0x55 in <dir>/chip: an
    8-byte magic, then the configuration zone; see sim/atecc_emu.c)."""
    path = os.path.join(chip.dir, "chip")
    with open(path, "rb") as f:
        b = bytearray(f.read())
    assert b[:7] == b"ATECC1\n" and b[8 + 87] == 0x00 and b[8 + 86] == 0x00, b[:8]
    b[8 + 86] = 0x55
    with open(path + ".tmp", "wb") as f:
        f.write(b)
    os.replace(path + ".tmp", path)


class BuildAgainstCryptoauthlib(unittest.TestCase):

    def test_egwd_links_real_cryptoauthlib_and_installs_no_emulator(self):
        egwd = T.binary("egwd")
        p = subprocess.run(["readelf", "-d", egwd], capture_output=True, text=True, check=True)
        self.assertRegex(p.stdout, r"NEEDED.*\[libcryptoauth\.so", "egwd is not linked to cryptoauthlib")
        with open(os.path.join(T.BUILD, "egw-config.h")) as f:
            self.assertIn("#define EGW_HAVE_ATECC 1", f.read())
        # Every file meson would install: no emulator, no shim, no fake of atcab_*.
        p = subprocess.run(["meson", "introspect", "--installed", T.BUILD], capture_output=True,
                           text=True, check=True)
        installed = json.loads(p.stdout)
        self.assertTrue(any(os.path.basename(v) == "egwd" for v in installed.values()))
        checked = 0
        for src in installed:
            self.assertNotIn("atecc", os.path.basename(src), src)
            if not os.path.isfile(src):
                continue
            with open(src, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            syms = subprocess.run(["nm", "-a", src], capture_output=True, text=True).stdout
            syms += subprocess.run(["nm", "-D", src], capture_output=True, text=True).stdout
            checked += 1
            for line in syms.splitlines():
                w = line.split()
                if len(w) < 2:
                    continue
                name = w[-1]
                self.assertFalse(name.startswith("atecc_emu") or "fake" in name.lower(), f"{src}: {line}")
                # the library's API comes from libcryptoauth.so, never defined inside
                if name.startswith("atcab_"):
                    self.assertEqual(w[-2], "U", f"{src} defines {name}")
        self.assertGreater(checked, 0)


class EmulatedChipCommands(unittest.TestCase):

    def test_emulated_chip_info_without_chip_names_bus_and_address(self):
        d = T.tempdir(self, "egw-nochip-")
        p = subprocess.run([T.binary("egwd"), "--state-dir", d, "--set", "signer.i2c_bus=/dev/i2c-7",
                            "--set", "signer.i2c_address=97", "--chip-info"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("/dev/i2c-7", p.stderr)
        self.assertIn("0x61", p.stderr)
        self.assertEqual(p.stdout, "")
        # the emulated chip unplugged: same answer, default bus and address
        chip = T.Chip(self)
        chip.faults("absent")
        p = chip.egwd_cmd("--chip-info", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no ATECC608 answers on /dev/i2c-1 at 0x60", p.stderr)

    def test_emulated_chip_provision_dry_run_then_locked_chip_refused(self):
        chip = T.Chip(self)
        info = chip.egwd_cmd("--chip-info").stdout
        self.assertRegex(info, r"serial: 0123[0-9a-f]{12}ee\n")
        self.assertIn("revision: 00006003", info)
        self.assertIn("config zone: unlocked", info)
        self.assertIn("no key", info)
        dry = chip.egwd_cmd("--chip-provision", "--dry-run").stdout
        self.assertIn("would provision", dry)
        self.assertIn("dry run: nothing written", dry)
        self.assertIn("config zone: unlocked", chip.egwd_cmd("--chip-info").stdout)
        xy = chip.provision()
        self.assertRegex(xy, r"^[0-9a-f]{128}$")
        info = chip.egwd_cmd("--chip-info").stdout
        self.assertIn("config zone: locked", info)
        self.assertIn("data zone: locked", info)
        self.assertIn("configured for egw, key present", info)
        self.assertIn("public key: 04" + xy, info)
        again = chip.egwd_cmd("--chip-provision", check=False)
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("already locked", again.stderr)
        self.assertIn("public key: 04" + xy, chip.egwd_cmd("--chip-info").stdout)


class EmulatedChipSigning(unittest.TestCase):

    def test_emulated_atecc_batches_verify_with_pyjwt_and_jose(self):
        chip = T.Chip(self)
        xy = chip.provision()
        serial = chip.serial()
        be = backend(self)
        e = chip_egwd(self, chip, be)
        T.wait_until(lambda: be.summary()["unique"] >= 5, timeout=30, what="batches")
        key, info = PL.public_key(e)
        self.assertEqual(info["backend"], "atecc608")
        self.assertEqual(info["serialNumber"], serial)
        self.assertEqual(info["publicKey"], xy)
        st = signer(e)
        self.assertTrue(st["signing"])
        self.assertEqual(st["serial"], serial)
        self.assertFalse(os.path.exists(os.path.join(e.state_dir, "device-key.pem")))
        recs = be.records()
        check_received(self, be, key, serial)
        tokens = [r["jwt"] for r in recs]
        res = node_verify(self, tokens, info["publicKey_pem"], info["publicKey_jwk"])
        self.assertEqual(len(res), 2 * len(tokens))
        for r, rec in zip(res[::2], recs):
            self.assertTrue(r["ok"], r)
            self.assertEqual(r["header"]["device"], serial)
            self.assertEqual(r["payload"], rec["payload"])
        self.assertTrue(all(r["ok"] for r in res[1::2]))
        with open(os.path.join(e.state_dir, "identity")) as f:
            rec = f.read()
        self.assertIn("backend atecc608\n", rec)
        self.assertIn(f"serial {serial}\n", rec)
        PL.stop_clean(self, e)

    def test_emulated_atecc608_without_chip_stores_never_signs_in_software(self):
        chip = T.Chip(self)
        chip.provision()
        serial = chip.serial()
        chip.faults("absent")
        be = backend(self)
        # the name is asked by serial: not before the chip tells it
        e = chip_egwd(self, chip, be, extra={"backend.graphql_url": be.graphql_url,
                                             "name.interval_ms": 200})
        T.wait_until(lambda: e.state()["harvest"]["stored_unsigned"] >= 5, timeout=30,
                     what="readings stored unsigned")
        self.assertEqual(be.summary()["graphql_ids"], [])
        self.assertEqual(e.get("/api/name")["attempts"], 0)
        st = signer(e)
        self.assertEqual(st["backend"], "atecc608")
        self.assertFalse(st["signing"])
        self.assertIn("/dev/i2c-1 at 0x60", st["not_signing_reason"])
        self.assertIsNone(st["serial"])
        self.assertEqual(be.summary()["unique"], 0)
        self.assertTrue(e.state()["uploader"]["waiting_signer"])
        self.assertFalse(os.path.exists(os.path.join(e.state_dir, "device-key.pem")))
        # the UI is served meanwhile, and the status page says why nothing is signed
        status, _, body = T.http(e.port, "GET", "/status")
        self.assertEqual(status, 200)
        page = body.decode() if isinstance(body, bytes) else body
        self.assertIn("Not signing because", page)
        self.assertIn("no ATECC608 answers on /dev/i2c-1 at 0x60", page)
        # the chip is tried again with a growing pause (2, 4, 8 s ... up to 30 s), not
        # at every batch
        T.wait_until(lambda: e.state()["harvest"]["resign_backoff_ms"] >= 8000, timeout=60,
                     what="resign backoff grown to 8 s")
        self.assertLessEqual(e.state()["harvest"]["resign_backoff_ms"], 30000)
        self.assertFalse(signer(e)["signing"])
        self.assertEqual(be.summary()["unique"], 0)
        chip.faults(None)
        T.wait_until(lambda: signer(e)["signing"], timeout=60, what="signing again")
        wait_delivered(self, e, be)
        self.assertEqual(e.state()["harvest"]["resign_backoff_ms"], 0)
        key, info = PL.public_key(e)
        self.assertEqual(info["serialNumber"], serial)
        check_received(self, be, key, serial)
        self.assertEqual(be.summary()["seqs"][0], 1)
        # once the chip answered, the name query asks by its serial
        T.wait_until(lambda: be.summary()["graphql_ids"], timeout=20, what="name asked")
        self.assertEqual(set(be.summary()["graphql_ids"]), {serial})
        PL.stop_clean(self, e)

    def test_emulated_atecc_unprovisioned_chip_then_provisioned(self):
        chip = T.Chip(self)
        be = backend(self)
        e = chip_egwd(self, chip, be)
        T.wait_until(lambda: e.state()["harvest"]["stored_unsigned"] >= 3, timeout=30,
                     what="readings stored unsigned")
        self.assertIn("slot 0 holds no key", signer(e)["not_signing_reason"])
        self.assertEqual(be.summary()["unique"], 0)
        chip.provision()  # another process, while egwd keeps trying
        wait_delivered(self, e, be)
        key, info = PL.public_key(e)
        self.assertEqual(info["serialNumber"], chip.serial())
        check_received(self, be, key, info["serialNumber"])
        PL.stop_clean(self, e)

    def test_emulated_atecc_line_faults_nothing_unsigned_nothing_lost(self):
        chip = T.Chip(self)
        chip.provision()
        serial = chip.serial()
        be = backend(self)
        e = chip_egwd(self, chip, be)
        T.wait_until(lambda: be.summary()["unique"] >= 3, timeout=30, what="first batches")
        for words in ("absent", "nowake", "crc-in", "crc-out", "busy", "slow", "watchdog=60"):
            with self.subTest(fault=words):
                before = e.state()["harvest"]["stored_unsigned"]
                chip.faults(words)
                T.wait_until(lambda: e.state()["harvest"]["stored_unsigned"] >= before + 2, timeout=30,
                             what=f"unsigned batches stored ({words})")
                self.assertFalse(signer(e)["healthy"])
                seen = be.summary()["max_seq"]
                self.assertTrue(e.state()["uploader"]["waiting_signer"])
                time.sleep(0.5)
                # at most the batch already signed when the line broke
                self.assertLessEqual(be.summary()["max_seq"], seen + 1)
                chip.faults(None)
                wait_delivered(self, e, be)
        check_received(self, be, *PL.public_key(e)[:1], serial)
        s = be.summary()
        self.assertEqual(s["duplicates"], 0)
        self.assertEqual(s["seqs"][0], 1)
        self.assertGreater(e.state()["harvest"]["resigned"], 0)
        PL.stop_clean(self, e)


    def test_emulated_atecc_unlocked_data_zone_then_provisioning_finished(self):
        chip = T.Chip(self)
        old_xy = chip.provision()
        serial = chip.serial()
        open_data_zone(chip)
        info = chip.egwd_cmd("--chip-info").stdout
        self.assertIn("config zone: locked", info)
        self.assertIn("data zone: unlocked", info)
        be = backend(self)
        e = chip_egwd(self, chip, be)
        T.wait_until(lambda: e.state()["harvest"]["stored_unsigned"] >= 3, timeout=30,
                     what="readings stored unsigned")
        st = signer(e)
        self.assertFalse(st["signing"])
        self.assertIn("data zone is not locked", st["not_signing_reason"])
        self.assertIn("--chip-provision", st["not_signing_reason"])
        self.assertIsNone(st["serial"])  # a key in an open chip is no identity
        self.assertEqual(be.summary()["unique"], 0)
        self.assertTrue(e.state()["uploader"]["waiting_signer"])
        self.assertFalse(os.path.exists(os.path.join(e.state_dir, "identity")))
        self.assertFalse(os.path.exists(os.path.join(e.state_dir, "device-key.pem")))
        # the status page's data says the same
        status, _, body = T.http(e.port, "GET", "/api/state")
        self.assertEqual(status, 200)
        self.assertIn("data zone is not locked", json.loads(body)["signer"]["not_signing_reason"])
        # --chip-provision finishes the interrupted run, with a new key
        dry = chip.egwd_cmd("--chip-provision", "--dry-run").stdout
        self.assertIn("half-provisioned", dry)
        self.assertNotIn("SlotConfig", dry)
        self.assertIn("GenKey slot 0", dry)
        self.assertIn("dry run: nothing written", dry)
        self.assertIn("data zone: unlocked", chip.egwd_cmd("--chip-info").stdout)
        xy = chip.provision()
        self.assertNotEqual(xy, old_xy)
        self.assertIn("data zone: locked", chip.egwd_cmd("--chip-info").stdout)
        T.wait_until(lambda: signer(e)["signing"], timeout=60, what="signing after the lock")
        wait_delivered(self, e, be)
        key, info = PL.public_key(e)
        self.assertEqual(info["publicKey"], xy)
        check_received(self, be, key, serial)
        self.assertEqual(be.summary()["seqs"][0], 1)
        again = chip.egwd_cmd("--chip-provision", check=False)
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("already locked", again.stderr)
        PL.stop_clean(self, e)


class EmulatedChipIdentity(unittest.TestCase):

    def test_emulated_chip_identity_change_refused_until_accepted(self):
        a, b = T.Chip(self), T.Chip(self)
        a.provision()
        xy_b = b.provision()
        serial_a, serial_b = a.serial(), b.serial()
        state = T.tempdir(self, "egw-ident-")
        be = backend(self)
        e = chip_egwd(self, a, be, state_dir=state, backend="auto")
        T.wait_until(lambda: be.summary()["unique"] >= 2, timeout=30, what="signed with chip a")
        self.assertEqual(signer(e)["serial"], serial_a)
        PL.stop_clean(self, e)

        # auto with the recorded chip gone: no software key, nothing signed
        a.faults("absent")
        e = chip_egwd(self, a, be, state_dir=state, backend="auto")
        T.wait_until(lambda: e.state()["harvest"]["stored_unsigned"] >= 2, timeout=30, what="stored")
        st = signer(e)
        self.assertEqual(st["backend"], "atecc608")
        self.assertEqual(st["serial"], serial_a)
        self.assertFalse(st["signing"])
        self.assertFalse(os.path.exists(os.path.join(state, "device-key.pem")))
        PL.stop_clean(self, e)

        # another chip: refused
        e = chip_egwd(self, b, be, state_dir=state)
        T.wait_until(lambda: e.state()["harvest"]["stored_unsigned"] >= 4, timeout=30, what="stored")
        st = signer(e)
        self.assertTrue(st["identity_refused"])
        self.assertFalse(st["signing"])
        self.assertIn("--accept-new-identity", st["not_signing_reason"])
        self.assertIn("differs from the recorded identity", e.output())
        PL.stop_clean(self, e)
        with open(os.path.join(state, "identity")) as f:
            self.assertIn(serial_a, f.read())
        self.assertEqual(set(devices(be).values()), {serial_a})

        # accepted explicitly: chip b signs everything kept, and is recorded.  A
        # backend that learns chip b's key from /api/crypto receives the rest.
        be2 = backend(self)
        e = chip_egwd(self, b, be2, state_dir=state, args=("--accept-new-identity",))
        T.wait_until(lambda: signer(e)["signing"], timeout=30, what="signing with chip b")
        wait_delivered(self, e, be2)
        with open(os.path.join(state, "identity")) as f:
            self.assertIn(serial_b, f.read())
        self.assertEqual(e.get("/api/crypto")["publicKey"], xy_b)
        s, s2 = be.summary(), be2.summary()
        self.assertEqual(s2["missing"], [])
        self.assertEqual(s["bad_signatures"] + s2["bad_signatures"], 0)
        # nothing lost: the two backends hold every seq, each once
        PL.contiguous(self, sorted(set(s["seqs"]) | set(s2["seqs"])))
        self.assertEqual(set(s["seqs"]) & set(s2["seqs"]), set())
        self.assertEqual(set(devices(be2).values()), {serial_b})
        for r in be2.records():
            self.assertEqual(pyjwt.decode(r["jwt"], key_of(xy_b), algorithms=["ES256"],
                                          options={"verify_iat": False}), r["payload"])
        PL.stop_clean(self, e)


if __name__ == "__main__":
    unittest.main()
