"""test_dashboard.py: the dashboard (issue 14) in headless Chromium: an admin made with `parley
admin add` logs in through the page; a call placed by the python SIP clients (an authenticated
INVITE, 180, 200, ACK, BYE) shows in the active calls while it rings and once it is answered,
then in the history; its ladder, opened while the call runs, gains the BYE live (Server-Sent
Events) and shows every arrow in order, each opening the full message on a click; a user added
through the page registers, gets a new password and is deleted through it, and so is its
binding; markup in SIP messages stays text; and the page is readable at a phone's size.

One private network namespace with only loopback holds Parley (SIP on UDP, the page and API on
--http), the browser (browser.py, tests/browser/driver.js) and the SIP clients. Screenshots of
each screen go to $PARLEY_ARTIFACTS/dashboard (default: artifacts/dashboard beside the parley
binary under test), named in the test output; docs/img/ holds a set of them for the README."""
import os
import threading
import urllib.error
import urllib.request

import pytest

from browser import Browser, NetNs, NsServer
from conftest import BIN, parley
from sipua import SDP, UA, Call, is_req, is_resp, rand, wait_for

DOMAIN = "a.test"
SIP_PORT = 5060
HTTP = "127.0.0.1:8080"
URL = f"http://{HTTP}/"
ADMIN, ADMIN_PW = "root", "dashboard-secret-1"
DESKTOP = {"width": 1200, "height": 800}
PHONE = {"width": 390, "height": 844}
# What the caller's side of an authenticated call sees, in order (RFC 3261): the challenged
# INVITE and its ACK, the INVITE with credentials, then the call and its end.
PHONE_UA = "User-Agent: parley-test-phone/1.0"
CALLER_LEG = ["INVITE", "407", "ACK", "INVITE", "100", "180", "200", "ACK", "BYE", "200"]
CALLEE_LEG = ["INVITE", "180", "200", "ACK", "BYE", "200"]


def artifacts_dir():
    base = os.environ.get("PARLEY_ARTIFACTS") or os.path.join(os.path.dirname(os.path.abspath(BIN)), "artifacts")
    d = os.path.join(base, "dashboard")
    os.makedirs(d, exist_ok=True)
    # Only this run's screenshots in it.
    for f in os.listdir(d):
        if f.endswith(".png"):
            os.unlink(os.path.join(d, f))
    return d


class Lab:
    """The module's namespace, Parley (with its admin) and browser."""

    def __init__(self, work):
        self.work = str(work)
        self.shots = artifacts_dir()
        self.ns = NetNs()
        self.server = self.browser = None
        try:
            self.server = NsServer(self.ns, self.work, port=SIP_PORT, domains=(DOMAIN,), extra=["--http", HTTP])
            self.server.start()
            r = parley("admin", "add", ADMIN, "--password", ADMIN_PW, db=self.server.db)
            assert r.returncode == 0, r.stderr
            self.browser = Browser(self.ns, self.work)
        except BaseException:
            self.close()
            raise

    def ua(self, user, password="pw"):
        """A UDP SIP client for user@a.test inside the namespace."""
        with self.ns.enter():
            return UA(self.server.addr, user=user, domain=DOMAIN, password=password)

    def user(self, user, password="pw"):
        self.server.user_add(f"{user}@{DOMAIN}", password)

    def http(self, path):
        """GET path on the HTTP endpoint without credentials: (status, headers, body)."""
        with self.ns.enter():
            try:
                with urllib.request.urlopen(URL.rstrip("/") + path, timeout=10) as r:
                    return r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.headers, e.read()

    def close(self):
        if self.browser:
            self.browser.close()
        if self.server:
            rc = self.server.stop()
            log = self.server.read_log()
            assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log, log[-4000:]
            assert rc in (0, None), f"parley exited {rc}: {log[-4000:]}"
        self.ns.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request):
    lab = Lab(tmp_path_factory.mktemp("dashboard"))
    yield lab
    lab.close()
    # Printed past pytest's capture, so that a passing run names the directory too.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\ndashboard screenshots: {lab.shots}")


class Dash:
    """One tab of the browser on the dashboard, at a viewport size."""

    def __init__(self, lab, name, viewport=DESKTOP):
        self.lab, self.b, self.name = lab, lab.browser, name
        self.b.request("goto", page=name, url=URL, viewport=viewport, timeout=60)

    def js(self, fn, arg=None):
        return self.b.request("eval", page=self.name, fn=fn, arg=arg)

    def wait(self, fn, arg=None, timeout=10, what=None):
        """Waits until (fn)(arg) is truthy in the page; fails naming what otherwise."""
        try:
            return self.b.request("wait", page=self.name, fn=fn, arg=arg, ms=int(timeout * 1000), timeout=timeout + 10)
        except Exception as e:
            shot = self.shot("failed")
            raise AssertionError(f"{what or fn}: not so within {timeout} s ({e}); screenshot {shot}") from None

    def click(self, selector):
        self.b.request("click", page=self.name, selector=selector)

    def fill(self, selector, value):
        self.b.request("fill", page=self.name, selector=selector, value=value)

    def shot(self, name):
        path = os.path.join(self.lab.shots, f"{self.name}-{name}.png")
        # The body: as tall as what the page shows, not the window.
        self.b.request("screenshot", page=self.name, path=path, selector="body")
        return path

    def go(self, view):
        self.js("(h) => { location.hash = h; }", view)
        self.wait("(v) => !document.getElementById(v).hidden", view.split("/")[0], what=f"view {view} shown")

    def login(self, name=ADMIN, password=ADMIN_PW):
        self.wait("() => !document.getElementById('login').hidden", what="the login form")
        self.fill("#login-name", name)
        self.fill("#login-password", password)
        self.click("#login-form button[type=submit]")

    def rows(self, table):
        """The rows of a table as lists of cell texts, with the row's data attributes."""
        return self.js("""(t) => [...document.querySelectorAll('#' + t + ' tbody tr')].map(
            (tr) => ({data: Object.assign({}, tr.dataset), cells: [...tr.children].map((td) => td.textContent)}))""",
                       table)

    def arrows(self):
        """The ladder's arrows in order: {label, from, to, dir} read from the SVG."""
        return self.js("""() => [...document.querySelectorAll('#ladder g.arrow')].map(
            (g) => ({label: g.dataset.label, from: g.dataset.from, to: g.dataset.to, dir: g.dataset.dir}))""")


@pytest.fixture(scope="module")
def dash(lab):
    d = Dash(lab, "desktop")
    d.login()
    d.wait("() => !document.getElementById('registrations').hidden", what="logged in")
    return d


class PlacedCall:
    """alice (registered) calls bob (registered) through Parley, step by step; bob's phone
    answers from the test's thread, alice hangs up."""

    def __init__(self, lab, alice, bob):
        self.alice = lab.ua(alice)
        self.bob = lab.ua(bob)
        for ua in (self.alice, self.bob):
            r = ua.register(headers=[PHONE_UA])
            assert r is not None and r.status == 200, r
        self.call = Call(self.alice, f"sip:{bob}@{DOMAIN}")
        self.call_id = self.call.call_id
        self.tag = rand(8)

    def ring(self):
        assert self.call.start() is None, "the first INVITE was not challenged"
        self.inv = self.bob.recv(5, is_req("INVITE"))
        assert self.inv is not None, "bob's phone got no INVITE"
        self.bob.reply(self.inv, 180, "Ringing", to_tag=self.tag)
        assert self.alice.recv(5, is_resp("INVITE", 180)) is not None

    def answer(self):
        self.bob.reply(self.inv, 200, "OK", to_tag=self.tag, body=SDP,
                       headers=[f"Contact: <sip:bob@{self.bob.hostport}>", "Content-Type: application/sdp"])
        r = self.call.final()
        assert r is not None and r.status == 200, r
        self.call.ack()
        assert self.bob.recv(5, is_req("ACK")) is not None, "the ACK did not reach bob"

    def hang_up(self):
        def bob_side():
            bye = self.bob.recv(5, is_req("BYE"))
            if bye is not None:
                self.bob.reply(bye, 200, "OK")
        th = threading.Thread(target=bob_side)
        th.start()
        r = self.call.in_dialog("BYE")
        th.join()
        assert r is not None and r.status == 200, r

    def close(self):
        self.alice.close()
        self.bob.close()


def test_static_files_headers(lab):
    """The page needs no login and comes with headers that keep it from being cached stale,
    sniffed or made to run anything from elsewhere; the API does need one."""
    status, headers, body = lab.http("/")
    assert status == 200 and b"<title>Parley</title>" in body
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-cache"
    for path, ctype in (("/app.js", "text/javascript"), ("/app.css", "text/css"), ("/icon.svg", "image/svg+xml")):
        status, headers, body = lab.http(path)
        assert status == 200 and headers["Content-Type"].startswith(ctype) and body, path
    assert lab.http("/index.html")[2] == lab.http("/")[2]
    assert lab.http("/nothing.js")[0] == 404
    assert lab.http("/api/me")[0] == 401


def test_login(lab):
    """No session: the login form; a wrong password is refused there; the right one opens the
    registrations, and a reload keeps the session (the cookie)."""
    d = Dash(lab, "login")
    d.wait("() => !document.getElementById('login').hidden && document.getElementById('tabs').hidden",
           what="the login form, no tabs")
    d.shot("login")
    d.login(password="wrong")
    d.wait("() => document.getElementById('login-error').textContent.includes('Wrong name or password')",
           what="a wrong password refused")
    assert d.js("() => document.getElementById('tabs').hidden")
    d.login()
    d.wait("() => !document.getElementById('registrations').hidden", what="registrations after login")
    assert d.js("() => document.getElementById('me').textContent") == ADMIN
    d.b.request("goto", page="login", url=URL + "#users")
    d.wait("() => !document.getElementById('users').hidden", what="still logged in after a reload")
    d.click("#logout")
    d.wait("() => !document.getElementById('login').hidden", what="the login form after logging out")
    d.b.request("goto", page="login", url=URL)
    d.wait("() => !document.getElementById('login').hidden", what="logged out for good")


def test_call_active_history_ladder(lab, dash):
    """A call appears in the active calls (ringing, then answered) as it happens; its ladder,
    opened from there, gains the hang-up live; then the call is in the history, and its ladder
    shows the arrows in order between the right columns, each opening its message."""
    lab.user("alice")
    lab.user("bob")
    pc = PlacedCall(lab, "alice", "bob")
    try:
        dash.go("active")
        pc.ring()
        row = "(id) => [...document.querySelectorAll('#active-table tbody tr')].find((tr) => tr.dataset.callId === id)"
        dash.wait(f"(id) => {{ const tr = ({row})(id); return tr && tr.textContent.includes('ringing'); }}",
                  pc.call_id, what="the call ringing in the active calls")
        pc.answer()
        dash.wait(f"(id) => {{ const tr = ({row})(id); return tr && tr.textContent.includes('answered'); }}",
                  pc.call_id, what="the call answered in the active calls")
        cells = [r["cells"] for r in dash.rows("active-table") if r["data"].get("callId") == pc.call_id][0]
        assert "alice@a.test" in cells[1] and "bob@a.test" in cells[2], cells
        dash.shot("active")
        # The ladder of the running call, opened from its row; the hang-up arrives live.
        dash.click(f'#active-table a[data-call-id="{pc.call_id}"]')
        dash.wait("() => !document.getElementById('call').hidden && "
                  "document.querySelectorAll('#ladder g.arrow').length >= 12", what="the ladder of the running call")
        before = len(dash.arrows())
        assert [a["label"] for a in dash.arrows()].count("BYE") == 0
        pc.hang_up()
        dash.wait("(n) => [...document.querySelectorAll('#ladder g.arrow')].filter((g) => g.dataset.label === 'BYE')"
                  ".length === 2 && document.querySelectorAll('#ladder g.arrow').length >= n + 4", before,
                  what="the BYE and its 200 appended live to the open ladder")
        live = dash.arrows()
        # The call leaves the active calls and enters the history.
        dash.go("active")
        dash.wait(f"(id) => !({row})(id)", pc.call_id, what="the call gone from the active calls")
        dash.go("history")
        dash.wait("(id) => [...document.querySelectorAll('#hist-table tbody tr')].some("
                  "(tr) => tr.dataset.callId === id && tr.textContent.includes('answered'))", pc.call_id, timeout=15,
                  what="the call in the history")
        dash.shot("history")
        # Its ladder from the history: every arrow, in order, between the right columns.
        dash.click(f'#hist-table a[data-call-id="{pc.call_id}"]')
        dash.wait("() => !document.getElementById('call').hidden && "
                  "document.querySelectorAll('#ladder g.arrow').length >= 16", what="the ladder from the history")
        arrows = dash.arrows()
        assert arrows == live, f"the ladder built live differs from the one loaded:\n{live}\n{arrows}"
        heads = dash.js("() => [...document.querySelectorAll('#ladder text.col-head')].map((t) => t.textContent)")
        assert heads == ["alice@a.test", "Parley", "bob@a.test"], heads
        alice_at, bob_at = f"127.0.0.1:{pc.alice.port}", f"127.0.0.1:{pc.bob.port}"
        caller = [a for a in arrows if alice_at in (a["from"], a["to"])]
        callee = [a for a in arrows if bob_at in (a["from"], a["to"])]
        assert [a["label"] for a in caller] == CALLER_LEG, caller
        assert [a["label"] for a in callee] == CALLEE_LEG, callee
        assert len(arrows) == len(caller) + len(callee), arrows
        # Requests from alice go to Parley; responses come back to her.
        for a in caller:
            req = not a["label"].isdigit()
            assert (a["from"], a["to"]) == ((alice_at, "Parley") if req else ("Parley", alice_at)), a
        for a in callee:
            req = not a["label"].isdigit()
            assert (a["from"], a["to"]) == (("Parley", bob_at) if req else (bob_at, "Parley")), a
        # Parley forwards the INVITE only after the authenticated one came in.
        labels = [(a["label"], a["to"]) for a in arrows]
        assert labels.index(("INVITE", bob_at)) > labels.index(("100", alice_at))
        dash.shot("ladder")
        # A click on the 407 shows the whole challenge.
        i = [a["label"] for a in arrows].index("407")
        dash.click(f'#ladder g.arrow[data-index="{i}"]')
        dash.wait("() => !document.getElementById('message').hidden", what="the message shown")
        text = dash.js("() => document.getElementById('message-text').textContent")
        assert text.startswith("SIP/2.0 407 "), text
        assert "Proxy-Authenticate:" in text and f"Call-ID: {pc.call_id}" in text, text
        dash.shot("message")
        # And the BYE, which came live in the first ladder, is the one alice sent.
        i = [a["label"] for a in arrows].index("BYE")
        dash.click(f'#ladder g.arrow[data-index="{i}"]')
        dash.wait("() => document.getElementById('message-text').textContent.startsWith('BYE ')", what="the BYE")
        # Search by Call-ID finds the call, and only it.
        dash.go("history")
        dash.js("() => { const f = document.getElementById('hist-field'); f.value = 'call_id'; "
            "f.dispatchEvent(new Event('change')); }")
        dash.fill("#hist-q", pc.call_id)
        dash.click("#hist-search button[type=submit]")
        dash.wait("(id) => { const r = [...document.querySelectorAll('#hist-table tbody tr')];"
                  " return r.length === 1 && r[0].dataset.callId === id; }", pc.call_id, what="the search by Call-ID")
    finally:
        pc.close()


def test_users_through_the_page(lab, dash):
    """A user added through the page registers with its password; the binding shows in the
    registrations live and is deleted from there; a new password set there works; the user is
    deleted from there."""
    dash.go("users")
    dash.fill("#user-new", f"carol@{DOMAIN}")
    dash.fill("#user-new-pw", "carol-pw-1")
    dash.click("#user-add button[type=submit]")
    dash.wait("() => document.querySelector('#users-table tr[data-user=\"carol@a.test\"]')",
              what="carol in the users list")
    assert wait_for(lambda: f"carol@{DOMAIN}" in parley("user", "list", db=lab.server.db).stdout, 10)
    dash.shot("users")
    carol = lab.ua("carol", "carol-pw-1")
    try:
        dash.go("registrations")
        r = carol.register(headers=[PHONE_UA])
        assert r is not None and r.status == 200, r
        dash.wait("() => document.querySelector('#reg-table tr[data-aor=\"carol@a.test\"]')",
                  what="carol's binding shown live")
        cells = [r["cells"] for r in dash.rows("reg-table") if r["data"]["aor"] == "carol@a.test"][0]
        assert cells[1] == f"sip:carol@{carol.hostport}" and cells[2] == carol.hostport, cells
        assert cells[3].lower() == "udp" and cells[5] == PHONE_UA.split(": ", 1)[1], cells
        dash.shot("registrations")
        # The filter by user shows carol's binding alone; an empty one shows all again.
        dash.fill("#reg-user", f"carol@{DOMAIN}")
        dash.click("#reg-search button[type=submit]")
        dash.wait("() => [...document.querySelectorAll('#reg-table tbody tr')].map((tr) => tr.dataset.aor)"
                  ".join() === 'carol@a.test'", what="only carol's binding")
        dash.fill("#reg-user", "")
        dash.click("#reg-search button[type=submit]")
        dash.wait("() => document.querySelectorAll('#reg-table tbody tr').length > 1", what="all bindings again")
        # Deleted from the page (two clicks: the button asks once more).
        sel = '#reg-table tr[data-aor="carol@a.test"] button.danger'
        dash.click(sel)
        dash.click(sel)
        dash.wait("() => !document.querySelector('#reg-table tr[data-aor=\"carol@a.test\"]')",
                  what="carol's binding gone")
        # Gone from the database too (written behind, within the flush interval).
        assert wait_for(lambda: "carol@" not in parley("reg", "list", db=lab.server.db).stdout, 10), \
            parley("reg", "list", db=lab.server.db).stdout
        # A new password through the page: the old one is refused, the new one works.
        dash.go("users")
        dash.click('#users-table tr[data-user="carol@a.test"] button.plain')
        dash.fill("#users-table tr.pw input", "carol-pw-2")
        dash.click("#users-table tr.pw button[type=submit]")
        dash.wait("() => document.getElementById('users-ok').textContent.includes('Password of carol@a.test')",
                  what="the password changed")
        r = carol.register()
        assert r is not None and r.status == 403, r
        carol.password = "carol-pw-2"
        r = carol.register()
        assert r is not None and r.status == 200, r
        r = carol.register(expires=0)
        assert r is not None and r.status == 200, r
    finally:
        carol.close()
    sel = '#users-table tr[data-user="carol@a.test"] button.danger'
    dash.click(sel)
    dash.click(sel)
    dash.wait("() => !document.querySelector('#users-table tr[data-user=\"carol@a.test\"]')",
              what="carol deleted")
    assert wait_for(lambda: f"carol@{DOMAIN}" not in parley("user", "list", db=lab.server.db).stdout, 10)


def test_markup_in_sip_stays_text(lab, dash):
    """What a phone puts in its messages (User-Agent, display names) is shown as text: no
    element is made of it, nothing of it runs."""
    lab.user("mallory")
    evil = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    m = lab.ua("mallory")
    try:
        dash.go("registrations")
        r = m.register(headers=[f"User-Agent: {evil}"])
        assert r is not None and r.status == 200, r
        dash.wait("() => document.querySelector('#reg-table tr[data-aor=\"mallory@a.test\"]')",
                  what="mallory's binding")
        ua_cell = dash.js("() => document.querySelector('#reg-table tr[data-aor=\"mallory@a.test\"]')"
                          ".children[5].textContent")
        assert ua_cell == evil
        # A call whose messages carry it too: the ladder shows the INVITE's text as text.
        c = Call(m, f"sip:nobody@{DOMAIN}")
        c.headers.append(f"User-Agent: {evil}")
        assert c.start() is None
        final = c.final()
        assert final is not None and final.status >= 400, final
        dash.go("call/" + urllib.request.quote(c.call_id, safe=""))
        dash.wait("() => document.querySelectorAll('#ladder g.arrow').length >= 4", what="the ladder")
        dash.click('#ladder g.arrow[data-index="3"]')
        dash.wait("() => document.getElementById('message-text').textContent.includes('User-Agent: <img')",
                  what="the INVITE's text")
        assert dash.js("() => window.__xss === undefined")
        assert dash.js("() => document.querySelectorAll('main img, main script').length") == 0
    finally:
        m.register(expires=0)
        m.close()


def test_phone_sized_window(lab, dash):
    """At a phone's size the page fits the width: tables turn into cards, the ladder scrolls
    sideways inside its box."""
    lab.user("dave")
    lab.user("erin")
    pc = PlacedCall(lab, "dave", "erin")
    try:
        pc.ring()
        pc.answer()
        pc.hang_up()
    finally:
        pc.close()
    # The whole history on the desktop tab (no search): every call so far.
    dash.go("history")
    dash.fill("#hist-q", "")
    dash.click("#hist-search button[type=submit]")
    dash.wait("(id) => document.querySelector('#hist-table tr[data-call-id=\"' + id + '\"]')", pc.call_id,
              timeout=15, what="the call in the whole history")
    dash.shot("history-all")
    p = Dash(lab, "phone", viewport=PHONE)
    p.wait("() => !document.getElementById('registrations').hidden", what="logged in (the context's cookie)")
    fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert p.js(fits), "the registrations are wider than the phone"
    p.shot("registrations")
    p.go("history")
    p.wait("(id) => document.querySelector('#hist-table tr[data-call-id=\"' + id + '\"]')", pc.call_id, timeout=15,
           what="the call in the history")
    assert p.js(fits), "the history is wider than the phone"
    p.shot("history")
    p.click(f'#hist-table a[data-call-id="{pc.call_id}"]')
    p.wait("() => document.querySelectorAll('#ladder g.arrow').length >= 16", what="the ladder")
    assert p.js(fits), "the ladder makes the page wider than the phone"
    assert p.js("() => { const w = document.getElementById('ladder-wrap'); return w.scrollWidth > w.clientWidth; }")
    p.shot("ladder")


def test_history_search_and_pages(lab, dash):
    """The history searched by user shows that user's calls alone, 20 a page: Older and Newer
    move between the pages and say where they are."""
    lab.user("pager")
    ua = lab.ua("pager")
    try:
        ids = []
        for _ in range(21):
            c = Call(ua, f"sip:nobody@{DOMAIN}")
            assert c.start() is None
            r = c.final()
            assert r is not None and r.status == 404, r
            c.ack_non2xx(r)
            ids.append(c.call_id)
    finally:
        ua.close()
    dash.go("history")
    dash.js("() => { const f = document.getElementById('hist-field'); f.value = 'user'; "
            "f.dispatchEvent(new Event('change')); }")
    dash.fill("#hist-q", f"pager@{DOMAIN}")
    dash.click("#hist-search button[type=submit]")
    page = "() => [...document.querySelectorAll('#hist-table tbody tr')].map((tr) => tr.dataset.callId)"
    # Records are written behind the calls: the search is repeated until all are in.
    dash.wait("() => document.getElementById('hist-range').textContent === '1–20 of 21' || "
              "(document.querySelector('#hist-search button').click(), false)", timeout=15,
              what="the first page of pager's 21 calls")
    first = dash.js(page)
    assert len(first) == 20 and set(first) < set(ids), first
    assert dash.js("() => document.getElementById('hist-prev').disabled")
    dash.click("#hist-next")
    dash.wait("() => document.getElementById('hist-range').textContent === '21–21 of 21'", what="the second page")
    second = dash.js(page)
    # The two pages hold every call once (which is last is not checked: calls started
    # within the same millisecond may come in either order).
    assert len(second) == 1 and set(first) | set(second) == set(ids), (first, second)
    assert dash.js("() => document.getElementById('hist-next').disabled")
    dash.click("#hist-prev")
    dash.wait("() => document.getElementById('hist-range').textContent === '1–20 of 21'", what="the first page again")
    assert dash.js(page) == first
    # Every row is pager's: caller pager@a.test, not found.
    rows = dash.rows("hist-table")
    assert all(r["cells"][1] == f"pager@{DOMAIN}" and r["cells"][3] == "not found" for r in rows), rows
