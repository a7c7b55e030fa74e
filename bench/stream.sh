# stream.sh: the TCP and TLS passes of bench.sh (sourced by bench.sh, not run; uses its
# start_server, start_uas, run_sipp, stop_pid, PIDS, WORK, USERS, N, CONC, STATS, HERE).
#
# For each server and transport, a fresh server on a fresh database listening on UDP (for
# the start-up OPTIONS probe) and on the transport, then, all over persistent connections:
#   tcp-reg / tls-reg    the reg pass (sipp/reg_auth.xml) with SIPp -t t1: one connection,
#                        every registration over it; the Contact says ;transport=tcp|tls
#   tcp-call / tls-call  the call pass (sipp/call_auth.xml, -t t1) to the SIPp callee
#                        (sipp/uas.xml, -t t1) the registrations point at; each server opens
#                        its own connection to the callee and reuses it
#   tls-new              the reg pass with SIPp -t tn: a new connection, hence a new TLS
#                        handshake, per registration
# SIPp (Debian's) speaks no TLS: stunnel4 carries it. A client-mode stunnel takes SIPp's TCP
# and opens TLS to the server, verifying its certificate against the bench's CA; a
# server-mode stunnel in front of the callee takes the servers' TLS and hands TCP to SIPp.
# Both servers get the same certificate (EC P-256, made per run) and go through the same
# stunnels; stunnel's CPU is not counted for either (cpu.sh counts the server's processes).
# Results join the main table as passes tcp-reg, tcp-call, tls-reg, tls-call, tls-new.
STREAM_PORT=$($STATS port) STUNNEL_C=$($STATS port) STUNNEL_S=$($STATS port)

stream_certs() { # DIR: a CA and a server certificate for 127.0.0.1/localhost signed by it
	local d=$1
	[ -s "$d/server.pem" ] && return 0
	mkdir -p "$d"
	(cd "$d" &&
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
			-subj "/CN=parley bench CA" -keyout ca.key -out ca.pem &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
			-keyout server.key -out server.csr &&
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext &&
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
			-extfile san.ext -out server.pem) >"$d/openssl.log" 2>&1 ||
		{ echo "bench: cannot make the TLS certificates; see $d/openssl.log" >&2; return 1; }
}

# stunnel_start NAME DIR CONFIG-LINES...: a foreground stunnel with one service; sets ST_PID
stunnel_start() {
	local name=$1 dir=$2; shift 2
	{
		echo "foreground = yes"
		echo "pid ="
		echo "debug = 4"
		echo "output = $dir/stunnel-$name.log"
		echo "[$name]"
		printf '%s\n' "$@"
	} >"$dir/stunnel-$name.conf"
	stunnel "$dir/stunnel-$name.conf" >>"$dir/stunnel-$name.log" 2>&1 &
	ST_PID=$!
	PIDS+=("$ST_PID")
	sleep 0.3
	kill -0 "$ST_PID" 2>/dev/null ||
		{ echo "bench: stunnel $name did not start; see $dir/stunnel-$name.log" >&2; return 1; }
}

# stream_scenario PROTO DIR PORT: reg_auth.xml with the Contact naming the transport and
# the port the servers reach the callee on; and uas.xml whose 200 names them too, so that
# in-dialog requests take the same way (through stunnel for TLS)
stream_scenario() {
	sed -e "s|\(Contact: <sip:\[field0\]@127.0.0.1:\)\[field2\]>|\1$3;transport=$1>|" \
		"$HERE/sipp/reg_auth.xml" >"$2/reg_$1.xml"
	sed -e "s|Contact: <sip:\[local_ip\]:\[local_port\];transport=\[transport\]>|Contact: <sip:127.0.0.1:$3;transport=$1>|" \
		"$HERE/sipp/uas.xml" >"$2/uas_$1.xml"
	grep -q "127.0.0.1:$3;transport=$1" "$2/uas_$1.xml" || { echo "bench: uas.xml's Contact not found" >&2; return 1; }
}

stream_pass() { # SERVER PROTO (tcp|tls): the passes above for one server
	local srv=$1 proto=$2 sw=$WORK/$2 dir dest uas cport stc=0 sts=0 tlsdir=$WORK/tls
	dir=$sw/$srv
	mkdir -p "$dir"
	echo "== $srv $proto: N=$N conc=$CONC, fresh server" >&2
	SRV_DEAD=0
	if [ "$proto" = tls ]; then
		stream_certs "$tlsdir" || return 1
		cport=$STUNNEL_S dest=127.0.0.1:$STUNNEL_C
	else
		cport=$UAS_PORT dest=127.0.0.1:$STREAM_PORT
	fi
	local started=0
	case $srv in
	parley)
		local extra="--listen $proto:127.0.0.1:$STREAM_PORT"
		[ "$proto" = tls ] && extra+=" --tls-cert $tlsdir/server.pem --tls-key $tlsdir/server.key --tls-ca $tlsdir/ca.pem"
		PARLEY_ARGS="${PARLEY_ARGS---rate-limit 0} $extra" WORK=$sw start_server parley && started=1
		;;
	kamailio)
		KAM_STREAM=$proto:$STREAM_PORT KAM_TLS_DIR=$tlsdir WORK=$sw start_server kamailio && started=1
		;;
	esac
	if [ $started = 0 ]; then
		echo "bench: $srv did not start with a $proto listener; the end of its log:" >&2
		tail -n 3 "$dir/server.log" "$dir/log" 2>/dev/null >&2
		stop_pid "$SRV_PID"
		return 1
	fi
	if [ "$proto" = tls ]; then
		stunnel_start client "$dir" "client = yes" "accept = 127.0.0.1:$STUNNEL_C" \
			"connect = 127.0.0.1:$STREAM_PORT" "verifyChain = yes" "CAfile = $tlsdir/ca.pem" \
			"checkIP = 127.0.0.1" "sslVersionMin = TLSv1.2" && stc=$ST_PID
		stunnel_start server "$dir" "accept = 127.0.0.1:$STUNNEL_S" "connect = 127.0.0.1:$UAS_PORT" \
			"cert = $tlsdir/server.pem" "key = $tlsdir/server.key" "sslVersionMin = TLSv1.2" && sts=$ST_PID
	fi
	stream_scenario "$proto" "$dir" "$cport" || { stop_pid "$SRV_PID"; return 1; }
	local sf=$dir/reg_$proto.xml
	# SIPp's digest uri is the address it sends to unless told otherwise; through stunnel
	# that is stunnel's, so it is given the server's, as it writes when it talks to it
	# directly (Parley checks the digest uri names the request's target; Kamailio does not)
	local auth=()
	[ "$proto" = tls ] && auth=(-auth_uri "127.0.0.1:$STREAM_PORT")
	SIPP_DEST=$dest WORK=$sw run_sipp "$srv" "$proto-reg" warmup "$sf" users.csv auto -t t1 "${auth[@]}" >/dev/null
	[ "$SRV_DEAD" = 0 ] && SIPP_DEST=$dest WORK=$sw run_sipp "$srv" "$proto-reg" measured "$sf" users.csv auto -t t1 "${auth[@]}" |
		tee -a "$RESULTS" >&2
	if [ "$SRV_DEAD" = 0 ] && start_uas "$dir/uas_$proto.xml" "$dir" -t t1; then
		uas=$UAS_PID
		SIPP_DEST=$dest WORK=$sw run_sipp "$srv" "$proto-call" warmup call_auth.xml calls.csv auto -t t1 -d 0 "${auth[@]}" >/dev/null
		SIPP_DEST=$dest WORK=$sw run_sipp "$srv" "$proto-call" measured call_auth.xml calls.csv auto -t t1 -d 0 "${auth[@]}" |
			tee -a "$RESULTS" >&2
		stop_pid "$uas"
	fi
	if [ "$proto" = tls ] && [ "$SRV_DEAD" = 0 ]; then
		SIPP_DEST=$dest WORK=$sw run_sipp "$srv" tls-new warmup "$sf" users.csv auto -t tn -max_socket 4096 "${auth[@]}" >/dev/null
		SIPP_DEST=$dest WORK=$sw run_sipp "$srv" tls-new measured "$sf" users.csv auto -t tn -max_socket 4096 "${auth[@]}" |
			tee -a "$RESULTS" >&2
	fi
	[ "$stc" != 0 ] && stop_pid "$stc"
	[ "$sts" != 0 ] && stop_pid "$sts"
	stop_pid "$SRV_PID"
	rm -f "$dir"/*.db* "$dir"/kamailio.sqlite
}

# The idle-TLS pass: a fresh server with a TLS listener; tls_idle.py opens IDLE_N (10,000)
# TLS connections straight to it, registers once over each and leaves them open; the
# server's memory (Pss of its processes) before and after, per connection. Appends to
# IDLE_RESULTS.
IDLE_RESULTS=$WORK/idle-results.txt
tls_idle_pass() { # SERVER
	local srv=$1 sw=$WORK/idle tlsdir=$WORK/tls dir line started=0
	dir=$sw/$srv
	mkdir -p "$dir"
	echo "== $srv idle TLS: ${IDLE_N:-10000} connections, fresh server" >&2
	stream_certs "$tlsdir" || return 1
	SRV_DEAD=0
	case $srv in
	parley)
		# every connection comes from 127.0.0.1: the per-source cap (500) would refuse most
		PARLEY_ARGS="${PARLEY_ARGS---rate-limit 0} --tcp-max-per-source 20000 --listen tls:127.0.0.1:$STREAM_PORT --tls-cert $tlsdir/server.pem --tls-key $tlsdir/server.key" \
			WORK=$sw start_server parley && started=1 ;;
	kamailio) KAM_STREAM=tls:$STREAM_PORT KAM_TLS_DIR=$tlsdir WORK=$sw start_server kamailio && started=1 ;;
	esac
	if [ $started = 1 ]; then
		sleep 1
		line=$(python3 "$HERE/tls_idle.py" "$STREAM_PORT" "$tlsdir/ca.pem" "$USERS/users.csv" "${IDLE_N:-10000}" "$SRV_PID")
		echo "server=$srv $line" | tee -a "$IDLE_RESULTS" >&2
	fi
	stop_pid "$SRV_PID"
	rm -f "$dir"/*.db* "$dir"/kamailio.sqlite
	[ $started = 1 ]
}

idle_table() { # the idle-TLS table: memory per connection, target <= 16 KB for Parley
	python3 - "$IDLE_RESULTS" <<'PY'
import sys
rows = [dict(x.split("=", 1) for x in l.split() if "=" in x) for l in open(sys.argv[1]) if l.strip()]
print("idle TLS connections, each registered once: server memory (Pss) per connection")
print(f"{'server':9} {'conns':>6} {'ok':>6} {'fail':>5} {'KB/conn':>8}")
bad = 0
for r in rows:
    kb = int(r["bytes_per_conn"]) / 1024
    print(f"{r['server']:9} {r['idle']:>6} {r['ok']:>6} {r['fail']:>5} {kb:8.1f}")
    if r["fail"] != "0" or (r["server"] == "parley" and kb > 16):
        bad = 1
verdict = "NOT MET" if bad else "met" if any(r["server"] == "parley" for r in rows) else "Parley not measured"
print(f"target: Parley <= 16 KB per idle TLS connection, 0 failures: {verdict}")
sys.exit(bad)
PY
}
