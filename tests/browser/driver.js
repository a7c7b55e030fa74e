// driver.js: one headless Chromium with JsSIP phone pages, driven by the Python tests over stdin/stdout.
//
// usage: node driver.js CONFIG_JSON
//   CONFIG_JSON: {"chromium": PATH, "work": DIR, "args": [extra Chromium flags]}
// It bundles JsSIP from node_modules with esbuild (nothing is downloaded), serves phone.html,
// phone.js and the bundle on http://127.0.0.1:<free port>/ (a secure context, so getUserMedia
// works without TLS), starts Chromium and then answers one JSON request per line on stdin:
//   {"id": N, "op": "open", "page": NAME}                    a new tab with phone.html loaded
//   {"id": N, "op": "eval", "page": NAME, "fn": SRC, "arg": X} runs (SRC)(X) in the tab, awaited
//   {"id": N, "op": "goto", "page": NAME, "url": URL, "viewport": {"width", "height"}}
//                                        a tab (new, or NAME's) on any URL, e.g. Parley's dashboard
//   {"id": N, "op": "wait", "page": NAME, "fn": SRC, "arg": X, "ms": TIMEOUT}
//                                        waits until (SRC)(X) is truthy in the tab; returns it
//   {"id": N, "op": "click" | "fill", "page": NAME, "selector": CSS, "value": TEXT}
//                                        a real click on (typing into) the element
//   {"id": N, "op": "screenshot", "page": NAME, "path": FILE, "fullPage": BOOL, "selector": CSS}
//                                        the tab (or only the element selected) as a PNG
//   {"id": N, "op": "close", "page": NAME}
//   {"id": N, "op": "quit"}
// Each gets {"id": N, "ok": true, "value": ...} or {"id": N, "ok": false, "error": TEXT} on
// one stdout line. The first line on stdout is {"ready": true, "url": ...}. Page console
// output and page errors go to stderr with the tab's name, for the test's log.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const readline = require('readline');

const HERE = __dirname;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function bundle(work) {
  const esbuild = require('esbuild');
  const file = path.join(work, 'jssip.js');
  // An IIFE that sets window.JsSIP: JsSIP's lib/ is CommonJS (events, debug, sdp-transform).
  await esbuild.build({
    entryPoints: [require.resolve('jssip')],
    bundle: true,
    format: 'iife',
    globalName: 'JsSIP',
    platform: 'browser',
    outfile: file,
    logLevel: 'warning',
  });
  return file;
}

function serve(files) {
  const server = http.createServer((req, res) => {
    const name = req.url.split('?')[0].replace(/^\//, '');
    const file = files[name];
    if (!file) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    const type = name.endsWith('.html') ? 'text/html' : 'text/javascript';
    res.writeHead(200, { 'Content-Type': type + '; charset=utf-8', 'Cache-Control': 'no-store' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function main() {
  const config = JSON.parse(process.argv[2]);
  const jssip = await bundle(config.work);
  const server = await serve({
    'phone.html': path.join(HERE, 'phone.html'),
    'phone.js': path.join(HERE, 'phone.js'),
    'jssip.js': jssip,
  });
  const base = `http://127.0.0.1:${server.address().port}/`;
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({
    executablePath: config.chromium,
    headless: true,
    args: config.args,
    // HOME and XDG_* point into the test's directory (set by the caller): Chromium writes
    // crash reports and pulse/dconf files there, not in the real home.
    env: process.env,
    timeout: 60000,
  });
  const context = await browser.newContext();
  const pages = new Map();

  async function newPage(name) {
    if (pages.has(name)) throw new Error(`page ${name} is already open`);
    const page = await context.newPage();
    // JsSIP's debug output styles its parts (%c and CSS arguments): keep only the words.
    page.on('console', (m) => {
      const text = m.text().replace(/%c/g, '').replace(/\s*color: (#[0-9A-Fa-f]+|inherit)/g, '');
      process.stderr.write(`[${name}] ${m.type()}: ${text}\n`);
    });
    page.on('pageerror', (e) => process.stderr.write(`[${name}] pageerror: ${e.stack || e}\n`));
    return page;
  }

  async function open(name) {
    const page = await newPage(name);
    await page.goto(base + 'phone.html');
    await page.waitForFunction(() => window.phoneReady === true);
    pages.set(name, page);
    return base + 'phone.html';
  }

  function page(name) {
    const p = pages.get(name);
    if (!p) throw new Error(`no page ${name}`);
    return p;
  }

  // "(SRC)(ARG)" as one expression: the function and its argument (JSON) in one source text.
  // (Evaluated through the DevTools protocol, which no Content-Security-Policy restricts.)
  const applied = (m) => `(${m.fn})(${JSON.stringify(m.arg === undefined ? null : m.arg)})`;

  const ops = {
    open: (m) => open(m.page),
    eval: (m) => page(m.page).evaluate(
      // The source arrives as text: build the function in the page and await its result.
      ([src, arg]) => (0, eval)(`(${src})`)(arg), [m.fn, m.arg === undefined ? null : m.arg]),
    goto: async (m) => {
      let p = pages.get(m.page);
      if (!p) {
        p = await newPage(m.page);
        pages.set(m.page, p);
      }
      if (m.viewport) await p.setViewportSize(m.viewport);
      await p.goto(m.url);
      return p.url();
    },
    // Polled from here, not with waitForFunction: its polling evaluates the text inside the
    // page, which a page's Content-Security-Policy without 'unsafe-eval' forbids.
    wait: async (m) => {
      const end = Date.now() + (m.ms || 10000);
      for (;;) {
        const v = await page(m.page).evaluate(applied(m));
        if (v) return v;
        if (Date.now() > end) throw new Error(`not true within ${m.ms || 10000} ms: ${m.fn}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    click: (m) => page(m.page).click(m.selector, { timeout: 10000 }),
    fill: (m) => page(m.page).fill(m.selector, m.value, { timeout: 10000 }),
    screenshot: async (m) => {
      if (m.selector) await page(m.page).locator(m.selector).screenshot({ path: m.path });
      else await page(m.page).screenshot({ path: m.path, fullPage: !!m.fullPage });
      return m.path;
    },
    close: async (m) => {
      await page(m.page).close();
      pages.delete(m.page);
      return true;
    },
    quit: async () => {
      await browser.close();
      server.close();
      return true;
    },
  };

  out({ ready: true, url: base, version: browser.version() });
  const rl = readline.createInterface({ input: process.stdin });
  // Requests run concurrently (a test waits on one phone while another acts), each answered
  // by its id.
  rl.on('line', (line) => {
    let m;
    try {
      m = JSON.parse(line);
    } catch (e) {
      out({ id: null, ok: false, error: `bad request line: ${e.message}` });
      return;
    }
    const op = ops[m.op];
    if (!op) {
      out({ id: m.id, ok: false, error: `unknown op ${m.op}` });
      return;
    }
    Promise.resolve()
      .then(() => op(m))
      .then(
        (value) => {
          out({ id: m.id, ok: true, value: value === undefined ? null : value });
          if (m.op === 'quit') process.exit(0);
        },
        (e) => out({ id: m.id, ok: false, error: String((e && e.message) || e) }),
      );
  });
  // The test went away (stdin closed): take the browser down with us.
  rl.on('close', () => browser.close().finally(() => process.exit(0)));
}

main().catch((e) => {
  process.stderr.write(`driver: ${e.stack || e}\n`);
  out({ ready: false, error: String((e && e.message) || e) });
  process.exit(1);
});
