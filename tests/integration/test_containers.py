"""The containers for real: the three images built with podman (a private
engine configuration, see scripts/test-podman), both compose files brought up
with Debian's docker-compose against podman's Docker-compatible API (the
production file with the emulated ATECC608 behind its mapped I2C device),
egw-sim on port 502 answering mbpoll from the host, the health check, a
restart with the volume, the unprivileged user and the read-only root
filesystem; the arm64 egwd image built and run under qemu-user, the armhf
build stage, and (where qemu-user is missing) egwd cross-built for arm64 on
the host with the committed meson cross file.

The images are built from the source tree, not from the build under test, so
the file runs once per suite (the plain pass).  The images are built once per
run and shared by the tests; podman's layer cache keeps the package layers
between runs.  Every container, network and volume a test makes carries the
run's project name and is removed even when the test fails."""
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import unittest

import yaml

import egwtest as T

BASE = "docker.io/library/debian:12-slim"
BASE_ARM64 = "localhost/debian:bookworm-slim-arm64"  # made by scripts/test-podman
IMAGES = {  # name: (Dockerfile, tag the compose files use)
    "egwd": ("Dockerfile", "egw/egwd:latest"),
    "egw-sim": ("Dockerfile.sim", "egw/egw-sim:latest"),
    "devbackend": ("Dockerfile.devbackend", "egw/devbackend:latest"),
}
# Everything this run makes is named after it, so a sweep finds leftovers.
RUN = f"egwct{os.getpid()}"
ENV = dict(os.environ)
# The image IDs this run built: the tags are shared by every checkout using
# the same test storage, and a run elsewhere may move them meanwhile.
STATE = {"service": None, "sockdir": None, "build_s": {}, "sizes": {}, "ids": {}}
COMPOSE = shutil.which("docker-compose")


def podman(*args, check=True, timeout=300, input=None):
    r = subprocess.run(["podman", *args], env=ENV, capture_output=True, text=True,
                       timeout=timeout, input=input)
    if check and r.returncode:
        raise AssertionError(f"podman {' '.join(args)}: exit {r.returncode}\n{r.stderr[-3000:]}")
    return r


def image_size(ref):
    return int(json.loads(podman("image", "inspect", ref).stdout)[0]["Size"])


def sweep():
    """Remove every container, network and volume named after this run."""
    r = podman("ps", "-a", "--format", "{{.Names}}", check=False)
    names = [n for n in r.stdout.split() if n.startswith(RUN)]
    if names:
        podman("rm", "-f", "-v", "-t", "0", *names, check=False)
    for kind in ("network", "volume"):
        r = podman(kind, "ls", "--format", "{{.Name}}", check=False)
        names = [n for n in r.stdout.split() if n.startswith(RUN)]
        if names:
            podman(kind, "rm", "-f", *names, check=False)


def setUpModule():
    if os.environ.get("EGW_BUILD_LABEL", "plain") != "plain":
        raise unittest.SkipTest("the images build from the source tree: the container tests "
                                "run once, in the plain pass")
    if not shutil.which("podman"):
        raise unittest.SkipTest("podman is not installed (scripts/setup --test installs it)")
    r = subprocess.run([os.path.join(T.REPO, "scripts", "test-podman"), "prepare"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode:
        raise AssertionError(f"scripts/test-podman prepare: {r.stdout}{r.stderr}")
    r = subprocess.run([os.path.join(T.REPO, "scripts", "test-podman"), "env"],
                       capture_output=True, text=True, check=True)
    for line in r.stdout.splitlines():
        k, v = line[len("export "):].split("=", 1)
        ENV[k] = v
    # The one reason to skip: podman cannot run a container on this machine.
    r = podman("run", "--rm", "--network", "none", BASE, "true", check=False, timeout=120)
    if r.returncode:
        raise unittest.SkipTest(f"podman cannot run containers here: {r.stderr.strip()[-500:]}")
    sweep()
    for name, (dockerfile, tag) in IMAGES.items():
        t0 = time.monotonic()
        # Docker format keeps the HEALTHCHECK (the OCI format has none); the
        # host network gives the build steps the machine's resolver.
        STATE["ids"][name] = podman(
            "build", "--quiet", "--format", "docker", "--network", "host", "-t", tag,
            "-f", os.path.join(T.REPO, dockerfile), T.REPO, timeout=900).stdout.split()[-1]
        STATE["build_s"][name] = time.monotonic() - t0
        STATE["sizes"][name] = image_size(STATE["ids"][name])
    # The shared build stage gets a tag too (all cached, a second): with every
    # layer worth keeping under a tag, tearDownModule can prune the rest.
    STATE["ids"]["build"] = podman(
        "build", "--quiet", "--format", "docker", "--network", "host", "--target", "build",
        "-t", "egw/build:native", "-f", os.path.join(T.REPO, "Dockerfile"), T.REPO,
        timeout=900).stdout.split()[-1]
    base = image_size(BASE)
    for name in IMAGES:
        print(f"image {name}: {STATE['sizes'][name] / 1e6:.1f} MB, "
              f"{(STATE['sizes'][name] - base) / 1e6:.1f} MB over {BASE}, "
              f"built in {STATE['build_s'][name]:.0f} s", flush=True)
    # docker-compose talks to podman's Docker-compatible API on a private socket.
    STATE["sockdir"] = tempfile.mkdtemp(prefix="egw-podman-sock-")
    sock = os.path.join(STATE["sockdir"], "podman.sock")
    STATE["service"] = subprocess.Popen(
        ["podman", "system", "service", "--time=0", "unix://" + sock], env=ENV,
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(STATE["sockdir"], "service.log"), "w"))
    ENV["DOCKER_HOST"] = "unix://" + sock
    T.wait_until(lambda: os.path.exists(sock), timeout=30, what="podman API socket")


def tearDownModule():
    try:
        sweep()
        # Earlier runs' layers that no tag reaches any more (the build stage of
        # an older source tree, replaced images); the package layers stay.
        if STATE["sockdir"]:
            podman("image", "prune", "-f", check=False, timeout=300)
            # Anonymous volumes (the image's VOLUME) no container uses any more.
            podman("volume", "prune", "-f", check=False, timeout=120)
    finally:
        svc = STATE["service"]
        if svc is not None:
            svc.terminate()
            try:
                svc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                svc.kill()
                svc.wait()
        if STATE["sockdir"]:
            shutil.rmtree(STATE["sockdir"], ignore_errors=True)


def compose(project, files, *args, env=None, timeout=300):
    argv = [COMPOSE, "-p", project]
    for f in files:
        argv += ["-f", os.path.join(T.REPO, f)]
    r = subprocess.run(argv + list(args), env=dict(ENV, **(env or {})), cwd=T.REPO,
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise AssertionError(f"docker-compose {' '.join(args)}: exit {r.returncode}\n"
                             f"{r.stderr[-3000:]}")
    return r


def leftovers(project):
    """Containers, networks and volumes of a compose project still present."""
    out = []
    r = podman("ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
               "--format", "{{.Names}}")
    out += r.stdout.split()
    for kind in ("network", "volume"):
        r = podman(kind, "ls", "--format", "{{.Name}}")
        out += [n for n in r.stdout.split() if n.startswith(project + "_")]
    return out


def logs(name):
    r = podman("logs", name, check=False)
    return (r.stdout + r.stderr)[-4000:]


def https_status(port, path):
    """Status of a GET over TLS (egwd's self-made certificate is not checked)."""
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=5,
                                    context=ssl._create_unverified_context())
    try:
        c.request("GET", path)
        return c.getresponse().status
    finally:
        c.close()


def state(port):
    return T.get_json(port, "/api/state", timeout=5)


class Timed(unittest.TestCase):
    """Prints each test's time (the file's CI budget is watched)."""

    def setUp(self):
        t0 = time.monotonic()
        self.addCleanup(lambda: print(f"[{self._testMethodName}: "
                                      f"{time.monotonic() - t0:.0f} s]", flush=True))


def assert_read_only_unprivileged(tc, name):
    """The compose file's egwd container: read-only root filesystem, egw's
    uid, no capabilities."""
    insp = json.loads(podman("inspect", name).stdout)[0]
    tc.assertTrue(insp["HostConfig"]["ReadonlyRootfs"])
    status = podman("exec", name, "cat", "/proc/1/status").stdout
    tc.assertRegex(status, r"Uid:\s+990\s+990\s+990\s+990")
    tc.assertRegex(status, r"CapEff:\s+0+\n")
    r = podman("exec", name, "touch", "/usr/sbin/x", check=False)
    tc.assertIn("Read-only file system", r.stderr)


class ContainerImages(Timed):
    def test_container_runtime_images_hold_only_what_runs(self):
        base = image_size(BASE)
        # egwd, its libraries and the CA bundle: tens of MB over the base, no
        # compiler, no -dev package, no source.
        self.assertLess(STATE["sizes"]["egwd"] - base, 40e6)
        self.assertLess(STATE["sizes"]["egw-sim"] - base, 10e6)
        r = podman("run", "--rm", "--entrypoint", "/bin/sh", STATE["ids"]["egwd"], "-c",
                   "ls /usr/bin/gcc /usr/bin/cc /usr/bin/meson /usr/include/jansson.h /src "
                   "2>/dev/null; test -s /etc/ssl/certs/ca-certificates.crt && echo ca-ok; "
                   "/usr/sbin/egwd --version >/dev/null && echo egwd-ok")
        self.assertEqual(r.stdout.split(), ["ca-ok", "egwd-ok"], r.stdout + r.stderr)
        # HEALTHCHECK survives (Docker image format).
        cfg = json.loads(podman("image", "inspect", STATE["ids"]["egwd"]).stdout)[0]
        hc = cfg.get("Healthcheck") or {}
        self.assertIn("--check", " ".join(hc.get("Test", [])), cfg.get("Config"))


class ContainerNoCrypt(Timed):
    def test_container_compose_no_crypt_delivers_and_down_leaves_nothing(self):
        project = RUN + "dev"
        web, tls = T.free_port(), T.free_port()
        env = {"EGW_WEB_PUBLISH": f"127.0.0.1:{web}", "EGW_TLS_PUBLISH": f"127.0.0.1:{tls}"}
        files = ["docker-compose-no_crypt.yml"]
        self.addCleanup(lambda: subprocess.run(
            [COMPOSE, "-p", project, "-f", os.path.join(T.REPO, files[0]), "down", "-v",
             "-t", "5"], env=dict(ENV, **env), capture_output=True, timeout=300))
        t0 = time.monotonic()
        compose(project, files, "up", "-d", "--no-build", env=env)
        egwd, be = f"{project}_egwd_1", f"{project}_devbackend_1"
        try:
            # The UI answers on the published loopback port.
            T.wait_until(lambda: T.http(web, "GET", "/api/hello", timeout=2)[0] == 200,
                         timeout=60, interval=0.2, what="egwd on the published port")
            st, _, page = T.http(web, "GET", "/")
            self.assertEqual(st, 200)
            self.assertIn(b"<html", page.lower())
            # and over HTTPS on its published port (egwd's own certificate).
            self.assertEqual(T.wait_until(lambda: https_status(tls, "/api/hello"), timeout=30,
                                          interval=0.3, what="HTTPS on the published port"), 200)

            def received():
                r = podman("exec", be, "python3", "-c",
                           "import urllib.request;print(urllib.request.urlopen("
                           "'http://127.0.0.1:8080/received').read().decode())", check=False)
                if r.returncode:
                    return None
                got = json.loads(r.stdout)
                return got if got["count"] >= 1 else None
            got = T.wait_until(received, timeout=90, interval=0.5,
                               what="a batch at the development backend")
            first_batch_s = time.monotonic() - t0
            print(f"compose up to the first delivered batch: {first_batch_s:.1f} s", flush=True)
            self.assertEqual(got["bad_signatures"], 0, got)
            self.assertEqual(got["malformed"], 0, got)
            s = state(web)
            self.assertEqual(s["signer"]["backend"], "software")
            self.assertGreaterEqual(s["store"]["delivered"], 1)
            # The backend verified against the key egwd serves, and asked for
            # the name under egwd's serial.
            self.assertEqual(got["graphql_ids"], [T.get_json(web, "/api/crypto")["serialNumber"]])
            # egwd polls the simulator across the compose network, by name.
            dev = s["devices"][0]
            self.assertEqual(dev["connection"]["host"], "sim")
            assert_read_only_unprivileged(self, egwd)
            self.assertEqual(dev["state"], "polling", dev)
            self.assertGreater(dev["stats"]["polls_ok"], 0)
            self.assertTrue(dev["serial"].startswith("SIM"), dev)
        except Exception:
            for n in (egwd, be, f"{project}_sim_1"):
                print(f"--- {n}\n{logs(n)}")
            raise
        t1 = time.monotonic()
        compose(project, files, "down", "-v", env=env)
        print(f"compose down: {time.monotonic() - t1:.1f} s", flush=True)
        self.assertEqual(leftovers(project), [])


def chip_shim(tc, build=None):
    """The emulated ATECC608's preload library (sim/atecc_shim.c), built in the
    images' build stage (for the image's architecture, C library and OpenSSL)
    and copied out to a directory of the test; test equipment, never in the
    runtime image."""
    d = T.tempdir(tc, "egw-ct-shim-")
    podman("run", "--rm", "--network", "none", "-v", f"{d}:/out", build or STATE["ids"]["build"],
           "sh", "-c",
           "ninja -C /build sim/libegw-atecc-shim.so >/dev/null && "
           "cp /build/sim/libegw-atecc-shim.so /out/", timeout=300)
    return os.path.join(d, "libegw-atecc-shim.so")


CHIP_ENV = {"LD_PRELOAD": "/opt/egw-test/shim.so", "EGW_ATECC_EMU_DIR": "/opt/egw-test/chip",
            "EGW_ATECC_EMU_DEV": "/dev/i2c-1"}


def chip_dir(tc, d, build=None):
    """d/emu: the shim and the emulated chip's state directory (writable by
    egwd's uid), to be mounted at /opt/egw-test."""
    emu = os.path.join(d, "emu")
    os.mkdir(emu)
    shutil.copy(chip_shim(tc, build), os.path.join(emu, "shim.so"))
    os.mkdir(os.path.join(emu, "chip"))
    if os.geteuid() == 0:
        os.chown(os.path.join(emu, "chip"), 990, -1)
    else:
        os.chmod(os.path.join(emu, "chip"), 0o777)
    return emu


def chip_provision(tc, image, emu, device=None):
    """Provisions the emulated chip with the image's egwd and cryptoauthlib
    (a throwaway container); returns (serial, public key X||Y in hex)."""
    argv = ["run", "--rm", "--network", "none", "-v", f"{emu}:/opt/egw-test"]
    if device:
        argv += ["--device", f"{device}:/dev/i2c-1"]
    for k, v in CHIP_ENV.items():
        argv += ["-e", f"{k}={v}"]
    out = podman(*argv, image, "--chip-provision").stdout
    xy = [l[len("public key: 04"):] for l in out.splitlines() if l.startswith("public key: 04")]
    tc.assertEqual(len(xy), 1, out)
    info = podman(*argv, image, "--chip-info").stdout
    tc.assertIn("data zone: locked", info)
    tc.assertIn("public key: 04" + xy[0], info)
    return re.search(r"^serial: ([0-9a-f]{18})$", info, re.M).group(1), xy[0]


class ContainerSecureElement(Timed):
    def test_container_compose_secure_element_emulated_chip_signs_restart_keeps_data(self):
        """docker-compose.yml as it is (signer.backend=atecc608, the host's I2C
        bus mapped to /dev/i2c-1), with the emulated ATECC608 behind that
        device: an override file preloads sim/atecc_shim.c into egwd (the
        chip's state in a bind-mounted directory) and adds the development
        backend as the upload target.  The image's cryptoauthlib provisions
        the chip; egwd starts with the chip unplugged (shows it missing,
        stores, signs nothing), signs through the chip once it answers, the
        backend verifies every batch with the chip's key, and a re-created
        container keeps its batches and the chip's identity."""
        project = RUN + "se"
        web = T.free_port()
        d = T.tempdir(self)
        bus = os.path.join(d, "i2c-1")
        if os.geteuid() == 0:
            os.mknod(bus, 0o660 | 0o020000, os.makedev(89, 1))
            os.chown(bus, 0, 998)
        else:  # without root no device node can be made: a character device that is not a bus
            bus = "/dev/null"
        rdev = os.stat(bus).st_rdev
        # The chip: the shim and the emulator's state, writable by egwd's uid.
        emu = chip_dir(self, d)
        mount = f"{emu}:/opt/egw-test"
        serial, xy = chip_provision(self, STATE["ids"]["egwd"], emu, device=bus)

        def faults(words):
            path = os.path.join(emu, "chip", "faults")
            if words is None:
                os.unlink(path)
                return
            with open(path + ".tmp", "w") as f:
                f.write(words)
            os.replace(path + ".tmp", path)
        faults("absent")  # unplugged until the missing chip has been seen

        with open(os.path.join(T.REPO, "docker-compose.yml")) as f:
            command = yaml.safe_load(f)["services"]["egwd"]["command"]
        override = os.path.join(d, "chip-override.yml")
        with open(override, "w") as f:
            yaml.safe_dump({"version": "2.4", "services": {
                # this run's images (the tags are shared with other checkouts)
                "egwd": {"image": STATE["ids"]["egwd"], "environment": CHIP_ENV, "volumes": [mount],
                         "depends_on": ["devbackend"],
                         "command": command + [
                             "--set", 'backend.data_urls=["http://devbackend:8080/data"]',
                             "--set", "backend.graphql_url=http://devbackend:8080/graphql",
                             # a batch every 2 s, not 10: the test waits for several
                             "--set", "harvest.batch_interval_ms=2000"]},
                "devbackend": {"image": STATE["ids"]["devbackend"],
                               "command": ["--host", "0.0.0.0", "--port", "8080",
                                           "--egwd", "http://egwd:5000", "--name", "egw-se"]},
            }}, f)
        env = {"EGW_WEB_PUBLISH": f"127.0.0.1:{web}", "EGW_I2C_DEVICE": bus,
               "EGW_TLS_PUBLISH": f"127.0.0.1:{T.free_port()}"}
        files = ["docker-compose.yml", override]

        def down():
            argv = [COMPOSE, "-p", project]
            for f in files:
                argv += ["-f", os.path.join(T.REPO, f)]
            subprocess.run(argv + ["down", "-v", "-t", "5"], env=dict(ENV, **env),
                           capture_output=True, timeout=300)
        self.addCleanup(down)
        compose(project, files, "up", "-d", "--no-build", env=env)
        egwd, be = f"{project}_egwd_1", f"{project}_devbackend_1"

        def received():
            r = podman("exec", be, "python3", "-c",
                       "import urllib.request;print(urllib.request.urlopen("
                       "'http://127.0.0.1:8080/received').read().decode())", check=False)
            return json.loads(r.stdout) if r.returncode == 0 else None

        def delivered_all():
            last = state(web)["store"]["last_seq"]
            got = received()
            return got if got and last >= 1 and got["max_seq"] is not None \
                and got["max_seq"] >= last else None
        try:
            T.wait_until(lambda: T.http(web, "GET", "/api/hello", timeout=2)[0] == 200,
                         timeout=60, interval=0.2, what="egwd on the published port")
            r = podman("exec", egwd, "stat", "-c", "%F %t:%T", "/dev/i2c-1")
            self.assertEqual(r.stdout.strip(), "character special file "
                             f"{os.major(rdev):x}:{os.minor(rdev):x}")
            assert_read_only_unprivileged(self, egwd)
            # The chip unplugged: egwd runs, shows it missing, stores its
            # readings and signs nothing (never with a software key).
            s = T.wait_until(lambda: (lambda x: x if x["store"]["last_seq"] >= 2 else None)(
                state(web)), timeout=60, interval=0.5, what="two sealed batches")
            self.assertEqual(s["signer"]["configured"], "atecc608")
            self.assertFalse(s["signer"]["signing"], s["signer"])
            self.assertIn("/dev/i2c-1 at 0x60", s["signer"]["not_signing_reason"])
            self.assertIn("readings are stored and signed when it answers", logs(egwd))
            self.assertEqual(T.http(web, "GET", "/api/crypto")[0], 503)
            self.assertEqual(received()["unique"], 0)
            # Plugged in: every stored batch is signed by the chip, delivered
            # and verified against the key egwd serves, which is the chip's.
            faults(None)
            T.wait_until(lambda: state(web)["signer"]["signing"], timeout=60, interval=0.5,
                         what="signing through the emulated chip")
            ident = T.get_json(web, "/api/crypto")
            self.assertEqual((ident["serialNumber"], ident["publicKey"]), (serial, xy))
            self.assertEqual(state(web)["signer"]["serial"], serial)
            got = T.wait_until(delivered_all, timeout=90, interval=0.5,
                               what="every batch at the development backend")
            self.assertEqual((got["bad_signatures"], got["malformed"], got["missing"]),
                             (0, 0, []), got)
            self.assertEqual(got["min_seq"], 1, got)
            before = got["max_seq"]
            # A new container on the same volume: stop (egwd seals and closes
            # its store on SIGTERM), then re-create.
            compose(project, files, "stop", "-t", "20", "egwd", env=env)
            compose(project, files, "up", "-d", "--no-build", "--no-deps", "--force-recreate",
                    "egwd", env=env)
            T.wait_until(lambda: T.http(web, "GET", "/api/hello", timeout=2)[0] == 200,
                         timeout=60, interval=0.2, what="egwd after re-creation")
            T.wait_until(lambda: state(web)["signer"]["signing"], timeout=60, interval=0.5,
                         what="signing after re-creation")
            again = T.get_json(web, "/api/crypto")
            self.assertEqual((again["serialNumber"], again["publicKey"]), (serial, xy))
            got = T.wait_until(lambda: (lambda g: g if g and g["max_seq"] > before and
                                        g["max_seq"] >= state(web)["store"]["last_seq"]
                                        else None)(delivered_all()),
                               timeout=90, interval=0.5, what="batches after re-creation")
            # Nothing lost across the re-creation: one run of seqs from 1, each
            # signed by the chip.
            self.assertEqual((got["bad_signatures"], got["malformed"], got["missing"],
                              got["min_seq"]), (0, 0, [], 1), got)
            self.assertEqual(state(web)["store"]["dropped"], 0)
        except Exception:
            for n in (egwd, be):
                print(f"--- {n}\n{logs(n)}")
            raise
        compose(project, files, "down", "-v", env=env)
        self.assertEqual(leftovers(project), [])


class ContainerSim(Timed):
    @unittest.skipUnless(shutil.which("mbpoll"), "mbpoll not installed")
    def test_container_sim_on_port_502_answers_mbpoll(self):
        name, port = RUN + "sim", T.free_port()
        self.addCleanup(podman, "rm", "-f", "-v", "-t", "0", name, check=False)
        podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:502",
               STATE["ids"]["egw-sim"])
        self.assertEqual(podman("exec", name, "id", "-un").stdout.strip(), "egwsim")
        # As its unprivileged user, bound to 502 through the file capability;
        # the SunSpec serial number at 40052 (0-based), read by mbpoll on the host.
        r = T.wait_until(lambda: (lambda r: r if r.returncode == 0 else None)(subprocess.run(
            ["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-0", "-r", "40052", "-c", "3",
             "-t", "4:hex", "-1", "-o", "2", "127.0.0.1"], capture_output=True, text=True,
            timeout=20)), timeout=30, interval=0.3, what="mbpoll answer")
        words = re.findall(r"\[4005[234]\]:\s+0x([0-9A-F]{4})", r.stdout)
        self.assertEqual(bytes.fromhex("".join(words)), b"SIMsol", r.stdout)


class ContainerEgwd(Timed):
    def test_container_egwd_healthy_unprivileged_read_only_restart_keeps_batches(self):
        name, vol, web = RUN + "egwd", RUN + "state", T.free_port()
        self.addCleanup(podman, "volume", "rm", "-f", vol, check=False)
        self.addCleanup(podman, "rm", "-f", "-v", "-t", "0", name, check=False)
        podman("run", "-d", "--name", name, "--read-only", "-v", f"{vol}:/var/lib/egw",
               "-p", f"127.0.0.1:{web}:5000", STATE["ids"]["egwd"],
               "--set", "signer.backend=software",
               # An upload target that refuses: every batch stays in the store.
               "--set", 'backend.data_urls=["http://127.0.0.1:9/data"]')
        try:
            T.wait_until(lambda: T.http(web, "GET", "/api/hello", timeout=2)[0] == 200,
                         timeout=60, interval=0.2, what="egwd on the published port")
            r = podman("healthcheck", "run", name, check=False)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            insp = json.loads(podman("inspect", name).stdout)[0]
            self.assertTrue(insp["HostConfig"]["ReadonlyRootfs"])
            self.assertEqual(insp["Config"]["User"], "egw")
            status = podman("exec", name, "cat", "/proc/1/status").stdout
            self.assertRegex(status, r"Uid:\s+990\s+990\s+990\s+990")
            self.assertRegex(status, r"CapEff:\s+0+\n")
            r = podman("exec", name, "touch", "/usr/sbin/x", check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("Read-only file system", r.stderr)
            s = T.wait_until(lambda: (lambda x: x if x["store"]["last_seq"] >= 2 else None)(
                state(web)), timeout=60, interval=0.5, what="two sealed batches")
            ident = T.get_json(web, "/api/crypto")
            podman("restart", "-t", "20", name)
            T.wait_until(lambda: T.http(web, "GET", "/api/hello", timeout=2)[0] == 200,
                         timeout=60, interval=0.2, what="egwd after the restart")
            after = state(web)["store"]
            again = T.get_json(web, "/api/crypto")
            self.assertEqual((again["serialNumber"], again["publicKey"]),
                             (ident["serialNumber"], ident["publicKey"]))
            self.assertGreaterEqual(after["last_seq"], s["store"]["last_seq"])
            self.assertEqual((after["delivered"], after["dropped"]), (0, 0))
            self.assertEqual(after["backlog"], after["last_seq"], after)
            r = podman("healthcheck", "run", name, check=False)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # Stopped, the health check says so.
            podman("stop", "-t", "20", name)
            r = podman("run", "--rm", "--read-only", "--network", "none", "-v",
                       f"{vol}:/var/lib/egw", "--entrypoint", "/usr/sbin/egwd",
                       STATE["ids"]["egwd"], "--check", "--port", "5000",
                       "--state-dir", "/var/lib/egw", check=False)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        except Exception:
            print(f"--- {name}\n{logs(name)}")
            raise


def qemu_registered(name):
    try:
        with open(f"/proc/sys/fs/binfmt_misc/{name}") as f:
            return f.readline().strip() == "enabled"
    except OSError:
        return False


def qemu_aarch64():
    return qemu_registered("qemu-aarch64")


class ContainerArm64(Timed):
    def test_container_arm64_image_builds_and_runs_under_qemu(self):
        """The egwd image for arm64: the build stage cross-compiles on the
        build machine (TARGETARCH), the runtime stage is Debian arm64, run
        here under qemu-user."""
        if not qemu_aarch64():
            self.skipTest("qemu-aarch64 is not registered with binfmt_misc here: the arm64 "
                          "image cannot run (the cross build of egwd is tested below)")
        if podman("image", "exists", BASE_ARM64, check=False).returncode:
            self.fail(f"{BASE_ARM64} missing: scripts/test-podman prepare makes it")
        # Kept, like the other images: removing it would remove its cached layers.
        tag, name, web = "egw/egwd:arm64", RUN + "arm64", T.free_port()
        self.addCleanup(podman, "rm", "-f", "-v", "-t", "0", name, check=False)
        t0 = time.monotonic()
        # podman 4.3 runs every stage on --platform's architecture, so the
        # target is named through the build arguments and the runtime base.
        tag = podman("build", "--quiet", "--pull=never", "--format", "docker", "--network",
                     "host", "--build-arg", "TARGETARCH=arm64", "--build-arg",
                     f"DEBIAN={BASE_ARM64}", "-t", tag, "-f", os.path.join(T.REPO, "Dockerfile"),
                     T.REPO, timeout=900).stdout.split()[-1]  # this run's image, by ID
        build = podman("build", "--quiet", "--pull=never", "--format", "docker", "--network",
                       "host", "--target", "build", "--build-arg", "TARGETARCH=arm64", "-t",
                       "egw/build:arm64", "-f", os.path.join(T.REPO, "Dockerfile"), T.REPO,
                       timeout=900).stdout.split()[-1]
        print(f"arm64 egwd image: built in {time.monotonic() - t0:.0f} s, "
              f"{(image_size(tag) - image_size(BASE_ARM64)) / 1e6:.1f} MB over its base",
              flush=True)
        self.assertEqual(podman("image", "inspect", "--format", "{{.Architecture}}",
                                tag).stdout.strip(), "arm64")
        r = podman("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", tag, "-c",
                   "uname -m; /usr/sbin/egwd --version")
        self.assertEqual(r.stdout.split()[0], "aarch64", r.stdout)
        # The chip support of the Pi image: the image's arm64 egwd and
        # cryptoauthlib provision the emulated chip (the shim cross-built in
        # the arm64 build stage), and egwd signs through it.
        emu = chip_dir(self, T.tempdir(self), build=build)
        serial, xy = chip_provision(self, tag, emu)
        env = []
        for k, v in CHIP_ENV.items():
            env += ["-e", f"{k}={v}"]
        podman("run", "-d", "--name", name, "--read-only", "-p", f"127.0.0.1:{web}:5000",
               "-v", f"{emu}:/opt/egw-test", *env, tag, "--set", "signer.backend=atecc608")
        try:
            T.wait_until(lambda: T.http(web, "GET", "/api/hello", timeout=2)[0] == 200,
                         timeout=90, interval=0.3, what="the arm64 egwd container")
            T.wait_until(lambda: state(web)["signer"]["signing"], timeout=60, interval=0.5,
                         what="the arm64 egwd signing through the emulated chip")
            ident = T.get_json(web, "/api/crypto")
            self.assertEqual((ident["serialNumber"], ident["publicKey"]), (serial, xy))
        except Exception:
            print(f"--- {name}\n{logs(name)}")
            raise
        STATE["arm64_image_ran"] = True


class ContainerArmhf(Timed):
    def test_container_armhf_build_stage_cross_compiles(self):
        """The images' build stage for TARGETARCH=arm (Debian armhf, ARMv7):
        Debian's arm-linux-gnueabihf compiler, the :armhf -dev packages and
        deploy/cross/armhf.ini, inside the container; the binaries are 32-bit
        ARM ELF files and, with qemu-arm registered, run."""
        tag = "egw/build:armhf"  # kept: it holds the cached layers
        t0 = time.monotonic()
        tag = podman("build", "--quiet", "--pull=never", "--format", "docker", "--network",
                     "host", "--target", "build", "--build-arg", "TARGETARCH=arm", "-t", tag,
                     "-f", os.path.join(T.REPO, "Dockerfile"), T.REPO,
                     timeout=900).stdout.split()[-1]  # this run's image, by ID
        print(f"armhf build stage: {time.monotonic() - t0:.0f} s", flush=True)
        paths = ["/build/egwd", "/build/sim/egw-sim"]
        if os.path.exists(os.path.join(T.REPO, "deploy", "vendor", "cryptoauthlib-3.7.8.tar.gz")):
            paths.append("/out-lib/libcryptoauth.so.3")  # cross-built chip library
        for p in paths:
            r = podman("run", "--rm", "--network", "none", tag, "od", "-An", "-tx1", "-N20", p)
            head = bytes.fromhex("".join(r.stdout.split()))
            # ELF, 32-bit, little-endian, e_machine 40 (ARM)
            self.assertEqual((head[:4], head[4], head[5], head[18]), (b"\x7fELF", 1, 1, 40), p)
        if qemu_registered("qemu-arm"):
            r = podman("run", "--rm", "--network", "none", tag, "/build/egwd", "--version")
            self.assertTrue(r.stdout.startswith("egwd "), r.stdout + r.stderr)


class CrossBuild(Timed):
    def test_cross_build_egwd_for_arm64(self):
        """egwd and egw-sim built for arm64 with Debian's cross compiler and
        deploy/cross/arm64.ini; run under qemu-user when binfmt_misc has it.
        Where the arm64 image was built and run (the same cross build, in its
        build stage, and egwd under qemu-user), this one would repeat it: the
        host's cross build is the check for machines without qemu-user."""
        if STATE.get("arm64_image_ran"):
            self.skipTest("the arm64 image test cross-built egwd and egw-sim with "
                          "deploy/cross/arm64.ini and ran egwd under qemu-user")
        if not shutil.which("aarch64-linux-gnu-gcc"):
            self.fail("aarch64-linux-gnu-gcc missing: scripts/setup --test installs it")
        d = os.path.join(T.REPO, "build-arm64")
        if not os.path.exists(os.path.join(d, "build.ninja")):
            r = subprocess.run(["meson", "setup", d, T.REPO, "--cross-file",
                                os.path.join(T.REPO, "deploy", "cross", "arm64.ini"),
                                "--buildtype=release", "-Db_ndebug=true"],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        r = subprocess.run(["ninja", "-C", d, "egwd", "sim/egw-sim"], capture_output=True,
                           text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        for p in ("egwd", "sim/egw-sim"):
            out = subprocess.run(["file", "-b", os.path.join(d, p)], capture_output=True,
                                 text=True, check=True).stdout
            self.assertIn("ARM aarch64", out, p)
            self.assertIn("interpreter /lib/ld-linux-aarch64.so.1", out, p)
        if not qemu_aarch64():
            print("qemu-aarch64 is not registered with binfmt_misc: the arm64 egwd is "
                  "built and checked with file(1), not run", flush=True)
            return
        # The arm64 egwd serving its API, under qemu-user.
        state_dir = T.tempdir(self)
        port = T.free_port()
        p = subprocess.Popen([os.path.join(d, "egwd"), "--state-dir", state_dir, "--port",
                              str(port), "--set", "signer.backend=software",
                              "--set", "http.bind=127.0.0.1"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(p.wait)
        self.addCleanup(p.terminate)
        T.wait_until(lambda: T.http(port, "GET", "/api/hello", timeout=2)[0] == 200,
                     timeout=60, interval=0.2, what="the arm64 egwd under qemu")
        p.terminate()
        self.assertEqual(p.wait(timeout=30), 0)


if __name__ == "__main__":
    unittest.main()
