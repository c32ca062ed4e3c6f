#!/usr/bin/python3
"""egw's test runner: builds plain and sanitized trees, runs the meson tests
(unit tests, corpus replays) and the integration tests against each, and
prints one closing line "N passed, N failed"."""
import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Both builds have the ATECC608 signer on: setup fails without cryptoauthlib
# rather than the chip tests quietly testing a build without it.
BUILD_OPTS = {"atecc": "enabled"}
BUILDS = {
    "plain": ("build", []),
    "asan+ubsan": ("build-san", ["-Db_sanitize=address,undefined", "-Db_lundef=false"]),
}
SAN_ENV = {
    "ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1:strict_string_checks=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


def sh(argv, **kw):
    print("+ " + " ".join(argv), flush=True)
    return subprocess.run(argv, **kw)


def build(name, opts):
    d = os.path.join(TOP, name)
    forced = [f"-D{k}={v}" for k, v in BUILD_OPTS.items()]
    if not os.path.exists(os.path.join(d, "build.ninja")):
        r = sh(["meson", "setup", d, TOP] + opts + forced)
        if r.returncode:
            return None
    else:
        # A tree configured before these options were forced gets them now.
        try:
            with open(os.path.join(d, "meson-info", "intro-buildoptions.json")) as f:
                have = {o["name"]: o["value"] for o in json.load(f)}
        except (OSError, ValueError):
            have = {}
        if any(have.get(k) != v for k, v in BUILD_OPTS.items()):
            if sh(["meson", "configure", d] + forced).returncode:
                return None
    r = sh(["ninja", "-C", d])
    return d if r.returncode == 0 else None


def meson_tests(d, env, flt):
    argv = ["meson", "test", "-C", d, "--print-errorlogs", "--num-processes", "2"]
    log = os.path.join(d, "meson-logs", "testlog.json")
    if flt:
        # only the matching tests run (names as "egw:suite / name")
        listed = subprocess.run(["meson", "test", "-C", d, "--list"], capture_output=True,
                                text=True).stdout.splitlines()
        names = [x.rsplit(" / ", 1)[-1] for x in listed if flt in x.rsplit(" / ", 1)[-1]]
        if not names:
            return 0, 0, []
        argv += names
    sh(argv, env=dict(os.environ, **env))
    passed = failed = 0
    failures = []
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                t = json.loads(line)
                if flt and flt not in t["name"]:
                    continue
                if t["result"] in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif t["result"] == "SKIP":
                    pass
                else:
                    failed += 1
                    failures.append(t["name"])
    return passed, failed, failures


# Integration files run several at a time (EGW_TEST_JOBS, default 3): most of
# their time is spent waiting on timers, batches and restarts, and each picks
# its own ports (a slice per worker, see egwtest.free_port), state dirs and
# files.  The files below run alone, after the others: they assert wall-clock
# bounds (an answer within 0.5 s, a setpoint ramp) or start a browser.
SERIAL = {
    "test_api", "test_boot_safety", "test_core", "test_fcr_eval", "test_hardening",
    "test_https", "test_security", "test_sim_battery", "test_sim_interop", "test_ui",
    # drains thousands of batches under ASan: beside two other files it once
    # took over 180 s where alone it takes under 60
    "test_pipeline_bound",
}
# The longest files start first so that they do not finish alone at the end.
LONG_FIRST = [
    "test_containers", "test_fault_matrix", "test_pipeline_bound", "test_atecc",
    "test_pipeline", "test_ha_lifecycle", "test_devices", "test_solarman", "test_p1",
    "test_abuse", "test_uplink_mqtt",
]
FILE_TIMEOUT_S = 900
RUNNING = set()  # the files' runners under way (own sessions: stopped on ^C)


def run_integration_file(job, slot, nslots):
    """Run one file in a child; its output goes to a file printed when it
    ends (so that files running side by side do not interleave).  Returns
    (res, seconds, output)."""
    label, d, env, f = job
    name = os.path.basename(f)[:-3]
    # EGW_BUILD_LABEL lets a test file run in one pass only (the container
    # tests build from the source tree, not from the build under test).
    e = dict(os.environ, EGW_BUILD=d, EGW_BUILD_LABEL=label,
             EGW_PORT_SLICE=f"{slot}/{nslots}", **env)
    out = os.path.join(d, "integration-" + name + ".json")
    log = os.path.join(d, "integration-" + name + ".log")
    argv = ["/usr/bin/python3", os.path.join(TOP, "tests", "integration", "runone.py"), f, out]
    try:
        os.unlink(out)
    except OSError:
        pass
    t0 = time.monotonic()
    with open(log, "w+b") as fh:
        p = subprocess.Popen(argv, env=e, stdout=fh, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        RUNNING.add(p)
        try:
            rc = p.wait(timeout=FILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
            fh.write(f"\n{name}: killed after {FILE_TIMEOUT_S} s\n".encode())
        except KeyboardInterrupt:
            os.killpg(p.pid, signal.SIGINT)
            raise
        finally:
            RUNNING.discard(p)
        fh.seek(0)
        text = fh.read().decode("utf-8", "replace")
    dt = time.monotonic() - t0
    try:
        with open(out) as fh:
            res = json.load(fh)
    except (OSError, ValueError):
        res = {"passed": 0, "failed": 1, "failures": [name + " (runner crashed)"]}
    if rc and not res["failed"]:
        res["failed"] = 1
        res["failures"].append(name + f" (exit {rc})")
    return res, dt, "+ " + " ".join(argv) + "\n" + text


def integration_tests(passes, flt):
    """Run every integration file against every build in `passes` (a list
    of (label, dir, env)); files of different builds run side by side too.
    Prints each file's output and a summary line as it ends; returns
    (passed, failed, failures)."""
    files = sorted(glob.glob(os.path.join(TOP, "tests", "integration", "test_*.py")))
    names = [os.path.basename(f)[:-3] for f in files]
    order = [n for n in LONG_FIRST if n in names] + [n for n in names if n not in LONG_FIRST]
    jobs = []
    for n in order:
        if flt and flt not in n:
            continue
        for label, d, env in passes:
            jobs.append((label, d, env, os.path.join(TOP, "tests", "integration", n + ".py")))
    parallel = [j for j in jobs if os.path.basename(j[3])[:-3] not in SERIAL]
    serial = [j for j in jobs if os.path.basename(j[3])[:-3] in SERIAL]
    nslots = max(1, int(os.environ.get("EGW_TEST_JOBS", "3")))
    lock = threading.Lock()
    totals = {"passed": 0, "failed": 0, "failures": []}
    pending = list(parallel)

    def report(job, res, dt, text):
        label, name = job[0], os.path.basename(job[3])[:-3]
        with lock:
            sys.stdout.write(text)
            if not text.endswith("\n"):
                sys.stdout.write("\n")
            print(f"== {label} {name}: {res['passed']} passed, {res['failed']} failed "
                  f"({dt:.1f} s)", flush=True)
            totals["passed"] += res["passed"]
            totals["failed"] += res["failed"]
            totals["failures"] += [f"{label}: {x}" for x in res["failures"]]

    def worker(slot):
        while True:
            with lock:
                if not pending:
                    return
                job = pending.pop(0)
            report(job, *run_integration_file(job, slot, nslots))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(nslots)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for job in serial:
            report(job, *run_integration_file(job, 0, 1))
    except KeyboardInterrupt:
        pending.clear()
        for p in list(RUNNING):
            try:
                os.killpg(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        raise
    return totals["passed"], totals["failed"], totals["failures"]


def release_rehearsal():
    """Build the way the Dockerfiles do (release: -O3, NDEBUG, prefix /usr),
    install into a DESTDIR, and check that every file the images copy from
    their build stage exists and runs.  One test."""
    d = os.path.join(TOP, "build-release")
    dest = os.path.join(d, "destdir")
    if not os.path.exists(os.path.join(d, "build.ninja")):
        if sh(["meson", "setup", d, TOP, "--prefix=/usr", "--buildtype=release",
               "-Db_ndebug=true"] + [f"-D{k}={v}" for k, v in BUILD_OPTS.items()]).returncode:
            return False, "meson setup"
    if sh(["ninja", "-C", d]).returncode:
        return False, "build"
    shutil.rmtree(dest, ignore_errors=True)
    if sh(["meson", "install", "-C", d, "--no-rebuild", "--skip-subprojects", "--quiet"],
          env=dict(os.environ, DESTDIR=dest)).returncode:
        return False, "install"
    # The images' build stage installs cryptoauthlib into /out too; here it is
    # the same pinned release, installed by scripts/setup.
    for lib in glob.glob("/usr/lib/libcryptoauth.so.*.*.*"):
        os.makedirs(os.path.join(dest, "usr", "lib"), exist_ok=True)
        shutil.copy2(lib, os.path.join(dest, "usr", "lib"))
    for df in sorted(glob.glob(os.path.join(TOP, "Dockerfile*"))):
        with open(df) as f:
            for line in f:
                w = line.split()
                if len(w) == 4 and w[0] == "COPY" and w[1] == "--from=build":
                    src = w[2]
                    path = (dest + src[len("/out"):] if src.startswith("/out/") else
                            os.path.join(d, src[len("/build/"):]) if src.startswith("/build/")
                            else None)
                    if path is None:
                        continue  # a file of the build stage's packages (CA bundle)
                    if not os.path.exists(path):
                        return False, f"{os.path.basename(df)}: {src} not produced"
                    if os.access(path, os.X_OK) and not os.path.isdir(path):
                        r = subprocess.run([path, "--help"], capture_output=True, timeout=10)
                        if r.returncode:
                            return False, f"{src} --help exited {r.returncode}"
    return True, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plain", action="store_true", help="only the plain build")
    ap.add_argument("-k", dest="filter", default=None, help="only tests whose name contains this")
    a = ap.parse_args()
    total_p = total_f = 0
    all_failures = []
    t0 = time.monotonic()
    passes = []
    for label, (name, opts) in BUILDS.items():
        if a.plain and label != "plain":
            continue
        env = SAN_ENV if opts else {}
        d = build(name, opts)
        if d is None:
            print(f"== {label}: build failed", flush=True)
            total_f += 1
            all_failures.append(f"{label}: build")
            continue
        p, f, fl = meson_tests(d, env, a.filter)
        print(f"== {label} meson tests: {p} passed, {f} failed", flush=True)
        total_p += p
        total_f += f
        all_failures += [f"{label}: {x}" for x in fl]
        passes.append((label, d, env))
    p, f, fl = integration_tests(passes, a.filter)
    total_p += p
    total_f += f
    all_failures += fl
    if not a.filter or a.filter in "valgrind":
        d = os.path.join(TOP, BUILDS["plain"][0])
        r = sh(["bash", os.path.join(TOP, "tests", "valgrind.sh"), d], timeout=600)
        print(f"== valgrind over egwd: {'ok' if r.returncode == 0 else 'FAILED'}", flush=True)
        if r.returncode == 0:
            total_p += 1
        else:
            total_f += 1
            all_failures.append("valgrind over egwd")
    if not a.plain and not a.filter:
        ok, why = release_rehearsal()
        print(f"== release build and Dockerfile rehearsal: {'ok' if ok else 'FAILED: ' + why}",
              flush=True)
        if ok:
            total_p += 1
        else:
            total_f += 1
            all_failures.append("release build: " + why)
    print(f"== total time {time.monotonic() - t0:.0f} s")
    for x in all_failures:
        print("FAILED: " + x)
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
