# ops.sh: the operations pass of bench.sh (sourced, not run; uses its start_server, start_uas,
# run_sipp, stop_pid, PIDS, WORK, N, CONC, STATS, HERE, PARLEY).
#
# What the operator's tools cost Parley: the reg and call passes run on a Parley with nothing
# beside it ("off": no --http, --capture-memory 0) and on one with the HTTP endpoint on, message capture on and a real
# Prometheus scraping /metrics every second ("on"):
#   on = serve ... --http 127.0.0.1:P --capture-memory $OPS_CAPTURE (default 8M, what auto gives with --http)
#        + prometheus (Debian's) with scrape_interval 1s on http://127.0.0.1:P/metrics
# Each run is a fresh server on a fresh database: reg warm-up, reg measured, the SIPp callee,
# call warm-up, call measured. OPS_ROUNDS (7) runs of each, off and on taking turns (off
# first in odd runs, on first in even ones), so that a drift of the machine's load over the
# pass weighs on both; the table gives the medians and the change, target within 10%. Runs
# of one configuration spread about ±10% here, and a median of 5 moved by as much from one
# pass to the next: 7 it is.
# Prometheus runs in the idle scheduling class (chrt --idle) on one OS thread: it gets a core
# only when the server and SIPp leave one idle, as if it ran on a machine of its own, and
# still scrapes every second (its scrape count over the run is printed and checked). At
# nice 19 it took its CPU from the server and SIPp in turns on the two cores. In the idle
# class it costs the server nothing measurable: a Prometheus scraping only itself beside a
# plain Parley gave +1.7% (reg) and +0.5% (call), within the noise (bench/README.md).
# The server's CPU is its threads' time on the CPU from schedstat (cpu.sh), in nanoseconds.
# Prometheus's own CPU is not counted (cpu.sh counts the server's process); its scrape count
# over the measured runs is printed, so that a pass where it scraped nothing shows.
# env: OPS_ROUNDS=7 OPS_N=30000 OPS_CAPTURE=8M PROMETHEUS_BIN=prometheus
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
	# On a machine of its own in real life; here it shares the cores with SIPp and the
	# server, so it runs on one OS thread in the idle class (see above), and what it still
	# takes from the server's caches is measured with the rest.
	GOMAXPROCS=1 chrt --idle 0 "${PROMETHEUS_BIN:-prometheus}" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/prom-data" \
		--web.listen-address=127.0.0.1:"$PROM_PORT" >"$dir/prometheus.log" 2>&1 &
	PROM_PID=$!
	PIDS+=("$PROM_PID")
	# ready, and one scrape of Parley done: the measured runs then have it scraping all along
	for _ in $(seq 150); do
		# from its first scrape on, the run's seconds are counted (the table checks one a second)
		[ "$(ops_scrapes)" -ge 1 ] 2>/dev/null && { PROM_T0=$(date +%s); return 0; }
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

ops_run() { # MODE(off|on) RUN: one server run; appends its pass lines to OPS_RESULTS
	local mode=$1 run=$2 ow=$WORK/ops-$1 dir args="${PARLEY_ARGS---rate-limit 0}" hp uas scrapes=- secs
	dir=$ow/parley
	mkdir -p "$dir"
	rm -rf "$dir/prom-data"
	echo "== parley ops $mode (run $run): N=$N conc=$CONC" >&2
	SRV_DEAD=0
	if [ "$mode" = on ]; then
		hp=$($STATS port tcp)
		args="$args --http 127.0.0.1:$hp${OPS_CAPTURE:+ --capture-memory $OPS_CAPTURE}"
	else
		args="$args --capture-memory 0" # capture is on by default: off means off
	fi
	if ! PARLEY_ARGS=$args WORK=$ow start_server parley; then
		echo "bench: parley did not start for the ops pass ($mode); the end of its log:" >&2
		tail -n 3 "$dir/server.log" >&2
		stop_pid "$SRV_PID"
		return 1
	fi
	if [ "$mode" = on ] && ! ops_prometheus_start "$dir" "$hp"; then
		stop_pid "$SRV_PID"
		return 1
	fi
	WORK=$ow run_sipp parley reg warmup reg_auth.xml users.csv auto >/dev/null
	[ "$SRV_DEAD" = 0 ] && N=$OPS_N WORK=$ow run_sipp parley reg measured reg_auth.xml users.csv auto |
		sed "s/^server=parley /server=$mode /; s/\$/ run=$run/" | tee -a "$OPS_RESULTS" >&2
	if [ "$SRV_DEAD" = 0 ] && start_uas uas.xml "$dir"; then
		uas=$UAS_PID
		WORK=$ow run_sipp parley call warmup call_auth.xml calls.csv auto -d 0 >/dev/null
		N=$OPS_N WORK=$ow run_sipp parley call measured call_auth.xml calls.csv auto -d 0 |
			sed "s/^server=parley /server=$mode /; s/\$/ run=$run/" | tee -a "$OPS_RESULTS" >&2
		stop_pid "$uas"
	fi
	if [ "$mode" = on ]; then
		scrapes=$(ops_scrapes)
		secs=$(($(date +%s) - PROM_T0))
		echo "bench: ops on (run $run): prometheus scraped parley $scrapes times in $secs s" >&2
		echo "server=on run=$run scrapes=$scrapes secs=$secs" >>"$OPS_RESULTS"
		stop_pid "$PROM_PID"
	fi
	stop_pid "$SRV_PID"
	rm -f "$dir"/*.db*
}

ops_pass() {
	local run
	command -v "${PROMETHEUS_BIN:-prometheus}" >/dev/null ||
		{ echo "bench: prometheus missing (package prometheus; make deps): no ops pass" >&2; return 1; }
	for ((run = 1; run <= ${OPS_ROUNDS:-7}; run++)); do
		if ((run % 2)); then ops_run off "$run"; ops_run on "$run"
		else ops_run on "$run"; ops_run off "$run"; fi
	done
}

ops_table() { # the medians off and on and the change; 1 when a run failed or none ran
	python3 - "$OPS_RESULTS" <<'EOF'
import statistics, sys
rows = [dict(x.split("=", 1) for x in l.split() if "=" in x) for l in open(sys.argv[1])]
print("ops pass: Parley alone (off) and with --http, --capture-memory and Prometheus scraping")
print("every second (on; Prometheus in the idle scheduling class); cpu = the server's CPU time")
print("per success, median over the runs.")
print(f"{'pass':6}  {'off µs':>7}  {'on µs':>6}  {'change':>7}  {'runs':>4}  {'fail':>4}  target (within 10%)")
status = 0
for p in ("reg", "call"):
    def cpus(mode):
        return [float(r["cpu_us"]) for r in rows if r.get("pass") == p and r.get("server") == mode
                and r.get("cpu_us", "void") not in ("void", "-1")]
    fails = sum(int(r.get("fail", 0)) for r in rows if r.get("pass") == p)
    off, on = cpus("off"), cpus("on")
    if not off or not on:
        print(f"{p:6}  not run"); status = 1; continue
    a, b = statistics.median(off), statistics.median(on)
    ch = (b - a) / a * 100
    ok = ch <= 10 and fails == 0
    status |= 0 if ok else 1
    print(f"{p:6}  {a:7.1f}  {b:6.1f}  {ch:+6.1f}%  {len(on):4}  {fails:4}  {'met' if ok else 'NOT met'}")
    print(f"        each run, off: {' '.join(f'{x:g}' for x in off)}; on: {' '.join(f'{x:g}' for x in on)}")
scr = [r for r in rows if "scrapes" in r]
print("prometheus scrapes per 'on' run (and its seconds): "
      + (" ".join(f"{r['scrapes']} ({r.get('secs', '?')} s)" for r in scr) if scr else "none"))
# Scraping every second means about one scrape a second of the run; an idle-class
# Prometheus that the load starved of CPU would scrape late and less.
late = [r for r in scr if r["scrapes"].isdigit() and r.get("secs", "").isdigit()
        and int(r["scrapes"]) < 0.8 * (int(r["secs"]) - 1)]
if late:
    print("WARNING: Prometheus scraped less than once a second in run(s) "
          + " ".join(r.get("run", "?") for r in late)); status = 1
if any(r["scrapes"] in ("0", "?") for r in scr):
    print("WARNING: a run where Prometheus scraped nothing measures nothing"); status = 1
sys.exit(status)
EOF
}
