#!/usr/bin/env python3
"""The idle-TLS-connection pass of bench.sh (stream.sh runs it; no third-party modules).
usage: tls_idle.py PORT CAFILE USERS_CSV N SERVER_PID [CONC]
Opens N TLS connections to 127.0.0.1:PORT from 127.0.1.1-16 (verifying the server against
CAFILE), registers
one user of USERS_CSV (bench/gen-users.py's users.csv: user;password;port;domain) over each
(REGISTER -> 401 -> REGISTER with digest -> 200, Expires 3600), CONC handshakes at a time,
and leaves every connection open and silent. The server's memory is read before the first
connection and once all N are registered and idle: the proportional set size (Pss, from
/proc/PID/smaps_rollup) summed over the server and its child processes, so that Kamailio's
shared memory is counted once however many workers touch it. Prints one line:
  idle=N ok=OK fail=F pss_before_kb=A pss_after_kb=B bytes_per_conn=(B-A)*1024/OK secs=S
and, on stderr, how many failed for each reason (the exception, or the final status line)."""
import asyncio, hashlib, os, re, ssl, sys, time


def tree(root):
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(p))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def pss_kb(root):
    tot = 0
    for p in tree(root):
        try:
            for line in open(f"/proc/{p}/smaps_rollup"):
                if line.startswith("Pss:"):
                    tot += int(line.split()[1])
        except OSError:
            pass
    return tot


async def read_msg(r):
    head = await r.readuntil(b"\r\n\r\n")
    m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
    if m and int(m.group(1)):
        await r.readexactly(int(m.group(1)))
    return head.decode(errors="replace")


def register(user, dom, lhost, lport, cseq, auth=""):
    return (f"REGISTER sip:{dom} SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS {lhost}:{lport};branch=z9hG4bK-idle-{user}-{cseq}\r\n"
            f"From: <sip:{user}@{dom}>;tag=idle{user}\r\nTo: <sip:{user}@{dom}>\r\n"
            f"Call-ID: idle-{user}@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@{lhost}:{lport};transport=tls>\r\n{auth}"
            "Max-Forwards: 70\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n").encode()


def digest(chal, user, pw, uri):
    kv = dict(re.findall(r'(\w+)="?([^",]*)"?', chal))
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
    ha1, ha2 = md5(f"{user}:{kv['realm']}:{pw}"), md5(f"REGISTER:{uri}")
    if "auth" in kv.get("qop", "").split(","):
        cn = os.urandom(8).hex()
        resp = md5(f"{ha1}:{kv['nonce']}:00000001:{cn}:auth:{ha2}")
        extra = f', qop=auth, nc=00000001, cnonce="{cn}"'
    else:
        resp, extra = md5(f"{ha1}:{kv['nonce']}:{ha2}"), ""
    opaque = f', opaque="{kv["opaque"]}"' if "opaque" in kv else ""
    return (f'Authorization: Digest username="{user}", realm="{kv["realm"]}", nonce="{kv["nonce"]}", '
            f'uri="{uri}", response="{resp}", algorithm=MD5{extra}{opaque}\r\n')


async def one(port, ctx, user, pw, dom, sem, held, why):
    async with sem:
        try:
            # From one of 16 loopback addresses: after the tls-new passes (tens of
            # thousands of connections in TIME_WAIT) one source address can run out of
            # ephemeral ports ("Cannot assign requested address").
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                 local_addr=(f"127.0.1.{1 + hash(user) % 16}", 0))
            lhost, lport = w.get_extra_info("sockname")[:2]
            w.write(register(user, dom, lhost, lport, 1))
            res = await asyncio.wait_for(read_msg(r), 30)
            if res.startswith("SIP/2.0 401"):
                chal = re.search(r"(?im)^WWW-Authenticate:\s*Digest\s+(.*)$", res).group(1)
                w.write(register(user, dom, lhost, lport, 2, digest(chal, user, pw, f"sip:{dom}")))
                res = await asyncio.wait_for(read_msg(r), 30)
            held.append(w)  # kept open: the pass measures idle connections
            if res.startswith("SIP/2.0 200"):
                return True
            why[res.split("\r\n", 1)[0][:40]] = why.get(res.split("\r\n", 1)[0][:40], 0) + 1
            return False
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError, AttributeError) as e:
            k = f"{type(e).__name__}: {e}"[:60]
            why[k] = why.get(k, 0) + 1
            return False


async def main(port, ca, users, n, pid, conc):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    rows = [l.strip().split(";") for l in open(users)][1:n + 1]
    before = pss_kb(pid)
    t0 = time.monotonic()
    sem, held, why = asyncio.Semaphore(conc), [], {}
    ok = sum(await asyncio.gather(*(one(port, ctx, u, p, d, sem, held, why) for u, p, _, d in rows)))
    await asyncio.sleep(3)  # the server settles (transactions end)
    after = pss_kb(pid)
    per = (after - before) * 1024 // max(ok, 1)
    print(f"idle={n} ok={ok} fail={n - ok} pss_before_kb={before} pss_after_kb={after} "
          f"bytes_per_conn={per} secs={time.monotonic() - t0:.1f}", flush=True)
    for k, v in sorted(why.items(), key=lambda kv: -kv[1]):
        print(f"tls_idle: {v} failed: {k}", file=sys.stderr)
    for w in held:
        w.close()


if __name__ == "__main__":
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    a = sys.argv
    asyncio.run(main(int(a[1]), a[2], a[3], int(a[4]), int(a[5]), int(a[6]) if len(a) > 6 else 100))
