#!/usr/bin/python3
"""Fuzzer of the batch decoder (tools/egw_batch.py, the reader of
doc/batch-format.md that tools/devbackend.py and tools/egw-batch use).

  fuzz/fuzz_batch_decode.py [-t SECONDS] [-s SEED] [--replay] [CORPUS_DIR]

The decoder is Python, so this is a mutational fuzzer in Python rather than a
libFuzzer target: it takes the committed corpus (fuzz/corpus/batch_decode/,
one payload JSON per file), mutates it at the JSON level (values replaced by
other types and extreme numbers, keys dropped or added, arrays truncated or
extended, base64url keyframes and hex bit sets altered) and at the byte level
(flips, cuts, splices, then parsed as JSON when it still is), and checks that
every input either decodes or raises egw_batch.BatchError, within a time
bound.  Anything else (another exception, a decode slower than 2 s) is a
crash: the input is written to build-fuzz/fuzz-artifacts/batch_decode/ and
the exit status is 1.  --replay only runs the corpus files once (the
suite's replay test).  Prints "executions=N crashes=M"."""
import argparse
import copy
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tools"))
import egw_batch  # noqa: E402

ODD = [None, True, False, 0, -1, 1, 2 ** 31, -2 ** 63, 2 ** 70, 1.5, -0.0, 1e308, "",
       "0", "ff", "zz", "-1", "AAAA", "A=", "____", [], [0], [[3, 0, 125]], {}, {"a": 1},
       "x" * 300]


def paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, prefix + (i,))


def get(obj, path):
    for k in path:
        obj = obj[k]
    return obj


def mutate_value(rng, v):
    r = rng.random()
    if isinstance(v, int) and not isinstance(v, bool) and r < 0.5:
        return v + rng.choice([-1, 1, -65536, 65536, rng.randint(-1000, 1000)])
    if isinstance(v, str) and r < 0.5:
        s = list(v)
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            if op < 0.4 and s:
                s[rng.randrange(len(s))] = rng.choice("AZaz09-_=+/f0.x")
            elif op < 0.7:
                s.insert(rng.randint(0, len(s)), rng.choice("A_-=f0"))
            elif s:
                del s[rng.randrange(len(s))]
        return "".join(s)
    if isinstance(v, list) and r < 0.6 and v:
        v = list(v)
        op = rng.random()
        if op < 0.3:
            del v[rng.randrange(len(v)):]
        elif op < 0.6:
            v.append(copy.deepcopy(rng.choice(v)))
        else:
            rng.shuffle(v)
        return v
    if isinstance(v, dict) and r < 0.6:
        v = dict(v)
        if v and rng.random() < 0.5:
            del v[rng.choice(list(v))]
        else:
            v[rng.choice(["t", "b", "d", "e", "r", "v", "kf", "blocks", "pv", "W", "zz"])] = \
                copy.deepcopy(rng.choice(ODD))
        return v
    return copy.deepcopy(rng.choice(ODD))


def mutate(rng, seed_obj):
    obj = copy.deepcopy(seed_obj)
    for _ in range(rng.randint(1, 6)):
        ps = list(paths(obj))
        p = rng.choice(ps)
        if not p:
            obj = mutate_value(rng, obj)
            continue
        parent = get(obj, p[:-1])
        parent[p[-1]] = mutate_value(rng, parent[p[-1]])
    return obj


def mutate_bytes(rng, text):
    b = bytearray(text.encode())
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if op < 0.5 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.75 and b:
            i = rng.randrange(len(b))
            del b[i:i + rng.randint(1, 16)]
        else:
            i = rng.randrange(len(b) + 1)
            b[i:i] = bytes(rng.choice([b"null", b"9999999", b"[", b"}", b"\"", b",-1"]))
    try:
        return json.loads(b.decode("utf-8", "replace"))
    except (json.JSONDecodeError, RecursionError):
        return None


def one(data):
    t = time.monotonic()
    try:
        egw_batch.summary(egw_batch.decode(data))
    except egw_batch.BatchError:
        pass
    if time.monotonic() - t > 2.0:
        raise TimeoutError("decode took more than 2 s")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("-t", type=float, default=60.0)
    ap.add_argument("-s", type=int, default=None)
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("corpus", nargs="?", default=os.path.join(HERE, "corpus", "batch_decode"))
    a = ap.parse_args(argv)
    seeds = []
    for name in sorted(os.listdir(a.corpus)):
        with open(os.path.join(a.corpus, name), encoding="utf-8", errors="replace") as f:
            text = f.read()
        try:
            seeds.append((text, json.loads(text)))
        except json.JSONDecodeError:
            seeds.append((text, None))
    art = os.path.join(os.environ.get("EGW_FUZZ_BUILD", os.path.join(REPO, "build-fuzz")),
                       "fuzz-artifacts", "batch_decode")
    execs = crashes = 0

    def run(data):
        nonlocal execs, crashes
        execs += 1
        try:
            one(data)
        except Exception as e:  # anything but BatchError is a finding
            crashes += 1
            os.makedirs(art, exist_ok=True)
            path = os.path.join(art, f"crash-{execs}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(data, f)
            print(f"crash: {type(e).__name__}: {e} -> {path}", file=sys.stderr)

    for _, obj in seeds:
        if obj is not None:
            run(obj)
    if not a.replay:
        rng = random.Random(a.s if a.s is not None else time.time_ns())
        end = time.monotonic() + a.t
        while time.monotonic() < end:
            text, obj = rng.choice(seeds)
            if obj is not None and rng.random() < 0.8:
                run(mutate(rng, obj))
            else:
                m = mutate_bytes(rng, text)
                if m is not None:
                    run(m)
    print(f"executions={execs} crashes={crashes}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
