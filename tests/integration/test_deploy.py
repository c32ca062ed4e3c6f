"""Deployment: compose files, the container command lines run locally,
systemd unit verification, meson install layout.  The containers' command
lines run here as plain processes on loopback (quick, and under the
sanitizers); test_containers.py runs the images and compose files for real."""
import json
import os
import re
import shutil
import subprocess
import unittest

import yaml

import egwtest as T

COMPOSE = shutil.which("docker-compose")


def compose_config(name, env=None):
    e = dict(os.environ, **(env or {}))
    r = subprocess.run([COMPOSE, "-f", os.path.join(T.REPO, name), "config"],
                       capture_output=True, text=True, env=e, cwd=T.REPO)
    if r.returncode:
        raise AssertionError(f"docker-compose config {name}: {r.stderr}")
    return yaml.safe_load(r.stdout)


def dockerfile_entrypoint(name):
    with open(os.path.join(T.REPO, name)) as f:
        for line in f:
            if line.startswith("ENTRYPOINT "):
                return json.loads(line[len("ENTRYPOINT "):])
    raise AssertionError(f"{name}: no ENTRYPOINT")


def local_argv(argv, subst):
    """Map container paths, hosts and ports to local ones."""
    out = []
    for a in argv:
        for k, v in subst.items():
            a = a.replace(k, v)
        out.append(a)
    return out


@unittest.skipUnless(COMPOSE, "docker-compose not installed")
class ComposeFiles(unittest.TestCase):
    def test_files_parse_and_name_expected_services(self):
        prod = compose_config("docker-compose.yml")
        self.assertEqual(set(prod["services"]), {"egwd"})
        egwd = prod["services"]["egwd"]
        ports = [f"{p['published']}:{p['target']}" if isinstance(p, dict) else p
                 for p in egwd["ports"]]
        self.assertIn("80:5000", ports)
        self.assertIn("443:5443", ports)  # HTTPS (http.tls_port)
        self.assertEqual(egwd["restart"], "always")
        self.assertTrue(any("/dev/i2c-1" in d for d in egwd["devices"]))
        self.assertTrue(any("/var/lib/egw" in str(v) for v in egwd["volumes"]))
        dev = compose_config("docker-compose-no_crypt.yml")
        self.assertEqual(set(dev["services"]), {"egwd", "sim", "devbackend"})
        # egwd writes only its volume (and SQLite's temporary files)
        for f in (prod, dev):
            self.assertIs(f["services"]["egwd"]["read_only"], True)
            self.assertEqual(f["services"]["egwd"]["tmpfs"], ["/tmp"])
        with open(os.path.join(T.REPO, "balena.yml")) as f:
            b = yaml.safe_load(f)
        self.assertEqual(b["type"], "sw.application")

    def test_profile_chosen_by_environment(self):
        dev = compose_config("docker-compose-no_crypt.yml", {"EGW_SIM_PROFILE": "huawei"})
        self.assertEqual(dev["services"]["sim"]["environment"]["EGW_SIM_PROFILE"], "huawei")
        self.assertIn('"profile":"huawei"', " ".join(dev["services"]["egwd"]["command"]))

    def test_dev_stack_command_lines_come_up_on_loopback(self):
        dev = compose_config("docker-compose-no_crypt.yml", {"EGW_SIM_PROFILE": "sma"})
        sim_port, be_port, web_port = T.free_port(), T.free_port(), T.free_port()
        state = T.tempdir(self)
        subst = {
            "/var/lib/egw": state, "/usr/sbin/egwd": T.binary("egwd"),
            "/usr/bin/egw-devbackend": os.path.join(T.REPO, "tools", "devbackend.py"),
            "http://egwd:5000": f"http://127.0.0.1:{web_port}",
            "devbackend:8080": f"127.0.0.1:{be_port}",
            '"host":"sim","port":502': f'"host":"127.0.0.1","port":{sim_port}',
            "0.0.0.0": "127.0.0.1",
        }
        # the development backend
        be = dev["services"]["devbackend"]
        argv = local_argv(dockerfile_entrypoint("Dockerfile.devbackend") + be["command"], subst)
        argv = [a if a != "8080" else str(be_port) for a in argv]
        backend = T.Proc(argv, name="devbackend")
        self.addCleanup(backend.stop)
        T.wait_port(be_port, proc=backend)
        # the simulator, through its container entry point, configured by environment
        sim = dev["services"]["sim"]
        env = dict(sim["environment"], EGW_SIM_PORT=sim_port, EGW_SIM_HOST="127.0.0.1",
                   PATH=os.path.dirname(T.binary("egw-sim")) + ":" + os.environ["PATH"])
        simp = T.Proc([os.path.join(T.REPO, "deploy", "egw-sim-entrypoint.sh")], env=env,
                      name="egw-sim")
        self.addCleanup(simp.stop)
        T.wait_port(sim_port, proc=simp)
        # egwd: the image's entry point plus the compose command
        e = dev["services"]["egwd"]
        argv = local_argv(dockerfile_entrypoint("Dockerfile") + e["command"], subst)
        argv = [a if a != "5000" else str(web_port) for a in argv]
        argv += ["--set", "http.bind=127.0.0.1"]  # the container listens on all interfaces
        argv += ["--set", f"http.tls_port={T.free_port()}"]  # the container's 5443 may be taken
        egwd = T.Proc(argv, name="egwd")
        self.addCleanup(egwd.stop)
        T.wait_port(web_port, proc=egwd)
        st = T.wait_until(lambda: (lambda s: s if s["devices"] and
                                   s["devices"][0]["state"] == "polling" else None)(
                                       T.get_json(web_port, "/api/state")),
                          timeout=20, what="device polling")
        self.assertEqual(st["devices"][0]["profile"], "sma")
        # the container health check command
        hc = subprocess.run(local_argv(["/usr/sbin/egwd", "--check", "--port", str(web_port),
                                        "--state-dir", "/var/lib/egw"], subst), timeout=10)
        self.assertEqual(hc.returncode, 0)
        self.assertEqual(egwd.stop(), 0)
        hc = subprocess.run(local_argv(["/usr/sbin/egwd", "--check", "--port", str(web_port),
                                        "--state-dir", "/var/lib/egw"], subst), timeout=10)
        self.assertNotEqual(hc.returncode, 0)


class Install(unittest.TestCase):
    def install(self):
        dest = T.tempdir(self)
        r = subprocess.run(["meson", "install", "-C", T.BUILD, "--no-rebuild", "--destdir", dest],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        prefix = subprocess.run(["meson", "introspect", "--buildoptions", T.BUILD],
                                capture_output=True, text=True)
        opts = {o["name"]: o["value"] for o in json.loads(prefix.stdout)}
        return dest, opts["prefix"]

    def test_layout_and_installed_egwd_serves_ui(self):
        dest, prefix = self.install()
        root = dest + prefix
        egwd = os.path.join(root, "sbin", "egwd")
        sim = os.path.join(root, "bin", "egw-sim")
        self.assertTrue(os.access(egwd, os.X_OK), egwd)
        self.assertTrue(os.access(sim, os.X_OK), sim)
        units = [os.path.join(dp, f) for dp, _, fs in os.walk(dest) for f in fs
                 if f == "egwd.service"]
        self.assertEqual(len(units), 1, units)
        with open(units[0]) as f:
            unit = f.read()
        self.assertIn(f"ExecStart={prefix}/sbin/egwd ", unit)
        port = T.free_port()
        p = T.Proc([egwd, "--port", port, "--state-dir", T.tempdir(self),
                    "--set", "http.bind=127.0.0.1", "--set", f"http.tls_port={T.free_port()}"],
                   name="egwd-installed")
        self.addCleanup(p.stop)
        T.wait_port(port, proc=p)
        st, hdr, body = T.http(port, "GET", "/")
        self.assertEqual(st, 200)
        self.assertIn("text/html", hdr["content-type"])
        self.assertEqual(p.stop(), 0)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze missing")
    def test_systemd_unit_verifies(self):
        dest, prefix = self.install()
        unit = [os.path.join(dp, f) for dp, _, fs in os.walk(dest) for f in fs
                if f == "egwd.service"][0]
        # verify wants ExecStart to exist: point it at the installed copy.
        local = os.path.join(T.tempdir(self), "egwd.service")
        with open(unit) as f:
            text = f.read()
        with open(local, "w") as f:
            f.write(text.replace(f"ExecStart={prefix}/sbin/egwd",
                                 f"ExecStart={dest}{prefix}/sbin/egwd"))
        r = subprocess.run(["systemd-analyze", "verify", local], capture_output=True, text=True)
        # Lines about this unit are errors; lines about other units on the host are not ours.
        ours = [l for l in (r.stdout + r.stderr).splitlines() if "egwd.service" in l]
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(ours, [], ours)
        self.assertTrue(re.search(r"^ProtectSystem=strict$", text, re.M))
        self.assertTrue(re.search(r"^(DynamicUser=yes|User=)", text, re.M))
        self.assertTrue(re.search(r"^StateDirectory=egw$", text, re.M))


if __name__ == "__main__":
    unittest.main()
