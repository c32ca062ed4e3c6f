#!/bin/sh
# HTTP benchmark: egwd against Debian's nginx in the same run, same client.
#
#   bench/http.sh [BUILD_DIR]        (default: ./build; IDLE=60 seconds idle
#                                     before the first memory read)
#
# Times exec -> first HTTP 200, then starts egwd (temp state dir, loopback,
# free port) and nginx (own config in a temp dir, 1 worker like egwd's single
# loop thread, loopback, serving a static file with the exact bytes of egwd's
# /api/hello body).  After $IDLE seconds idle it reads the memory of both:
# RSS, PSS and private memory side by side (bench/memstat.py, from
# /proc/PID/smaps_rollup; nginx is its master and worker summed), with
# egwd's largest private mappings.  Then for each server:
#   - wrk keep-alive throughput: 1 thread, 16 connections, $DUR seconds;
#   - sequential latency: wrk 1 thread, 1 connection, p50/p99;
# and prints requests/s, percentiles and the egwd/nginx ratios, both servers'
# memory after that load, and the same figures for bench/rss_floor.c (the
# same libraries, each used once).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
DUR=${DUR:-5}
IDLE=${IDLE:-60}
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/egw-bench-http-XXXXXX)
egwd_pid=""
nginx_pid=""
cleanup() {
	[ -n "$egwd_pid" ] && kill "$egwd_pid" 2>/dev/null && wait "$egwd_pid" 2>/dev/null || true
	[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
mem() { $PY "$top/bench/memstat.py" "$@"; }
# nginx's master and its worker
nginx_pids() { echo "$nginx_pid $(cat "/proc/$nginx_pid/task/$nginx_pid/children")"; }

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_200() { # url
	for _ in $(seq 200); do
		curl -sf -o /dev/null "$1" && return 0
		sleep 0.05
	done
	echo "no answer from $1" >&2
	exit 1
}

# Time from exec to the first 200 (fresh state dir: key and token are created).
startup_ms() { # state_dir
	$PY - "$build/egwd" "$1" <<'PYEOF'
import socket, subprocess, sys, time
egwd, state = sys.argv[1], sys.argv[2]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
t = socket.socket(); t.bind(("127.0.0.1", 0)); tls_port = t.getsockname()[1]; s.close(); t.close()
req = b"GET /api/hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
t0 = time.monotonic()
p = subprocess.Popen([egwd, "--port", str(port), "--state-dir", state, "--set", "http.bind=127.0.0.1",
                      "--set", "http.tls_port=%d" % tls_port],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(req)
                if c.recv(16).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            time.sleep(0.0005)
    print("%.1f" % ((time.monotonic() - t0) * 1000))
finally:
    p.terminate(); p.wait()
PYEOF
}

echo "== startup (exec -> first HTTP 200)"
first=$(startup_ms "$tmp/start")
agains=""
for _ in 1 2 3 4 5; do agains="$agains $(startup_ms "$tmp/start")"; done
echo "first start (creates key, token, store): ${first} ms"
echo "later starts, 5 runs (min / median):     $(echo $agains | tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { printf "%s / %s", v[1], v[3] }') ms"

eport=$(free_port)
# its HTTPS listener (on by default) on a free port too, not the default 5443
"$build/egwd" --port "$eport" --state-dir "$tmp/egwd" --set http.bind=127.0.0.1 \
	--set http.tls_port="$(free_port)" --log-level warn 2>"$tmp/egwd.log" &
egwd_pid=$!
wait_200 "http://127.0.0.1:$eport/api/hello"

nport=$(free_port)
mkdir -p "$tmp/nginx/www/api" "$tmp/nginx/logs"
curl -s "http://127.0.0.1:$eport/api/hello" >"$tmp/nginx/www/api/hello"
# nginx's worker drops root privileges: let it read the document root.
chmod 711 "$tmp"
chmod -R a+rX "$tmp/nginx/www"
cat >"$tmp/nginx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$nport;
		root $tmp/nginx/www;
		location /api/ { default_type application/json; }
	}
}
NGX
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/logs/stderr" &
nginx_pid=$!
wait_200 "http://127.0.0.1:$nport/api/hello"
if ! cmp -s "$tmp/nginx/www/api/hello" "$(curl -s -o "$tmp/n.body" "http://127.0.0.1:$nport/api/hello"; echo "$tmp/n.body")"; then
	echo "nginx body differs" >&2
	exit 1
fi

echo "== memory after ${IDLE}s idle"
sleep "$IDLE"
echo "egwd:  $(mem "$egwd_pid")"
echo "nginx: $(mem $(nginx_pids)) (master + worker)"
mem "$egwd_pid" --top 12 | tail -n +2

rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'; }
# wrk prints latency percentiles as e.g. "50%   45.00us" / "99%    1.20ms"; convert to us.
pct() { # percent
	awk -v p="$1%" '$1 == p { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
		f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1000000 : 0.001; printf "%.1f", v * f }'
}
run() { # name url
	wrk -t1 -c16 -d"${DUR}s" "$2" >"$tmp/$1.tp"
	wrk -t1 -c1 -d"${DUR}s" --latency "$2" >"$tmp/$1.seq"
	eval "${1}_rps=\$(rps <\"\$tmp/$1.tp\")"
	eval "${1}_seq=\$(rps <\"\$tmp/$1.seq\")"
	eval "${1}_p50=\$(pct 50 <\"\$tmp/$1.seq\")"
	eval "${1}_p99=\$(pct 99 <\"\$tmp/$1.seq\")"
}
echo "== wrk: keep-alive 1 thread x 16 connections, then 1 connection (sequential), ${DUR}s each"
run egwd "http://127.0.0.1:$eport/api/hello"
run nginx "http://127.0.0.1:$nport/api/hello"
ratio() { $PY -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b if b else 0))" "$1" "$2"; }
printf '%-8s %14s %16s %10s %10s\n' "server" "req/s (c=16)" "req/s (c=1)" "p50 us" "p99 us"
printf '%-8s %14s %16s %10s %10s\n' egwd "$egwd_rps" "$egwd_seq" "$egwd_p50" "$egwd_p99"
printf '%-8s %14s %16s %10s %10s\n' nginx "$nginx_rps" "$nginx_seq" "$nginx_p50" "$nginx_p99"
printf '%-8s %14s %16s %10s %10s\n' "ratio" "$(ratio "$egwd_rps" "$nginx_rps")" \
	"$(ratio "$egwd_seq" "$nginx_seq")" "$(ratio "$egwd_p50" "$nginx_p50")" "$(ratio "$egwd_p99" "$nginx_p99")"
grep -q "Non-2xx" "$tmp/egwd.tp" "$tmp/egwd.seq" && { echo "egwd answered non-2xx" >&2; exit 1; }

echo "== memory after the wrk runs"
echo "egwd:  $(mem "$egwd_pid") (peak RSS $(awk '/^VmHWM/ { print $2 }' "/proc/$egwd_pid/status") kB)"
echo "nginx: $(mem $(nginx_pids)) (master + worker)"
# egwd's own account, from /proc/self/smaps_rollup (private = clean + dirty)
curl -s "http://127.0.0.1:$eport/api/state" | $PY -c 'import json, sys
m = json.load(sys.stdin)["memory"]
print("egwd /api/state memory: rss %(rss_kb)d, pss %(pss_kb)d, private %(private_kb)d "
      "(dirty %(private_dirty_kb)d, anonymous %(anon_kb)d); malloc_trim runs: %(trims)d" % m)'
# The floor: a program linked against the same libraries that uses each once
# (bench/rss_floor.c).  egwd's private memory above it is egwd's own.
if [ -x "$build/rss-floor" ]; then
	mkdir -p "$tmp/floor"
	"$build/rss-floor" "$tmp/floor" >"$tmp/floor.out"
	echo "rss-floor (same libraries, each used once): $(grep '^after one use' "$tmp/floor.out" | sed 's/^[^:]*: //')"
fi
kill "$egwd_pid"
wait "$egwd_pid" && echo "egwd exited 0 on SIGTERM"
egwd_pid=""
