#!/usr/bin/env bash
# run.sh: runs each fuzzer on a scratch copy of its corpus. Usage: run.sh BUILD_DIR SECONDS
# SECONDS is shared among the targets of FUZZ_TARGETS (default: every fuzz_* of BUILD_DIR).
# Crashers land in tests/fuzz/ as crash-*; add each to tests/fuzz/corpus/<target>/ once fixed.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR SECONDS}
secs=${2:-600}
here=$(cd "$(dirname "$0")" && pwd)
targets=${FUZZ_TARGETS:-$(cd "$here" && ls fuzz_*.c | sed 's/\.c$//' | tr '\n' ' ')}
set -- $targets
[ $# -gt 0 ] || { echo "run.sh: no targets" >&2; exit 2; }
share=$(( secs / $# ))
[ "$share" -gt 0 ] || share=1
status=0
for t in "$@"; do
	bin=$build/$t
	[ -x "$bin" ] || { echo "run.sh: $bin not built (make fuzz-build)" >&2; exit 2; }
	work=$here/work/$t
	rm -rf "$work"
	mkdir -p "$work/corpus"
	cp "$here"/corpus/"$t"/* "$work/corpus/"
	# A target's own dictionary adds to the SIP one.
	cat "$here/sip.dict" > "$work/dict"
	[ -f "$here/$t.dict" ] && cat "$here/$t.dict" >> "$work/dict"
	log=$work/fuzz.log
	# New inputs go to the scratch copy only; the checked-in corpus stays small.
	# fuzz_config's every input makes the parser print its refusal on stderr: closed for
	# the target (libFuzzer keeps its own copy for its reports).
	quiet=
	[ "$t" = fuzz_config ] && quiet=-close_fd_mask=2
	set +e
	"$bin" $quiet -dict="$work/dict" -max_total_time="$share" -print_final_stats=1 \
		-artifact_prefix="$here/" "$work/corpus" 2>&1 | tee "$log" | grep -E 'DONE|ERROR|crash|pulse' || true
	rc=${PIPESTATUS[0]}
	set -e
	execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
	echo "$t: $execs executions in ${share}s, exit $rc; log: $log"
	[ "$rc" -eq 0 ] || status=$rc
done
ls "$here"/crash-* 2>/dev/null && { echo "run.sh: crashers found (above)"; exit 1; }
exit "$status"
