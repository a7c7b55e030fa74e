// app.js: the dashboard's behaviour: login, the lists (registrations, active calls, history, users), the ladder, live updates over /api/events.
//
// Plain DOM, no framework. Everything that comes from the server (and so from SIP messages,
// which anyone can send) goes into the page as text nodes or attribute values, never as
// markup: el() and svg() below are the only ways this file builds elements.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const SVGNS = 'http://www.w3.org/2000/svg';
  const PARLEY = ''; // the ladder's column key for Parley itself (remote columns are "IP:PORT")

  // --- Building the DOM safely ---------------------------------------------------------

  // el('td', {class: 'x', data: {k: v}, onclick: fn}, 'text', node, ...): strings become text.
  function el(tag, attrs, ...kids) {
    return build(document.createElement(tag), attrs, kids);
  }

  function svg(tag, attrs, ...kids) {
    return build(document.createElementNS(SVGNS, tag), attrs, kids);
  }

  function build(node, attrs, kids) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'data') {
        for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = String(dv);
      } else if (k.startsWith('on')) {
        node.addEventListener(k.slice(2), v);
      } else {
        node.setAttribute(k, String(v));
      }
    }
    for (const kid of kids.flat()) {
      if (kid === undefined || kid === null || kid === false) continue;
      node.appendChild(typeof kid === 'object' ? kid : document.createTextNode(String(kid)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // --- Formatting ----------------------------------------------------------------------

  const pad = (n, w = 2) => String(n).padStart(w, '0');

  function fmtDate(ms) {
    if (ms === null || ms === undefined) return '—';
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fmtClock(ms) {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  // A call's duration (the API gives milliseconds): "4.2 s" under a minute, else "m:ss".
  function fmtDuration(ms) {
    if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return '—';
    ms = Math.max(0, Number(ms));
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    const s = Math.round(ms / 1000);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
  }

  function fmtExpires(s) {
    s = Math.max(0, Math.round(Number(s) || 0));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  // "INVITE sip:bob@x SIP/2.0" -> "INVITE"; "SIP/2.0 407 Proxy ..." -> "407".
  function labelOf(firstLine) {
    const line = String(firstLine || '');
    const resp = /^SIP\/2\.0\s+(\d{3})/.exec(line);
    if (resp) return resp[1];
    return line.split(/\s+/)[0] || '?';
  }

  function isRequest(firstLine) {
    return !/^SIP\/2\.0\s/.test(String(firstLine || ''));
  }

  // --- The API -------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // One API call; resolves to the parsed JSON body (null for none). A 401 anywhere but the
  // login itself means the session is gone: the login form comes back.
  async function api(method, path, body, bodyType) {
    const opts = { method, credentials: 'same-origin', headers: {} };
    // The server refuses a state change with a cookie but without this header (CSRF guard).
    if (method !== 'GET') opts.headers['X-Parley'] = '1';
    if (body !== undefined) {
      if (bodyType === 'text') {
        opts.headers['Content-Type'] = 'text/plain; charset=utf-8';
        opts.body = body;
      } else {
        opts.headers['Content-Type'] = 'application/json';
        opts.body = JSON.stringify(body);
      }
    }
    let r;
    try {
      r = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, `Parley did not answer (${e.message})`);
    }
    const text = await r.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (r.status === 401 && path !== '/api/login') {
      showLogin();
      throw new ApiError(401, 'Not logged in');
    }
    if (!r.ok) throw new ApiError(r.status, (data && data.error) || `${r.status} ${r.statusText}`);
    return data;
  }

  function showError(id, e) {
    $(id).textContent = e ? (e.message || String(e)) : '';
  }

  // --- State ---------------------------------------------------------------------------

  const state = {
    me: null,
    view: null,
    regUser: '',
    hist: { field: 'user', q: '', offset: 0, limit: 20, total: 0 },
    call: null, // the open ladder: { id, msgs: [...], selected: index or -1 }
    events: null,
    timers: {},
    calls: new Map(), // Call-IDs seen in INVITE/BYE/CANCEL/ACK (true) or REGISTER (false)
  };

  // --- Views ---------------------------------------------------------------------------

  const VIEWS = ['registrations', 'active', 'history', 'users', 'call'];

  function showLogin() {
    state.me = null;
    closeEvents();
    $('tabs').hidden = true;
    $('who').hidden = true;
    for (const v of VIEWS) $(v).hidden = true;
    $('login').hidden = false;
    $('login-name').focus();
  }

  function startApp(me) {
    state.me = me;
    $('login').hidden = true;
    $('tabs').hidden = false;
    $('who').hidden = false;
    $('me').textContent = me.name;
    openEvents();
    route();
  }

  // The hash says which view: #registrations, #active, #history, #users, #call/CALL-ID.
  function route() {
    if (!state.me) return;
    const h = location.hash.replace(/^#/, '');
    let view = 'registrations';
    let callId = null;
    if (h.startsWith('call/')) {
      view = 'call';
      try {
        callId = decodeURIComponent(h.slice(5));
      } catch (e) {
        callId = h.slice(5);
      }
    } else if (VIEWS.includes(h)) {
      view = h;
    }
    state.view = view;
    for (const v of VIEWS) $(v).hidden = v !== view;
    for (const a of $('tabs').querySelectorAll('a')) {
      a.classList.toggle('current', a.dataset.tab === view);
    }
    if (view !== 'call') state.call = null;
    LOADERS[view](callId);
  }

  const LOADERS = {
    registrations: loadRegistrations,
    active: loadActive,
    history: loadHistory,
    users: loadUsers,
    call: (id) => openCall(id),
  };

  function fill(tableId, emptyId, rows) {
    const tbody = $(tableId).querySelector('tbody');
    clear(tbody);
    // Each cell names its column (data-col), for the narrow layout's row cards.
    const heads = [...$(tableId).querySelectorAll('thead th')].map((th) => th.textContent);
    for (const r of rows) {
      [...r.children].forEach((td, i) => {
        if (heads[i]) td.dataset.col = heads[i];
      });
      tbody.appendChild(r);
    }
    $(emptyId).hidden = rows.length > 0;
    $(tableId).hidden = rows.length === 0;
  }

  function callLink(callId) {
    return el('a', { href: '#call/' + encodeURIComponent(callId), class: 'mono', data: { callId } }, callId);
  }

  // A button that asks once more before doing what it says (no window.confirm: it blocks).
  function confirmButton(label, action) {
    let armed = null;
    const b = el('button', { type: 'button', class: 'danger' }, label);
    b.addEventListener('click', async () => {
      if (!armed) {
        b.textContent = 'Sure?';
        armed = setTimeout(() => {
          armed = null;
          b.textContent = label;
        }, 4000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      b.disabled = true;
      try {
        await action();
      } finally {
        b.disabled = false;
        b.textContent = label;
      }
    });
    return b;
  }

  // --- Registrations -------------------------------------------------------------------

  const REG_PAGE = 1000;

  async function loadRegistrations() {
    const q = state.regUser ? '?user=' + encodeURIComponent(state.regUser) : '';
    try {
      const regs = await api('GET', '/api/registrations' + q);
      // The server answers at most REG_PAGE bindings (its default page): say when there may be more.
      showError('reg-error', regs.length >= REG_PAGE
        ? { message: `The first ${REG_PAGE} bindings are shown: search by user to find others.` } : null);
      fill('reg-table', 'reg-empty', regs.map((r) => el('tr', { data: { aor: r.aor } },
        el('td', {}, r.aor),
        el('td', { class: 'mono' }, r.contact),
        el('td', { class: 'mono' }, r.source),
        el('td', {}, r.transport),
        el('td', {}, fmtExpires(r.expires)),
        el('td', {}, r.user_agent || ''),
        el('td', { class: 'actions' }, confirmButton('Delete', () => deleteBinding(r))))));
    } catch (e) {
      if (e.status !== 401) showError('reg-error', e);
    }
  }

  async function deleteBinding(r) {
    try {
      await api('DELETE', '/api/registrations?aor=' + encodeURIComponent(r.aor) +
        '&contact=' + encodeURIComponent(r.contact));
      showError('reg-error', null);
    } catch (e) {
      showError('reg-error', e);
    }
    loadRegistrations();
  }

  // --- Active calls --------------------------------------------------------------------

  async function loadActive() {
    try {
      const calls = await api('GET', '/api/calls/active');
      showError('active-error', null);
      fill('active-table', 'active-empty', calls.map((c) => el('tr', { data: { callId: c.call_id } },
        el('td', {}, fmtDate(c.start)),
        el('td', {}, c.caller),
        el('td', {}, c.callee),
        el('td', {}, el('span', { class: 'state ' + (c.state === 'answered' ? 'answered' : '') }, c.state)),
        el('td', {}, callLink(c.call_id)))));
    } catch (e) {
      if (e.status !== 401) showError('active-error', e);
    }
  }

  // --- History -------------------------------------------------------------------------

  async function loadHistory() {
    const h = state.hist;
    let q = `?limit=${h.limit}&offset=${h.offset}`;
    if (h.q) q += `&${h.field === 'call_id' ? 'call_id' : 'user'}=` + encodeURIComponent(h.q);
    try {
      const res = await api('GET', '/api/calls' + q);
      showError('hist-error', null);
      h.total = res.total;
      fill('hist-table', 'hist-empty', res.calls.map((c) => el('tr', { data: { callId: c.call_id } },
        el('td', {}, fmtDate(c.start)),
        el('td', {}, c.caller),
        el('td', {}, c.callee),
        el('td', { class: 'result' }, c.result),
        el('td', {}, c.answer === null ? '—' : fmtDuration(c.duration)),
        el('td', {}, c.media || ''),
        el('td', {}, callLink(c.call_id)))));
      const first = res.calls.length ? h.offset + 1 : 0;
      $('hist-range').textContent = `${first}–${h.offset + res.calls.length} of ${res.total}${res.total_capped ? '+' : ''}`;
      $('hist-prev').disabled = h.offset === 0;
      // A capped total ("10000+") does not say where the end is: a short page does.
      $('hist-next').disabled = res.total_capped ? res.calls.length < h.limit : h.offset + res.calls.length >= res.total;
    } catch (e) {
      if (e.status !== 401) showError('hist-error', e);
    }
  }

  // --- Users ---------------------------------------------------------------------------

  async function loadUsers() {
    try {
      const users = await api('GET', '/api/users');
      showError('users-error', null);
      fill('users-table', 'users-empty', users.map((u) => {
        const row = el('tr', { data: { user: u.user } }, el('td', {}, u.user));
        row.appendChild(el('td', { class: 'actions' },
          el('button', { type: 'button', class: 'plain', onclick: () => passwordRow(row, u.user) }, 'Password'),
          confirmButton('Delete', () => deleteUser(u.user))));
        return row;
      }));
    } catch (e) {
      if (e.status !== 401) showError('users-error', e);
    }
  }

  // A row under the user's with a password field: Save sends PUT /api/users/USER.
  function passwordRow(row, user) {
    if (row.nextSibling && row.nextSibling.classList.contains('pw')) {
      row.nextSibling.querySelector('input').focus();
      return;
    }
    const input = el('input', { type: 'password', placeholder: 'new password', 'aria-label': 'New password',
      autocomplete: 'new-password', required: true });
    const pw = el('tr', { class: 'pw' });
    const form = el('form', { class: 'inline' }, input,
      el('button', { type: 'submit' }, 'Save'),
      el('button', { type: 'button', class: 'plain', onclick: () => pw.remove() }, 'Cancel'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await api('PUT', '/api/users/' + encodeURIComponent(user), { password: input.value });
        pw.remove();
        showError('users-error', null);
        $('users-ok').textContent = `Password of ${user} changed.`;
      } catch (e) {
        showError('users-error', e);
      }
    });
    pw.appendChild(el('td', { colspan: 2 }, form));
    row.after(pw);
    input.focus();
  }

  async function deleteUser(user) {
    try {
      await api('DELETE', '/api/users/' + encodeURIComponent(user));
      showError('users-error', null);
      $('users-ok').textContent = `Deleted ${user}.`;
    } catch (e) {
      showError('users-error', e);
    }
    loadUsers();
  }

  async function addUser(ev) {
    ev.preventDefault();
    const user = $('user-new').value.trim();
    try {
      await api('POST', '/api/users', { user, password: $('user-new-pw').value });
      showError('users-error', null);
      $('users-ok').textContent = `Added ${user}.`;
      $('user-new').value = '';
      $('user-new-pw').value = '';
    } catch (e) {
      $('users-ok').textContent = '';
      showError('users-error', e);
    }
    loadUsers();
  }

  async function importUsers(ev) {
    ev.preventDefault();
    try {
      const res = await api('POST', '/api/users/import', $('user-import-text').value, 'text');
      const errs = (res.errors || []).map((x) => `line ${x.line}: ${x.error}`);
      $('users-ok').textContent = `Imported ${res.added} user${res.added === 1 ? '' : 's'}.`;
      showError('users-error', errs.length ? { message: errs.join('; ') } : null);
      $('user-import-text').value = '';
    } catch (e) {
      showError('users-error', e);
    }
    loadUsers();
  }

  // --- One call: its ladder ------------------------------------------------------------

  async function openCall(id) {
    state.call = { id, msgs: [], selected: -1 };
    $('call-id').textContent = id;
    $('call-summary').textContent = '';
    $('message').hidden = true;
    showError('call-error', null);
    clear($('ladder'));
    const call = state.call;
    try {
      const [msgs, rec] = await Promise.all([
        api('GET', '/api/calls/' + encodeURIComponent(id) + '/messages'),
        api('GET', '/api/calls?limit=1&call_id=' + encodeURIComponent(id)).catch(() => null),
      ]);
      if (state.call !== call) return;
      // Arrows that came live while the list was on its way: keep those it does not have.
      const late = call.msgs.filter((l) => !msgs.some((x) => sameMessage(x, l)));
      call.msgs = msgs.concat(late);
      const c = rec && rec.calls && rec.calls[0];
      if (c) {
        $('call-summary').textContent = `${c.caller} → ${c.callee}: ${c.result}, started ${fmtDate(c.start)}` +
          (c.answer !== null ? `, ${fmtDuration(c.duration)} long` : '');
      }
      renderLadder();
    } catch (e) {
      if (e.status !== 401) showError('call-error', e);
    }
  }

  function sameMessage(a, b) {
    return a.time === b.time && a.dir === b.dir && a.first_line === b.first_line && a.remote === b.remote;
  }

  // The user@host of a From or To header in a message's text, or null.
  function partyOf(text, header) {
    const re = header === 'from' ? /^(?:from|f)[ \t]*:(.*)$/im : /^(?:to|t)[ \t]*:(.*)$/im;
    const m = re.exec(String(text || ''));
    if (!m) return null;
    const uri = /sips?:([^>;\s]+)/i.exec(m[1]);
    return uri ? uri[1] : null;
  }

  // Columns: the first peer heard from (or sent to), Parley, then the others by first
  // appearance. Each peer is named after the AOR it speaks for: From of what it sends, To
  // of what Parley sends it.
  function ladderColumns(msgs) {
    const order = [];
    const names = new Map();
    for (const m of msgs) {
      if (!order.length) {
        if (m.dir === 'in') order.push(m.remote, PARLEY);
        else order.push(PARLEY, m.remote);
      } else if (!order.includes(m.remote)) {
        order.push(m.remote);
      }
      if (!names.has(m.remote) && m.text && isRequest(m.first_line)) {
        const who = partyOf(m.text, m.dir === 'in' ? 'from' : 'to');
        if (who) names.set(m.remote, who);
      }
    }
    if (!order.length) order.push(PARLEY);
    const parleyAddr = msgs.length ? msgs[0].local : '';
    return order.map((key) => key === PARLEY
      ? { key, head: 'Parley', sub: parleyAddr }
      : { key, head: names.get(key) || key, sub: names.has(key) ? key : '' });
  }

  // The ladder's geometry in pixels; narrower columns on a phone-sized window.
  function ladderGeometry() {
    const narrow = window.matchMedia('(max-width: 640px)').matches;
    return { gutter: narrow ? 92 : 104, colW: narrow ? 150 : 200, top: 58, rowH: 34, chars: narrow ? 21 : 30 };
  }

  function renderLadder() {
    const call = state.call;
    const root = $('ladder');
    clear(root);
    $('call-empty').hidden = call.msgs.length > 0;
    $('ladder-wrap').hidden = call.msgs.length === 0;
    if (!call.msgs.length) return;
    const LAD = ladderGeometry();
    const cols = ladderColumns(call.msgs);
    const x = (key) => LAD.gutter + LAD.colW * cols.findIndex((c) => c.key === key) + LAD.colW / 2;
    const width = LAD.gutter + LAD.colW * cols.length;
    const height = LAD.top + LAD.rowH * call.msgs.length + 16;
    root.setAttribute('width', width);
    root.setAttribute('height', height);
    root.setAttribute('viewBox', `0 0 ${width} ${height}`);
    for (const c of cols) {
      const cx = x(c.key);
      root.appendChild(svg('text', { x: cx, y: 20, 'text-anchor': 'middle', class: 'col-head' }, c.head));
      root.appendChild(svg('text', { x: cx, y: 36, 'text-anchor': 'middle', class: 'col-sub' }, c.sub));
      root.appendChild(svg('line', { x1: cx, y1: 44, x2: cx, y2: height - 6, class: 'life' }));
    }
    const t0 = call.msgs[0].time;
    call.msgs.forEach((m, i) => {
      const y = LAD.top + LAD.rowH * i + 20;
      const from = m.dir === 'in' ? m.remote : PARLEY;
      const to = m.dir === 'in' ? PARLEY : m.remote;
      const x1 = x(from);
      const x2 = x(to);
      const dir = x2 > x1 ? 1 : -1;
      const label = labelOf(m.first_line);
      const req = isRequest(m.first_line);
      const shown = req ? label : String(m.first_line).replace(/^SIP\/2\.0\s+/, '');
      const colName = (key) => (key === PARLEY ? 'Parley' : key);
      const g = svg('g', {
        class: `arrow ${m.dir === 'in' ? 'in' : 'out'} ${req ? 'req' : 'resp'}${i === call.selected ? ' selected' : ''}`,
        tabindex: 0, role: 'button',
        'aria-label': `${shown} from ${colName(from)} to ${colName(to)}`,
        data: { index: i, label, from: colName(from), to: colName(to), dir: m.dir },
      },
      svg('title', {}, m.first_line),
      svg('text', { x: 6, y: y + 4, class: 'time' }, fmtClock(m.time)),
      svg('text', { x: 6, y: y + 16, class: 'time' }, `+${((m.time - t0) / 1000).toFixed(3)} s`),
      svg('line', { x1, y1: y, x2, y2: y, class: 'hit' }),
      svg('line', { x1, y1: y, x2: x2 - dir * 8, y2: y, class: 'shaft' }),
      svg('polygon', {
        points: `${x2},${y} ${x2 - dir * 9},${y - 4.5} ${x2 - dir * 9},${y + 4.5}`,
        class: m.dir === 'in' ? 'head-in' : 'head-out',
      }),
      svg('text', { x: (x1 + x2) / 2, y: y - 6, 'text-anchor': 'middle', class: 'lbl' },
        shown.length > LAD.chars ? shown.slice(0, LAD.chars - 1) + '…' : shown));
      g.addEventListener('click', () => showMessage(i));
      g.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          showMessage(i);
        }
      });
      root.appendChild(g);
    });
  }

  async function showMessage(i) {
    const call = state.call;
    let m = call.msgs[i];
    if (!m) return;
    // An arrow added live has no text yet: fetch the call's messages and find it there.
    if (m.text === undefined || m.text === null) {
      try {
        const all = await api('GET', '/api/calls/' + encodeURIComponent(call.id) + '/messages');
        const found = all.find((x) => sameMessage(x, m));
        if (found) m.text = found.text;
      } catch (e) {
        if (e.status !== 401) showError('call-error', e);
      }
      if (state.call !== call) return;
    }
    call.selected = i;
    for (const g of $('ladder').querySelectorAll('g.arrow')) {
      g.classList.toggle('selected', Number(g.dataset.index) === i);
    }
    const way = m.dir === 'in' ? `received from ${m.remote} on ${m.local}` : `sent from ${m.local} to ${m.remote}`;
    $('message-head').textContent = `${fmtClock(m.time)} ${(m.proto || '').toUpperCase()} ${way}`;
    $('message-text').textContent = m.text === undefined || m.text === null ? '(no longer kept)' : m.text;
    $('message').hidden = false;
  }

  // --- Live updates --------------------------------------------------------------------

  function openEvents() {
    if (state.events) return;
    const es = new EventSource('/api/events');
    state.events = es;
    es.onopen = () => $('live').classList.add('on');
    es.onerror = () => {
      $('live').classList.remove('on');
      // EventSource retries by itself unless the server refused it (401: logged out).
      if (es.readyState === EventSource.CLOSED && state.events === es) {
        state.events = null;
        api('GET', '/api/me').then(() => setTimeout(() => state.me && openEvents(), 3000), () => {});
      }
    };
    es.addEventListener('sip', (ev) => {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      onSip(m);
    });
  }

  function closeEvents() {
    if (state.events) state.events.close();
    state.events = null;
    $('live').classList.remove('on');
  }

  // Reloads the view if it is still shown once traffic has paused for delay ms.
  function refreshSoon(view, delay = 250, key = view) {
    clearTimeout(state.timers[key]);
    state.timers[key] = setTimeout(() => {
      if (state.view === view) LOADERS[view]();
    }, delay);
  }

  function onSip(m) {
    const req = isRequest(m.first_line);
    const method = req ? labelOf(m.first_line) : null;
    if (req && ['INVITE', 'BYE', 'CANCEL', 'ACK'].includes(method)) {
      state.calls.set(m.call_id, true);
    } else if (method === 'REGISTER') {
      state.calls.set(m.call_id, false);
    }
    // Remember a bounded number of Call-IDs: enough to tell what a response belongs to.
    if (state.calls.size > 500) state.calls.delete(state.calls.keys().next().value);
    const kind = state.calls.get(m.call_id);
    if (kind === true) {
      refreshSoon('active');
      refreshSoon('history');
      // Call records are written behind the call: look again a little later.
      if (method === 'BYE' || method === 'CANCEL' || !req) refreshSoon('history', 1500, 'history-late');
    } else if (kind === false) {
      refreshSoon('registrations');
    }
    const call = state.call;
    if (call && m.call_id === call.id) {
      call.msgs.push(Object.assign({ text: null }, m));
      renderLadder();
    }
  }

  // --- Wiring --------------------------------------------------------------------------

  async function login(ev) {
    ev.preventDefault();
    showError('login-error', null);
    try {
      await api('POST', '/api/login', { name: $('login-name').value, password: $('login-password').value });
      $('login-password').value = '';
      startApp(await api('GET', '/api/me'));
    } catch (e) {
      const msg = e.status === 401 ? 'Wrong name or password.'
        : e.status === 429 ? 'Too many failed logins: wait a minute and try again.' : e.message;
      showError('login-error', { message: msg });
    }
  }

  async function logout() {
    try {
      await api('POST', '/api/logout');
    } catch (e) {
      // Logged out already, or the server is gone: the login form is what to show either way.
    }
    showLogin();
  }

  function init() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    $('reg-search').addEventListener('submit', (ev) => {
      ev.preventDefault();
      state.regUser = $('reg-user').value.trim();
      loadRegistrations();
    });
    $('hist-search').addEventListener('submit', (ev) => {
      ev.preventDefault();
      state.hist.field = $('hist-field').value;
      state.hist.q = $('hist-q').value.trim();
      state.hist.offset = 0;
      loadHistory();
    });
    $('hist-field').addEventListener('change', () => {
      $('hist-q').placeholder = $('hist-field').value === 'call_id' ? 'Call-ID' : 'alice@example.com';
    });
    $('hist-prev').addEventListener('click', () => {
      state.hist.offset = Math.max(0, state.hist.offset - state.hist.limit);
      loadHistory();
    });
    $('hist-next').addEventListener('click', () => {
      state.hist.offset += state.hist.limit;
      loadHistory();
    });
    $('user-add').addEventListener('submit', addUser);
    $('user-import').addEventListener('submit', importUsers);
    $('message-close').addEventListener('click', () => {
      $('message').hidden = true;
      state.call.selected = -1;
      for (const g of $('ladder').querySelectorAll('g.arrow.selected')) g.classList.remove('selected');
    });
    window.addEventListener('hashchange', route);
    api('GET', '/api/me').then(startApp, (e) => {
      if (e.status !== 401) {
        showLogin();
        showError('login-error', e);
      }
    });
  }

  init();
})();
