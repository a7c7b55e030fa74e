"""enum_timing.py: measures whether answers to unauthenticated requests tell existing users
from missing ones by their timing. Starts parley (the binary given) on loopback with N users
imported, then probes each name once (the first probe of a name is the one a cache would
betray), alternating an existing user and a missing one, and prints the round-trip times.
usage: python3 bench/enum_timing.py PARLEY_BIN [N]"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from sipua import UA, parse_challenge, digest_response, rand  # noqa: E402

bin_ = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
tmp = tempfile.mkdtemp()
db = os.path.join(tmp, "enum.db")
users = os.path.join(tmp, "users.csv")
with open(users, "w") as f:
    for i in range(n):
        f.write(f"u{i}@a.test,pw{i}\n")
subprocess.run([bin_, "user", "import", users, "--db", db], check=True, capture_output=True)
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
proc = subprocess.Popen([bin_, "serve", "--listen", f"udp:127.0.0.1:{port}", "--db", db, "--domain", "a.test",
                         "--log-level", "error", "--rate-limit", "0", "--batch-wait", "0", "--ban-threshold", "0", "--slow-after", "0"])
try:
    ua = UA(("127.0.0.1", port), user="probe", domain="evil.test")
    for _ in range(100):
        ua.send_raw(ua.build("OPTIONS", f"sip:127.0.0.1:{port}", contact=False))
        if ua.final(timeout=0.2):
            break

    def rtt(data):
        t0 = time.perf_counter()
        ua.send_raw(data)
        r = ua.final(timeout=2)
        return (time.perf_counter() - t0) * 1e6, r

    def anon(method, user):
        return rtt(ua.build(method, f"sip:{user}@a.test", to=f"<sip:{user}@a.test>", call_id=rand(12)))

    def wrong_password(user):
        # a fresh challenge, then a wrong response: what a password guesser sees
        me = UA(("127.0.0.1", port), user=user, domain="a.test")
        me.send_raw(me.build("REGISTER", "sip:a.test", headers=["Expires: 60"]))
        ch = parse_challenge(me.final().headers["www-authenticate"][0])
        cred = digest_response(ch, "REGISTER", "sip:a.test", user, "wrong")
        t, r = 0.0, None
        t0 = time.perf_counter()
        me.send_raw(me.build("REGISTER", "sip:a.test", headers=["Expires: 60", f"Authorization: {cred}"]))
        r = me.final(timeout=2)
        t = (time.perf_counter() - t0) * 1e6
        me.close()
        return t, r

    print(f"parley {bin_}, {n} users imported, none registered; each name probed once, known and unknown alternating")
    print(f"{'probe':<34} {'answer':<16} {'known: median':>14} {'mean':>8} {'unknown: median':>16} {'mean':>8} {'gap':>8}")
    k = 0
    for label, fn in (("OPTIONS, no credentials", lambda u: anon("OPTIONS", u)),
                      ("INVITE, no credentials", lambda u: anon("INVITE", u)),
                      ("MESSAGE, no credentials", lambda u: anon("MESSAGE", u)),
                      ("REGISTER, wrong password", wrong_password)):
        known, unknown, answers = [], [], set()
        count = n // 4
        for i in range(count):
            t1, r1 = fn(f"u{k}")
            t2, r2 = fn(f"nobody{k}")
            k += 1
            known.append(t1)
            unknown.append(t2)
            answers.add((r1.status if r1 else None, r2.status if r2 else None))
        mk, mu = statistics.median(known), statistics.median(unknown)
        print(f"{label:<34} {str(sorted(answers)):<16} {mk:>11.0f} µs {statistics.mean(known):>6.0f} µs "
              f"{mu:>13.0f} µs {statistics.mean(unknown):>6.0f} µs {mk - mu:>+6.0f} µs")
finally:
    proc.terminate()
    proc.wait(10)
