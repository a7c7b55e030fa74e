"""flood_run.py: runs inside a private network namespace (unshare -n): starts parley on
loopback, floods it from 16 sources with a fixed number of junk datagrams and INVITEs to
unknown users while a phone registers over and over, and writes the outcome as JSON.
usage: flood_run.py PARLEY_BIN DB OUT.json"""
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from sipua import UA, parse_challenge, digest_response, rand  # noqa: E402

bin_, db, out = sys.argv[1:4]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
PORT = 5999
CAP_MB = 768  # the sanitizer build's own overhead is most of it
FLOOD = 30000
subprocess.run([bin_, "user", "add", "alice@a.test", "--password", "alicepw", "--db", db], check=True,
               capture_output=True)
log = open(out + ".log", "wb")
proc = subprocess.Popen([bin_, "serve", "--listen", f"udp:127.0.0.1:{PORT}", "--db", db, "--domain", "a.test",
                         "--max-memory", str(CAP_MB)], stdout=log, stderr=subprocess.STDOUT)


def options_ok(host="127.0.0.1"):
    ua = UA(("127.0.0.1", PORT), host=host)
    try:
        ua.send_raw(ua.build("OPTIONS", f"sip:127.0.0.1:{PORT}", contact=False))
        r = ua.final(timeout=0.5)
        return r is not None and r.status == 200
    finally:
        ua.close()


for _ in range(100):
    if options_ok():
        break
    time.sleep(0.1)

sent = 0


def flood():
    global sent
    socks = []
    for i in range(16):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.1.{i + 1}", 0))
        socks.append(s)
    rnd = random.Random(7)
    for n in range(FLOOD):
        s = socks[n % len(socks)]
        kind = n % 3
        if kind == 0:
            data = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 200)))
        elif kind == 1:
            data = b"INVITE sip:x@a.test SIP/2.0\r\nVia: SIP/2.0/UDP"  # truncated
        else:
            h, p = s.getsockname()
            cid = rand(12)
            data = (f"INVITE sip:u{n}@a.test SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{p};branch=z9hG4bK{cid}\r\n"
                    f"From: <sip:spam@evil.test>;tag={cid}\r\nTo: <sip:u{n}@a.test>\r\nCall-ID: {cid}\r\n"
                    f"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:spam@{h}:{p}>\r\n"
                    f"Content-Length: 0\r\n\r\n").encode()
        try:
            s.sendto(data, ("127.0.0.1", PORT))
            sent += 1
        except OSError:
            pass
        if n % 500 == 0:
            time.sleep(0.001)


t = threading.Thread(target=flood)
t.start()
attempts = registered = 0
alice = UA(("127.0.0.1", PORT), user="alice", domain="a.test", password="alicepw")
while t.is_alive() or attempts < 20:
    attempts += 1
    ok = False
    for _ in range(4):  # a phone retransmits; the registration succeeds if any try does
        alice.call_id = rand(16) + "@test"
        r = alice.register(expires=300)
        if r is not None and r.status == 200:
            ok = True
            break
    registered += ok
    if attempts >= 200:
        break
t.join()
peak = 0
with open(f"/proc/{proc.pid}/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) // 1024
still = options_ok()
proc.terminate()
proc.wait(20)
json.dump({"sent": sent, "attempts": attempts, "registered": registered, "peak_rss_mb": peak,
           "cap_mb": CAP_MB, "still_serving": still, "exit": proc.returncode}, open(out, "w"))
