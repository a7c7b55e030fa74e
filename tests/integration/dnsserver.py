"""dnsserver.py: a dnsmasq on a free loopback port serving given NAPTR, SRV and address records, so tests can point `parley serve --dns` at a zone they control."""
import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import time

from sipua import free_port

DNSMASQ = os.environ.get("DNSMASQ", "/usr/sbin/dnsmasq")


def _loopback_only(addr):
    """Tests must never send anywhere but this machine: records may only hold loopback addresses."""
    if not ipaddress.ip_address(addr).is_loopback:
        raise ValueError(f"dnsserver: {addr} is not a loopback address")
    return addr


def _query(name, qtype=1):
    """A DNS query packet for name (type A by default), enough to see the server answer."""
    q = struct.pack(">HHHHHH", 0x5053, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", qtype, 1)


class DnsServer:
    """A dnsmasq answering only for the records given, on 127.0.0.1:port.

    srv:   (name, target, port, priority, weight), e.g. ("_sip._udp.b.test", "sip1.b.test", 5070, 10, 60)
    naptr: (name, order, preference, flags, service, regexp, replacement),
           e.g. ("b.test", 10, 10, "S", "SIP+D2U", "", "_sip._udp.b.test")
    hosts: (name, addr[, addr...]) with loopback addresses only, e.g. ("sip1.b.test", "127.0.0.2")
    local: domains answered authoritatively: names under them that have no record get
           NXDOMAIN instead of REFUSED (there is no upstream server).
    ttl:   seconds given with every answer (0 keeps Parley's cache out of the way).

    Use as a context manager, or call start() and stop().
    """

    def __init__(self, srv=(), naptr=(), hosts=(), local=("test",), ttl=0, port=None, log=None):
        self.srv = list(srv)
        self.naptr = list(naptr)
        self.hosts = list(hosts)
        self.local = list(local)
        self.ttl = ttl
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.log = log
        self.proc = None
        for h in self.hosts:
            for a in h[1:]:
                _loopback_only(a)

    @property
    def server(self):
        """The value for `parley serve --dns`."""
        return f"{self.host}:{self.port}"

    def args(self):
        a = [DNSMASQ, "--no-resolv", "--no-hosts", "--keep-in-foreground",
             f"--port={self.port}", f"--listen-address={self.host}", "--bind-interfaces",
             "--conf-file=/dev/null",   # never the machine's /etc/dnsmasq.conf
             "--pid-file=",             # no pid file: we hold the process
             f"--local-ttl={self.ttl}"]
        a += [f"--local=/{d}/" for d in self.local]
        a += ["--srv-host=" + ",".join(str(x) for x in r) for r in self.srv]
        a += ["--naptr-record=" + ",".join(str(x) for x in r) for r in self.naptr]
        a += ["--host-record=" + ",".join(h) for h in self.hosts]
        if self.log:
            a += ["--log-queries", "--log-facility=-"]
        return a

    def start(self, timeout=5.0):
        if not shutil.which(DNSMASQ):
            raise RuntimeError(f"{DNSMASQ} not found: install dnsmasq-base (make deps)")
        out = open(self.log, "w") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.args(), stdout=out, stderr=out)
        if self.log:
            out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited with {self.proc.returncode}: {' '.join(self.args())}")
            if self.answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dnsmasq did not answer on {self.server}")

    def answers(self):
        """Whether the server replies to a query (any reply counts)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(_query(self.local[0] if self.local else "localhost"), (self.host, self.port))
            s.recv(512)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
