#!/bin/bash
# mem.sh: Parley's memory and reload pass (bench.sh runs it with MEM=1; or bash bench/mem.sh).
# 1. imports MEM_N users (u00000.., bench.test) into a fresh database, starts parley serve
#    (persistence on: the default write-behind flush) and reads its VmRSS with no bindings;
# 2. registers every user once with SIPp's authenticated scenario (sipp/reg_auth.xml:
#    REGISTER -> 401 -> REGISTER with digest -> 200), closed loop, MEM_CONC in flight;
# 3. reads VmRSS 2 s after the load and again MEM_SETTLE s later (transactions gone):
#    bytes per binding = (RSS - RSS with no bindings) / bindings, bindings = rows in the
#    database after a clean stop (SIGTERM flushes);
# 4. restarts the server on the same database and times exec -> first answer to OPTIONS
#    (Parley loads every binding before it opens its socket, so an answer means loaded),
#    then reads VmRSS of the reloaded server.
# Also printed: VmRSS of a server on an empty database (no users), for reference.
# When fewer than 1,000,000 bindings were held, the 1M figures are linear extrapolations and
# say so. env: MEM_N=1000000 MEM_CONC=200 MEM_RATE=50000 MEM_TIMEOUT=3600 (s, the SIPp load)
#      MEM_SETTLE=40 (s idle before the second RSS reading) PARLEY_BIN=build/parley KEEP=0 (1: keep the work folder, database included)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PARLEY=${PARLEY_BIN:-$ROOT/build/parley}
MEM_N=${MEM_N:-1000000} MEM_CONC=${MEM_CONC:-200} MEM_RATE=${MEM_RATE:-50000}
MEM_TIMEOUT=${MEM_TIMEOUT:-3600} MEM_SETTLE=${MEM_SETTLE:-40}
STATS="python3 $HERE/stats.py"
[ -x "$PARLEY" ] || { echo "mem: $PARLEY missing: run make build" >&2; exit 1; }
command -v sipp >/dev/null || { echo "mem: sipp missing (package sip-tester)" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "mem: sqlite3 missing" >&2; exit 1; }

WORK=$(mktemp -d /tmp/parley-mem.XXXXXX)
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", b - a }'; }
SRV_PID=
stop_srv() { # SIGTERM the server, wait up to 120 s (it flushes), then SIGKILL; sets STOP_S
	local p=$SRV_PID t0 i
	STOP_S=0
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || { SRV_PID=; return 0; }
	t0=$(date +%s.%N)
	kill -TERM "$p"
	for i in $(seq 1200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$p" 2>/dev/null; then
		echo "mem: server did not stop within 120 s of SIGTERM: killed" >&2
		kill -KILL "$p"
	fi
	wait "$p" 2>/dev/null
	STOP_RC=$?
	STOP_S=$(secs "$t0" "$(now)")
	SRV_PID=
}
cleanup() {
	stop_srv
	[ -n "${SIPP_PID:-}" ] && kill "$SIPP_PID" 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then echo "mem: work folder $WORK"
	else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

PORT=$($STATS port) REG_PORT=$($STATS port) CONTACT_PORT=$($STATS port)
# start DB -> SRV_PID, START_S (exec -> first OPTIONS answer, seconds)
# The OPTIONS probe (every 5 ms) starts before the server, so its own start-up is not timed.
start_srv() {
	local t0 out pp i
	rm -f "$WORK/ping.ready"
	$STATS ping "$PORT" 300 "$WORK/ping.ready" >"$WORK/ping.out" &
	pp=$!
	for i in $(seq 600); do [ -e "$WORK/ping.ready" ] && break; sleep 0.05; done
	t0=$(now)
	"$PARLEY" serve --listen "udp:127.0.0.1:$PORT" --domain bench.test --db "$1" --log-level warn --rate-limit 0 \
		>>"$WORK/server.log" 2>&1 &
	SRV_PID=$!
	wait "$pp" || { echo "mem: server does not answer OPTIONS in 300 s" >&2; exit 1; }
	out=$(cat "$WORK/ping.out")
	START_S=$(awk -v a="$t0" -v b="${out#* }" 'BEGIN { printf "%.3f\n", b - a }')
}
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$SRV_PID/status"; }
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$SRV_PID/status"; }

echo "== memory pass: $MEM_N users, port $PORT, work $WORK" >&2
# reference: a server with nothing in its database
start_srv "$WORK/empty.db"; sleep 0.5; RSS_EMPTY=$(rss); stop_srv

t0=$(now)
python3 "$HERE/gen-users.py" "$WORK/users" "$MEM_N" bench.test "$CONTACT_PORT" --no-sql --no-calls
t1=$(now)
"$PARLEY" user import "$WORK/users/parley-users.csv" --db "$WORK/parley.db" >"$WORK/import.log" 2>&1 ||
	{ cat "$WORK/import.log" >&2; exit 1; }
t2=$(now)
IMPORT_S=$(secs "$t1" "$t2")
echo "mem: users generated in $(secs "$t0" "$t1") s, imported in $IMPORT_S s" >&2

start_srv "$WORK/parley.db"; sleep 0.5
RSS_USERS=$(rss) START_USERS_S=$START_S
echo "mem: server up in $START_S s with $MEM_N users, 0 bindings, VmRSS $RSS_USERS kB" >&2

mkdir -p "$WORK/load"
c0=$(bash "$HERE/cpu.sh" "$SRV_PID") t0=$(now)
(cd "$WORK/load" && timeout -k 5 "$MEM_TIMEOUT" sipp 127.0.0.1:"$PORT" -sf "$HERE/sipp/reg_auth.xml" \
	-inf "$WORK/users/users.csv" -m "$MEM_N" -r "$MEM_RATE" -l "$MEM_CONC" -i 127.0.0.1 -p "$REG_PORT" \
	-nostdin -trace_stat -stf stat.csv -fd 5 -trace_rtt -rtt_freq 1000 -trace_err -error_file err.log \
	-timeout $((MEM_TIMEOUT - 10))s -timeout_error -default_behaviors all,-bye >out.log 2>&1)
t1=$(now) c1=$(bash "$HERE/cpu.sh" "$SRV_PID")
kill -0 "$SRV_PID" 2>/dev/null || { echo "mem: the server DIED during the load; see $WORK/server.log" >&2; KEEP=1; exit 1; }
LOAD=$($STATS pass reg "$WORK/load/stat.csv" "$WORK/load" "$t0" "$t1" "$c0" "$c1")
echo "mem: load: $LOAD" >&2
sleep 2   # let the write-behind flush settle
RSS_LOADED=$(rss) HWM_LOADED=$(hwm)
# then wait past the transactions' lifetime (Timer J = 64*T1 = 32 s) and read it again
sleep "$MEM_SETTLE"
RSS_SETTLED=$(rss)
echo "mem: VmRSS $RSS_LOADED kB 2 s after the load, $RSS_SETTLED kB after $MEM_SETTLE s more" >&2
stop_srv
STOP1_S=$STOP_S STOP1_RC=$STOP_RC
BINDINGS=$(sqlite3 "$WORK/parley.db" "SELECT count(*) FROM bindings")
DBSIZE=$(du -k "$WORK/parley.db" | cut -f1)

start_srv "$WORK/parley.db"; RELOAD_S=$START_S
sleep 0.5
RSS_RELOADED=$(rss)
stop_srv

ok=$(sed 's/.* ok=\([0-9]*\).*/\1/' <<<"$LOAD") fail=$(sed 's/.* fail=\([0-9]*\).*/\1/' <<<"$LOAD")
rate=$(sed 's/.* rate=\([0-9]*\).*/\1/' <<<"$LOAD") lsecs=$(sed 's/.* secs=\([0-9.]*\).*/\1/' <<<"$LOAD")
cpu=$(sed 's/.* cpu_us=\([0-9a-z.]*\).*/\1/' <<<"$LOAD")
python3 - "$MEM_N" "$BINDINGS" "$RSS_EMPTY" "$RSS_USERS" "$RSS_LOADED" "$HWM_LOADED" "$RSS_SETTLED" "$RSS_RELOADED" \
	"$RELOAD_S" "$START_USERS_S" "$IMPORT_S" "$STOP1_S" "$STOP1_RC" "$DBSIZE" "$ok" "$fail" "$rate" "$lsecs" "$cpu" \
	"$(sed 's/.* p50_ms=\([-0-9.]*\).*/\1/' <<<"$LOAD")" "$(sed 's/.* p99_ms=\([-0-9.]*\).*/\1/' <<<"$LOAD")" <<'PY'
import sys
(n, b, r_empty, r_users, r_loaded, hwm, r_set, r_rel, reload_s, start_users_s, import_s, stop_s, stop_rc,
 dbkb, ok, fail, rate, lsecs, cpu, p50, p99) = sys.argv[1:]
n, b, r_empty, r_users, r_loaded, hwm, r_set, r_rel, dbkb = map(int, (n, b, r_empty, r_users, r_loaded, hwm, r_set, r_rel, dbkb))
reload_s, start_users_s = float(reload_s), float(start_users_s)
per = lambda kb: kb * 1024 / b if b else float("nan")
print(f"\nMemory and reload, {n} users ({b} bindings held; target: 1,000,000)")
print(f"  bulk REGISTER load    {ok} ok, {fail} failed (must be 0) in {lsecs} s = {rate} reg/s, "
      f"{cpu} µs server CPU per registration, p50/p99 {p50}/{p99} ms")
print(f"  users import          {import_s} s")
print(f"  VmRSS empty database  {r_empty} kB   with {n} users, no bindings: {r_users} kB "
      f"(start {start_users_s:.3f} s)")
print(f"  VmRSS with bindings   {r_loaded} kB 2 s after the load (VmHWM {hwm} kB), {r_set} kB after "
      f"settling, {r_rel} kB after restart")
print(f"  RSS per binding       {per(r_rel - r_users):.0f} B after reload, {per(r_set - r_users):.0f} B settled, "
      f"{per(r_loaded - r_users):.0f} B just after the load   (RSS - RSS with the users and no bindings)"
      f"   target <= 300 B")
print(f"                        {per(r_rel - r_empty):.0f} B after reload counting the users too "
      f"(RSS - RSS on an empty database)")
print(f"  SIGTERM -> exit       {stop_s} s (exit status {stop_rc})   database {dbkb // 1024} MB")
print(f"  reload                {reload_s:.3f} s exec -> first OPTIONS answer with {b} bindings "
      f"({reload_s - start_users_s:.3f} s more than with none)   target <= 5 s")
if b and b < 1000000:
    f = 1000000 / b
    print(f"  EXTRAPOLATED to 1M (linear from {b} bindings, not measured): "
          f"reload ~{start_users_s + (reload_s - start_users_s) * f:.2f} s, "
          f"RSS after reload ~{(r_users + (r_rel - r_users) * f) / 1024:.0f} MB")
PY
