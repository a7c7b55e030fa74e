#!/usr/bin/env python3
"""Write the benchmark's users (adapted from ../shared/bench/gen-users.py):
OUTDIR/users.csv and OUTDIR/calls.csv (SIPp injection files), OUTDIR/users.sql (Kamailio
subscriber rows) and OUTDIR/parley-users.csv (user@domain,password). Users are u00000/pw00000...
usage: gen-users.py OUTDIR [N] [DOMAIN] [UAS_PORT] [--no-sql] [--no-calls] [--calls-of=M]
(--calls-of=M: calls.csv pairs the first M users only, caller i -> callee i+1 mod M)"""
import os, sys
flags = {a for a in sys.argv[1:] if a.startswith("--") and "=" not in a}
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
out = args[0]
n = int(args[1]) if len(args) > 1 else 10000
dom = args[2] if len(args) > 2 else "bench.test"
uas = args[3] if len(args) > 3 else "5090"
os.makedirs(out, exist_ok=True)
u = [(f"u{i:05d}", f"pw{i:05d}") for i in range(n)]
with open(f"{out}/users.csv", "w") as f:
    f.write("SEQUENTIAL\n" + "".join(f"{a};{p};{uas};{dom}\n" for a, p in u))
if "--no-calls" not in flags:
    with open(f"{out}/calls.csv", "w") as f:
        m = min(n, int(opts.get("calls-of", n)))
        f.write("SEQUENTIAL\n" + "".join(f"{a};{p};{u[(i + 1) % m][0]};{dom}\n" for i, (a, p) in enumerate(u[:m])))
if "--no-sql" not in flags:
    with open(f"{out}/users.sql", "w") as f:
        f.write("BEGIN;\n" + "".join(
            f"INSERT INTO subscriber(username,domain,password,ha1,ha1b) VALUES('{a}','{dom}','{p}','','');\n"
            for a, p in u) + "COMMIT;\n")
with open(f"{out}/parley-users.csv", "w") as f:
    f.write("".join(f"{a}@{dom},{p}\n" for a, p in u))
