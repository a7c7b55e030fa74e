#!/usr/bin/env python3
"""check_includes.py: which way the includes run (DESIGN §3: lower never includes higher).

Reads src/main.c, src/*/*.c and src/*/*.h and checks every project include (`#include
"module/header.h"`, or the same path in angle brackets) against the tables below:

  1. the including module may depend on the included module (ALLOWED);
  2. from outside a module, only its public headers may be included (PUBLIC);
  3. an edge listed in KNOWN_VIOLATIONS passes, one file and one header at a time; an
     allowance that no longer matches anything fails too, so that it is removed with the
     violation and cannot quietly allow its return.

A module (a directory under src/) that is not in ALLOWED, an include naming an unknown
module, and a quoted include that is not "module/header.h" are violations as well: a new
module or a new kind of edge is a decision to write down here, not a default.

Usage: scripts/check_includes.py [--root DIR]   check the tree (exit 1 on any violation)
       scripts/check_includes.py --self-test     check that the checker catches violations
Standard library only; runs in well under a second (about 0.1 s).
"""

import os
import re
import sys

# --- The tables -------------------------------------------------------------------------

# Which modules each module may include (its own module is always allowed). Derived from
# DESIGN §3 and from the tree as it is: each entry is what the module includes today and
# nothing the design forbids. "main" is src/main.c.
ALLOWED = {
    # core knows no SIP: loop, timers, str, khash, pool, log, config machinery.
    "core": set(),
    # sip parses and prints with no state and no I/O.
    "sip": {"core"},
    # transport moves bytes and hands them up through a callback.
    "transport": {"core"},
    # txn hands requests up through a callback too.
    "txn": {"core", "sip", "transport"},
    # Digest over a parsed Authorization header.
    "auth": {"core", "sip"},
    # Keyed tables of addresses; no SIP.
    "location": {"core", "transport"},
    "dialog": {"core", "transport"},
    "guard": {"core", "transport"},
    # store knows rows, not messages (see KNOWN_VIOLATIONS for store -> auth).
    "store": {"core"},
    # Call records are rows written through the store.
    "cdr": {"core", "store"},
    # Local domains, peers, RFC 3263.
    "route": {"core", "sip", "transport"},
    # rtpengine control over the ng protocol; SDP comes in as text from sip.
    "media": {"core", "sip", "transport"},
    # registrar and proxy never include each other: they meet in the router.
    "registrar": {"core", "sip", "transport", "txn", "location", "store"},
    "proxy": {"core", "sip", "transport", "txn", "dialog", "cdr", "route"},
    # The router decides; it may include the modules it hands requests to, never the
    # server that wires it up.
    "router": {"core", "sip", "transport", "txn", "auth", "location", "dialog", "guard",
               "store", "cdr", "route", "registrar", "proxy", "media"},
    # The server wires modules together and decides nothing: it may include all of them.
    "server": {"core", "sip", "transport", "txn", "auth", "location", "dialog", "guard",
               "store", "cdr", "route", "registrar", "proxy", "router", "media", "capture"},
    # Recent messages per call, HEP export, the trace socket: below the server, which
    # hands it every message; it knows addresses and bytes, not SIP state.
    "capture": {"core", "transport"},
    # The CLI and main may include anything.
    "cli": "*",
    "main": "*",
    # The HTTP endpoint sits above the server: the CLI starts it beside the server, and it
    # reads the server's counters and its modules' (their const stats getters), never
    # changing SIP state except through server.h's narrow functions; the capture ring's
    # messages; the call records in progress (cdr).
    "http": {"core", "sip", "transport", "txn", "location", "dialog", "guard", "store", "cdr",
             "route", "registrar", "proxy", "router", "media", "server", "capture"},
}

# The headers other modules may include. A module not listed here exports exactly
# "<module>/<module>.h"; "*" means every header of the module is public.
PUBLIC = {
    "core": "*",                                   # a toolbox: each header is an interface
    # router_int.h is the router's own
    "server": {"server/server.h", "server/config.h"},
    # media_int.h (bencode, the ng client) is the media module's own
    "media": {"media/media.h"},
    # http_int.h (the metrics writer) is the HTTP module's own
    "http": {"http/http.h"},
    # capture_int.h (the capture struct, the HEP encoder) is the capture module's own
    "capture": {"capture/capture.h"},
}

# Edges that break the rules today and are allowed one (file, header) at a time, each with
# the reason and the way out. Any other file making the same edge still fails.
KNOWN_VIOLATIONS = set()

# --- The checker ------------------------------------------------------------------------

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def public_headers(module):
    pub = PUBLIC.get(module)
    if pub is None:
        return {f"{module}/{module}.h"}
    return pub


def module_of(path):
    """'src/txn/server.c' -> 'txn'; 'src/main.c' -> 'main'."""
    parts = path.replace(os.sep, "/").split("/")
    if len(parts) == 2 and parts[1] == "main.c":
        return "main"
    return parts[1]


def describe_allowed(module):
    allowed = ALLOWED.get(module)
    if allowed == "*":
        return "anything"
    names = sorted(allowed | {module}) if allowed is not None else []
    return ", ".join(names) if names else "nothing"


def check_file(path, text, known=None, used_known=None):
    """Violations in one file, as 'FILE:LINE: message' strings, and the number of project
    includes it makes. path is relative to the repository root (src/...)."""
    known = KNOWN_VIOLATIONS if known is None else known
    module = module_of(path)
    out = []
    count = 0
    if module not in ALLOWED:
        out.append(f"{path}:1: module {module} is not in the table of check_includes.py "
                   "(add it to ALLOWED with the modules it may include)")
        return out, 0
    allowed = ALLOWED[module]
    for lineno, line in enumerate(text.splitlines(), 1):
        m = INCLUDE_RE.match(line)
        if not m:
            continue
        quote, inc = m.group(1), m.group(2).strip()
        parts = inc.split("/")
        if quote == "<":
            # System headers pass; a project header in angle brackets is checked like "".
            if len(parts) != 2 or parts[0] not in ALLOWED or parts[0] == "main":
                continue
        count += 1
        where = f"{path}:{lineno}"
        if len(parts) != 2 or not parts[0] or not parts[1] or ".." in parts:
            out.append(f'{where}: include "{inc}" is not of the form "module/header.h"')
            continue
        target = parts[0]
        if target not in ALLOWED or target == "main":
            out.append(f"{where}: include {inc} names no module in the table")
            continue
        if target == module:
            continue
        if (path, inc) in known:
            if used_known is not None:
                used_known.add((path, inc))
            continue
        if allowed != "*" and target not in allowed:
            out.append(f"{where}: module {module} may not include {target} "
                       f"(allowed: {describe_allowed(module)})")
            continue
        pub = public_headers(target)
        if pub != "*" and inc not in pub:
            out.append(f"{where}: {inc} is private to module {target} "
                       f"(public: {', '.join(sorted(pub))})")
    return out, count


def check_table():
    """The table itself: names known, and no cycle (lower never includes higher)."""
    out = []
    for mod, allowed in ALLOWED.items():
        if allowed == "*":
            continue
        for dep in allowed:
            if dep not in ALLOWED:
                out.append(f"check_includes.py: ALLOWED[{mod}] names unknown module {dep}")
    for mod in PUBLIC:
        if mod not in ALLOWED:
            out.append(f"check_includes.py: PUBLIC names unknown module {mod}")
    # Cycle search over the non-wildcard modules (a "*" module may include all, so nothing
    # else may include it: check that too).
    wild = {m for m, a in ALLOWED.items() if a == "*"}
    for mod, allowed in ALLOWED.items():
        if allowed != "*" and allowed & wild:
            out.append(f"check_includes.py: {mod} may include {sorted(allowed & wild)}, "
                       "which may include anything: a cycle")
    state = {}

    def visit(m, stack):
        state[m] = 1
        for d in sorted(ALLOWED[m]) if ALLOWED[m] != "*" else []:
            if d not in ALLOWED or d == m:
                continue
            if state.get(d) == 1:
                out.append("check_includes.py: cycle in ALLOWED: "
                           + " -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(ALLOWED):
        if ALLOWED[m] != "*" and m not in state:
            visit(m, [m])
    return out


def source_files(root):
    src = os.path.join(root, "src")
    files = []
    if os.path.isfile(os.path.join(src, "main.c")):
        files.append("src/main.c")
    for d in sorted(os.listdir(src)):
        full = os.path.join(src, d)
        if not os.path.isdir(full):
            continue
        for f in sorted(os.listdir(full)):
            if f.endswith((".c", ".h")) and os.path.isfile(os.path.join(full, f)):
                files.append(f"src/{d}/{f}")
    return files


def check_tree(root):
    violations = check_table()
    used = set()
    nfiles = nincs = 0
    for rel in source_files(root):
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
            v, n = check_file(rel, fh.read(), used_known=used)
        violations += v
        nfiles += 1
        nincs += n
    for path, inc in sorted(KNOWN_VIOLATIONS - used):
        violations.append(f"{path}:1: known violation {path} -> {inc} no longer happens: "
                          "remove it from KNOWN_VIOLATIONS in scripts/check_includes.py")
    return violations, nfiles, nincs


# --- Self-test --------------------------------------------------------------------------

def self_test():
    """Feed fake includes through check_file and make sure each bad one is reported and
    each good one is not, so the check cannot pass by checking nothing."""
    bad = [  # (file, include, words the report must contain)
        ("src/core/log.c", "sip/sip.h", "module core may not include sip"),
        ("src/sip/parse.c", "txn/txn.h", "module sip may not include txn"),
        ("src/transport/udp.c", "sip/sip.h", "module transport may not include sip"),
        ("src/txn/txn.c", "router/router.h", "module txn may not include router"),
        ("src/registrar/registrar.c", "proxy/proxy.h", "module registrar may not include proxy"),
        ("src/proxy/proxy.c", "registrar/registrar.h", "module proxy may not include registrar"),
        ("src/router/router.c", "cli/cli.h", "module router may not include cli"),
        # store takes HA1 values and hashes nothing: no file of it may include auth.
        ("src/store/store.c", "auth/auth.h", "module store may not include auth"),
        ("src/store/sqlite.c", "auth/auth.h", "module store may not include auth"),
        ("src/store/store.c", "sip/sip.h", "module store may not include sip"),
        ("src/proxy/proxy.c", "txn/txn_int.h", "txn/txn_int.h is private to module txn"),
        ("src/cli/serve.c", "router/router_int.h", "private to module router"),
        ("src/router/router.c", "server/server.h", "module router may not include server"),
        ("src/main.c", "store/store_be.h", "private to module store"),
        ("src/proxy/proxy.c", "sip/lex.h", "private to module sip"),
        ("src/proxy/proxy.c", "nosuch/nosuch.h", "names no module"),
        ("src/proxy/proxy.c", "../txn/txn_int.h", "not of the form"),
        ("src/proxy/proxy.c", "txn_int.h", "not of the form"),
        ("src/widget/widget.c", "core/str.h", "module widget is not in the table"),
        ("src/server/server.c", "capture/capture_int.h", "private to module capture"),
        # http sits above server: the server never starts or reads the endpoint.
        ("src/server/server.c", "http/http.h", "module server may not include http"),
        ("src/cli/serve.c", "http/http_int.h", "private to module http"),
    ]
    good = [
        ("src/sip/parse.c", '"core/str.h"'),
        ("src/sip/parse.c", '"sip/lex.h"'),
        ("src/txn/server.c", '"txn/txn_int.h"'),
        ("src/router/answer.c", '"router/router_int.h"'),
        ("src/cli/serve.c", '"server/server.h"'),
        ("src/http/metrics.c", '"txn/txn.h"'),
        ("src/cli/serve.c", '"http/http.h"'),
        ("src/server/server.c", '"router/router.h"'),
        ("src/proxy/proxy.c", '"core/pool.h"'),
        ("src/main.c", '"cli/cli.h"'),
        ("src/core/log.c", "<stdio.h>"),
        ("src/core/log.c", "<sys/socket.h>"),
    ]
    failures = []
    for path, inc, want in bad:
        for form in (f'#include "{inc}"', f"  #  include <{inc}>  /* x */"):
            if form.startswith("  #") and (len(inc.split("/")) != 2
                                           or inc.split("/")[0] not in ALLOWED):
                continue  # <txn_int.h>, <server/x.h>: system headers as far as it knows
            text = f"/* fake */\n#include <stdio.h>\n{form}\n"
            v, _ = check_file(path, text)
            if not any(want in x and (x.startswith(f"{path}:3:") or
                                      "not in the table" in x) for x in v):
                failures.append(f"not reported: {path}: {form} (got {v})")
    for path, form in good:
        v, _ = check_file(path, f"#include {form}\n")
        if v:
            failures.append(f"reported but fine: {path}: {form}: {v}")
    # The message format the Makefile user sees.
    v, _ = check_file("src/sip/x.c", '#include "txn/txn.h"\n')
    if v != ["src/sip/x.c:1: module sip may not include txn (allowed: core, sip)"]:
        failures.append(f"message format changed: {v}")
    # An allowance, here a fake one, lets its (file, header) edge pass and no other; a stale
    # one is reported.
    global KNOWN_VIOLATIONS
    real_known = KNOWN_VIOLATIONS
    KNOWN_VIOLATIONS = {("src/store/store.c", "auth/auth.h")}
    try:
        used = set()
        v, _ = check_file("src/store/store.c", '#include "auth/auth.h"\n', used_known=used)
        if v or used != KNOWN_VIOLATIONS:
            failures.append(f"an allowance did not let its edge pass: {v}, used {used}")
        v, _ = check_file("src/store/sqlite.c", '#include "auth/auth.h"\n')
        if not any("module store may not include auth" in x for x in v):
            failures.append(f"an allowance let another file make its edge: {v}")
        used = set()
        check_file("src/store/store.c", '#include "core/str.h"\n', used_known=used)
        if KNOWN_VIOLATIONS - used != KNOWN_VIOLATIONS:
            failures.append("an allowance counted as used without its include")
        if check_table():
            failures.append(f"the table itself is wrong: {check_table()}")
        # The whole path, file discovery included, on a fake tree: a violation in a header,
        # a private header from main.c, and the fake store.c allowance gone stale.
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            for rel, text in (("src/main.c", '#include "txn/txn_int.h"\n'),
                              ("src/sip/sip.h", '#include "core/str.h"\n#include "txn/txn.h"\n'),
                              ("src/store/store.c", '#include "store/store.h"\n')):
                os.makedirs(os.path.join(tmp, os.path.dirname(rel)), exist_ok=True)
                with open(os.path.join(tmp, rel), "w") as fh:
                    fh.write(text)
            v, nfiles, nincs = check_tree(tmp)
            wants = ["src/main.c:1: txn/txn_int.h is private to module txn",
                     "src/sip/sip.h:2: module sip may not include txn",
                     "known violation src/store/store.c -> auth/auth.h no longer happens"]
            if (nfiles, nincs) != (3, 4) or len(v) != 3 or \
                    not all(any(w in x for x in v) for w in wants):
                failures.append(f"fake tree: {nfiles} files, {nincs} includes, {v}")
    finally:
        KNOWN_VIOLATIONS = real_known
    for f in failures:
        print(f"check_includes self-test: {f}", file=sys.stderr)
    if failures:
        return 1
    print(f"include check self-test: {len(bad)} fake violations reported, "
          f"{len(good)} fine includes passed")
    return 0


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = argv[1:]
    if args[:1] == ["--self-test"]:
        return self_test()
    if args[:1] == ["--root"] and len(args) == 2:
        root = args[1]
    elif args:
        print("Usage:" + __doc__.split("Usage:")[1].split("\n\n")[0], file=sys.stderr)
        return 2
    violations, nfiles, nincs = check_tree(root)
    for v in violations:
        print(v)
    if violations:
        print(f"include check: {len(violations)} violation(s) in {nfiles} files "
              "(tables at the top of scripts/check_includes.py; DESIGN §3)", file=sys.stderr)
        return 1
    print(f"include check: {nfiles} files, {nincs} includes, all in order")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
