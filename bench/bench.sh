#!/bin/bash
# bench.sh: Parley's benchmark (make bench / make bench-compare).
# usage: bench.sh parley [kamailio] | bench.sh attack
# `bench.sh attack` runs only the under-attack pass (attack.sh); `bench.sh parley ...` runs it
# after the table (ATTACK=0: skip it).
# Starts each server on a free loopback port with a fresh temporary database and the same
# N users, and drives it with SIPp closed-loop at saturation (CONC transactions in flight):
#   reg   REGISTER -> 401 -> REGISTER with digest -> 200            (sipp/reg_auth.xml)
#   call  INVITE -> 407 -> ACK -> INVITE with credentials -> 100 -> 200 -> ACK -> BYE -> 200,
#         proxied to a SIPp callee (sipp/uas.xml) registered by the reg pass (sipp/call_auth.xml)
#   relay the call pass with the SDP through a media relay (relay.sh): a fresh rtpengine and a
#         fresh server set up to use it (Parley --rtpengine ... --media always; Kamailio's
#         rtpengine module), sipp/relay_call.xml -> sipp/relay_uas.xml; the server's CPU per
#         call as above, rtpengine's CPU and its sessions left at the end printed apart
# Each pass runs once to warm up, then once measured. Printed per server and pass:
#   tx/s       successes / wall time of the SIPp run (SIPp shares the 2 cores with the server)
#   cpu µs/tx  user+system CPU of the server process (and its children: Kamailio's workers),
#              read from /proc/PID/stat before and after the run, / successes
#   p50/p99    percentiles over every transaction of SIPp's response-time timer 1 (-trace_rtt):
#              reg = first REGISTER sent -> 200 received; call = first INVITE -> 200 OK
#   fail       SIPp failed transactions (must be 0); retrans = SIPp retransmissions
# With kamailio, the Parley/Kamailio ratios follow. MEM=1 runs mem.sh afterwards; then the
# under-attack pass (attack.sh, about 3.5 minutes) unless ATTACK=0.
#   tcp, tls  registrations and calls over TCP and over TLS, and registrations with a new TLS
#         connection each (stream.sh); then IDLE_N (10000) TLS connections registered once
#         each and held idle: server memory per connection (tls_idle.py)
#   ops   Parley alone and with --http, --capture-memory and a real Prometheus scraping every
#         second: CPU per reg and per call both ways (ops.sh; target: within 10%)
# env: N=10000 CONC=200 PASSES="reg call tcp tls relay ops" RELAY_ROUNDS=3 (runs of the relay pass) RATE=50000 (SIPp's opening rate cap, well above
#      saturation) SIPP_TIMEOUT=300 (s, per SIPp run) PARLEY_BIN=build/parley KEEP=1 (keep logs)
#      PARLEY_WRAP="" (a command in front of parley serve, e.g. valgrind --tool=callgrind ...)
#      SIPP_WRAP="" (a command in front of every sipp, e.g. taskset -c 1)
#      PARLEY_ARGS="--rate-limit 0" (flags for parley serve: SIPp is one source sending
#      thousands of requests a second, a flood by the per-source limit's standard; Kamailio's
#      set-up runs no pike either)
#      SIPP_BUFF=4194304 (SIPp's -buff_size, bytes; empty: SIPp's default)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PARLEY=${PARLEY_BIN:-$ROOT/build/parley}
N=${N:-10000} CONC=${CONC:-200} RATE=${RATE:-50000} PASSES=${PASSES:-reg call tcp tls relay ops}
RELAY_ROUNDS=${RELAY_ROUNDS:-3}
SIPP_TIMEOUT=${SIPP_TIMEOUT:-300}
# SIPp's own socket buffer (its default, 64 KB, holds ~56 datagrams as the kernel counts
# them): with 200 transactions opened at once, each server's first answers overflowed it,
# ~240 datagrams per pass were dropped, and each dropped answer stalled its transaction
# for SIPp's 500 ms retransmission, so throughput measured SIPp's timers. SIPP_BUFF= (empty)
# gives SIPp's default back.
SIPP_BUFF=${SIPP_BUFF-4194304}
STATS="python3 $HERE/stats.py"
SERVERS=("$@")
[ ${#SERVERS[@]} -gt 0 ] || { echo "usage: bench.sh parley [kamailio] | bench.sh attack" >&2; exit 2; }
[ "${SERVERS[*]}" = attack ] && exec bash "$HERE/attack.sh"
for s in "${SERVERS[@]}"; do
	case $s in
	parley) [ -x "$PARLEY" ] || { echo "bench: $PARLEY missing: run make build" >&2; exit 1; } ;;
	kamailio) command -v kamailio >/dev/null || { echo "bench: kamailio not installed (make deps)" >&2; exit 1; } ;;
	*) echo "bench: unknown server '$s' (parley, kamailio; or attack alone)" >&2; exit 2 ;;
	esac
done
command -v sipp >/dev/null || { echo "bench: sipp missing (package sip-tester; make deps)" >&2; exit 1; }
if [[ " $PASSES " == *" tls "* ]] && ! command -v stunnel >/dev/null; then
	echo "bench: stunnel missing (package stunnel4; make deps): no TLS passes" >&2
	PASSES=${PASSES//tls/}
fi
# The TLS idle-connection pass and the stream passes hold thousands of descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [[ $PASSES == *relay* ]] && [ ! -x "${RTPENGINE_BIN:-/usr/bin/rtpengine}" ]; then
	echo "bench: rtpengine missing (package rtpengine-daemon; make deps): no relay pass" >&2
	PASSES=${PASSES//relay/}
fi

WORK=$(mktemp -d /tmp/parley-bench.XXXXXX)
PIDS=()   # every long-lived process we started
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
# shellcheck source=bench/relay.sh
. "$HERE/relay.sh"
# shellcheck source=bench/stream.sh
. "$HERE/stream.sh"
# shellcheck source=bench/ops.sh
. "$HERE/ops.sh"
cleanup() {
	local p
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	rm -f "$WORK"/relay/*/*.db* "$WORK"/relay/*/kamailio.sqlite
	if [ "${KEEP:-1}" = 1 ]; then rm -f "$WORK"/*/*.db* "$WORK"/*/kamailio.sqlite; echo "logs: $WORK"
	else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

SRV_PORT=$($STATS port) UAS_PORT=$($STATS port)
USERS=$WORK/users
# the idle-TLS pass registers IDLE_N users, the other passes N: enough users for both, the
# calls among the first N (the ones the reg passes register)
IDLE_N=${IDLE_N:-10000}
python3 "$HERE/gen-users.py" "$USERS" "$((N > IDLE_N ? N : IDLE_N))" bench.test "$UAS_PORT" --calls-of="$N"

# run_sipp SERVER TAG ROUND SCENARIO INJECTION LOCALPORT [sipp args]: one SIPp run against the
# server (SIPP_DEST, default 127.0.0.1:SRV_PORT); SCENARIO is in sipp/ unless it is an
# absolute path; prints the pass line (measured round) to stdout.
# start_uas SCENARIO DIR [sipp args]: the SIPp callee (sipp/SCENARIO, or a path, on UAS_PORT, in the
# background, its errors in DIR/uas-err.log); sets UAS_PID, or says why it did not start and
# returns 1
start_uas() {
	local out sf=$1 dir=$2
	shift 2
	[[ $sf == /* ]] || sf=$HERE/sipp/$sf
	out=$(cd "$dir" && ${SIPP_WRAP:-} sipp -sf "$sf" -i 127.0.0.1 -p "$UAS_PORT" -nostdin \
		-bg -trace_err -error_file "$dir/uas-err.log" "$@" 2>&1)
	UAS_PID=$(sed -n 's/.*PID=\[\([0-9]*\)\].*/\1/p' <<<"$out")
	if [ -z "$UAS_PID" ]; then
		echo "bench: cannot start the SIPp callee: $out" >&2
		return 1
	fi
	PIDS+=("$UAS_PID")
	sleep 0.3
}

run_sipp() {
	local srv=$1 tag=$2 round=$3 sf=$4 inf=$5 lport=$6; shift 6
	local dir=$WORK/$srv/$tag-$round c0 c1 t0 t1 rc sfp=$sf
	[[ $sf == /* ]] || sfp=$HERE/sipp/$sf
	mkdir -p "$dir"
	# a fresh local port per run: late retransmissions meant for the warm-up stay out of it
	[ "$lport" = auto ] && lport=$($STATS port)
	# Not against a server that died in an earlier run: SIPp would wait out its timeout. Seen
	# by the PID, as the SRV_DEAD=1 of that run is lost when it ran in a pipe (a subshell).
	if ! kill -0 "$SRV_PID" 2>/dev/null; then
		echo "bench: $srv $tag: the server is not running; no SIPp run" >&2
		echo "server=$srv pass=$tag ok=0 fail=$N retrans=0 rate=0 cpu_us=-1 p50_ms=-1 p99_ms=-1"
		return
	fi
	c0=$(bash "$HERE/cpu.sh" "$SRV_PID") t0=$(date +%s.%N)
	(cd "$dir" && timeout -k 5 "$SIPP_TIMEOUT" ${SIPP_WRAP:-} sipp "${SIPP_DEST:-127.0.0.1:$SRV_PORT}" -sf "$sfp" \
		-inf "$USERS/$inf" -m "$N" -r "$RATE" -l "$CONC" -i 127.0.0.1 -p "$lport" -nostdin \
		-trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 1 -trace_err -error_file err.log \
		-timeout $((SIPP_TIMEOUT - 10))s -timeout_error -default_behaviors all,-bye ${SIPP_BUFF:+-buff_size $SIPP_BUFF} "$@" \
		>out.log 2>&1)
	rc=$?
	t1=$(date +%s.%N) c1=$(bash "$HERE/cpu.sh" "$SRV_PID")
	# SIPp logs every stray message: keep the first 4 MB of its error log
	if [ "$(stat -c %s "$dir/err.log" 2>/dev/null || echo 0)" -gt 4194304 ]; then
		head -c 4194304 "$dir/err.log" >"$dir/err.head" && mv "$dir/err.head" "$dir/err.log"
	fi
	[ $rc -eq 124 ] && echo "bench: $srv $tag: SIPp killed after ${SIPP_TIMEOUT}s" >&2
	if ! kill -0 "$SRV_PID" 2>/dev/null; then
		wait "$SRV_PID" 2>/dev/null
		echo "bench: $srv DIED during the $tag pass ($round), exit status $? (128+N: signal N);" \
			"CPU figures of this pass are void; see $WORK/$srv/server.log" >&2
		SRV_DEAD=1
	fi
	if [ ! -s "$dir/stat.csv" ]; then
		echo "bench: $srv $tag: SIPp wrote no statistics (exit $rc), see $dir/out.log" >&2
		echo "server=$srv pass=$tag ok=0 fail=$N retrans=0 rate=0 cpu_us=-1 p50_ms=-1 p99_ms=-1"
		return
	fi
	[ "$SRV_DEAD" = 1 ] && c1=-1000000000
	echo "server=$srv round=$round $($STATS pass "$tag" "$dir/stat.csv" "$dir" "$t0" "$t1" "$c0" "$c1")"
}

start_server() { # SERVER -> sets SRV_PID
	local srv=$1 dir=$WORK/$1
	mkdir -p "$dir"
	case $srv in
	parley)
		"$PARLEY" user import "$USERS/parley-users.csv" --db "$dir/parley.db" >"$dir/import.log" 2>&1 ||
			{ cat "$dir/import.log" >&2; return 1; }
		# PARLEY_WRAP: a command put in front of the server, e.g. for instruction counts:
		# PARLEY_WRAP="valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out"
		${PARLEY_WRAP:-} "$PARLEY" serve --listen "udp:127.0.0.1:$SRV_PORT" --domain bench.test --db "$dir/parley.db" \
			--log-level warn ${PARLEY_ARGS---rate-limit 0} >"$dir/server.log" 2>&1 &
		SRV_PID=$!
		;;
	kamailio)
		SRV_PID=$(bash "$HERE/kamailio/start.sh" "$dir" "$USERS" "$SRV_PORT") || return 1
		;;
	esac
	PIDS+=("$SRV_PID")
	$STATS ping "$SRV_PORT" 30 >/dev/null ||
		{ echo "bench: $srv does not answer OPTIONS on 127.0.0.1:$SRV_PORT" >&2; return 1; }
}

LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
RESULTS=$WORK/results.txt
: >"$RESULTS"
for srv in "${SERVERS[@]}"; do
	[[ $PASSES == *reg* || $PASSES == *call* ]] || break
	echo "== $srv: N=$N conc=$CONC port=$SRV_PORT" >&2
	SRV_DEAD=0
	start_server "$srv" || exit 1
	# the call pass needs the callees registered: the reg pass (or its warm-up) does that
	if [[ $PASSES == *reg* || $PASSES == *call* ]]; then
		run_sipp "$srv" reg warmup reg_auth.xml users.csv auto >/dev/null
		if [[ $PASSES == *reg* && $SRV_DEAD = 0 ]]; then
			run_sipp "$srv" reg measured reg_auth.xml users.csv auto | tee -a "$RESULTS" >&2
		fi
	fi
	if [[ $PASSES == *call* && $SRV_DEAD = 0 ]]; then
		if start_uas uas.xml "$WORK/$srv"; then
			uas=$UAS_PID
			run_sipp "$srv" call warmup call_auth.xml calls.csv auto -d 0 >/dev/null
			run_sipp "$srv" call measured call_auth.xml calls.csv auto -d 0 | tee -a "$RESULTS" >&2
			stop_pid "$uas"
		fi
	fi
	stop_pid "$SRV_PID"
done
# The TCP and TLS passes (stream.sh): a fresh server per transport
for proto in tcp tls; do
	[[ " $PASSES " == *" $proto "* ]] || continue
	for srv in "${SERVERS[@]}"; do
		stream_pass "$srv" "$proto" || echo "bench: $srv: $proto passes not run" >&2
	done
done
if [[ " $PASSES " == *" tls "* ]]; then
	for srv in "${SERVERS[@]}"; do
		tls_idle_pass "$srv" || echo "bench: $srv: idle TLS pass not run" >&2
	done
fi
# The relay pass, RELAY_ROUNDS times, the servers taking turns (the first of one run goes
# last in the next), so that a change in the machine's load over the minutes of the pass
# weighs on both; the table gives each run and the medians.
if [[ $PASSES == *relay* ]]; then
	for ((run = 1; run <= RELAY_ROUNDS; run++)); do
		order=("${SERVERS[@]}")
		if ((run % 2 == 0)); then
			order=()
			for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do order+=("${SERVERS[i]}"); done
		fi
		for srv in "${order[@]}"; do
			relay_pass "$srv" "$run" || echo "bench: $srv: relay pass (run $run) not run" >&2
		done
	done
fi
if [[ " $PASSES " == *" ops "* && " ${SERVERS[*]} " == *" parley "* ]]; then
	ops_pass || echo "bench: ops pass not run" >&2
fi

echo
echo "SIP benchmark, $(nproc) cores, SIPp and the servers on the same machine, loopback UDP;"
echo "N=$N per pass (after one warm-up run), $CONC in flight, SIPp socket buffer ${SIPP_BUFF:-SIPp default};"
echo "cpu = server user+system per success;"
echo "p50/p99 over every transaction (reg: REGISTER..200 incl. the 401; call: INVITE..200 incl. the 407)."
[[ $PASSES == *relay* ]] && echo "relay: the call pass with SDP through rtpengine (one fresh local instance per server; Parley --media always, Kamailio's rtpengine module); cpu = the server's only."
for srv in "${SERVERS[@]}"; do
	case $srv in
	parley) echo "parley: $("$PARLEY" version 2>/dev/null | head -1), $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD -- src 2>/dev/null || echo '+dirty')" ;;
	kamailio) echo "kamailio: $(kamailio -v 2>/dev/null | head -1 | sed 's/^version: //'), 2 UDP workers, usrloc in memory, auth_db on SQLite" ;;
	esac
done
echo "load average before the run: $LOAD_BEFORE on $(nproc) cores$(python3 -c "print('  (WARNING: other processes compete for the CPU; throughput and latency are unreliable, CPU per transaction less so)' if $LOAD_BEFORE > 0.5 else '')")"
echo
status=0
if [ -s "$RESULTS" ]; then
	$STATS table "$RESULTS"
	status=$?
fi
if [ -s "$IDLE_RESULTS" ]; then
	echo
	idle_table || status=1
fi
if [ -s "$RELAY_RESULTS" ]; then
	echo
	relay_table || status=1
fi
if [ -s "$OPS_RESULTS" ]; then
	echo
	ops_table || status=1
fi
if [ "${MEM:-0}" = 1 ]; then
	bash "$HERE/mem.sh" || status=1
fi
if [[ " ${SERVERS[*]} " == *" parley "* && ${ATTACK:-1} = 1 ]]; then
	echo
	bash "$HERE/attack.sh" || status=1
fi
exit $status
