"""stunnel.py: TLS for peers that speak only TCP (Debian's SIPp has no TLS): stunnel4 in client
mode accepts plain TCP on a loopback port and carries it over TLS to a server, verifying the
server's certificate against a CA file and its IP address. Also a throwaway test CA (openssl)
that signs server certificates. Used by the TLS tests and the bench."""
import os
import socket
import subprocess
import time

from sipua import free_port


def make_ca(directory, name="ca"):
    """A self-signed CA in directory: returns (certificate path, key path)."""
    crt, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-subj", f"/CN=Parley test {name}", "-days", "2",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True)
    return crt, key


def make_cert(directory, ca, name="server", sans=("IP:127.0.0.1", "IP:::1", "DNS:localhost")):
    """A server certificate for sans signed by ca (make_ca's pair): returns (certificate,
    key) paths."""
    crt, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    csr, ext = os.path.join(directory, f"{name}.csr"), os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={','.join(sans)}\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n")
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", f"/CN={name}"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
                    "-out", crt, "-days", "2", "-extfile", ext], check=True, capture_output=True)
    return crt, key


class Stunnel:
    """stunnel4 in client mode: plain TCP accepted on 127.0.0.1:port (chosen free) goes over
    TLS to target (host, port), whose certificate must chain to cafile and name its IP."""

    def __init__(self, directory, target, cafile, name="stunnel"):
        self.dir = directory
        self.port = free_port(tcp=True)
        self.conf = os.path.join(directory, f"{name}.conf")
        self.logpath = os.path.join(directory, f"{name}.log")
        host, tport = target
        h = f"[{host}]" if ":" in host else host
        with open(self.conf, "w") as f:
            f.write(f"""foreground = yes
pid =
output = {self.logpath}
debug = 5
[sip]
client = yes
accept = 127.0.0.1:{self.port}
connect = {h}:{tport}
CAfile = {cafile}
verifyChain = yes
checkIP = {host}
sslVersionMin = TLSv1.2
""")
        self.proc = None

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    def start(self, timeout=10):
        self.proc = subprocess.Popen(["stunnel4", self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stunnel exited {self.proc.returncode}: {self.read_log()}")
            try:
                socket.create_connection(self.addr, timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("stunnel did not open its port: " + self.read_log())

    def read_log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
