"""zeroconf_run.py: run inside a fresh network namespace (unshare -n) by test_tcp.py: starts
`parley serve` with no flags but --db and checks that it answers OPTIONS on UDP and on TCP
port 5060. Usage: zeroconf_run.py PARLEY_BIN WORKDIR; prints "udp ok", "tcp ok" or why not."""
import os
import socket
import subprocess
import sys
import time

bin_, work = sys.argv[1], sys.argv[2]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
log = open(os.path.join(work, "zeroconf.log"), "wb")
proc = subprocess.Popen([bin_, "serve", "--db", os.path.join(work, "z.db")], stdout=log, stderr=subprocess.STDOUT,
                        cwd=work)


def options(proto):
    msg = ("OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n"
           f"Via: SIP/2.0/{proto} 127.0.0.1:{{port}};branch=z9hG4bKzc{proto};rport\r\n"
           "From: <sip:probe@invalid>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: zc\r\n"
           "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    if proto == "UDP":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        s.sendto(msg.format(port=s.getsockname()[1]).encode(), ("127.0.0.1", 5060))
        return s.recv(65535).decode()
    s = socket.create_connection(("127.0.0.1", 5060), timeout=2)
    s.sendall(msg.format(port=s.getsockname()[1]).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65535)
    s.close()
    return data.decode()


try:
    for proto in ("UDP", "TCP"):
        end = time.time() + 15
        while True:
            try:
                r = options(proto)
                print(f"{proto.lower()} {'ok' if r.startswith('SIP/2.0 200') else 'answered: ' + r[:40]}")
                break
            except OSError as e:
                if time.time() > end or proc.poll() is not None:
                    print(f"{proto.lower()} failed: {e}")
                    break
                time.sleep(0.2)
finally:
    proc.terminate()
    proc.wait(20)
    print(f"exit {proc.returncode}")
