#!/bin/bash
# Time to drain a 24-hour backlog (8,640 batches at one per 10 s) from egwd's
# store into the local development backend, every signature verified.
#
#   bench/drain.sh [N]          (N defaults to 8640)
#   EGW_BUILD=/path/to/build    (default: build)
#   RATE=N                      backend.rate_per_s for egwd (default: its default, 100)
#   WINDOW=N                    backend.max_in_flight for egwd (default: its default, 8)
#   DELAY_MS=N                  the backend answers each upload after N ms (a slow
#                               link or a busy backend; default 0)
#
# The target for slow links: DELAY_MS=100 bench/drain.sh 60480 (a 7-day
# backlog) within 15 minutes.
#
# 1. builds bench/fill_store.c against $EGW_BUILD/libegw.a and fills a fresh
#    state dir with N signed batches through the real batch pipeline (one
#    inverter, 10 readings + 100 frequency samples per batch);
# 2. starts tools/devbackend.py (verifying with the key from egwd's
#    /api/crypto) and egwd pointed at it, with no new batches during the run;
# 3. measures from egwd's start until the backend holds all N seqs, then
#    checks: no duplicates, no bad signatures, nothing missing, in order.
# Loopback only; every process started here is killed on exit.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${EGW_BUILD:-$REPO/build}" && pwd)
N=${1:-8640}
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/egw-drain-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

cc -std=c17 -D_GNU_SOURCE -O2 -I"$REPO/src" -I"$REPO" -I"$BUILD" \
	"$REPO/bench/fill_store.c" "$REPO/src/profiles/reading.c" "$BUILD/libegw.a" \
	-o "$TMP/fill_store" $(pkg-config --libs jansson sqlite3 libcurl libcrypto libmicrohttpd zlib) \
	$(pkg-config --libs libcryptoauth libmosquitto 2>/dev/null || true) -lm -lpthread

mkdir -p "$TMP/state"
t0=$(now)
"$TMP/fill_store" "$TMP/state" "$N"
t1=$(now)
DB_BYTES=$(stat -c %s "$TMP/state/store.db")
echo "fill: $N batches in $($PY -c "print(f'{$t1-$t0:.1f}')") s, store.db $((DB_BYTES / 1024 / 1024)) MiB"

EGWD_PORT=$(free_port)
"$PY" "$REPO/tools/devbackend.py" --port 0 --egwd "http://127.0.0.1:$EGWD_PORT" \
	--log "$TMP/received.jsonl" ${DELAY_MS:+--mode slow --slow-ms "$DELAY_MS"} \
	>"$TMP/devbackend.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "ready port=" "$TMP/devbackend.out" && break; sleep 0.05; done
BACKEND_PORT=$(sed -n 's/.*ready port=\([0-9]*\).*/\1/p' "$TMP/devbackend.out")
[ -n "$BACKEND_PORT" ] || { cat "$TMP/devbackend.out"; exit 1; }

t0=$(now)
"$BUILD/egwd" --state-dir "$TMP/state" --port "$EGWD_PORT" --log-level warn \
	--set "backend.data_urls=[\"http://127.0.0.1:$BACKEND_PORT/data\"]" \
	--set harvest.batch_interval_ms=3600000 \
	--set store.max_bytes=1099511627776 ${RATE:+--set backend.rate_per_s=$RATE} \
	${WINDOW:+--set backend.max_in_flight=$WINDOW} \
	>"$TMP/egwd.out" 2>&1 &
EGWD_PID=$!
PIDS+=($EGWD_PID)

$PY - "$BACKEND_PORT" "$N" "$t0" "$DB_BYTES" "$EGWD_PID" "$TMP/egwd.out" <<'EOF'
import json, os, sys, time, urllib.request
port, n, t0, dbb = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
egwd_pid, egwd_out = int(sys.argv[5]), sys.argv[6]
def summary():
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/received", timeout=10) as r:
        return json.loads(r.read())
last, first_at = 0, None
while True:
    s = summary()
    if s["unique"] and first_at is None:
        first_at = time.time()
    if s["unique"] >= n:
        break
    if not os.path.exists(f"/proc/{egwd_pid}") or \
            open(f"/proc/{egwd_pid}/stat").read().split()[2] == "Z":
        sys.exit("drain: egwd exited:\n" + open(egwd_out).read())
    if time.time() - t0 > 3600:
        sys.exit(f"drain: only {s['unique']} of {n} after an hour")
    time.sleep(0.25)
t1 = time.time()
s = summary()
el = t1 - t0
print(f"drain: {n} batches ({dbb / 1048576:.0f} MiB store) delivered in {el:.1f} s "
      f"= {n / el:.1f} batches/s (first upload {first_at - t0:.2f} s after start)")
print(f"check: unique {s['unique']}, duplicates {s['duplicates']}, bad signatures "
      f"{s['bad_signatures']}, missing {s['missing']}, out of order {s['out_of_order']} "
      f"(reordered at most {s['reorder_max']} back), max concurrent {s['max_concurrent']}")
ok = (s["unique"] == n and s["bad_signatures"] == 0 and not s["missing"]
      and s["reorder_max"] < 64 and s["seqs"] == list(range(1, n + 1)))
sys.exit(0 if ok else 1)
EOF
# CPU egwd spent on the whole run (start, drain, idle checks), from /proc.
read -r -a F < "/proc/$EGWD_PID/stat"
TCK=$(getconf CLK_TCK)
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$EGWD_PID/status")
echo "egwd: cpu $($PY -c "print(f'{(${F[13]}+${F[14]})/$TCK:.2f}')") s (user+sys), peak RSS $((RSS_KB / 1024)) MiB"
