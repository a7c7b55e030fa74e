#!/bin/bash
# cpu.sh PID: user+system CPU microseconds used so far by PID (all its threads) and by its
# live descendants (Kamailio's worker processes), from /proc/*/stat (fields 14 and 15).
# Plain awk: a snapshot in a few milliseconds, even on a loaded machine.
# cat, not awk, opens the files: a process may exit between the glob and the read (mawk
# would stop at the missing file); each stat file is one line.
cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" -v tick="$(getconf CLK_TCK)" '
{
	line = $0
	pid = line; sub(/ .*/, "", pid)
	sub(/.*\) /, "", line)          # after "(comm) ": state ppid ... utime(12) stime(13)
	n = split(line, f, " ")
	if (n >= 13) { ppid[pid] = f[2]; t[pid] = f[12] + f[13] }
}
END {
	tot = 0
	for (p in t) {                  # walk up from every process: does it descend from root?
		q = p; d = 0
		while (q != "" && q != root && q != 0 && d < 64) { q = ppid[q]; d++ }
		if (q == root) tot += t[p]
	}
	printf "%d\n", tot * 1000000 / tick
}'
