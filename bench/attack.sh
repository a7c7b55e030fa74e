#!/bin/bash
# attack.sh: Parley under attack (bash bench/attack.sh, or bash bench/bench.sh attack; bench.sh
# parley runs it after its table unless ATTACK=0). Loopback only, bounded (under 4 minutes),
# every process it starts is stopped on exit.
# Each pass gets a fresh `parley serve` (release build) on a free 127.0.0.1 port with a copy of
# one temporary database holding ATTACK_USERS users (u00000/pw00000.., bench.test) plus the
# user "phone"; parley's flags: ATTACK_PARLEY_ARGS.
#   1. baseline: SIPp authenticated registrations (sipp/reg_auth.xml: REGISTER -> 401 ->
#      REGISTER with digest -> 200) at a fixed ATTACK_RATE reg/s for ATTACK_SECS s from
#      127.0.0.1, each a different user (new bindings), nothing else;
#   2. flood: the same, while bench/flood.c (cc -O2) sends as fast as one core can from the
#      16 sources 127.0.1.1..127.0.1.16, for the whole SIPp run: half junk (random bytes of
#      random length, 1-byte datagrams, INVITEs cut short), half INVITEs to unknown users of
#      bench.test from evil.example without credentials;
#   3. calls: "phone" registers a contact on a UDP port that flood.c holds open and never reads;
#      flood.c --calls then sends CALLS_N INVITEs to phone@bench.test at CALLS_RATE/s from the
#      64 sources 127.0.2.1..127.0.2.64 (foreign From domain: no challenge, parley proxies them
#      to the phone, which never answers) and holds its sockets ATTACK_AFTER s more; parley's
#      VmRSS is sampled every second from the first INVITE to ATTACK_AFTER s after the last.
# Printed for 1 and 2: legitimate success = SIPp successful calls / calls created (stat file);
# p50/p99 ms of SIPp's response-time timer 1 over every successful registration = the WHOLE
# authenticated registration (first REGISTER sent -> 200, the 401 round trip included); peak
# RSS = parley's VmHWM at the end of the pass (fresh process per pass); server CPU; SIPp
# retransmissions; the flooder's datagrams and achieved rate. For 3: RSS before, peak, at the
# end of the sending, and whether/when it came back within max(10 %, 10 MB) of the RSS before.
# Targets are printed beside the figures, never enforced (exit status 0 unless the tooling
# itself fails).
# The legitimate source must stay under the per-source rate limit: a registration is two
# requests, so ATTACK_RATE=200 is 400 requests/s (plus retransmissions) from 127.0.0.1, and
# ATTACK_PARLEY_ARGS passes --rate-limit 1000; each flood source sends ~10^4 datagrams/s, far
# above it. The 5,000 calls/s come from 64 addresses, ~80/s each: under any per-source limit,
# so pass 3 measures the transaction and memory caps, not the rate limit.
# env: ATTACK_RATE=200 ATTACK_SECS=30 ATTACK_USERS=10000 CALLS_N=200000 CALLS_RATE=5000
#      ATTACK_AFTER=60 ATTACK_PARLEY_ARGS="--rate-limit 1000" (e.g. add --max-transactions N
#      --max-memory MiB) FLOOD_SOURCES=16 CALL_SOURCES=64 FLOOD_INVITE_PCT=50
#      ATTACK_PASSES="baseline flood calls" PARLEY_BIN=build/parley SIPP_BUFF=4194304 KEEP=0
#      ATTACK_RSS_CAP_MB=6144 (pass 3 SIGKILLs parley above this RSS and says so: the machine
#      is shared)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PARLEY=${PARLEY_BIN:-$ROOT/build/parley}
ATTACK_RATE=${ATTACK_RATE:-200} ATTACK_SECS=${ATTACK_SECS:-30} ATTACK_USERS=${ATTACK_USERS:-10000}
CALLS_N=${CALLS_N:-200000} CALLS_RATE=${CALLS_RATE:-5000} ATTACK_AFTER=${ATTACK_AFTER:-60}
ATTACK_PARLEY_ARGS=${ATTACK_PARLEY_ARGS---rate-limit 1000}
FLOOD_SOURCES=${FLOOD_SOURCES:-16} CALL_SOURCES=${CALL_SOURCES:-64} FLOOD_INVITE_PCT=${FLOOD_INVITE_PCT:-50}
ATTACK_PASSES=${ATTACK_PASSES:-baseline flood calls}
ATTACK_RSS_CAP_MB=${ATTACK_RSS_CAP_MB:-6144}
SIPP_BUFF=${SIPP_BUFF-4194304}
STATS="python3 $HERE/stats.py"
ATK="python3 $HERE/attack.py"
REG_N=$((ATTACK_RATE * ATTACK_SECS))
[ -x "$PARLEY" ] || { echo "attack: $PARLEY missing: run make build" >&2; exit 1; }
command -v sipp >/dev/null || { echo "attack: sipp missing (package sip-tester; make deps)" >&2; exit 1; }
command -v cc >/dev/null || { echo "attack: no C compiler (cc)" >&2; exit 1; }
[ "$REG_N" -le "$ATTACK_USERS" ] || ATTACK_USERS=$REG_N

WORK=$(mktemp -d /tmp/parley-attack.XXXXXX)
PIDS=()
SRV_PID=
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
cleanup() {
	local p
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	if [ "${KEEP:-0}" = 1 ]; then rm -f "$WORK"/*.db* "$WORK"/*/*.db*; echo "attack: logs in $WORK" >&2
	else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

FLOOD=$WORK/bin/flood
mkdir -p "$WORK/bin"
cc -O2 -o "$FLOOD" "$HERE/flood.c" || { echo "attack: cannot compile flood.c" >&2; exit 1; }
PHONE_PORT=$($STATS port)
python3 "$HERE/gen-users.py" "$WORK/users" "$ATTACK_USERS" bench.test "$($STATS port)" --no-sql --no-calls
echo "phone@bench.test,phonepw" >>"$WORK/users/parley-users.csv"
printf 'SEQUENTIAL\nphone;phonepw;%s;bench.test\n' "$PHONE_PORT" >"$WORK/users/phone.csv"
"$PARLEY" user import "$WORK/users/parley-users.csv" --db "$WORK/template.db" >"$WORK/import.log" 2>&1 ||
	{ cat "$WORK/import.log" >&2; exit 1; }

start_server() { # NAME -> SRV_PID, SRV_PORT
	local dir=$WORK/$1
	mkdir -p "$dir"
	cp "$WORK/template.db" "$dir/parley.db"
	SRV_PORT=$($STATS port)
	# shellcheck disable=SC2086 # ATTACK_PARLEY_ARGS is a list of flags
	"$PARLEY" serve --listen "udp:127.0.0.1:$SRV_PORT" --domain bench.test --db "$dir/parley.db" \
		--log-level warn $ATTACK_PARLEY_ARGS >"$dir/server.log" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	$STATS ping "$SRV_PORT" 30 >/dev/null ||
		{ echo "attack: parley does not answer OPTIONS (flags: $ATTACK_PARLEY_ARGS); see $dir/server.log:" >&2
		  tail -5 "$dir/server.log" >&2; exit 1; }
}
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$SRV_PID/status" 2>/dev/null; }
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$SRV_PID/status" 2>/dev/null; }
alive() { # does the server answer OPTIONS within 5 s?
	if ! kill -0 "$SRV_PID" 2>/dev/null; then echo "NO(exited)"
	elif $STATS ping "$SRV_PORT" 5 >/dev/null; then echo yes
	else echo "NO(running,no-answer-in-5s)"; fi
}
exit_status() { wait "$SRV_PID" 2>/dev/null; echo $?; }

# sipp_reg DIR INJECTION COUNT RATE TIMEOUT_S: SIPp's authenticated registrations at a fixed rate
sipp_reg() {
	local dir=$1 inf=$2 n=$3 r=$4 to=$5
	mkdir -p "$dir"
	(cd "$dir" && timeout -k 5 "$to" sipp 127.0.0.1:"$SRV_PORT" -sf "$HERE/sipp/reg_auth.xml" \
		-inf "$inf" -m "$n" -r "$r" -l 100000 -i 127.0.0.1 -p "$($STATS port)" -nostdin \
		-trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 1 -trace_err -error_file err.log \
		-timeout $((to - 5))s -timeout_error -default_behaviors all,-bye ${SIPP_BUFF:+-buff_size $SIPP_BUFF} \
		>out.log 2>&1)
	local rc=$?
	if [ "$(stat -c %s "$dir/err.log" 2>/dev/null || echo 0)" -gt 4194304 ]; then
		head -c 4194304 "$dir/err.log" >"$dir/err.head" && mv "$dir/err.head" "$dir/err.log"
	fi
	[ -s "$dir/stat.csv" ] || { echo "attack: SIPp wrote no statistics (exit $rc), see $dir/out.log" >&2; return 1; }
	return 0
}

# reg_pass NAME FLOOD(0|1): one registration pass on a fresh server; appends its line to RESULTS
reg_pass() {
	local name=$1 withflood=$2 dir=$WORK/$1 fp="" c0 c1 t0 t1 line
	start_server "$name"
	if [ "$withflood" = 1 ]; then
		# bounded by itself too: ATTACK_SECS + 30 s at most; stopped with SIGTERM when SIPp is done
		"$FLOOD" --target "127.0.0.1:$SRV_PORT" --domain bench.test --src 127.0.1.1 --nsrc "$FLOOD_SOURCES" \
			--invite-pct "$FLOOD_INVITE_PCT" --duration $((ATTACK_SECS + 30)) >"$dir/flood.out" 2>&1 &
		fp=$!
		PIDS+=("$fp")
		sleep 1   # the flood is on before the first registration
	fi
	echo "attack: $name: $REG_N registrations at $ATTACK_RATE/s$([ "$withflood" = 1 ] && echo ", flood on")" >&2
	c0=$(bash "$HERE/cpu.sh" "$SRV_PID") t0=$(date +%s.%N)
	# SIPp stops 20 s after the last planned start: registrations unfinished then count as failed
	sipp_reg "$dir/sipp" "$WORK/users/users.csv" "$REG_N" "$ATTACK_RATE" $((ATTACK_SECS + 25))
	t1=$(date +%s.%N) c1=$(bash "$HERE/cpu.sh" "$SRV_PID")
	[ -n "$fp" ] && stop_pid "$fp"
	local h dead=""
	h=$(hwm)
	kill -0 "$SRV_PID" 2>/dev/null || { dead=1; echo "attack: $name: PARLEY DIED, exit status $(exit_status)" >&2; c1=-1000000000; }
	line="pass=$name hwm_kb=${h:-0}"
	if [ -s "$dir/sipp/stat.csv" ]; then
		line+=" $($STATS pass "$name" "$dir/sipp/stat.csv" "$dir/sipp" "$t0" "$t1" "$c0" "$c1" | sed 's/^pass=[^ ]* //')"
		line+=" $($ATK sipp "$dir/sipp/stat.csv")"
	fi
	if [ -n "$fp" ]; then
		line+=" flood_sent=$($ATK kv "$dir/flood.out" sent) flood_rate=$($ATK kv "$dir/flood.out" rate)"
		line+=" flood_secs=$($ATK kv "$dir/flood.out" secs)"
	fi
	[ -z "$dead" ] && line+=" alive=$(alive)"
	echo "$line" >>"$RESULTS"
	echo "attack: $line" >&2
	stop_pid "$SRV_PID" 10
}

calls_pass() {
	local dir=$WORK/calls fp sp base line secs=$(( (CALLS_N + CALLS_RATE - 1) / CALLS_RATE ))
	start_server calls
	sipp_reg "$dir/phone" "$WORK/users/phone.csv" 1 10 30 ||
		{ echo "attack: calls: cannot register phone@bench.test" >&2; return 1; }
	[ "$($ATK sipp "$dir/phone/stat.csv" | sed 's/.*sipp_ok=\([0-9]*\).*/\1/')" = 1 ] ||
		{ echo "attack: calls: phone@bench.test did not register, see $dir/phone" >&2; return 1; }
	sleep 2
	base=$(rss)
	echo "attack: calls: $CALLS_N INVITEs at $CALLS_RATE/s to phone@bench.test (contact 127.0.0.1:$PHONE_PORT," \
		"never answers), then ${ATTACK_AFTER} s watching VmRSS (before: ${base} kB)" >&2
	$ATK sample "$SRV_PID" $((secs + ATTACK_AFTER + 2)) "$dir/rss.txt" $((ATTACK_RSS_CAP_MB * 1024)) &
	sp=$!
	PIDS+=("$sp")
	# the flood starts right after the sampler's first reading (time 0 of rss.txt)
	for _ in $(seq 100); do [ -s "$dir/rss.txt" ] && break; sleep 0.02; done
	# bounded by itself: 3x the planned sending time at most, then ATTACK_AFTER s holding the sockets
	"$FLOOD" --calls --to phone --target "127.0.0.1:$SRV_PORT" --domain bench.test --src 127.0.2.1 \
		--nsrc "$CALL_SOURCES" --rate "$CALLS_RATE" --count "$CALLS_N" --duration $((secs * 3 + 5)) \
		--phone "$PHONE_PORT" --hold "$ATTACK_AFTER" >"$dir/flood.out" 2>&1 &
	fp=$!
	PIDS+=("$fp")
	wait "$sp"
	stop_pid "$fp"
	line="pass=calls hwm_kb=$(hwm) base_kb=$base to=phone@bench.test want_rate=$CALLS_RATE"
	line+=" flood_sent=$($ATK kv "$dir/flood.out" sent) flood_rate=$($ATK kv "$dir/flood.out" rate)"
	line+=" flood_secs=$($ATK kv "$dir/flood.out" secs) flood_sources=$($ATK kv "$dir/flood.out" sources)"
	line+=" phone_queued=$($ATK kv "$dir/flood.out" phone_queued) phone_invites=$($ATK kv "$dir/flood.out" phone_invites)"
	line+=" cap_mb=$ATTACK_RSS_CAP_MB"
	if kill -0 "$SRV_PID" 2>/dev/null; then line+=" alive=$(alive)"
	else line+=" alive=NO(exited) exit=$(exit_status)"; fi
	echo "$line" >>"$RESULTS"
	echo "attack: $line" >&2
	stop_pid "$SRV_PID" 10
}

RESULTS=$WORK/results.txt
: >"$RESULTS"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
T0=$(date +%s)
for p in $ATTACK_PASSES; do
	case $p in
	baseline) reg_pass baseline 0 ;;
	flood) reg_pass flood 1 ;;
	calls) calls_pass ;;
	*) echo "attack: unknown pass '$p' (baseline flood calls)" >&2; exit 2 ;;
	esac
done

echo
echo "Under attack: parley $("$PARLEY" version 2>/dev/null | head -1), $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD -- src 2>/dev/null || echo '+dirty'), $(nproc) cores, loopback UDP, $(( $(date +%s) - T0 )) s;"
echo "parley serve flags: ${ATTACK_PARLEY_ARGS:-(none)}; load average before: $LOAD_BEFORE"
echo "legit: SIPp sipp/reg_auth.xml from 127.0.0.1, $REG_N registrations at $ATTACK_RATE/s (fixed rate, $((2 * ATTACK_RATE)) requests/s),"
echo "  each a new binding; p50/p99 = whole registration (first REGISTER sent -> 200, 401 round trip included)"
echo "flood: flood.c, one core, $FLOOD_SOURCES sources from 127.0.1.1, $FLOOD_INVITE_PCT % INVITEs to unknown users (evil.example, no credentials),"
echo "  the rest junk (random bytes, 1-byte datagrams, INVITEs cut short), on for the whole SIPp run"
echo
$ATK table "$RESULTS" "$WORK/calls/rss.txt"
