# lib.sh: shell helpers the bench scripts share (sourced, not run).

stop_pid() { # PID [SECONDS]: SIGTERM, wait (default 10 s), then SIGKILL; reaps it
	local p=$1
	kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq $((${2:-10} * 10))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}
