#!/usr/bin/python3
"""A process's memory as the benches report it: RSS, PSS and private memory.

Reads /proc/PID/smaps_rollup from outside, with the same arithmetic egwd
applies to its own /proc/self/smaps_rollup (src/base/mem.c, /api/state
"memory"): private = Private_Clean + Private_Dirty.  RSS counts every
resident page the process maps, shared library pages whole; PSS divides each
shared page among the processes that map it; private memory is the pages
this process alone holds, what it would give back by exiting.

With --top N it also breaks private memory down by mapping from
/proc/PID/smaps: the libraries (by file, whatever their segment), the heap,
the threads' stacks, glibc's per-thread malloc arenas and other anonymous
mappings.

  bench/memstat.py PID [PID...] [--top N] [--json]

Several PIDs (nginx's master and worker) are summed: PSS and private memory
add up; the summed RSS counts the pages they share once per process.
"""
import argparse
import json
import os
import sys

FIELDS = ("rss_kb", "pss_kb", "private_kb", "private_dirty_kb", "anon_kb")
ARENA_ALIGN = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit: each arena is aligned to it


def rollup(pid):
    """{rss_kb, pss_kb, private_kb, private_dirty_kb, anon_kb} of one process."""
    v = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                v[k] = int(rest.split()[0])
    return {"rss_kb": v.get("Rss", 0), "pss_kb": v.get("Pss", 0),
            "private_kb": v.get("Private_Clean", 0) + v.get("Private_Dirty", 0),
            "private_dirty_kb": v.get("Private_Dirty", 0), "anon_kb": v.get("Anonymous", 0)}


def total(pids):
    out = dict.fromkeys(FIELDS, 0)
    for pid in pids:
        for k, n in rollup(pid).items():
            out[k] += n
    return out


def _mappings(pid):
    """Each mapping of /proc/PID/smaps: (start, end, perms, path, {field: kB})."""
    maps, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(None, 5)
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                cur = (lo, hi, head[1], head[5].strip() if len(head) > 5 else "", {})
                maps.append(cur)
            elif cur is not None and line.rstrip().endswith("kB"):
                k, _, rest = line.partition(":")
                cur[4][k] = int(rest.split()[0])
    return maps


def breakdown(pid):
    """Private memory by what holds it: [(label, private_kb, private_dirty_kb,
    rss_kb, pss_kb)], largest private dirty first.  Thread stacks are the anonymous mappings right above a
    no-access guard page (glibc puts one under every thread stack it
    allocates); malloc arenas are anonymous mappings aligned to 64 MiB; an
    anonymous mapping right after a file's is that file's .bss."""
    maps = _mappings(pid)
    acc = {}
    prev = None
    for lo, hi, perms, path, f in maps:
        if path.startswith("/"):
            label = os.path.basename(path)
            if "(deleted)" in label:
                label = label.replace(" (deleted)", "")
        elif path:
            label = path  # [heap], [stack], [vvar], [vdso]
        elif prev and prev[3].startswith("/") and prev[1] == lo and perms.startswith("rw"):
            label = os.path.basename(prev[3])  # the library's .bss
        elif prev and prev[2].startswith("---") and prev[1] == lo and not prev[3]:
            # guard page directly below: a thread stack, or the rest of an arena
            label = "[malloc arenas]" if prev[0] % ARENA_ALIGN == 0 or lo % ARENA_ALIGN == 0 \
                else "[thread stacks]"
        elif lo % ARENA_ALIGN == 0 and perms.startswith("rw"):
            label = "[malloc arenas]"
        else:
            label = "[other anonymous]"
        a = acc.setdefault(label, [0, 0, 0, 0])
        a[0] += f.get("Private_Clean", 0) + f.get("Private_Dirty", 0)
        a[1] += f.get("Private_Dirty", 0)
        a[2] += f.get("Rss", 0)
        a[3] += f.get("Pss", 0)
        prev = (lo, hi, perms, path)
    rows = [(k, *v) for k, v in acc.items()]
    rows.sort(key=lambda x: (-x[2], -x[1], x[0]))
    return rows


def split(rows):
    """(clean, dirty) private kB in file-backed mappings (the executable and
    the libraries) and (clean, dirty) in the anonymous rest.  A file page is
    private clean when no other process maps it right now: library code egwd
    alone uses, still in the page cache after egwd exits.  A file mapping's
    private dirty pages are its copies: relocated data, GOT, .data, .bss."""
    files = [r for r in rows if not r[0].startswith("[")]
    anon = [r for r in rows if r[0].startswith("[")]
    return ((sum(r[1] - r[2] for r in files), sum(r[2] for r in files)),
            (sum(r[1] - r[2] for r in anon), sum(r[2] for r in anon)))


def fmt(m):
    return (f"RSS {m['rss_kb']} kB, PSS {m['pss_kb']} kB, private {m['private_kb']} kB "
            f"(dirty {m['private_dirty_kb']} kB, anonymous {m['anon_kb']} kB)")


def fmt_breakdown(rows, top, parts=None):
    """rows: breakdown(); parts: split() of all rows when rows is cut short."""
    (fc, fd), (ac, ad) = parts or split(rows)
    out = [f"private memory by mapping (kB): executable and libraries {fc + fd} "
           f"({fc} clean, {fd} dirty), anonymous {ac + ad} ({ad} dirty); "
           f"top {top} by private dirty:",
           "  private    dirty      rss      pss  mapping"]
    for label, p, d, r, s in rows[:top]:
        out.append(f"  {p:7d}  {d:7d}  {r:7d}  {s:7d}  {label}")
    return "\n".join(out)


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pids", type=int, nargs="+")
    ap.add_argument("--top", type=int, default=0,
                    help="also list the N mappings holding most private memory")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    m = total(a.pids)
    if a.json:
        if a.top:
            m["top"] = breakdown(a.pids[0])[:a.top]
        print(json.dumps(m))
        return 0
    print(fmt(m))
    if a.top:
        for pid in a.pids:
            print(f"pid {pid} ({threads(pid)} threads) " + fmt_breakdown(breakdown(pid), a.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
