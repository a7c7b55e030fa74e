# relay.sh: the relay pass of bench.sh (sourced by bench.sh, not run; uses its start_server,
# run_sipp, stop_pid, PIDS, WORK, USERS, N, CONC, STATS, HERE).
#
# The call pass again, with every call's SDP through a media relay: a fresh rtpengine per
# server run (same settings each time), and the server restarted on a fresh database with its
# relay set-up:
#   parley    serve ... --rtpengine udp:127.0.0.1:NG --media always
#             (rtpengine `offer` on the INVITE, `answer` on the 200, `delete` on BYE)
#   kamailio  kamailio.cfg with WITH_RELAY (kamailio/start.sh, RTPENGINE_NG=NG): the rtpengine
#             module, rtpengine_offer / rtpengine_answer / rtpengine_delete
# then: reg run (unmeasured, registers the callees), relay warm-up, relay measured, with
# sipp/relay_call.xml -> proxy -> sipp/relay_uas.xml (INVITE and 200 carry SDP with one audio
# m= line; no RTP is sent: the pass measures signalling). The scenarios fail any call whose
# INVITE or 200 reached the other side without rtpengine's port in its SDP.
#
# Measured: the server's CPU per call exactly as in the other passes (cpu.sh on the server's
# PID and its descendants; rtpengine is not one of them); rtpengine's own CPU over the same
# measured run, printed apart and not counted; rtpengine's sessions at the end (ng
# `statistics`: sessionsown, what `rtpengine-ctl list numsessions` prints, and ng `list`):
# must be 0, every call deleted. Files: $WORK/relay/SERVER/ (rtpengine.log, server and SIPp logs).
#
# rtpengine flags beyond the usual (--interface=127.0.0.1 --listen-ng --foreground --table=-1
# --port-min/--port-max):
#   --config-file=none   the package's /etc/rtpengine/rtpengine.conf would add its own
#                        listeners (CLI 2224, HTTP 2225) and recording settings
#   --delete-delay=0     a deleted call goes at once (default: kept 30 s): the session count
#                        right after the pass is then the calls nobody deleted, and ports do
#                        not pile up (10,000 calls in a few seconds x 4 ports)
#   --timeout/--silent-timeout/--offer-timeout=3600   no RTP flows, so rtpengine's own
#                        timeouts (60 s) would end undeleted calls quietly: kept, they show
#   --log-stderr --log-level=RELAY_LOG_LEVEL (5: notice; 6 logs every command) to
#                        rtpengine.log, not the terminal
#   RTP ports 10000-29999 (RELAY_PORT_MIN/MAX are fixed: the scenarios check for them; below
#                        the kernel's ephemeral range, where bench.sh picks its ports): 5,000
#                        calls at once, CONC=200 needs 800
# env: RELAY_LOG_LEVEL=5 RTPENGINE_BIN=/usr/bin/rtpengine
RELAY_PORT_MIN=10000 RELAY_PORT_MAX=29999
RELAY_RESULTS=$WORK/relay-results.txt RELAY_RUNS=$WORK/relay-runs.txt

rtpe_start() { # DIR -> sets RTPE_PID, RTPE_NG
	local dir=$1
	RTPE_NG=$($STATS port)
	"${RTPENGINE_BIN:-/usr/bin/rtpengine}" --config-file=none --interface=127.0.0.1 \
		--listen-ng=127.0.0.1:"$RTPE_NG" --foreground --table=-1 \
		--port-min=$RELAY_PORT_MIN --port-max=$RELAY_PORT_MAX --delete-delay=0 \
		--timeout=3600 --silent-timeout=3600 --offer-timeout=3600 \
		--log-stderr --log-level="${RELAY_LOG_LEVEL:-5}" >"$dir/rtpengine.log" 2>&1 &
	RTPE_PID=$!
	PIDS+=("$RTPE_PID")
	python3 "$HERE/rtpe.py" ping "$RTPE_NG" 10 ||
		{ echo "bench: rtpengine does not answer ng ping on 127.0.0.1:$RTPE_NG; see $dir/rtpengine.log" >&2; return 1; }
}

# relay_sessions PORT: rtpengine's session figures; waits up to 5 s for in-flight deletes
# (a BYE's delete may trail its 200 by a moment) before taking the count
relay_sessions() {
	local out
	for _ in $(seq 10); do
		out=$(python3 "$HERE/rtpe.py" sessions "$1" 2>/dev/null)
		[[ $out == sessions=0\ calls=0* ]] && break
		sleep 0.5
	done
	echo "$out"
}

relay_pass() { # SERVER RUN: the whole relay pass for one server; appends to RELAY_RUNS and RELAY_RESULTS
	local srv=$1 run=$2 rw=$WORK/relay dir t0 r0=0 r1=0 out uas line sess="sessions=? calls=?"
	dir=$rw/$srv
	mkdir -p "$dir"
	echo "== $srv relay (run $run): N=$N conc=$CONC, fresh rtpengine and fresh server" >&2
	t0=$(date +%s.%N)
	SRV_DEAD=0
	if ! rtpe_start "$dir"; then
		echo "server=$srv run=$run notrun=rtpengine_did_not_start" >>"$RELAY_RESULTS"
		stop_pid "$RTPE_PID"
		return 1
	fi
	local started=0
	case $srv in
	parley) PARLEY_ARGS="${PARLEY_ARGS---rate-limit 0} --rtpengine udp:127.0.0.1:$RTPE_NG --media always" \
		WORK=$rw start_server parley && started=1 ;;
	kamailio) RTPENGINE_NG=$RTPE_NG WORK=$rw start_server kamailio && started=1 ;;
	esac
	if [ $started = 0 ]; then
		echo "bench: $srv did not start with its relay set-up; the end of its log:" >&2
		tail -n 3 "$dir/server.log" "$dir/log" 2>/dev/null >&2
		echo "server=$srv run=$run notrun=it_did_not_start_with_its_relay_set-up" >>"$RELAY_RESULTS"
		stop_pid "$SRV_PID"
		stop_pid "$RTPE_PID"
		return 1
	fi
	WORK=$rw run_sipp "$srv" reg warmup reg_auth.xml users.csv auto >/dev/null
	if [ "$SRV_DEAD" = 0 ]; then
		if start_uas relay_uas.xml "$dir"; then
			uas=$UAS_PID
			WORK=$rw run_sipp "$srv" relay warmup relay_call.xml calls.csv auto -d 0 >/dev/null
			echo "bench: $srv relay: rtpengine after the warm-up: $(relay_sessions "$RTPE_NG")" >&2
			r0=$(bash "$HERE/cpu.sh" "$RTPE_PID")
			line=$(WORK=$rw run_sipp "$srv" relay measured relay_call.xml calls.csv auto -d 0)
			r1=$(bash "$HERE/cpu.sh" "$RTPE_PID")
			echo "$line run=$run" | tee -a "$RELAY_RUNS" >&2
			stop_pid "$uas"
			sess=$(relay_sessions "$RTPE_NG")
			# the call-IDs still in rtpengine, if any
			python3 "$HERE/rtpe.py" sessions "$RTPE_NG" 2>"$dir/sessions-left.txt" >/dev/null
		fi
	fi
	if ! kill -0 "$RTPE_PID" 2>/dev/null; then
		echo "bench: rtpengine DIED during the $srv relay pass; see $dir/rtpengine.log" >&2
		sess="sessions=? calls=?"
	fi
	stop_pid "$SRV_PID"
	stop_pid "$RTPE_PID"
	rm -f "$dir"/*.db* "$dir"/kamailio.sqlite
	line="server=$srv run=$run $sess rtpe_cpu_ms=$(((r1 - r0) / 1000)) pass_secs=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')")"
	echo "$line" >>"$RELAY_RESULTS"
	echo "bench: $srv relay: $line" >&2
}

relay_table() { # the relay table and the Parley/Kamailio line (relay_table.py); 1 on a leak or a pass not run
	python3 "$HERE/relay_table.py" "$RELAY_RUNS" "$RELAY_RESULTS"
}
