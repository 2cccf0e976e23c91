// The agent's unit tests, run by node's own test runner against the source
// (sluice.test.js) and the minified file the gateway serves
// (sluice.min.test.js). No DOM and no framework: a fake window gives the
// agent an event target for document and window, a clock whose timers the
// test advances, fetch and sendBeacon.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');

// element is a fake DOM element with what the agent reads.
function element(props) {
  const el = Object.assign({
    nodeType: 1, localName: 'div', id: '', className: '', attrs: {}, ignored: false,
    getAttribute(n) { return n in this.attrs ? this.attrs[n] : null; },
    closest(sel) {
      if (sel === '[data-sluice-ignore]') return this.ignored ? this : null;
      if (/button/.test(sel) && (this.localName === 'button' || this.button)) return this.button || this;
      return null;
    },
  }, props);
  return el;
}

// fakeWindow returns a window for Sluice.create and the test's handles on it.
function fakeWindow() {
  const clock = { t: 1000, timers: [], seq: 0 };
  const win = new EventTarget();
  const doc = new EventTarget();
  doc.documentElement = { scrollWidth: 1200, scrollHeight: 5000 };
  doc.activeElement = element({ localName: 'body' });
  doc.visibilityState = 'visible';
  const requests = [];
  const beacons = [];
  const env = {
    clock, requests, beacons, win, doc,
    // reply is what fetch answers next: a status, headers, or 'network'.
    replies: [],
    beaconOK: true,
    advance(ms) {
      const until = clock.t + ms;
      for (;;) {
        clock.timers.sort((a, b) => a.at - b.at || a.id - b.id);
        const next = clock.timers[0];
        if (!next || next.at > until) break;
        clock.timers.shift();
        clock.t = next.at;
        next.fn();
      }
      clock.t = until;
    },
    // fire dispatches an event with the given properties (target included).
    fire(on, type, props = {}) {
      const ev = new Event(type);
      const all = Object.assign({ timeStamp: clock.t }, props);
      for (const k of Object.keys(all)) Object.defineProperty(ev, k, { value: all[k] });
      on.dispatchEvent(ev);
    },
    events() { return requests.flatMap((r) => JSON.parse(r.init.body)); },
  };
  Object.assign(win, {
    document: doc,
    navigator: { sendBeacon(url, body) { beacons.push({ url, body }); return env.beaconOK; } },
    location: { origin: 'http://page.test', pathname: '/play' },
    Date: { now: () => clock.t },
    performance: { now: () => clock.t },
    setTimeout(fn, ms) { const id = ++clock.seq; clock.timers.push({ id, at: clock.t + ms, fn }); return id; },
    clearTimeout(id) { clock.timers = clock.timers.filter((x) => x.id !== id); },
    crypto: globalThis.crypto,
    TextEncoder,
    innerWidth: 800, innerHeight: 600, scrollX: 0, scrollY: 0,
    getSelection: () => env.selection || '',
    fetch(url, init) {
      const r = env.replies.shift() || { status: 200 };
      requests.push({ url, init, reply: r });
      if (r === 'network') return Promise.reject(new TypeError('Failed to fetch'));
      const headers = new Map(Object.entries(r.headers || {}));
      return Promise.resolve({
        status: r.status,
        headers: { get: (k) => headers.get(k) ?? null },
        json: () => Promise.resolve(r.body || { accepted: 1, rejected: 0 }),
      });
    },
  });
  return env;
}

// settle lets the fetch promises' callbacks run.
const settle = () => new Promise((r) => setImmediate(r));

function run(Sluice, label) {
  const start = (env, opts) => Sluice.create(env.win, Object.assign({ endpoint: 'http://gw.test', key: 'k', context: { worker: 'w1', task: 't', batch: 'b', section: 's1' } }, opts));

  test(`${label}: Crowd Frame base body, sequence and client event id`, async () => {
    const env = fakeWindow();
    const a = start(env, { capture: { resize: false } });
    a.track('query', { query: 'kafka' });
    a.track('query', { query: 'avro' });
    env.advance(1000);
    await settle();
    assert.equal(env.requests.length, 1);
    const r = env.requests[0];
    assert.equal(r.url, 'http://gw.test/v1/events/crowdframe');
    assert.equal(r.init.headers.Authorization, 'Bearer k');
    assert.match(r.init.headers['Idempotency-Key'], /^[0-9a-f-]{36}$/);
    assert.equal(r.init.credentials, 'omit');
    assert.equal(r.init.keepalive, true);
    const [e0, e1] = JSON.parse(r.init.body);
    assert.deepEqual(Object.keys(e0).sort(), ['batch', 'client_time', 'details', 'event_id', 'sequence', 'task', 'type', 'worker']);
    assert.equal(e0.worker, 'w1');
    assert.equal(e0.type, 'query');
    assert.deepEqual(e0.details, { query: 'kafka', section: 's1' });
    assert.equal(e0.client_time, 1000);
    assert.deepEqual([e0.sequence, e1.sequence], [0, 1]);
    assert.notEqual(e0.event_id, e1.event_id);
    assert.equal(a.stats().sent, 2);
    a.stop();
  });

  test(`${label}: clicks family uses dejavu's shape`, async () => {
    const env = fakeWindow();
    const a = start(env, { family: 'clicks', context: { session: 'sess-1' } });
    const cell = element({ localName: 'td', id: '(1,1)', className: 'cell' });
    env.fire(env.doc, 'mousedown', { target: cell, clientX: 138, clientY: 136, button: 0 });
    env.fire(env.doc, 'mouseup', { target: cell, clientX: 138, clientY: 136, button: 0 });
    // Keys are not captured for clicks unless asked.
    env.fire(env.doc, 'keydown', { target: element({ localName: 'input', type: 'text' }), key: 'a' });
    env.advance(1000);
    await settle();
    const evs = env.events();
    assert.equal(env.requests[0].url, 'http://gw.test/v1/events/clicks');
    assert.deepEqual(evs.map((e) => e.type), ['mousedown', 'mouseup']);
    assert.deepEqual(evs[0].info, { x: 138, y: 136, button: 0, target: { id: '(1,1)', class: 'cell' } });
    assert.equal(evs[0].session, 'sess-1');
    assert.equal(evs[0].page, 'http://page.test/play');
    assert.ok(evs[0].event_id && evs[0].sequence === 0 && evs[1].sequence === 1);
    a.stop();
  });

  test(`${label}: batching by size and by time`, async () => {
    const env = fakeWindow();
    const a = start(env, { batchSize: 3, flushInterval: 2000, capture: { resize: false } });
    for (let i = 0; i < 7; i++) a.track('t', { i });
    // Three reached the size limit at once; one request at a time, so the
    // rest wait for its answer, and then drain.
    assert.equal(env.requests.length, 1);
    assert.equal(JSON.parse(env.requests[0].init.body).length, 3);
    await settle();
    assert.deepEqual(env.requests.map((r) => JSON.parse(r.init.body).length), [3, 3, 1]);
    // Below the size limit, an event waits for the time limit.
    a.track('t', { i: 7 });
    env.advance(1999);
    await settle();
    assert.equal(env.requests.length, 3, 'the last event waits for the time limit');
    env.advance(1);
    await settle();
    assert.equal(env.requests.length, 4);
    assert.deepEqual(env.events().map((e) => e.details.i), [0, 1, 2, 3, 4, 5, 6, 7]);
    a.stop();
  });

  test(`${label}: batches stay under the byte limit`, async () => {
    const env = fakeWindow();
    const a = start(env, { maxBatchBytes: 2000, capture: { resize: false } });
    for (let i = 0; i < 10; i++) a.track('t', { pad: 'x'.repeat(500) });
    for (let i = 0; i < 10; i++) { env.advance(1000); await settle(); }
    assert.ok(env.requests.length >= 3);
    for (const r of env.requests) assert.ok(Buffer.byteLength(r.init.body) <= 2000, `${Buffer.byteLength(r.init.body)} bytes`);
    assert.equal(env.events().length, 10);
    a.stop();
  });

  test(`${label}: retry with backoff on network errors, 429 and 503 honouring Retry-After`, async () => {
    const env = fakeWindow();
    const a = start(env, { retryBase: 1000, capture: { resize: false } });
    env.replies.push('network', { status: 503, headers: { 'Retry-After': '7' } }, { status: 429 }, { status: 200 });
    a.track('t', {});
    env.advance(1000);
    await settle();
    assert.equal(env.requests.length, 1);
    // Network error: first backoff is 0.5 to 1 s.
    env.advance(499);
    await settle();
    assert.equal(env.requests.length, 1);
    env.advance(501);
    await settle();
    assert.equal(env.requests.length, 2);
    // 503 with Retry-After: 7 s, not the backoff.
    env.advance(6999);
    await settle();
    assert.equal(env.requests.length, 2);
    env.advance(1);
    await settle();
    assert.equal(env.requests.length, 3);
    // 429 without Retry-After: third backoff, 2 to 4 s.
    env.advance(1999);
    await settle();
    assert.equal(env.requests.length, 3);
    env.advance(2001);
    await settle();
    assert.equal(env.requests.length, 4);
    // The same batch every time, under the same Idempotency-Key.
    const ids = new Set(env.requests.map((r) => r.init.headers['Idempotency-Key']));
    assert.equal(ids.size, 1);
    assert.equal(new Set(env.requests.map((r) => r.init.body)).size, 1);
    assert.deepEqual(a.stats(), { queued: 0, sent: 1, rejected: 0, dropped: 0, failed: 0, retries: 3 });
    a.stop();
  });

  test(`${label}: a 207 with events not stored for now resends the batch under its key`, async () => {
    const env = fakeWindow();
    const a = start(env, { retryBase: 1000, capture: { resize: false } });
    env.replies.push(
      { status: 207, body: { accepted: 1, rejected: 1, errors: [{ index: 1, code: 'produce_failed', message: 'not stored, retry' }] } },
      { status: 207, body: { accepted: 1, rejected: 1, errors: [{ index: 1, code: 'invalid_field', message: 'bad' }] } });
    a.track('t', { i: 0 });
    a.track('t', { i: 1 });
    env.advance(1000);
    await settle();
    await settle();
    assert.equal(env.requests.length, 1);
    env.advance(1000);
    await settle();
    await settle();
    assert.equal(env.requests.length, 2, 'resent after the backoff');
    assert.equal(new Set(env.requests.map((r) => r.init.headers['Idempotency-Key'])).size, 1);
    assert.equal(new Set(env.requests.map((r) => r.init.body)).size, 1);
    // A rejection for good is not retried: counted, and the batch is done.
    env.advance(120000);
    await settle();
    assert.equal(env.requests.length, 2);
    assert.deepEqual(a.stats(), { queued: 0, sent: 2, rejected: 1, dropped: 0, failed: 0, retries: 1 });
    a.stop();
  });

  test(`${label}: no retry on other 4xx; gives up after maxRetries`, async () => {
    const env = fakeWindow();
    const a = start(env, { maxRetries: 2, capture: { resize: false } });
    env.replies.push({ status: 400 });
    a.track('bad', {});
    env.advance(1000);
    await settle();
    env.advance(120000);
    await settle();
    assert.equal(env.requests.length, 1);
    assert.equal(a.stats().failed, 1);
    env.replies.push({ status: 500 }, { status: 500 }, { status: 500 });
    a.track('t', {});
    for (let i = 0; i < 10; i++) { env.advance(60000); await settle(); }
    assert.equal(env.requests.length, 4, 'first try and two retries');
    assert.equal(a.stats().failed, 2);
    assert.equal(a.stats().retries, 2);
    a.stop();
  });

  test(`${label}: the queue is bounded and drops the oldest`, async () => {
    const env = fakeWindow();
    const a = start(env, { maxQueue: 5, batchSize: 2, capture: { resize: false } });
    env.replies.push('network');
    a.track('t', { i: 0 });
    a.track('t', { i: 1 }); // batch [0,1] goes and fails; it waits for its retry
    await settle();
    for (let i = 2; i < 12; i++) a.track('t', { i });
    const s = a.stats();
    assert.equal(s.dropped, 5);
    assert.equal(s.queued, 7, 'five queued and the batch being retried');
    for (let i = 0; i < 10; i++) { env.advance(2000); await settle(); }
    assert.deepEqual(env.events().map((e) => e.details.i), [0, 1, 0, 1, 7, 8, 9, 10, 11]);
    a.stop();
  });

  test(`${label}: movements sampled every 100 ms and flushed after 500 ms still`, async () => {
    const env = fakeWindow();
    const a = start(env, { capture: { resize: false } });
    const el = element({ localName: 'td', id: '(0,0)' });
    for (let i = 0; i < 10; i++) {
      env.fire(env.doc, 'mousemove', { target: el, clientX: i, clientY: 2 * i });
      env.advance(30);
    }
    // 0, 30, ..., 270 ms: points at 0, 120 and 240 ms.
    env.advance(499);
    assert.equal(env.clock.timers.length > 0, true);
    env.advance(1000);
    await settle();
    const [m] = env.events();
    assert.equal(m.type, 'movements');
    assert.deepEqual(m.details.points.map((p) => p.timeStamp - 1000), [0, 120, 240]);
    assert.deepEqual(m.details.points[1], { timeStamp: 1120, x: 4, y: 8, target: { elementName: 'td', className: '', id: '(0,0)' } });
    a.stop();
  });

  test(`${label}: clicks debounced with first and last time and count; buttons once per second`, async () => {
    const env = fakeWindow();
    const a = start(env, { capture: { resize: false } });
    const cell = element({ localName: 'td', id: '(1,1)', className: 'cell' });
    const other = element({ localName: 'td', id: '(2,2)', className: 'cell' });
    env.fire(env.doc, 'click', { target: cell, clientX: 10, clientY: 20 });
    env.advance(200);
    env.fire(env.doc, 'click', { target: cell, clientX: 11, clientY: 21 });
    env.advance(400);
    env.fire(env.doc, 'click', { target: cell, clientX: 12, clientY: 22 });
    env.advance(100);
    // Another element ends the chain at once.
    env.fire(env.doc, 'click', { target: other, clientX: 50, clientY: 50 });
    env.advance(600);
    const btn = element({ localName: 'button', innerText: 'New game' });
    env.fire(env.doc, 'click', { target: btn, clientX: 1, clientY: 2 });
    env.advance(300);
    env.fire(env.doc, 'click', { target: btn, clientX: 1, clientY: 2 });
    env.advance(2000);
    await settle();
    const evs = env.events();
    const clicks = evs.filter((e) => e.type === 'click');
    assert.deepEqual(clicks[0].details, { mouseButton: 'left', startTime: 1000, endTime: 1600, x: 10, y: 20, target: { elementName: 'td', className: 'cell', id: '(1,1)' }, clicks: 3, section: 's1' });
    assert.equal(clicks[1].details.target.id, '(2,2)');
    assert.equal(clicks[1].details.clicks, 1);
    const buttons = evs.filter((e) => e.type === 'button');
    assert.equal(buttons.length, 1);
    assert.equal(buttons[0].details.button, 'NEW GAME');
    a.stop();
  });

  test(`${label}: key sequence with its sentence after 1 s; shortcuts apart`, async () => {
    const env = fakeWindow();
    const a = start(env, { capture: { resize: false } });
    const box = element({ localName: 'textarea', value: '' });
    for (const k of ['H', 'e', 'l', 'p', 'Backspace', 'l', 'o', 'Shift', ' ', '😀']) {
      env.fire(env.doc, 'keydown', { target: box, key: k });
      env.advance(100);
    }
    env.fire(env.doc, 'keydown', { target: box, key: 'c', ctrlKey: true });
    env.advance(999);
    assert.equal(env.events().length, 0);
    env.advance(2);
    env.advance(1000);
    await settle();
    const evs = env.events();
    const seq = evs.find((e) => e.type === 'keySequence');
    assert.equal(seq.details.sentence, 'Hello 😀');
    assert.equal(seq.details.keySequence.length, 9);
    assert.deepEqual(seq.details.keySequence[4], { timeStamp: 1400, key: 'Backspace' });
    const sc = evs.find((e) => e.type === 'shortcut');
    assert.deepEqual(sc.details, { timeStamp: 2000, ctrl: true, alt: false, key: 'c', section: 's1' });
    a.stop();
  });

  test(`${label}: password fields are never read`, async () => {
    const env = fakeWindow();
    const a = start(env, { capture: { resize: false } });
    let reads = 0;
    const pw = element({ localName: 'input', type: 'password', selectionStart: 0, selectionEnd: 7 });
    Object.defineProperty(pw, 'value', { get() { reads++; return 'hunter2'; } });
    const cc = element({ localName: 'input', type: 'text', attrs: { autocomplete: 'cc-number' }, value: '4111' });
    const hidden = element({ localName: 'textarea', ignored: true, value: 'private' });
    for (const el of [pw, cc, hidden]) {
      for (const k of ['h', 'u', 'n', 'Backspace', 'v', 'Enter']) env.fire(env.doc, 'keydown', { target: el, key: k });
      env.fire(env.doc, 'keydown', { target: el, key: 'a', ctrlKey: true });
      env.fire(env.doc, 'focusout', { target: el });
      env.fire(env.doc, 'paste', { target: el, clipboardData: { getData: () => 'hunter2' } });
      env.fire(env.doc, 'copy', { target: el });
      env.doc.activeElement = el;
      env.selection = 'hunter2';
      env.fire(env.doc, 'mouseup', { target: el });
    }
    a.flush();
    env.advance(5000);
    await settle();
    const body = env.requests.map((r) => r.init.body).join('');
    assert.equal(reads, 0, 'the password field value was read');
    assert.ok(!/hunter2|hun|4111|private/.test(body), body);
    assert.ok(!env.events().some((e) => /keySequence|shortcut|text|paste|copy|selection/.test(e.type)), body);
    a.stop();
  });

  test(`${label}: text on backspace (3 s) and blur, selection, clipboard, radio`, async () => {
    const env = fakeWindow();
    const a = start(env, { capture: { resize: false, keys: false } });
    const box = element({ localName: 'input', type: 'text', value: 'draft' });
    env.fire(env.doc, 'keydown', { target: box, key: 'Backspace' });
    env.advance(3000);
    box.value = 'final';
    env.fire(env.doc, 'focusout', { target: box });
    env.selection = 'selected words';
    env.fire(env.doc, 'mousedown', { target: element({ localName: 'p' }) });
    env.advance(50);
    env.fire(env.doc, 'mouseup', { target: element({ localName: 'p' }) });
    env.fire(env.doc, 'copy', { target: element({ localName: 'p' }) });
    env.fire(env.doc, 'paste', { target: box, clipboardData: { getData: () => 'pasted' } });
    env.fire(env.doc, 'change', { target: element({ localName: 'input', type: 'radio', name: 'level', value: 'hard' }) });
    env.advance(1000);
    await settle();
    const by = (t) => env.events().filter((e) => e.type === t).map((e) => e.details);
    assert.deepEqual(by('text').map((d) => d.text), ['draft', 'final']);
    assert.deepEqual(by('selection'), [{ startTime: 4000, endTime: 4050, selected: 'selected words', section: 's1' }]);
    assert.equal(by('copy')[0].target, 'selected words');
    assert.equal(by('paste')[0].text, 'pasted');
    assert.deepEqual(by('radioChange').map((d) => [d.group, d.value]), [['level', 'hard']]);
    a.stop();
  });

  test(`${label}: scroll debounced 300 ms, resize, focus and blur`, async () => {
    const env = fakeWindow();
    const a = start(env, {});
    for (let i = 0; i < 5; i++) {
      env.win.scrollY = 100 * i;
      env.fire(env.win, 'scroll');
      env.advance(100);
    }
    env.advance(300);
    env.fire(env.win, 'resize');
    env.fire(env.win, 'blur');
    env.fire(env.win, 'focus');
    env.advance(1000);
    await settle();
    env.advance(1000);
    await settle();
    const evs = env.events();
    assert.deepEqual(evs.map((e) => e.type), ['init', 'scroll', 'window_blur', 'window_focus', 'resize']);
    assert.deepEqual(evs[1].details, { startTimestamp: 1000, endTimestamp: 1400, x: 0, y: 400, section: 's1' });
    assert.equal(evs[0].details.scrollHeight, 5000);
    a.stop();
  });

  test(`${label}: pagehide sends pending events and the unload by beacon`, async () => {
    const env = fakeWindow();
    const a = start(env, { key: 'pub key', capture: { resize: false } });
    const box = element({ localName: 'textarea' });
    env.fire(env.doc, 'keydown', { target: box, key: 'o' });
    env.fire(env.doc, 'keydown', { target: box, key: 'k' });
    env.fire(env.win, 'pagehide');
    assert.equal(env.requests.length, 0);
    assert.equal(env.beacons.length, 1);
    const b = env.beacons[0];
    assert.match(b.url, /^http:\/\/gw\.test\/v1\/events\/crowdframe\?idempotency_key=[0-9a-f-]{36}&key=pub%20key$/);
    const evs = JSON.parse(b.body);
    assert.deepEqual(evs.map((e) => e.type), ['keySequence', 'unload']);
    assert.equal(evs[0].details.sentence, 'ok');
    assert.equal(a.stats().queued, 0);
    a.stop();
  });

  test(`${label}: the beacon keeps within the 64 KB budget, newest first`, async () => {
    const env = fakeWindow();
    const a = start(env, { flushInterval: 60000, capture: { resize: false } });
    env.replies.push('network');
    for (let i = 0; i < 200; i++) a.track('t', { i, pad: 'x'.repeat(900) });
    await settle(); // the first batch failed and waits for its retry
    env.fire(env.win, 'pagehide');
    const sent = env.beacons.flatMap((b) => JSON.parse(b.body));
    const total = env.beacons.reduce((n, b) => n + Buffer.byteLength(b.body), 0);
    assert.ok(total <= 65536, `${total} bytes`);
    assert.ok(env.beacons.every((b) => Buffer.byteLength(b.body) <= 60000));
    assert.equal(sent[sent.length - 1].type, 'unload');
    const s = a.stats();
    assert.equal(s.queued, 0);
    assert.equal(s.sent + s.dropped + s.failed, 201);
    assert.ok(s.dropped > 0);
    // The retried batch went with its own id.
    assert.ok(env.beacons[0].url.includes(env.requests[0].init.headers['Idempotency-Key']));
    a.stop();
  });

  test(`${label}: switchable captures and track`, async () => {
    const env = fakeWindow();
    const a = start(env, { capture: { clicks: false, unload: false, resize: false } });
    env.fire(env.doc, 'click', { target: element({ localName: 'td' }) });
    a.track('custom', { n: 1 });
    env.fire(env.win, 'pagehide');
    const evs = env.beacons.flatMap((b) => JSON.parse(b.body));
    assert.deepEqual(evs.map((e) => e.type), ['custom']);
    a.stop();
    // Stopped: listeners are gone.
    env.fire(env.doc, 'click', { target: element({ localName: 'td' }) });
    env.advance(5000);
    assert.equal(env.requests.length, 0);
  });
}

module.exports = { run };
