#!/usr/bin/env bash
# budget-burst.sh: issue 18's scenario with real clients. It starts
# `hal9 serve --llm-budget-enforce on --llm-budget-hourly 0.05
# --llm-latency-scale 8` (SQLite in a temporary directory, 127.0.0.1, free
# ports), registers N users, sends one uncached L3 signal per user, all at
# once, and prints the answers by status and code and
# the LLM spend (the increase of hal9_llm_cost_dollars_total: every call
# that answered, at its price, whoever was still waiting for it). The
# signals go out from one curl with --parallel, so they start together.
#
#   scripts/budget-burst.sh                          # bin/hal9, 120 signals
#   scripts/budget-burst.sh /tmp/old/hal9 bin/hal9   # several builds, one after the other
#   N=200 scripts/budget-burst.sh
#
# Extra server flags go in HAL9_FLAGS (e.g. HAL9_FLAGS='--llm-budget-per-user 1').
# A build without --llm-budget-per-user (before issue 18) ignores it.
set -euo pipefail

N=${N:-120}
BUDGET=0.05
bins=("$@")
[ ${#bins[@]} -eq 0 ] && bins=(bin/hal9)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() {
	local bin=$1 dir api admin pid extra=()
	dir=$(mktemp -d)
	api=127.0.0.1:$(free_port)
	admin=127.0.0.1:$(free_port)
	# Every user is a different user, and the whole budget is what is
	# measured: give users no share of their own where the build has one.
	if "$bin" serve --help 2>&1 | grep -q -- '--llm-budget-per-user'; then
		extra=(--llm-budget-per-user 1)
	fi
	"$bin" serve --addr "$api" --admin-addr "$admin" --data-dir "$dir" \
		--llm-budget-enforce on --llm-budget-hourly "$BUDGET" --llm-latency-scale 8 \
		--rate-limit 0 --auth-rate-limit 0 --bcrypt-cost 4 --log-level error \
		"${extra[@]}" ${HAL9_FLAGS:-} >"$dir/log" 2>&1 &
	pid=$!
	trap 'kill $pid 2>/dev/null; rm -rf "$dir"' RETURN
	for _ in $(seq 100); do curl -fs "http://$api/readyz" >/dev/null && break; sleep 0.1; done

	for i in $(seq "$N"); do
		curl -fs -o /dev/null -X POST "http://$api/api/v1/auth/register" -H 'Content-Type: application/json' \
			-d "{\"username\":\"burst$i\",\"email\":\"burst$i@example.com\",\"password\":\"password-$i\"}"
		curl -fs -X POST "http://$api/api/v1/auth/login" -H 'Content-Type: application/json' \
			-d "{\"username\":\"burst$i\",\"password\":\"password-$i\"}" | jq -r .access_token >"$dir/tok$i"
	done
	local before after
	before=$(curl -fs "http://$admin/metrics" | awk '/^hal9_llm_cost_dollars_total/ {s+=$2} END {printf "%.6f", s}')
	# One curl, all transfers in parallel: the signals start together.
	for i in $(seq "$N"); do
		[ "$i" -gt 1 ] && echo next
		printf 'url = "http://%s/api/v1/signals"\nrequest = "POST"\nheader = "Content-Type: application/json"\nheader = "Authorization: Bearer %s"\ndata = "{\\"content\\":\\"burst question %s %s\\",\\"layer\\":\\"L3\\"}"\noutput = "%s/body%s"\n' \
			"$api" "$(cat "$dir/tok$i")" "$i" "$(date +%s%N)" "$dir" "$i"
	done >"$dir/curl.cfg"
	curl -s --parallel --parallel-immediate --parallel-max "$N" -K "$dir/curl.cfg" 2>/dev/null
	after=$(curl -fs "http://$admin/metrics" | awk '/^hal9_llm_cost_dollars_total/ {s+=$2} END {printf "%.6f", s}')
	local answers
	answers=$(for i in $(seq "$N"); do jq -r '.error.code // "ok"' "$dir/body$i" 2>/dev/null || echo "?"; done | sort | uniq -c | tr -s ' \n' ' ')
	printf '%s: %d signals, budget $%s: spent $%s; answers %s; load %s\n' "$bin" "$N" "$BUDGET" \
		"$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.4f", a-b}')" "$answers" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

for b in "${bins[@]}"; do run "$b"; done
