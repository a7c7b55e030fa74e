"""torture_run.py: runs inside a private network namespace (unshare -n): starts parley on
loopback, sends every torture message over UDP and prints what came back as JSON.
usage: torture_run.py PARLEY_BIN DB OUT.json FILE..."""
import json
import os
import re
import socket
import subprocess
import sys
import time

bin_, db, out = sys.argv[1:4]
files = sys.argv[4:]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
PORT = 5999
log = open(out + ".log", "wb")
proc = subprocess.Popen([bin_, "serve", "--listen", f"udp:127.0.0.1:{PORT}", "--db", db,
                         "--domain", "example.com",
                         "--log-level", "debug"], stdout=log, stderr=subprocess.STDOUT)


def via_port(data):
    """The port a response to this message is sent to: the top Via's sent-by port."""
    m = re.search(rb"^(?:Via|v)\s*:\s*SIP\s*/\s*2\.0\s*/\s*\w+\s+([^;,\r\n]+)", data, re.I | re.M)
    if not m:
        return 5060
    host = m.group(1).strip()
    pm = re.search(rb"\]:(\d+)$", host) if host.startswith(b"[") else re.search(rb":(\d+)$", host)
    if pm and int(pm.group(1)) < 65536:
        return int(pm.group(1))
    return 5060


def call_id(data):
    m = re.search(rb"^(?:Call-ID|i)\s*:\s*(\S+)", data, re.I | re.M)
    return m.group(1) if m else None


def exchange(data, port, wait):
    """Sends data from the Via port and collects the answers to it: retransmissions of
    earlier answers (an unacknowledged final is resent for 32 s) are told apart by Call-ID."""
    cid = call_id(data)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port if port != PORT else 5060))
    s.sendto(data, ("127.0.0.1", PORT))
    got = []
    end = time.time() + wait
    while time.time() < end:
        s.settimeout(max(0.01, end - time.time()))
        try:
            d, _ = s.recvfrom(65535)
        except socket.timeout:
            break
        if call_id(d) != cid:
            continue
        line = d.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        got.append(line)
        if re.match(r"SIP/2\.0 [2-6]\d\d", line):
            break
    s.close()
    return got


def alive():
    msg = (f"OPTIONS sip:127.0.0.1:{PORT} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKalive{time.time_ns()}\r\n"
           "From: <sip:t@example.org>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: alive@x\r\n"
           "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    return exchange(msg, 5060, 2.0)


result = {"ready": False, "answers": {}, "alive_after": []}
for _ in range(100):
    if alive():
        result["ready"] = True
        break
    time.sleep(0.1)
for f in files:
    data = open(f, "rb").read()
    result["answers"][os.path.basename(f)] = exchange(data, via_port(data), 1.0)
result["alive_after"] = alive()
proc.terminate()
try:
    result["exit"] = proc.wait(20)
except subprocess.TimeoutExpired:
    proc.kill()
    result["exit"] = "killed"
log.close()
json.dump(result, open(out, "w"), indent=1)
