"""Helpers for egw's integration tests: real processes on loopback ports.

Run tests with /usr/bin/python3 (Debian's modules).  The build directory is
taken from $EGW_BUILD (default: <repo>/build).  Every process started through
this module is killed when the test case ends (use Proc as a context manager or
register it with TestCase.addCleanup).
"""
import atexit
import http.client as httpclient
import json
import random
import os
import re
import select
import shutil
import signal as _signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("EGW_BUILD", os.path.join(REPO, "build")))
PYTHON = "/usr/bin/python3"


def binary(name):
    """Path of a built program: egwd, egw-sim, tools/egw-*."""
    for sub in ("", "sim", "tools"):
        p = os.path.join(BUILD, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name} not built in {BUILD}")


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_given = set()


def free_port(kind=socket.SOCK_STREAM):
    """A loopback port that is free right now and stays free until the test
    binds it.  Binding to port 0 would hand out a port from the kernel's
    ephemeral range, which every outgoing connection also draws from: a
    client socket could take it between this call and egwd's bind (seen in
    CI as "Address already in use").  So the port is drawn at random from
    below that range, checked by binding it, and never handed out twice by
    one test process.  Test files running side by side (tests/runner.py)
    each get their own slice of that range: EGW_PORT_SLICE=k/n."""
    lo, _ = _ephemeral_range()
    low = 10000 if lo > 12000 else 1024
    k, n = (int(x) for x in os.environ.get("EGW_PORT_SLICE", "0/1").split("/"))
    width = (lo - low) // n
    low, lo = low + k * width, low + (k + 1) * width
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(low, lo)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tempdir(testcase, prefix="egw-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    testcase.addCleanup(shutil.rmtree, d, True)
    return d


_logs = []


@atexit.register
def _remove_logs():
    """Each process's output file goes when the test file's run ends (a
    failing test has printed what it needed by then)."""
    for p in _logs:
        try:
            os.unlink(p)
        except OSError:
            pass


class Proc:
    """A child process whose combined output is captured to a file."""

    def __init__(self, argv, env=None, cwd=None, name=None):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        fd, self.log_path = tempfile.mkstemp(prefix=f"egw-{self.name}-", suffix=".log")
        _logs.append(self.log_path)
        self.log = os.fdopen(fd, "w+b")
        e = dict(os.environ)
        # Sanitizer builds: fail loudly, no leak noise from short-lived kills.
        e.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if env:
            e.update({k: str(v) for k, v in env.items()})
        self.p = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=e, cwd=cwd,
                                  start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_output(self, needle, timeout=10.0):
        """Wait until `needle` appears in the output; return the whole output."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            out = self.output()
            if needle in out:
                return out
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.p.returncode} before "
                                   f"printing {needle!r}:\n{out}")
            time.sleep(0.02)
        raise TimeoutError(f"{self.name} did not print {needle!r} in {timeout}s:\n{self.output()}")

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)

    def wait(self, timeout=10.0):
        return self.p.wait(timeout=timeout)

    def stop(self, sig=_signal.SIGTERM, timeout=10.0):
        """Stop the process; return its exit code."""
        if self.alive():
            try:
                os.kill(self.p.pid, sig)
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, _signal.SIGKILL)
                self.p.wait()
            except ProcessLookupError:
                pass
        self.log.close()
        return self.p.returncode

    def kill9(self):
        if self.alive():
            os.kill(self.p.pid, _signal.SIGKILL)
            self.p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if proc is not None and not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.output()}")
            time.sleep(0.02)
    raise TimeoutError(f"port {port} not open after {timeout}s")


def http(port, method, path, body=None, headers=None, host="127.0.0.1", timeout=10.0,
         source=None):
    """One request on a fresh connection (from address `source` if given, e.g.
    "127.0.0.2").  Returns (status, headers dict, body bytes)."""
    c = httpclient.HTTPConnection(host, port, timeout=timeout,
                                  source_address=(source, 0) if source else None)
    try:
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def http_json(port, method, path, body=None, headers=None, **kw):
    """Like http() but decodes the body as JSON.  Returns (status, object)."""
    st, _, data = http(port, method, path, body=body, headers=headers, **kw)
    try:
        return st, json.loads(data.decode() or "null")
    except ValueError:
        raise AssertionError(f"{method} {path}: {st} non-JSON body {data[:200]!r}")


def get_json(port, path, **kw):
    st, obj = http_json(port, "GET", path, **kw)
    if st != 200:
        raise AssertionError(f"GET {path} -> {st}: {obj}")
    return obj


class Egwd(Proc):
    """egwd with a temporary state dir on a free port (and a free HTTPS port).

    Extra settings: Egwd(tc, set={"harvest.batch_interval_ms": 200, "devices": [...]})
    """

    def __init__(self, testcase, state_dir=None, port=None, set=None, args=(), env=None,
                 wait=True, tls_port=None):
        self.state_dir = state_dir or tempdir(testcase)
        self.port = port or free_port()
        self.tls_port = tls_port or free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        argv = [binary("egwd"), "--port", self.port, "--state-dir", self.state_dir]
        # Tests listen on loopback only (egwd's default is every interface).
        set = dict({"http.bind": "127.0.0.1", "http.tls_port": self.tls_port}, **(set or {}))
        for k, v in set.items():
            if not isinstance(v, str):
                v = json.dumps(v)
            argv += ["--set", f"{k}={v}"]
        argv += list(args)
        super().__init__(argv, env=env, name="egwd")
        testcase.addCleanup(self.stop)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.alive():
                raise RuntimeError(f"egwd exited {self.p.returncode}:\n{self.output()}")
            try:
                st, _, _ = http(self.port, "GET", "/api/hello", timeout=1.0)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"egwd not ready after {timeout}s:\n{self.output()}")

    @property
    def token(self):
        with open(os.path.join(self.state_dir, "api-token")) as f:
            return f.read().strip()

    def auth(self):
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path):
        return get_json(self.port, path)

    def state(self):
        return get_json(self.port, "/api/state")


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_NUMBER = re.compile(r'-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')


def float_noise(text):
    """The reals in JSON text that carry float noise: more than 12 significant
    digits (49.900000000000006, 612.3000000000001, 98765430.00000001).  egw
    prints every value rounded to its register's resolution in its shortest
    form, so none should.  Strings and integers (timestamps) are skipped."""
    if isinstance(text, bytes):
        text = text.decode()
    bad = []
    for m in _JSON_NUMBER.finditer(_JSON_STRING.sub('""', text)):
        num = m.group(0)
        if "." not in num and "e" not in num.lower():
            continue
        mant = num.lstrip("-").lower().split("e")[0]
        digits = mant.replace(".", "").lstrip("0").rstrip("0")
        if len(digits) > 12:
            bad.append(num)
    return bad


def wait_until(fn, timeout=10.0, interval=0.05, what="condition"):
    """Poll fn() until it returns a truthy value; return that value."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
            if last:
                return last
        except (OSError, AssertionError, KeyError, IndexError, TypeError) as e:
            last = e
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached in {timeout}s (last: {last!r})")


class EgwSim(Proc):
    """egw-sim serving one or more profiles; ports chosen at run time.

    EgwSim(tc, [("solaredge", 1), ("sdm630", 2)]) starts one server per entry
    (--port 0) and fills self.servers with dicts {profile, port, unit}.
    """

    def __init__(self, testcase, devices, args=(), control=True, env=None):
        argv = [binary("egw-sim")]
        for profile, unit in devices:
            argv += ["--profile", profile, "--port", "0", "--unit-id", str(unit)]
        self.control_port = None
        if control:
            self.control_port = free_port()
            argv += ["--control-port", str(self.control_port)]
        argv += list(args)
        super().__init__(argv, env=env, name="egw-sim")
        testcase.addCleanup(self.stop)
        self.servers = []
        end = time.monotonic() + 10
        while len(self.servers) < len(devices):
            if time.monotonic() > end or not self.alive():
                raise RuntimeError(f"egw-sim not ready:\n{self.output()}")
            self.servers = []
            for line in self.output().splitlines():
                # egw-sim: listening <profile> tcp 127.0.0.1:<port> unit <id>
                parts = line.split()
                if len(parts) >= 7 and parts[:2] == ["egw-sim:", "listening"] and parts[3] == "tcp":
                    # a variant (e.g. sungrow_sg) ends "profile <egw profile>"
                    self.servers.append({"profile": parts[2],
                                         "port": int(parts[4].rsplit(":", 1)[1]),
                                         "unit": int(parts[6]),
                                         "egw_profile": parts[8] if len(parts) >= 9
                                         and parts[7] == "profile" else parts[2]})
            time.sleep(0.02)

    def device_settings(self, i=0, **extra):
        """The egwd `devices` entry for server i."""
        s = self.servers[i]
        d = {"connection": "tcp", "host": "127.0.0.1", "port": s["port"],
             "unit_id": s["unit"], "profile": s["egw_profile"]}
        d.update(extra)
        return d


class Chip:
    """An emulated ATECC608 (sim/atecc_emu.h) behind /dev/i2c-1 for the
    processes started with chip.env: the preload library intercepts the
    device under cryptoauthlib's unchanged Linux I2C HAL.  chip.faults()
    breaks the line (words of sim/atecc_emu.h); faults(None) repairs it."""

    def __init__(self, testcase, dev="/dev/i2c-1"):
        self.dir = tempdir(testcase, "egw-chip-")
        asan = os.environ.get("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        self.env = {
            "EGW_ATECC_EMU_DIR": self.dir,
            "EGW_ATECC_EMU_DEV": dev,
            "LD_PRELOAD": os.path.join(BUILD, "sim", "libegw-atecc-shim.so"),
            # Under ASan the preloaded library comes before the runtime.
            "ASAN_OPTIONS": asan + ":verify_asan_link_order=0",
        }

    def faults(self, words):
        path = os.path.join(self.dir, "faults")
        if words is None:
            if os.path.exists(path):
                os.unlink(path)
            return
        with open(path + ".tmp", "w") as f:
            f.write(words)
        os.replace(path + ".tmp", path)

    def egwd_cmd(self, *args, state_dir=None, check=True):
        """egwd --chip-info / --chip-provision ... against this chip."""
        d = state_dir or tempfile.mkdtemp(prefix="egw-chipcmd-")
        env = dict(os.environ, **self.env)
        p = subprocess.run([binary("egwd"), "--state-dir", d, *args], capture_output=True,
                           text=True, timeout=60, env=env)
        if not state_dir:
            shutil.rmtree(d, True)
        if check and p.returncode != 0:
            raise AssertionError(f"egwd {' '.join(args)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
        return p

    def provision(self):
        """Provisions the blank chip; returns the public key (hex X||Y)."""
        out = self.egwd_cmd("--chip-provision").stdout
        for line in out.splitlines():
            if line.startswith("public key: 04"):
                return line[len("public key: 04"):]
        raise AssertionError(out)

    def serial(self):
        for line in self.egwd_cmd("--chip-info").stdout.splitlines():
            if line.startswith("serial: "):
                return line[len("serial: "):]
        raise AssertionError("no serial")
