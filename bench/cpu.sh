#!/bin/bash
# cpu.sh PID: CPU microseconds (user+system) used so far by PID (all its threads) and by its
# live descendants (Kamailio's worker processes).
# Each thread's time on the CPU comes from /proc/P/task/T/schedstat, in nanoseconds: the
# clock ticks of /proc/P/stat (10 ms) made a 1-second run of 10 µs registrations a matter of
# some 20 ticks, each 5% of it. A process without schedstat (a kernel without schedstats)
# falls back to its ticks (fields 14 and 15 of stat).
# cat and grep, not awk, open the files: a process may exit between the glob and the read
# (mawk would stop at the missing file); each stat file is one line.
{
	cat /proc/[0-9]*/stat
	grep -H . /proc/[0-9]*/task/[0-9]*/schedstat
} 2>/dev/null | awk -v root="$1" -v tick="$(getconf CLK_TCK)" '
/^\/proc\// {                       # /proc/P/task/T/schedstat:RUN_NS WAIT_NS SLICES
	split($0, parts, "/")
	split($0, v, ":")
	split(v[2], ns, " ")
	run[parts[3]] += ns[1] / 1000
	has[parts[3]] = 1
	next
}
{
	line = $0
	pid = line; sub(/ .*/, "", pid)
	sub(/.*\) /, "", line)          # after "(comm) ": state ppid ... utime(12) stime(13)
	n = split(line, f, " ")
	if (n >= 13) { ppid[pid] = f[2]; t[pid] = (f[12] + f[13]) * 1000000 / tick }
}
END {
	tot = 0
	for (p in t) {                  # walk up from every process: does it descend from root?
		q = p; d = 0
		while (q != "" && q != root && q != 0 && d < 64) { q = ppid[q]; d++ }
		if (q == root) tot += has[p] ? run[p] : t[p]
	}
	printf "%d\n", tot
}'
