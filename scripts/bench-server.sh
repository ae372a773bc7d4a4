#!/usr/bin/env bash
# bench-server.sh: the server measurements of docs/numbers.md's table, with
# wrk (a real client) and the lab's load engine against `hal9 serve` on
# 127.0.0.1. `make bench-server` runs it; every section can be rerun alone.
#
#   scripts/bench-server.sh                       # all sections, bin/hal9
#   scripts/bench-server.sh --only sqlite,flood   # some sections
#   scripts/bench-server.sh --hal9 /tmp/old/hal9,bin/hal9   # before and after, section by section
#
# Sections (each prints one result line per binary):
#   sqlite  cached L3 signals (every hop a hit) vs GET /api/v1/status, same run, SQLite
#   pg      the same on PostgreSQL (durable: fsync and synchronous_commit on) + Redis
#   flood   GET /api/v1/status P99 calm, then during a 64-connection wrong-password
#           flood on /auth/login (default auth flags), and the flood's own median
#   mix     3,500 users of the documented mix (scenarios/bench/mix-3500.yaml), bcrypt cost 4
#   loadgen the load generator's CPU per request of the mix at 200 it/s
#           (scenarios/bench/mix-rate.yaml) against one SQLite server, for each
#           --lab binary in turn, LOADGEN_ROUNDS rounds (default 3) alternated:
#           --only loadgen --lab /tmp/old/bin/hal9-lab,bin/hal9-lab
#
# Throughput sections start the server as the issue measured it: --rate-limit 0
# --llm-latency-scale 0 --bcrypt-cost 4, and --auth-rate-limit 0 and
# --http-max-conns-per-client 0 when the binary has those flags (the credential
# limiter would refuse the load's logins, the connection cap its 3,500 users:
# every user comes from 127.0.0.1). The machine is shared: compare within one run.
set -euo pipefail

HAL9_BINS=bin/hal9
LAB=bin/hal9-lab
ONLY=sqlite,pg,flood,mix
DUR=8s
CONNS=64
THREADS=2
OUT=""

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case "$1" in
	--hal9) HAL9_BINS=$2; shift 2 ;;
	--lab) LAB=$2; shift 2 ;;
	--only) ONLY=$2; shift 2 ;;
	--duration) DUR=$2; shift 2 ;;
	--connections) CONNS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench-server: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
for tool in wrk curl jq; do
	command -v "$tool" >/dev/null || { echo "bench-server: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
IFS=, read -r -a LABS <<<"$LAB"
LAB=${LABS[-1]}
for l in "${LABS[@]}"; do [ -x "$l" ] || { echo "bench-server: no $l; run make build" >&2; exit 1; }; done
IFS=, read -r -a BINS <<<"$HAL9_BINS"
for b in "${BINS[@]}"; do [ -x "$b" ] || { echo "bench-server: no server binary $b; run make build" >&2; exit 1; }; done
OUT=${OUT:-$(mktemp -d /tmp/hal9-bench.XXXXXX)}
mkdir -p "$OUT"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
echo "bench-server: results and logs in $OUT (load average: $(cut -d' ' -f1-3 /proc/loadavg))"

SERVER_PID=""
INFRA_PID=""
cleanup() {
	[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
	[ -n "$INFRA_PID" ] && kill "$INFRA_PID" 2>/dev/null && wait "$INFRA_PID" 2>/dev/null
	true
}
trap cleanup EXIT INT TERM

# has_flag BIN FLAG: the binary knows --FLAG (older builds lack the new ones).
# grep reads the whole help: with -q it would stop at the match, and the
# binary still writing would die of SIGPIPE, failing the pipe (pipefail).
has_flag() { "$1" serve --help 2>&1 | grep -- "--$2 " >/dev/null; }

# start_server BIN ARGS...: serve on free loopback ports; sets API.
start_server() {
	local bin=$1; shift
	local log="$OUT/server-$(date +%s%N).log"
	local data; data=$(mktemp -d "$OUT/data.XXXXXX")
	"$bin" serve --addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --data-dir "$data" --log-level info "$@" 2>"$log" &
	SERVER_PID=$!
	API=""
	for _ in $(seq 1 600); do
		API=$(grep -o '"addr":"[0-9.:]*"' "$log" 2>/dev/null | head -1 | cut -d'"' -f4 || true)
		if [ -n "$API" ] && curl -sf "http://$API/readyz" >/dev/null; then
			API="http://$API"
			return 0
		fi
		kill -0 "$SERVER_PID" 2>/dev/null || { echo "bench-server: the server exited; its log:" >&2; tail -20 "$log" >&2; exit 1; }
		sleep 0.1
	done
	echo "bench-server: the server did not become ready; log $log" >&2
	exit 1
}

stop_server() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

# throughput_flags BIN: the issue's flags, plus the credential limiter off.
throughput_flags() {
	local f=(--rate-limit 0 --llm-latency-scale 0 --bcrypt-cost 4)
	has_flag "$1" auth-rate-limit && f+=(--auth-rate-limit 0)
	has_flag "$1" http-max-conns-per-client && f+=(--http-max-conns-per-client 0)
	has_flag "$1" shutdown-delay && f+=(--shutdown-delay 0s)
	echo "${f[@]}"
}

# new_user NAME: register and log in; prints the access token.
new_user() {
	curl -sf -X POST "$API/api/v1/auth/register" -H 'Content-Type: application/json' \
		-d "{\"username\":\"$1\",\"email\":\"$1@example.com\",\"password\":\"password-$1\"}" >/dev/null
	curl -sf -X POST "$API/api/v1/auth/login" -H 'Content-Type: application/json' \
		-d "{\"username\":\"$1\",\"password\":\"password-$1\"}" | jq -r .access_token
}

# ms VALUE: wrk's "1.23ms", "456.00us", "1.20s" in milliseconds.
ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
		printf "%.2f", n }'
}

# wrk_run NAME ARGS...: run wrk --latency, keep its output, set RPS P50 P99 NON2XX.
wrk_run() {
	local name=$1; shift
	local f="$OUT/wrk-$name.txt"
	wrk --latency "$@" >"$f" 2>&1 || { echo "bench-server: wrk failed, see $f" >&2; cat "$f" >&2; exit 1; }
	RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
	P50=$(ms "$(awk '$1 == "50%" {print $2}' "$f")")
	P99=$(ms "$(awk '$1 == "99%" {print $2}' "$f")")
	NON2XX=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$f")
	NON2XX=${NON2XX:-0}
}

# signals_vs_status LABEL BIN ARGS...: status then cached signals, one server.
signals_vs_status() {
	local label=$1 bin=$2; shift 2
	start_server "$bin" $(throughput_flags "$bin") "$@"
	local tok; tok=$(new_user bench)
	curl -sf -X POST "$API/api/v1/signals" -H 'Content-Type: application/json' -H "Authorization: Bearer $tok" \
		-d '{"content":"bench the cached signal path","layer":"L3"}' >/dev/null # the miss that fills the cache
	wrk_run "$label-status" -t "$THREADS" -c "$CONNS" -d "$DUR" "$API/api/v1/status"
	local srps=$RPS sp99=$P99 sbad=$NON2XX
	HAL9_TOKEN=$tok wrk_run "$label-signals" -t "$THREADS" -c "$CONNS" -d "$DUR" -s "$HERE/wrk/signal.lua" "$API/api/v1/signals"
	stop_server
	printf '%-8s %-28s status %7s req/s p99 %7s ms (non-2xx %s) | cached signals %6s req/s p99 %7s ms (non-2xx %s) | ratio %s\n' \
		"$label" "$bin" "$srps" "$sp99" "$sbad" "$RPS" "$P99" "$NON2XX" "$(awk -v a="$RPS" -v b="$srps" 'BEGIN {printf "%.3f", a / b}')" | tee -a "$OUT/results.txt"
}

section_sqlite() {
	for b in "${BINS[@]}"; do signals_vs_status sqlite "$b"; done
}

section_pg() {
	for b in "${BINS[@]}"; do
		local env="$OUT/infra.env"
		rm -f "$env"
		local mode=process
		[ -n "${HAL9_PG_DSN:-}" ] && mode=external
		"$LAB" infra up --infra "$mode" --durable --env-file "$env" >/dev/null 2>"$OUT/infra.log" &
		INFRA_PID=$!
		for _ in $(seq 1 600); do [ -f "$env" ] && break; kill -0 "$INFRA_PID" 2>/dev/null || { cat "$OUT/infra.log" >&2; exit 1; }; sleep 0.1; done
		# shellcheck disable=SC1090
		(set -a; . "$env"; set +a; signals_vs_status pg+redis "$b" --database-url "$HAL9_DATABASE_URL" --redis-url "$HAL9_REDIS_URL")
		kill "$INFRA_PID"; wait "$INFRA_PID" 2>/dev/null || true
		INFRA_PID=""
	done
}

section_flood() {
	for b in "${BINS[@]}"; do
		local extra=(--rate-limit 0) # the general per-IP limit would answer /status with 429s: measure the server, not that limit
		has_flag "$b" shutdown-delay && extra+=(--shutdown-delay 0s)
		start_server "$b" "${extra[@]}"
		new_user victim >/dev/null
		wrk_run "flood-calm-$(basename "$b")" -t 1 -c 4 -d "$DUR" "$API/api/v1/status"
		local calm=$P99
		HAL9_FLOOD_USER=victim wrk --latency -t "$THREADS" -c 64 -d "$(( ${DUR%s} + 4 ))s" -s "$HERE/wrk/login-flood.lua" \
			"$API/api/v1/auth/login" >"$OUT/wrk-flood-login-$(basename "$b").txt" 2>&1 &
		local fpid=$!
		sleep 2
		wrk_run "flood-status-$(basename "$b")" -t 1 -c 4 -d "$DUR" "$API/api/v1/status"
		local during=$P99 drps=$RPS
		wait "$fpid" || true
		local f="$OUT/wrk-flood-login-$(basename "$b").txt"
		local fmed; fmed=$(ms "$(awk '$1 == "50%" {print $2}' "$f")")
		local frps; frps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
		stop_server
		printf '%-8s %-28s status p99 calm %7s ms, during the flood %7s ms (%s req/s) | flood: %s req/s, median %s ms\n' \
			flood "$b" "$calm" "$during" "$drps" "$frps" "$fmed" | tee -a "$OUT/results.txt"
	done
}

section_mix() {
	for b in "${BINS[@]}"; do
		start_server "$b" $(throughput_flags "$b")
		local sum="$OUT/mix-$(basename "$b")-$(date +%s).json"
		"$LAB" load "$ROOT/scenarios/bench/mix-3500.yaml" --target "$API" --summary-export "$sum" --quiet >"$OUT/mix.log" 2>&1 || true
		stop_server
		jq -r --arg b "$b" '"mix      \($b)  \(.metrics.http_reqs.values.rate | floor) req/s, p95 \(.metrics.http_req_duration.values["p(95)"] | floor) ms, p99 \(.metrics.http_req_duration.values["p(99)"] | floor) ms, errors \(.metrics.http_req_failed.values.rate * 10000 | floor / 100) %"' "$sum" | tee -a "$OUT/results.txt"
	done
}

# cpu_ticks PID: utime + stime of a process, in clock ticks (1/100 s).
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# loadgen_run LAB: one `LAB load` of the fixed-rate mix; prints "requests
# client_ticks server_ticks" (the client's CPU: this subshell's waited-for
# children, cutime + cstime).
loadgen_run() {
	local sum="$OUT/loadgen-$(date +%s%N).json" me=$BASHPID s0 c0 c1
	s0=$(cpu_ticks "$SERVER_PID")
	c0=$(awk '{ sub(/.*\) /, ""); print $14 + $15 }' "/proc/$me/stat")
	"$1" load "$ROOT/scenarios/bench/mix-rate.yaml" --target "$API" --summary-export "$sum" --quiet >>"$OUT/loadgen.log" 2>&1 || true
	c1=$(awk '{ sub(/.*\) /, ""); print $14 + $15 }' "/proc/$me/stat")
	echo "$(jq '.metrics.http_reqs.values.count' "$sum") $(( c1 - c0 )) $(( $(cpu_ticks "$SERVER_PID") - s0 ))"
}

section_loadgen() {
	start_server "${BINS[-1]}" --rate-limit 0 --bcrypt-cost 4 $(has_flag "${BINS[-1]}" auth-rate-limit && echo --auth-rate-limit 0)
	loadgen_run "$LAB" >/dev/null # warm the catalogue's cache and the server
	local rounds=${LOADGEN_ROUNDS:-3} r l n cpu srv order
	for r in $(seq 1 "$rounds"); do
		order=("${LABS[@]}")
		if (( r % 2 == 0 )); then mapfile -t order < <(printf '%s\n' "${LABS[@]}" | tac); fi
		for l in "${order[@]}"; do
			read -r n cpu srv < <(loadgen_run "$l")
			awk -v l="$l" -v r="$r" -v n="$n" -v c="$cpu" -v s="$srv" -v la="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
				printf "loadgen  round %d %-28s %7d requests, load generator %.3f ms CPU per request, server %.3f ms (load average %s)\n",
					r, l, n, c / 100 / n * 1000, s / 100 / n * 1000, la }' | tee -a "$OUT/results.txt"
		done
	done
	stop_server
}

IFS=, read -r -a SECTIONS <<<"$ONLY"
for s in "${SECTIONS[@]}"; do
	case "$s" in
	sqlite | pg | flood | mix | loadgen) "section_$s" ;;
	*) echo "bench-server: unknown section $s (sqlite, pg, flood, mix, loadgen)" >&2; exit 2 ;;
	esac
done
echo "bench-server: done; $OUT/results.txt"
