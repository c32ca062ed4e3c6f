#!/bin/bash
# egwd under valgrind through a short scenario: start with one simulated
# device and the development backend, poll, seal and upload a few batches,
# answer HTTP requests (API, metrics, status page, UI, settings write, device
# add/remove, live stream, errors), then SIGTERM.  Fails on any invalid
# access, use of uninitialised memory, definite or indirect leak, or a
# non-zero exit.
#
#   tests/valgrind.sh [BUILD_DIR]     (default: $EGW_BUILD or <repo>/build)
#
# Loopback only; every process started here is stopped on exit.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=$(cd "${1:-${EGW_BUILD:-$repo/build}}" && pwd)
py=/usr/bin/python3
work=$(mktemp -d /tmp/egw-valgrind.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "${work:?}"
}
trap cleanup EXIT

free_port() {
	# below the ephemeral range, as the Python tests pick theirs (egwtest.free_port)
	PYTHONPATH="$repo/tests/integration" $py -c 'import egwtest; print(egwtest.free_port())'
}
wait_for() { # FILE PATTERN SECONDS
	for _ in $(seq 1 $(($3 * 10))); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "valgrind.sh: '$2' not in $1 after $3 s" >&2
	cat "$1" >&2
	return 1
}

# simulator: one inverter on a port the OS picks
"$build/sim/egw-sim" --profile solaredge --port 0 >"$work/sim.log" 2>&1 &
pids+=($!)
wait_for "$work/sim.log" "listening solaredge tcp" 10
sim_port=$(sed -n 's/.*listening solaredge tcp 127.0.0.1:\([0-9]*\).*/\1/p' "$work/sim.log" | head -1)

port=$(free_port)
$py "$repo/tools/devbackend.py" --port 0 --egwd "http://127.0.0.1:$port" >"$work/be.log" 2>&1 &
pids+=($!)
wait_for "$work/be.log" "ready port=" 10
be_port=$(sed -n 's/.*ready port=\([0-9]*\).*/\1/p' "$work/be.log")

mkdir -p "$work/state"
valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--show-leak-kinds=definite,indirect --track-origins=yes --error-exitcode=1 \
	--log-file="$work/valgrind.log" \
	"$build/egwd" --port "$port" --state-dir "$work/state" \
	--set http.bind=127.0.0.1 \
	--set "backend.data_urls=[\"http://127.0.0.1:$be_port/data\"]" \
	--set harvest.batch_interval_ms=500 \
	--set "devices=[{\"connection\":\"tcp\",\"host\":\"127.0.0.1\",\"port\":$sim_port,\"unit_id\":1,\"profile\":\"solaredge\",\"id\":\"inv\"}]" \
	>"$work/egwd.log" 2>&1 &
egwd=$!
pids+=($egwd)

url="http://127.0.0.1:$port"
for _ in $(seq 1 600); do
	curl -sf -o /dev/null "$url/api/hello" && break
	kill -0 $egwd 2>/dev/null || { cat "$work/egwd.log" "$work/valgrind.log" >&2; exit 1; }
	sleep 0.1
done
curl -sf -o /dev/null "$url/api/hello"
token=$(cat "$work/state/api-token")
auth="Authorization: Bearer $token"

# a few batches delivered
for _ in $(seq 1 600); do
	n=$(curl -sf "http://127.0.0.1:$be_port/received" | $py -c 'import json,sys; print(json.load(sys.stdin)["unique"])')
	[ "$n" -ge 3 ] && break
	sleep 0.2
done
[ "$n" -ge 3 ] || { echo "valgrind.sh: only $n batches delivered" >&2; exit 1; }

# HTTP: reads, writes, errors, a live stream
for p in /api/state /metrics /status / /app.js /api/settings /api/device /api/device/supported \
	/api/crypto /api/name /api/frequency /api/notification "/api/inverter/modbus?device=inv&address=40000&count=2" \
	/api/nope; do
	curl -s -o /dev/null "$url$p"
done
curl -s -o /dev/null -H "$auth" -H 'Content-Type: application/json' \
	-d '{"mqtt":{"password":"pw","topic_prefix":"vg"}}' "$url/api/settings"
curl -s -o /dev/null -H "$auth" -d '{"http":{"port":0}}' "$url/api/settings"
curl -s -o /dev/null -H "$auth" -d '{' "$url/api/settings"
curl -s -o /dev/null -d '{}' "$url/api/settings"
curl -s -o /dev/null -H "$auth" \
	-d "{\"connection\":\"tcp\",\"host\":\"127.0.0.1\",\"port\":$sim_port,\"profile\":\"solaredge\",\"id\":\"second\"}" \
	"$url/api/device"
curl -s -o /dev/null -H "$auth" -X DELETE "$url/api/device?id=second"
curl -s -o /dev/null -m 2 "$url/api/live" || true
# raw Modbus reads (answered from a worker callback, freed by a task)
for a in 40000 40002 40004; do
	curl -s -o /dev/null "$url/api/inverter/modbus?device=inv&address=$a&count=2"
done
curl -s -o /dev/null "$url/api/inverter/modbus?device=nope&address=1"
curl -s -o /dev/null -H "$auth" -d '{"device":"inv","address":40000,"values":[1]}' \
	"$url/api/inverter/modbus"
sleep 1

kill -TERM $egwd
set +e
wait $egwd
rc=$?
set -e
if [ $rc -ne 0 ] || grep -q "definitely lost: [1-9]\|indirectly lost: [1-9]\|Invalid \(read\|write\|free\)\|uninitialised" "$work/valgrind.log"; then
	echo "valgrind.sh: FAIL (egwd exit $rc)" >&2
	cat "$work/valgrind.log" >&2
	exit 1
fi
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|in use at exit" "$work/valgrind.log" || true
echo "valgrind.sh: ok ($n+ batches delivered, egwd exit 0)"
