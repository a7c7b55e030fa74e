#!/bin/bash
# Start the benchmark peer: Kamailio as registrar + digest auth (SQLite) + record-routing
# stateful proxy on udp:127.0.0.1:PORT, with the benchmark users (adapted from
# ../shared/bench/kamailio/start.sh). Prints Kamailio's main PID (its children are the workers).
# usage: start.sh RUNDIR USERDIR [PORT]   (RUNDIR: fresh folder for db, pid, ctl socket, log;
#        USERDIR: made by ../gen-users.py; needs packages kamailio kamailio-sqlite-modules sqlite3)
# env RTPENGINE_NG=PORT: the relay set-up (kamailio.cfg's WITH_RELAY: calls' SDP through the
#        rtpengine whose ng control socket is udp:127.0.0.1:PORT)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=$1 USERS=$2 PORT=${3:-5070}
mkdir -p "$RUN"
rm -f "$RUN/kamailio.sqlite" "$RUN/pid"
cat /usr/share/kamailio/db_sqlite/standard-create.sql /usr/share/kamailio/db_sqlite/auth_db-create.sql \
  | sqlite3 "$RUN/kamailio.sqlite"
sqlite3 "$RUN/kamailio.sqlite" < "$USERS/users.sql"
sed -e "/^# /!s|udp:127.0.0.1:5070|udp:127.0.0.1:$PORT|" -e "/^# /!s|/tmp/kam-bench|$RUN|g" \
  "$HERE/kamailio.cfg" > "$RUN/kamailio.cfg"
if [ -n "${RTPENGINE_NG:-}" ]; then
  sed -i -e "1a #!define WITH_RELAY" -e "1a #!define RTPENGINE_SOCK \"udp:127.0.0.1:$RTPENGINE_NG\"" "$RUN/kamailio.cfg"
fi
kamailio -c -f "$RUN/kamailio.cfg" >"$RUN/check.log" 2>&1 || { cat "$RUN/check.log" >&2; exit 1; }
# -m/-M: enough shared/private memory; -x tlsf: the production allocator (default is a debug one)
kamailio -f "$RUN/kamailio.cfg" -P "$RUN/pid" -m 1024 -M 32 -x tlsf -E -w "$RUN" >"$RUN/log" 2>&1
for i in $(seq 50); do [ -s "$RUN/pid" ] && break; sleep 0.1; done
[ -s "$RUN/pid" ] || { echo "kamailio did not start; see $RUN/log" >&2; exit 1; }
cat "$RUN/pid"
