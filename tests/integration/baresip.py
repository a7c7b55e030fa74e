"""baresip.py: a real softphone (baresip 1.0, Debian baresip-core) for the integration
tests, run headless: a sine tone as its microphone, what it decodes recorded to WAV files,
driven over its ctrl_tcp socket (netstring-framed JSON commands and events)."""
import json
import os
import re
import socket
import subprocess
import time

from sipua import free_port, free_port_both, wait_for


def dominant_hz(wav):
    """sox's rough frequency estimate of a recording (Hz), and its length in seconds."""
    r = subprocess.run(["sox", wav, "-n", "stat"], capture_output=True, text=True)
    freq = re.search(r"Rough\s+frequency:\s+(\d+)", r.stderr)
    length = re.search(r"Length \(seconds\):\s+([\d.]+)", r.stderr)
    return (int(freq.group(1)) if freq else 0), (float(length.group(1)) if length else 0.0)


class Baresip:
    def __init__(self, tmp, name, user, domain, password, server_port, server_host="127.0.0.1",
                 answermode="manual", tone_hz=1000, regint=600, host="127.0.0.1", netns=None,
                 sip_port=None, ctrl_port=None, transport="udp", cafile=None):
        """host: the address it listens on; netns: the named network namespace it runs in
        (natnet.py), where sip_port and ctrl_port must be given (nothing else is bound there);
        transport: udp, tcp or tls, what it registers and calls over; cafile: the CA (or the
        server's own certificate) it checks the server's TLS certificate against."""
        self.dir = os.path.join(str(tmp), f"baresip-{name}")
        os.makedirs(self.dir, exist_ok=True)
        self.rec = os.path.join(self.dir, "rec")
        os.makedirs(self.rec, exist_ok=True)
        self.netns = netns
        self.host = host
        # baresip listens on UDP and TCP alike: the port must be free for both.
        # Free for UDP and TCP, and the next port for TCP too: baresip listens for TLS there (a
        # client connection of an earlier test holding it made baresip fail to start: "SIP/TLS
        # transport failed: Address already in use").
        self.sip_port = sip_port or free_port_both(host, tcp_next=True)
        self.ctrl_port = ctrl_port or free_port(tcp=True)
        rtp = 20000 + (self.sip_port % 200) * 100
        self.user, self.domain = user, domain
        self.aor = f"sip:{user}@{domain}"
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(f"""poll_method epoll
sip_listen {host}:{self.sip_port}
net_interface {host}
dns_server 127.0.0.1:53
rtp_ports {rtp}-{rtp + 99}
call_local_timeout 120
audio_source ausine,{tone_hz}
audio_player aufile,/dev/null
ausrc_srate 48000
auplay_srate 48000
ausrc_channels 2
auplay_channels 2
snd_path {self.rec}
module_path /usr/lib/baresip/modules
module g711.so
module ausine.so
module aufile.so
module sndfile.so
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}
""")
            if cafile:
                f.write(f"sip_cafile {cafile}\n")
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(f'<sip:{user}@{domain};transport={transport}>;auth_pass={password};'
                    f'outbound="sip:{server_host}:{server_port};transport={transport}";regint={regint};'
                    f'answermode={answermode};audio_codecs=PCMU\n')
        self.proc = None
        self.sock = None
        self.buf = b""
        self.events = []

    def start(self):
        self.logpath = os.path.join(self.dir, "baresip.log")
        self.log = open(self.logpath, "ab")
        cmd = ["stdbuf", "-oL", "baresip", "-4", "-s", "-f", self.dir]
        if self.netns:  # a name (natnet.py) or the path of one (/proc/PID/ns/net, browser.NetNs)
            cmd = (["nsenter", f"--net={self.netns}", "--"] if self.netns.startswith("/")
                   else ["ip", "netns", "exec", self.netns]) + cmd
        self.proc = subprocess.Popen(cmd,
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        end = time.time() + 15
        while time.time() < end:
            try:
                self.sock = self._connect()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("baresip exited: " + self.read_log())
                time.sleep(0.2)
        else:
            raise RuntimeError("baresip ctrl_tcp did not open: " + self.read_log())
        return self

    def _connect(self):
        if not self.netns:
            return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
        from natnet import netns
        with netns(self.netns):
            return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)

    def read_log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def _read_one(self, timeout):
        """Reads one netstring-framed JSON object (or None on timeout)."""
        end = time.time() + timeout
        while True:
            colon = self.buf.find(b":")
            if colon > 0:
                n = int(self.buf[:colon])
                if len(self.buf) >= colon + 1 + n + 1:
                    body = self.buf[colon + 1:colon + 1 + n]
                    self.buf = self.buf[colon + 1 + n + 1:]
                    return json.loads(body)
            left = end - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                return None
            self.buf += data

    def command(self, cmd, params="", timeout=10):
        body = json.dumps({"command": cmd, "params": params, "token": cmd}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        end = time.time() + timeout
        while time.time() < end:
            m = self._read_one(end - time.time())
            if m is None:
                break
            if m.get("response"):
                return m
            self.events.append(m)
        raise TimeoutError(f"no response to {cmd}")

    def wait_event(self, etype, timeout=15):
        """Waits for an event of type etype (REGISTER_OK, CALL_RINGING, ...); returns it."""
        for i, e in enumerate(self.events):
            if e.get("type") == etype:
                return self.events.pop(i)
        end = time.time() + timeout
        while time.time() < end:
            m = self._read_one(end - time.time())
            if m is None:
                continue
            if m.get("event") and m.get("type") == etype:
                return m
            if m.get("event"):
                self.events.append(m)
        raise TimeoutError(f"no {etype} event; saw {[e.get('type') for e in self.events]}\n" + self.read_log()[-3000:])

    def wait_registered(self, timeout=20):
        """Registration usually completes before the control socket is connected, so the
        REGISTER_OK event may be gone: ask with reginfo until it says OK."""
        end = time.time() + timeout
        while time.time() < end:
            data = self.command("reginfo").get("data", "")
            if "OK" in data and self.aor in data:
                return data
            time.sleep(0.2)
        raise TimeoutError("not registered:\n" + self.read_log()[-3000:])

    def recordings(self, kind="dec"):
        return sorted(os.path.join(self.rec, f) for f in os.listdir(self.rec) if f.endswith(f"-{kind}.wav"))

    def stop(self, timeout=10):
        """One SIGTERM: baresip unregisters and exits."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.proc:
            self.log.close()
            self.proc = None


def answered_call_with_tone(alice, bob, records):
    """alice calls bob, he answers, 3 s of talk, alice hangs up: bob's recording holds her
    1 kHz tone and records() (what `parley calls` lists) comes to show the call answered."""
    alice.command("dial", "sip:bob@a.test")
    bob.wait_event("CALL_INCOMING")
    alice.wait_event("CALL_RINGING")
    bob.command("accept")
    bob.wait_event("CALL_ESTABLISHED")
    alice.wait_event("CALL_ESTABLISHED")
    time.sleep(3)  # talk time: the tone flows phone to phone
    alice.command("hangup")
    bob.wait_event("CALL_CLOSED")
    alice.wait_event("CALL_CLOSED")
    recs = wait_for(lambda: bob.recordings("dec"), 15)
    assert recs, "bob recorded nothing"
    hz, secs = dominant_hz(recs[-1])
    assert secs >= 1.0, f"recording too short: {secs}"
    assert 900 <= hz <= 1100, f"bob heard {hz} Hz, not alice's 1 kHz tone"
    row = wait_for(lambda: [ln for ln in records().splitlines() if "alice@a.test" in ln and "200" in ln], 15)
    assert row, records()
