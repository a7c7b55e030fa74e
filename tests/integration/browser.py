"""browser.py: browser phones for the integration tests: one headless Chromium (Debian
`chromium`, driven by playwright-core through tests/browser/driver.js) whose tabs run JsSIP
phones over SIP-over-WebSocket, everything inside a private network namespace with only
loopback (NetNs), where Parley, rtpengine and baresip for those tests run too.

Chromium gathers ICE candidates on every interface it sees; in the namespace the only one is
127.0.0.1 and nothing can leave the machine (../shared/notes/browser.md). The JsSIP bundle is
built from tests/browser/node_modules (`make deps` runs `npm ci`) when the browser starts."""
import base64
import contextlib
import hashlib
import json
import os
import queue
import signal
import subprocess
import threading
import time

import natnet
from conftest import ROOT, Server
from sipua import wait_for

BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
CHROMIUM = os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium")

# The flags that make headless Chromium a phone here (notes/browser.md): media granted without a
# prompt from a fake device (a WAV file as the microphone when one is given), ICE on loopback,
# remote audio played without a click, and no traffic of Chromium's own.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
                  "--autoplay-policy=no-user-gesture-required", "--disable-quic",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-features=MediaRouter"]


def _die_with_parent():
    natnet._libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spki_hash(cert_pem):
    """The base64 SHA-256 of a certificate's public key (its SPKI), what Chromium's
    --ignore-certificate-errors-spki-list takes (Browser(spki=...)) to trust a test server's
    self-signed certificate for wss:// and https://, and only that one."""
    pub = subprocess.run(["openssl", "x509", "-in", cert_pem, "-pubkey", "-noout"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class NetNs:
    """A private network namespace with only loopback (up), held by a sleeping process; cmd()
    runs a program in it, enter() runs Python code in it (sockets made there stay there)."""

    def __init__(self):
        # The holder dies with the test process (PR_SET_PDEATHSIG), so a killed run leaves no
        # namespace behind; everything started in it is the test's own child.
        self.holder = subprocess.Popen(["unshare", "-n", "--", "sleep", "infinity"], preexec_fn=_die_with_parent)
        self.path = f"/proc/{self.holder.pid}/ns/net"
        # unshare execs sleep once the namespace exists: wait until the pid's namespace differs.
        own = os.readlink("/proc/self/ns/net")
        if not wait_for(lambda: os.path.exists(self.path) and os.readlink(self.path) != own, 5, 0.02):
            self.close()
            raise RuntimeError("unshare -n did not make a network namespace (root needed)")
        subprocess.run(self.cmd("ip", "link", "set", "lo", "up"), check=True)

    def cmd(self, *args):
        return ["nsenter", f"--net={self.path}", "--"] + list(args)

    def enter(self):
        return natnet.netns(self.path)

    def close(self):
        if self.holder.poll() is None:
            self.holder.kill()
            self.holder.wait()


class NsServer(Server):
    """conftest's Server run inside a NetNs, with extra listeners (ws:, wss:) beside its UDP one."""

    def __init__(self, ns, tmp, listens=(), **kw):
        super().__init__(tmp, **kw)
        self.ns = ns
        self.listens = list(listens)

    def cmd(self):
        c = super().cmd()
        for spec in self.listens:
            c[2:2] = ["--listen", spec]
        return self.ns.cmd(*c)

    def wait_ready(self, timeout=15):
        with self.ns.enter():
            super().wait_ready(timeout)


def tone_wav(path, hz, seconds=10):
    """A sine tone as a WAV file (sox), for Chromium's fake microphone (it loops the file)."""
    subprocess.run(["sox", "-n", "-r", "48000", "-b", "16", "-c", "1", path, "synth", str(seconds), "sine",
                    str(hz), "vol", "0.5"], check=True, capture_output=True)
    return path


class BrowserError(RuntimeError):
    pass


class Browser:
    """One Chromium (with its driver) in ns; page(name) opens a tab with a phone page.
    tone_hz: the fake microphone plays that tone (else Chromium's own beeps).
    spki: base64 SHA-256 public-key hashes Chromium is to trust for TLS (wss:) without a CA
    (`--ignore-certificate-errors-spki-list`)."""

    def __init__(self, ns, work, tone_hz=None, spki=(), extra_flags=()):
        self.ns = ns
        self.work = os.path.join(str(work), "chromium")
        os.makedirs(self.work, exist_ok=True)
        mods = os.path.join(BROWSER_DIR, "node_modules")
        for m in ("jssip", "esbuild", "playwright-core"):
            if not os.path.isdir(os.path.join(mods, m)):
                raise BrowserError(f"{mods}/{m} is missing: run `make deps` (npm ci in tests/browser)")
        if not os.access(CHROMIUM, os.X_OK):
            raise BrowserError(f"no Chromium at {CHROMIUM}: run `make deps` (Debian chromium)")
        flags = list(CHROMIUM_FLAGS)
        if tone_hz:
            flags.append("--use-file-for-fake-audio-capture="
                         + tone_wav(os.path.join(self.work, f"tone{tone_hz}.wav"), tone_hz))
        if spki:
            flags.append("--ignore-certificate-errors-spki-list=" + ",".join(spki))
        flags += list(extra_flags)
        # Chromium writes outside its profile (crash reports, pulse, dconf): all of it goes here.
        home = os.path.join(self.work, "home")
        env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                   XDG_CACHE_HOME=os.path.join(home, ".cache"), XDG_RUNTIME_DIR=os.path.join(home, "run"))
        for d in (env["XDG_CONFIG_HOME"], env["XDG_CACHE_HOME"], env["XDG_RUNTIME_DIR"]):
            os.makedirs(d, exist_ok=True)
        self.logpath = os.path.join(self.work, "browser.log")
        self.log = open(self.logpath, "ab")
        config = json.dumps({"chromium": CHROMIUM, "work": self.work, "args": flags})
        self.proc = subprocess.Popen(ns.cmd("node", os.path.join(BROWSER_DIR, "driver.js"), config),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=env, cwd=BROWSER_DIR)
        self.replies = {}
        self.cond = threading.Condition()
        self.ids = iter(range(1, 1 << 62))
        self.lock = threading.Lock()
        self.first = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        try:
            hello = self.first.get(timeout=90)
        except queue.Empty:
            hello = None
        if not hello or not hello.get("ready"):
            self.close()
            raise BrowserError(f"the browser driver did not start ({hello}):\n{self.read_log()[-3000:]}")
        self.url = hello["url"]
        self.version = hello.get("version")
        self.pages = {}

    def _read(self):
        for line in self.proc.stdout:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if "ready" in m:
                self.first.put(m)
                continue
            with self.cond:
                self.replies[m.get("id")] = m
                self.cond.notify_all()
        self.first.put(None)
        with self.cond:
            self.cond.notify_all()

    def read_log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def request(self, op, timeout=30, **args):
        """Sends one request to the driver and waits for its reply; returns its value."""
        with self.lock:
            rid = next(self.ids)
            self.proc.stdin.write((json.dumps(dict(args, id=rid, op=op)) + "\n").encode())
            self.proc.stdin.flush()
        end = time.time() + timeout
        with self.cond:
            while rid not in self.replies:
                left = end - time.time()
                if left <= 0 or self.proc.poll() is not None:
                    raise BrowserError(f"no reply to {op} {args.get('page', '')} within {timeout} s "
                                       f"(driver {'exited' if self.proc.poll() is not None else 'running'}):\n"
                                       + self.read_log()[-3000:])
                self.cond.wait(min(left, 0.5))
            m = self.replies.pop(rid)
        if not m.get("ok"):
            raise BrowserError(f"{op} failed in the browser: {m.get('error')}")
        return m.get("value")

    def page(self, name):
        """A tab with the phone page loaded (opened once, reused for later phones)."""
        if name not in self.pages:
            self.request("open", page=name, timeout=60)
            self.pages[name] = name
        return name

    def close(self):
        if self.proc.poll() is None:
            try:
                with self.lock:
                    self.proc.stdin.write(b'{"id": 0, "op": "quit"}\n')
                    self.proc.stdin.flush()
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        self.log.close()


class Phone:
    """A JsSIP phone in one tab of the browser: user@domain with password, over the WebSocket
    URL ws (ws://H:P or wss://H:P). Making one in a tab stops the tab's previous phone."""

    def __init__(self, browser, page, ws, user, domain, password, debug=True):
        self.b = browser
        self.page = browser.page(page)
        self.user, self.domain = user, domain
        self.aor = f"sip:{user}@{domain}"
        self.js("(o) => Phone.create(o)", {"ws": ws, "uri": self.aor, "password": password, "debug": debug})

    def js(self, fn, arg=None, timeout=30):
        """Runs the JavaScript function source fn with arg in the phone's tab; returns its result."""
        return self.b.request("eval", page=self.page, fn=fn, arg=arg, timeout=timeout)

    def next(self, etype, timeout=15):
        """The phone's next event of type etype (connected, registered, registrationFailed,
        newSession, progress, accepted, confirmed, ended, failed, ...) as a dict; raises when
        none comes within timeout seconds."""
        return self.js("(a) => phone.next(a.t, a.ms)", {"t": etype, "ms": int(timeout * 1000)},
                       timeout=timeout + 10)

    def register(self, timeout=15):
        """Registers; returns the registered event (status, Contact) or raises with the failure."""
        self.js("() => phone.register()")
        return self.next("registered", timeout)

    def call(self, target):
        self.js("(t) => phone.call(t)", target)

    def answer(self):
        self.js("() => phone.answer()")

    def reject(self, status=486, reason="Busy Here"):
        self.js("(a) => phone.reject(a.s, a.r)", {"s": status, "r": reason})

    def terminate(self):
        """Hangs up: CANCEL while the call rings, BYE once it is answered."""
        self.js("() => phone.terminate()")

    def stats(self):
        """getStats() of the current call, summed up (see phone.js stats())."""
        return self.js("() => phone.stats()")

    def tone(self, ms=1500):
        """The loudest frequency the phone hears over ms (Web Audio analyser on the remote
        stream): {"hz", "frames", "peakDb"}, or None before there is a remote stream."""
        return self.js("(ms) => phone.tone(ms)", ms, timeout=ms / 1000 + 15)

    def inbound_growing(self, timeout=10):
        """Waits until getStats shows inbound audio packets and more of them a moment later
        (media flowing now, not only once); returns (first stats, later stats)."""
        first = wait_for(lambda: (lambda s: s if s and s["inbound"] and s["inbound"]["packetsReceived"] > 0
                                  else None)(self.stats()), timeout, 0.2)
        assert first, f"{self.user}: no inbound audio packets in getStats: {self.stats()}"
        n = first["inbound"]["packetsReceived"]
        later = wait_for(lambda: (lambda s: s if s["inbound"]["packetsReceived"] > n + 10 else None)(self.stats()),
                         timeout, 0.2)
        assert later, f"{self.user}: inbound audio packets stopped at {n}: {self.stats()}"
        return first, later

    def stop(self):
        with contextlib.suppress(BrowserError):
            self.js("() => phone.stop()")
