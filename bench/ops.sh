# ops.sh: the operations pass of bench.sh (sourced, not run; uses its start_server, start_uas,
# run_sipp, stop_pid, PIDS, WORK, N, CONC, STATS, HERE, PARLEY).
#
# What the operator's tools cost Parley: the reg and call passes run on a Parley with nothing
# beside it ("off": no --http, --capture-memory 0) and on one with the HTTP endpoint on,
# message capture on and a real Prometheus scraping /metrics every second ("on"):
#   on = serve ... --http 127.0.0.1:P --capture-memory $OPS_CAPTURE (default 8M, what auto gives with --http)
#        + prometheus (Debian's) with scrape_interval 1s on http://127.0.0.1:P/metrics
# Both servers run side by side for the whole pass, each on its own fresh database, and the
# measured runs take turns between them: OPS_ROUNDS (9) rounds of one run on each (off first
# in odd rounds, on first in even ones), reg runs first, then call runs (one SIPp callee
# serves both). While the off server is measured, Prometheus is stopped (SIGSTOP), so that
# "off" has nothing of it; it goes on (SIGCONT) for the on server's run and scrapes at once,
# as its scrape is overdue. Why runs that close in time: this machine's speed moves by 10 to
# 50% for tens of seconds at a time, whatever runs (a VM on a shared host); a fresh server per
# run (15 s apart) put whole phases of it on one side. Each round's two runs, a second or
# two apart, see the same machine: the figure judged is the median over the rounds of each
# round's change (on / off - 1); the medians of each side are printed beside it.
# Where things run (on a machine of 2 CPUs or more; OPS_PIN=0 turns it off): the servers on
# CPU 0, SIPp and Prometheus on CPU 1, as if Prometheus had a machine of its own, as it has in
# real life. Prometheus also runs in the idle scheduling class (chrt --idle) on one OS thread,
# so that it never delays SIPp. Left to the scheduler, Prometheus ran in the server's idle
# moments on its core, and that cost the server +18% per registration and +9% per call in a
# pinned test where it shared the server's core (bench/README.md): the price of two processes
# on one core, which is not Parley's, and which the table would otherwise show or not
# depending on where the scheduler put things.
# The server's CPU is its threads' time on the CPU from schedstat (cpu.sh), in nanoseconds.
# Prometheus's own CPU is not counted; its scrapes, and the seconds it was let run, are
# printed and checked (about one a second).
# env: OPS_ROUNDS=9 OPS_N=30000 OPS_CAPTURE=8M OPS_PIN=1 PROMETHEUS_BIN=prometheus
OPS_RESULTS=$WORK/ops-results.txt
OPS_N=${OPS_N:-30000} # measured transactions per run (SIPp reads the N users' lines round)
OPS_CAPTURE=${OPS_CAPTURE-8M} # the ring auto gives a server with --http; empty: none (to try the rest)

ops_prometheus_start() { # DIR HTTP_PORT -> sets PROM_PID, PROM_PORT
	local dir=$1 target=127.0.0.1:$2
	PROM_PORT=$($STATS port tcp)
	cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: parley
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ['$target']
EOF
	# On a machine of its own in real life; here on SIPp's CPU, one OS thread, in the idle
	# class (see the head of this file).
	GOMAXPROCS=1 $PROM_WRAP chrt --idle 0 "${PROMETHEUS_BIN:-prometheus}" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/prom-data" \
		--web.listen-address=127.0.0.1:"$PROM_PORT" >"$dir/prometheus.log" 2>&1 &
	PROM_PID=$!
	PIDS+=("$PROM_PID")
	# ready, and one scrape of Parley done: the measured runs then have it scraping all along
	for _ in $(seq 150); do
		[ "$(ops_scrapes)" -ge 1 ] 2>/dev/null && return 0
		sleep 0.2
	done
	echo "bench: prometheus did not scrape parley within 30 s; see $dir/prometheus.log" >&2
	return 1
}

# ops_scrapes: how many scrapes of parley Prometheus made that succeeded (sum of up over all
# samples it holds), or "?" when it cannot tell
ops_scrapes() {
	curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=sum_over_time(up{job="parley"}[1h])' |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)' 2>/dev/null ||
		echo "?"
}

# Prometheus stopped while the off server works, and the seconds it was stopped (OPS_STOPPED)
ops_prom_pause() { OPS_T_STOP=$(date +%s.%N); kill -STOP "$PROM_PID"; }
ops_prom_resume() {
	kill -CONT "$PROM_PID"
	OPS_STOPPED=$(awk "BEGIN { print $OPS_STOPPED + $(date +%s.%N) - $OPS_T_STOP }")
}

# ops_run MODE(off|on) PASS(reg|call) ROUND(warmup|measured): one SIPp run on MODE's server,
# Prometheus stopped while off runs; sets OPS_LINE (run_sipp's result line). Not in a pipe:
# the pause's bookkeeping must stay in this shell. A server that died is seen by its PID,
# since run_sipp's SRV_DEAD is lost in the command substitution's subshell.
ops_run() {
	local mode=$1 pass=$2 round=$3 sf=reg_auth.xml inf=users.csv extra=()
	[ "$pass" = call ] && { sf=call_auth.xml inf=calls.csv extra=(-d 0); }
	SRV_PID=${OPS_PID[$mode]} SRV_PORT=${OPS_PORT[$mode]}
	[ "$mode" = off ] && ops_prom_pause
	OPS_LINE=$(WORK=$WORK/ops-$mode run_sipp parley "$pass" "$round" "$sf" "$inf" auto "${extra[@]}")
	[ "$mode" = off ] && ops_prom_resume
	kill -0 "$SRV_PID" 2>/dev/null ||
		{ OPS_DEAD=1; echo "bench: ops: the $mode server died; see $WORK/ops-$mode/parley/server.log" >&2; }
}

ops_pass() {
	local mode pass round hp t_start secs scrapes order
	command -v "${PROMETHEUS_BIN:-prometheus}" >/dev/null ||
		{ echo "bench: prometheus missing (package prometheus; make deps): no ops pass" >&2; return 1; }
	# the servers on CPU 0; SIPp and Prometheus on CPU 1 (see the head of this file)
	local PARLEY_WRAP=${PARLEY_WRAP:-} SIPP_WRAP=${SIPP_WRAP:-} PROM_WRAP=""
	if [ "${OPS_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
		PARLEY_WRAP="taskset -c 0 $PARLEY_WRAP" SIPP_WRAP="taskset -c 1 $SIPP_WRAP" PROM_WRAP="taskset -c 1"
		echo "bench: ops: the servers on CPU 0, SIPp and Prometheus on CPU 1" >&2
	fi
	declare -gA OPS_PID OPS_PORT
	# shellcheck disable=SC2034 # SRV_DEAD is read by run_sipp (bench.sh): none dead yet
	OPS_DEAD=0 OPS_STOPPED=0 SRV_DEAD=0 OPS_LINE=
	for mode in off on; do
		local args="${PARLEY_ARGS---rate-limit 0}"
		mkdir -p "$WORK/ops-$mode/parley"
		if [ "$mode" = on ]; then
			hp=$($STATS port tcp)
			args="$args --http 127.0.0.1:$hp${OPS_CAPTURE:+ --capture-memory $OPS_CAPTURE}"
		else
			args="$args --capture-memory 0" # capture is on by default: off means off
		fi
		SRV_PORT=$($STATS port)
		if ! PARLEY_ARGS=$args WORK=$WORK/ops-$mode start_server parley; then
			echo "bench: parley did not start for the ops pass ($mode); the end of its log:" >&2
			tail -n 3 "$WORK/ops-$mode/parley/server.log" >&2
			return 1
		fi
		OPS_PID[$mode]=$SRV_PID OPS_PORT[$mode]=$SRV_PORT
	done
	ops_prometheus_start "$WORK/ops-on/parley" "$hp" || return 1
	t_start=$(date +%s.%N)
	for pass in reg call; do
		if [ "$pass" = call ]; then
			start_uas uas.xml "$WORK/ops-on" || return 1
		fi
		# warm-ups of N (the reg one registers the callees), then the measured runs of OPS_N
		for mode in off on; do ops_run "$mode" "$pass" warmup; done
		for ((round = 1; round <= ${OPS_ROUNDS:-9}; round++)); do
			echo "== parley ops $pass, round $round: N=$OPS_N conc=$CONC" >&2
			order="off on"
			((round % 2)) || order="on off"
			for mode in $order; do
				N=$OPS_N ops_run "$mode" "$pass" measured
				sed "s/^server=parley /server=$mode /; s/\$/ run=$round/" <<<"$OPS_LINE" | tee -a "$OPS_RESULTS" >&2
			done
		done
	done
	stop_pid "$UAS_PID"
	scrapes=$(ops_scrapes)
	secs=$(awk "BEGIN { printf \"%d\", $(date +%s.%N) - $t_start - $OPS_STOPPED }")
	echo "bench: ops: prometheus scraped parley $scrapes times in the $secs s it was let run" >&2
	echo "server=on scrapes=$scrapes secs=$secs" >>"$OPS_RESULTS"
	stop_pid "$PROM_PID"
	for mode in off on; do
		stop_pid "${OPS_PID[$mode]}"
		rm -f "$WORK/ops-$mode/parley"/*.db*
	done
	return "$OPS_DEAD"
}

ops_table() { # the paired change and the medians; 1 when a run failed or none ran
	python3 - "$OPS_RESULTS" <<'EOF'
import statistics, sys
rows = [dict(x.split("=", 1) for x in l.split() if "=" in x) for l in open(sys.argv[1])]
print("ops pass: Parley alone (off) and with --http, --capture-memory and Prometheus scraping")
print("every second (on), side by side, taking turns; cpu = the server's CPU time per success.")
print("change = median over the rounds of each round's on / off - 1 (runs a second apart).")
print(f"{'pass':6}  {'off µs':>7}  {'on µs':>6}  {'change':>7}  {'rounds':>6}  {'fail':>4}  target (within 10%)")
status = 0
for p in ("reg", "call"):
    def cpu(mode):
        return {r["run"]: float(r["cpu_us"]) for r in rows if r.get("pass") == p and r.get("server") == mode
                and r.get("cpu_us", "void") not in ("void", "-1")}
    fails = sum(int(r.get("fail", 0)) for r in rows if r.get("pass") == p)
    off, on = cpu("off"), cpu("on")
    rounds = sorted((k for k in off if k in on), key=int)
    if not rounds:
        print(f"{p:6}  not run"); status = 1; continue
    ch = statistics.median((on[k] / off[k] - 1) * 100 for k in rounds)
    ok = ch <= 10 and fails == 0
    status |= 0 if ok else 1
    print(f"{p:6}  {statistics.median(off.values()):7.1f}  {statistics.median(on.values()):6.1f}  {ch:+6.1f}%  "
          f"{len(rounds):6}  {fails:4}  {'met' if ok else 'NOT met'}")
    print("        each round, off/on (change): "
          + ", ".join(f"{off[k]:g}/{on[k]:g} ({(on[k] / off[k] - 1) * 100:+.0f}%)" for k in rounds))
scr = [r for r in rows if "scrapes" in r]
print("prometheus scrapes (and the seconds it was let run): "
      + (" ".join(f"{r['scrapes']} ({r.get('secs', '?')} s)" for r in scr) if scr else "none"))
# Scraping every second means about one scrape a second it ran; an idle-class Prometheus
# that the load starved of CPU would scrape late and less.
if any(r["scrapes"].isdigit() and r.get("secs", "").isdigit() and int(r["scrapes"]) < 0.8 * (int(r["secs"]) - 1)
       for r in scr):
    print("WARNING: Prometheus scraped less than once a second"); status = 1
if not scr or any(r["scrapes"] in ("0", "?") for r in scr):
    print("WARNING: a pass where Prometheus scraped nothing measures nothing"); status = 1
sys.exit(status)
EOF
}
