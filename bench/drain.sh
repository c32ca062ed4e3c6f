#!/bin/bash
# Time to drain a backlog (default 24 hours: 8,640 batches at one per 10 s)
# from egwd's store into the local development backend, every signature
# verified.
#
#   bench/drain.sh [N]          (N defaults to 8640)
#   EGW_BUILD=/path/to/build    (default: build)
#   RATE=N                      backend.rate_per_s for egwd (default: its default, 100)
#   WINDOW=N                    backend.max_in_flight and uplink.mqtt.max_in_flight
#                               (default: their default, 8)
#   DELAY_MS=N                  the HTTP backend answers each upload after N ms (a
#                               slow link or a busy backend; default 0)
#   UPLINK=http|mqtt|both       which uplink drains (default http); both: the same
#                               backlog drained once over HTTP and once over MQTT,
#                               in this run, and the ratio printed
#
# The target for slow links: DELAY_MS=100 bench/drain.sh 60480 (a 7-day
# backlog) within 15 minutes.  MQTT against HTTP: UPLINK=both bench/drain.sh.
#
# 1. builds bench/fill_store.c against $EGW_BUILD/libegw.a and fills a fresh
#    state dir with N signed batches through the real batch pipeline (one
#    inverter, 10 readings + 100 frequency samples per batch);
# 2. starts tools/devbackend.py (verifying with the key from egwd's
#    /api/crypto) and egwd pointed at it, with no new batches during the run;
#    for MQTT, a loopback mosquitto (no TLS; JWT password signed, not checked)
#    and the devbackend subscribed to it;
# 3. measures from egwd's start until the backend holds all N seqs, then
#    checks: no bad signatures, nothing missing, order kept up to the window.
# Loopback only; every process started here is killed on exit.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${EGW_BUILD:-$REPO/build}" && pwd)
N=${1:-8640}
UPLINK=${UPLINK:-http}
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/egw-drain-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
case "$UPLINK" in http|mqtt|both) ;; *) echo "UPLINK: http, mqtt or both" >&2; exit 2 ;; esac

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

# drain KIND: one run on a copy of the filled state dir; prints the result
# and leaves the seconds it took in $TMP/KIND.s
drain() {
	local kind=$1 st="$TMP/state-$1" egwd_port backend_port broker_port sets=() be_args=()
	local pids_before=${#PIDS[@]}
	cp -a "$TMP/state" "$st"
	egwd_port=$(free_port)
	if [ "$kind" = mqtt ]; then
		broker_port=$(free_port)
		mkdir -p "$TMP/mosq-$kind"
		printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_dest none\n' \
			"$broker_port" >"$TMP/mosq-$kind/mosquitto.conf"
		/usr/sbin/mosquitto -c "$TMP/mosq-$kind/mosquitto.conf" >"$TMP/mosq-$kind/out" 2>&1 &
		PIDS+=($!)
		for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null && break; sleep 0.05; done
		be_args=(--mqtt-host 127.0.0.1 --mqtt-port "$broker_port" --mqtt-topic 'egw/+/batches'
			--mqtt-client-id "drain-$$")
		sets=(--set uplink.mqtt.enabled=true --set uplink.mqtt.host=127.0.0.1
			--set "uplink.mqtt.port=$broker_port" --set uplink.mqtt.tls=false
			${WINDOW:+--set uplink.mqtt.max_in_flight=$WINDOW})
	fi
	"$PY" "$REPO/tools/devbackend.py" --port 0 --egwd "http://127.0.0.1:$egwd_port" \
		${DELAY_MS:+--mode slow --slow-ms "$DELAY_MS"} "${be_args[@]}" \
		>"$TMP/devbackend-$kind.out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do grep -q "ready port=" "$TMP/devbackend-$kind.out" && break; sleep 0.05; done
	backend_port=$(sed -n 's/.*ready port=\([0-9]*\).*/\1/p' "$TMP/devbackend-$kind.out")
	[ -n "$backend_port" ] || { cat "$TMP/devbackend-$kind.out"; exit 1; }
	[ "$kind" = http ] && sets=(--set "backend.data_urls=[\"http://127.0.0.1:$backend_port/data\"]"
		${WINDOW:+--set backend.max_in_flight=$WINDOW})
	sleep 0.5 # the MQTT subscription stands before anything is published

	local t0
	t0=$(now)
	"$BUILD/egwd" --state-dir "$st" --port "$egwd_port" --log-level warn \
		--set harvest.batch_interval_ms=3600000 --set http.tls=false \
		--set store.max_bytes=1099511627776 ${RATE:+--set backend.rate_per_s=$RATE} \
		"${sets[@]}" >"$TMP/egwd-$kind.out" 2>&1 &
	local egwd_pid=$!
	PIDS+=($egwd_pid)

	$PY - "$backend_port" "$N" "$t0" "$DB_BYTES" "$egwd_pid" "$TMP/egwd-$kind.out" "$kind" \
		"$TMP/$kind.s" <<'EOF'
import json, os, sys, time, urllib.request
port, n, t0, dbb = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
egwd_pid, egwd_out, kind, out = int(sys.argv[5]), sys.argv[6], sys.argv[7], sys.argv[8]
def summary():
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/received", timeout=10) as r:
        return json.loads(r.read())
first_at = None
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
open(out, "w").write(f"{el}\n")
print(f"drain {kind}: {n} batches ({dbb / 1048576:.0f} MiB store) delivered in {el:.1f} s "
      f"= {n / el:.1f} batches/s (first {first_at - t0:.2f} s after start)")
print(f"check {kind}: unique {s['unique']}, duplicates {s['duplicates']}, bad signatures "
      f"{s['bad_signatures']}, missing {s['missing']}, out of order {s['out_of_order']} "
      f"(reordered at most {s['reorder_max']} back), max concurrent {s['max_concurrent']}")
ok = (s["unique"] == n and s["bad_signatures"] == 0 and not s["missing"]
      and s["reorder_max"] < 64 and s["seqs"] == list(range(1, n + 1)))
sys.exit(0 if ok else 1)
EOF
	# CPU egwd spent on the whole run (start, drain, idle checks), from /proc.
	local f rss_kb tck
	read -r -a f < "/proc/$egwd_pid/stat"
	tck=$(getconf CLK_TCK)
	rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$egwd_pid/status")
	echo "egwd $kind: cpu $($PY -c "print(f'{(${f[13]}+${f[14]})/$tck:.2f}')") s (user+sys), peak RSS $((rss_kb / 1024)) MiB"
	# this run's processes go before the next run starts
	for p in "${PIDS[@]:$pids_before}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]:$pids_before}"; do wait "$p" 2>/dev/null || true; done
	PIDS=("${PIDS[@]:0:$pids_before}")
}

case "$UPLINK" in
http) drain http ;;
mqtt) drain mqtt ;;
both)
	drain http
	drain mqtt
	$PY -c "h=float(open('$TMP/http.s').read()); m=float(open('$TMP/mqtt.s').read()); \
print(f'mqtt/http drain time: {m / h:.2f} (HTTP {h:.1f} s, MQTT {m:.1f} s)')"
	;;
esac
