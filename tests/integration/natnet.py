"""natnet.py: real NAT built from network namespaces and nftables, for tests that must run
inside a private network and mount namespace (`unshare -n -m`, see private_netns_dir).

The topology (build_two_nats):

    ph1 (192.168.71.2) -- rtr1 (192.168.71.1 | 203.0.113.2) --+
                                                              +-- srv (203.0.113.1, bridge "inet")
    ph2 (192.168.72.2) -- rtr2 (192.168.72.1 | 203.0.113.3) --+

Each router forwards and masquerades its LAN behind its "internet" address with
`masquerade random`, so ports are remapped like many home routers do. Only documentation
(203.0.113.0/24) and private ranges are used, and no route leads out of these namespaces.
"""
import contextlib
import ctypes
import os
import subprocess
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*cmd, input=None):
    """Runs a command (in the caller's namespace); raises with its output when it fails."""
    r = subprocess.run(list(cmd), input=input, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r.stdout


def private_netns_dir():
    """Inside `unshare -n -m`: make every mount private and put a tmpfs on /run/netns, so the
    named namespaces added next are seen only by this process tree and vanish with it."""
    sh("mount", "--make-rprivate", "/")
    os.makedirs("/run/netns", exist_ok=True)
    sh("mount", "-t", "tmpfs", "netns", "/run/netns")
    sh("ip", "link", "set", "lo", "up")


def ns_cmd(ns, *cmd):
    """The argument list that runs cmd in the named namespace."""
    return ["ip", "netns", "exec", ns] + list(cmd)


def run_in(ns, *cmd, input=None):
    """Runs cmd in the named namespace; raises when it fails; returns its stdout."""
    return sh(*ns_cmd(ns, *cmd), input=input)


def popen_in(ns, cmd, **kw):
    """Starts cmd (a list) in the named namespace."""
    return subprocess.Popen(ns_cmd(ns, *cmd), **kw)


@contextlib.contextmanager
def netns(ns):
    """Runs the with-block's code in the named network namespace, or the one at the path ns
    (/proc/PID/ns/net), in this thread only: sockets created there stay in that namespace after
    the block returns."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(ns if ns.startswith("/") else f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        try:
            yield
        finally:
            if _libc.setns(here, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(there)
        os.close(here)


def add_ns(ns):
    sh("ip", "netns", "add", ns)
    run_in(ns, "ip", "link", "set", "lo", "up")


def veth(ns_a, name_a, ns_b, name_b):
    """A veth pair: name_a in ns_a, name_b in ns_b, both up."""
    sh("ip", "link", "add", name_a, "netns", ns_a, "type", "veth", "peer", "name", name_b, "netns", ns_b)
    run_in(ns_a, "ip", "link", "set", name_a, "up")
    run_in(ns_b, "ip", "link", "set", name_b, "up")


def nat_router(ns, wan, wan_addr, lan, lan_addr, random_ports=True, nat=True):
    """Makes ns a NAT router: addresses (CIDR) on its wan and lan links, forwarding on, and
    everything leaving by wan masqueraded (with random ports unless random_ports is False).
    With nat False it only routes (the control case: the LAN is reachable as it is)."""
    run_in(ns, "ip", "addr", "add", wan_addr, "dev", wan)
    run_in(ns, "ip", "addr", "add", lan_addr, "dev", lan)
    run_in(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    if not nat:
        return
    rules = ("table ip nat {\n"
             " chain post {\n"
             "  type nat hook postrouting priority 100;\n"
             f"  oifname \"{wan}\" masquerade{' random' if random_ports else ''}\n"
             " }\n"
             "}\n")
    run_in(ns, "nft", "-f", "-", input=rules)


def build_two_nats(server_ip="203.0.113.1", nat=True):
    """Builds the topology in the module docstring. Returns a dict describing it:
    server namespace and address, and for each phone its namespace, LAN address, router
    namespace and the router's public address. With nat False the routers do not translate
    and the server has routes to both LANs (a control: the phones' own addresses work)."""
    for ns in ("srv", "rtr1", "ph1", "rtr2", "ph2"):
        add_ns(ns)
    run_in("srv", "ip", "link", "add", "inet", "type", "bridge")
    run_in("srv", "ip", "addr", "add", f"{server_ip}/24", "dev", "inet")
    run_in("srv", "ip", "link", "set", "inet", "up")
    phones = {}
    for i, (lan_net, pub) in enumerate((("192.168.71", "203.0.113.2"), ("192.168.72", "203.0.113.3")), 1):
        rtr, ph = f"rtr{i}", f"ph{i}"
        veth("srv", f"w{i}", rtr, "wan")
        run_in("srv", "ip", "link", "set", f"w{i}", "master", "inet")
        veth(rtr, "lan", ph, "eth0")
        nat_router(rtr, "wan", f"{pub}/24", "lan", f"{lan_net}.1/24", nat=nat)
        if not nat:
            run_in("srv", "ip", "route", "add", f"{lan_net}.0/24", "via", pub)
        run_in(ph, "ip", "addr", "add", f"{lan_net}.2/24", "dev", "eth0")
        run_in(ph, "ip", "route", "add", "default", "via", f"{lan_net}.1")
        phones[ph] = {"ns": ph, "addr": f"{lan_net}.2", "router": rtr, "public": pub}
    return {"server": {"ns": "srv", "addr": server_ip}, "phones": phones}


def conntrack_table(ns):
    """The router's NAT mappings as text (from /proc, when the kernel offers it), for reports."""
    try:
        return run_in(ns, "cat", "/proc/net/nf_conntrack")
    except RuntimeError:
        return ""


def tear_down(names=("ph1", "rtr1", "ph2", "rtr2", "srv")):
    """Deletes the named namespaces (their links go with them). Leaving the `unshare` process
    tree removes them anyway; this is for a script that wants to end cleanly."""
    for ns in names:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def start_parley(bin_path, ns, ip, port, db, log, *extra):
    """Starts `parley serve` in namespace ns on udp:ip:port (its output appended to the open
    file log) and waits until it answers OPTIONS. Returns the process."""
    from sipua import UA, wait_for
    proc = popen_in(ns, [bin_path, "serve", "--listen", f"udp:{ip}:{port}", "--db", db, "--domain", "a.test",
                         "--log-level", "debug", *extra], stdout=log, stderr=subprocess.STDOUT)
    with netns(ns):
        probe = UA((ip, port), host=ip)
    try:
        def ready():
            probe.send_raw(probe.build("OPTIONS", f"sip:{ip}:{port}", contact=False))
            r = probe.final(timeout=0.3)
            return r is not None and r.status == 200
        if not wait_for(ready, 15, 0):
            raise RuntimeError(f"parley did not answer OPTIONS on {ip}:{port}")
    finally:
        probe.close()
    return proc


def stop_parley(proc, log):
    """Stops a Parley from start_parley (SIGTERM, then SIGKILL after 20 s), closes its log
    and deletes the namespaces."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    tear_down()


def stop_phones(phones):
    """Stops baresip phones all at once (a phone still in a call can take seconds to
    unregister and leave): SIGTERM to each, up to 10 s for all, then Baresip.stop (a second
    SIGTERM for any still running: it exits at once)."""
    phones = list(phones)
    running = [p for p in phones if p.proc and p.proc.poll() is None]
    for p in running:
        p.proc.terminate()
    end = time.time() + 10
    for p in running:
        try:
            p.proc.wait(max(0.0, end - time.time()))
        except subprocess.TimeoutExpired:
            pass
    for p in phones:
        p.stop()
