#!/usr/bin/env bash
# run.sh: runs the SIP fuzzer on a scratch copy of its corpus. Usage: run.sh BUILD_DIR SECONDS
# Crashers land in tests/fuzz/ as crash-*; add each to tests/fuzz/corpus/fuzz_sip/ once fixed.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR SECONDS}
secs=${2:-600}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/fuzz_sip
[ -x "$bin" ] || { echo "run.sh: $bin not built (make fuzz-build)" >&2; exit 2; }
work=$here/work
rm -rf "$work"
mkdir -p "$work"
cp "$here"/corpus/fuzz_sip/* "$work"/
log=$work/fuzz.log
# New inputs go to the scratch copy only; the checked-in corpus stays small.
set +e
"$bin" -dict="$here/sip.dict" -max_total_time="$secs" -print_final_stats=1 \
	-artifact_prefix="$here/" "$work" 2>&1 | tee "$log" | grep -E 'DONE|ERROR|crash|pulse' || true
rc=${PIPESTATUS[0]}
set -e
execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
echo "fuzz_sip: $execs executions in ${secs}s, exit $rc; log: $log"
ls "$here"/crash-* 2>/dev/null && { echo "fuzz_sip: crashers found (above)"; exit 1; }
exit "$rc"
