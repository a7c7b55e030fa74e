#!/bin/bash
# Start the benchmark peer: Kamailio as registrar + digest auth (SQLite) + record-routing
# stateful proxy on udp:127.0.0.1:PORT, with the benchmark users (adapted from
# ../shared/bench/kamailio/start.sh). Prints Kamailio's main PID (its children are the workers).
# usage: start.sh RUNDIR USERDIR [PORT]   (RUNDIR: fresh folder for db, pid, ctl socket, log;
#        USERDIR: made by ../gen-users.py; needs packages kamailio kamailio-sqlite-modules sqlite3)
# env KAM_STREAM=tcp:PORT|tls:PORT: a TCP or TLS listener on 127.0.0.1:PORT too; for TLS,
#        KAM_TLS_DIR holds server.pem and server.key (bench/stream.sh makes them)
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
STREAM_PORT=${KAM_STREAM:-}; STREAM_PORT=${STREAM_PORT#*:}
sed -e "/^# /!s|udp:127.0.0.1:5070|udp:127.0.0.1:$PORT|" -e "/^# /!s|/tmp/kam-bench|$RUN|g" \
  -e "/^# /!s|127.0.0.1:5071|127.0.0.1:${STREAM_PORT:-5071}|" \
  "$HERE/kamailio.cfg" > "$RUN/kamailio.cfg"
case ${KAM_STREAM:-} in
tcp:*) sed -i -e "1a #!define WITH_TCP" -e "1a #!define WITH_STREAMS" "$RUN/kamailio.cfg" ;;
tls:*)
  sed -i -e "1a #!define WITH_TLS" -e "1a #!define WITH_STREAMS" "$RUN/kamailio.cfg"
  printf '[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\nprivate_key = %s\ncertificate = %s\n\n[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n' \
    "$KAM_TLS_DIR/server.key" "$KAM_TLS_DIR/server.pem" >"$RUN/tls.cfg" ;;
'') ;;
*) echo "start.sh: KAM_STREAM must be tcp:PORT or tls:PORT, not '$KAM_STREAM'" >&2; exit 2 ;;
esac
if [ -n "${RTPENGINE_NG:-}" ]; then
  sed -i -e "1a #!define WITH_RELAY" -e "1a #!define RTPENGINE_SOCK \"udp:127.0.0.1:$RTPENGINE_NG\"" "$RUN/kamailio.cfg"
fi
kamailio -c -f "$RUN/kamailio.cfg" >"$RUN/check.log" 2>&1 || { cat "$RUN/check.log" >&2; exit 1; }
# -m/-M: enough shared/private memory; -x tlsf: the production allocator (default is a debug one)
kamailio -f "$RUN/kamailio.cfg" -P "$RUN/pid" -m 1024 -M 32 -x tlsf -E -w "$RUN" >"$RUN/log" 2>&1
for i in $(seq 50); do [ -s "$RUN/pid" ] && break; sleep 0.1; done
[ -s "$RUN/pid" ] || { echo "kamailio did not start; see $RUN/log" >&2; exit 1; }
cat "$RUN/pid"
