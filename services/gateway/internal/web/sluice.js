/*
 * sluice.js: the Sluice browser agent. Plain JavaScript, no dependencies.
 *
 *   <script src="https://gateway.example/sdk/sluice.js"></script>
 *   <script>
 *     Sluice.init({key: 'public-browser-key', family: 'crowdframe',
 *                  context: {worker: 'w1', task: 't', batch: 'b', section: 'intro'}});
 *     Sluice.track('query', {query: 'kafka'});
 *   </script>
 *
 * It captures what a person does on the page (Crowd Frame's behavioural
 * logging, dejavu's clicks), queues the events and posts them in batches to
 * the gateway's POST /v1/events/{family}. docs/browser-agent.md is the
 * manual; sluice.test.js and suite.js are its tests (node --test).
 */
(function (root) {
  'use strict';

  var DEFAULTS = {
    batchSize: 50, // events per request
    maxBatchBytes: 60000, // bytes per request; under the 64 KB keepalive/beacon budget
    flushInterval: 1000, // ms an event may wait before its batch goes
    maxQueue: 1000, // events kept while the gateway is unreachable; the oldest are dropped
    maxRetries: 8, // attempts after the first; then the batch is given up (stats.failed)
    retryBase: 1000, // first backoff in ms, doubled per attempt, with jitter
    retryMax: 60000, // longest backoff in ms
    maxText: 10000 // longest text kept from inputs, selections and the clipboard
  };
  var CAPTURES = 'mouse movements clicks buttons shortcuts keys selection clipboard text radio scroll resize focus unload'.split(' ');
  var BEACON_BUDGET = 65536; // bytes the browser lets pending beacons and keepalive fetches hold
  var me = root.document && root.document.currentScript;
  // The gateway that served this script, when it was loaded from /sdk/.
  var origin = me && me.src && me.src.indexOf('/sdk/') > 0 ? me.src.split('/sdk/')[0] : '';

  function create(win, opts) {
    var doc = win.document, nav = win.navigator || {}, loc = win.location || {};
    var cfg = {}, cap = {}, k;
    for (k in DEFAULTS) cfg[k] = DEFAULTS[k];
    for (k in opts) cfg[k] = opts[k];
    var family = cfg.family || 'crowdframe', cf = family == 'crowdframe';
    var ctx = {};
    for (k in cfg.context) ctx[k] = cfg.context[k];
    // Crowd Frame's set for crowdframe, dejavu's mousedown/mouseup for clicks.
    CAPTURES.forEach(function (n) { cap[n] = cf ? n != 'mouse' : n == 'mouse'; });
    for (k in cfg.capture) cap[k] = !!cfg.capture[k];
    var url = (cfg.endpoint != null ? cfg.endpoint : origin).replace(/\/+$/, '') + '/v1/events/' + family;
    var te = win.TextEncoder && new win.TextEncoder();
    var session = ctx.session || stored('sluice.session', rid());
    var worker = ctx.worker || session;
    var page = loc.origin ? loc.origin + loc.pathname : '';
    var seq = 0, q = [], batch = null, fetching = false, flushT = 0, retryT = 0, stopped = false;
    var stats = {sent: 0, rejected: 0, dropped: 0, failed: 0, retries: 0};
    var offs = [];

    // ---- helpers

    function now() { return win.Date.now(); }
    function ts(e) { return e && e.timeStamp != null ? e.timeStamp : win.performance ? win.performance.now() : 0; }
    function later(fn, ms) { return win.setTimeout(fn, ms); }
    function clear(t) { if (t) win.clearTimeout(t); return 0; }
    function bytes(s) { return te ? te.encode(s).length : s.length * 3; }
    function cut(s) { s = s == null ? '' : '' + s; return s.length > cfg.maxText ? s.slice(0, cfg.maxText) : s; }
    function on(t, type, fn, capture) {
      if (!t) return;
      var o = {capture: capture !== false, passive: true};
      t.addEventListener(type, fn, o);
      offs.push(function () { t.removeEventListener(type, fn, o); });
    }
    // rid returns a random id in the form of a UUID v4.
    function rid() {
      var b = new Uint8Array(16), c = win.crypto, h = '', i;
      if (c && c.getRandomValues) c.getRandomValues(b);
      else for (i = 0; i < 16; i++) b[i] = Math.random() * 256;
      b[6] = b[6] & 15 | 64;
      b[8] = b[8] & 63 | 128;
      for (i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1) + (i == 3 || i == 5 || i == 7 || i == 9 ? '-' : '');
      return h;
    }
    function stored(name, fresh) {
      try {
        var s = win.sessionStorage, v = s.getItem(name);
        if (!v) s.setItem(name, v = fresh);
        return v;
      } catch (e) {
        return fresh;
      }
    }
    // secret reports whether an element must never be read: password
    // fields, credential and card autocomplete fields, and anything inside
    // [data-sluice-ignore].
    function secret(el) {
      if (!el || el.nodeType != 1) return false;
      return el.type == 'password' ||
        /password|cc-|one-time-code/i.test(el.getAttribute('autocomplete') || '') ||
        !!el.closest('[data-sluice-ignore]');
    }
    function textField(el) {
      return el && !secret(el) && (el.localName == 'textarea' ||
        el.localName == 'input' && /^(text|search|url|)$/.test(el.type || ''));
    }
    // target describes an element: dejavu's {id, class, name} for the clicks
    // family and the mouse capture, Crowd Frame's {elementName, className,
    // id} otherwise. An SVG element's className is an SVGAnimatedString.
    function target(el, dejavu) {
      el = el || {};
      var c = el.className;
      if (c && typeof c != 'string') c = c.baseVal;
      if (dejavu || !cf) {
        var t = {id: el.id || '', 'class': c || ''};
        if (typeof el.name == 'string') t.name = el.name;
        return t;
      }
      return {elementName: el.localName || '', className: c || '', id: el.id || ''};
    }
    function selectedText(el) {
      try {
        if (el && typeof el.value == 'string' && el.selectionStart != null) return el.value.slice(el.selectionStart, el.selectionEnd);
      } catch (e) { /* inputs without a selection API */ }
      return win.getSelection ? '' + win.getSelection() : '';
    }
    function size(t) {
      var d = doc.documentElement || {};
      return {width: win.innerWidth, height: win.innerHeight, scrollWidth: d.scrollWidth, scrollHeight: d.scrollHeight, timeStamp: t};
    }

    // ---- events

    // emit builds the event body: Crowd Frame's base body for crowdframe,
    // dejavu's {type, info} for clicks; each with a sequence number and a
    // client event id.
    function emit(type, d) {
      if (stopped) return;
      var e;
      if (cf) {
        if (ctx.section != null && d.section == null) d.section = ctx.section;
        e = {worker: worker, task: ctx.task, batch: ctx.batch, unitId: ctx.unitId, type: type,
          sequence: seq++, client_time: now(), details: d, event_id: rid()};
      } else {
        e = {type: type, info: d, session: session, page: page, client_time: now(), event_id: rid(), sequence: seq++};
      }
      q.push(e);
      if (q.length > cfg.maxQueue) {
        q.shift();
        stats.dropped++;
      }
      if (q.length >= cfg.batchSize) flush();
      else if (!flushT) flushT = later(flush, cfg.flushInterval);
    }

    // ---- transport

    // take cuts the next batch off the queue: up to batchSize events and
    // maxBatchBytes bytes (a single larger event goes alone).
    function take() {
      var parts = [], n = 0, total = 2, s;
      while (n < q.length && n < cfg.batchSize) {
        s = JSON.stringify(q[n]);
        if (n && total + bytes(s) + 1 > cfg.maxBatchBytes) break;
        total += bytes(s) + 1;
        parts.push(s);
        n++;
      }
      q.splice(0, n);
      return {id: rid(), n: n, body: '[' + parts.join(',') + ']', size: total, tries: 0};
    }

    // flush sends the next batch unless one is already on its way: one
    // request at a time keeps the events in order.
    function flush() {
      flushT = clear(flushT);
      if (batch || !q.length || stopped) return;
      batch = take();
      send();
    }

    function send() {
      retryT = 0;
      var b = batch, h = {'Content-Type': 'application/json', 'Idempotency-Key': b.id};
      if (cfg.key) h.Authorization = 'Bearer ' + cfg.key;
      fetching = true;
      win.fetch(url, {method: 'POST', headers: h, body: b.body, keepalive: b.size < BEACON_BUDGET / 2,
        credentials: 'omit', mode: 'cors'}).then(function (r) {
        if (r.status == 207 && r.json) {
          // Some events were not stored: rejected for good (counted), or
          // not stored for now (produce_failed, overloaded...), when the
          // whole batch goes again under its Idempotency-Key, so that the
          // events already stored come back as recognisable duplicates.
          r.json().then(function (j) {
            if (notStored(j)) return done(b, 503);
            stats.rejected += j && j.rejected || 0;
            done(b, 207);
          }, function () { done(b, 207); });
          return;
        }
        done(b, r.status, r.headers && r.headers.get('Retry-After'));
      }, function () {
        done(b, 0);
      });
    }

    // notStored reports whether a 207 lists events the gateway could not
    // store for now (retryable codes, docs/retries.md).
    function notStored(j) {
      var errs = j && j.errors || [];
      for (var i = 0; i < errs.length; i++) {
        if (/^(produce_failed|overloaded|kafka_unavailable|rate_limited|shutting_down)$/.test(errs[i].code)) return true;
      }
      return false;
    }

    // done settles a request: success, retry (network error, 429, 5xx) or
    // give up (any other status: retrying would not help).
    function done(b, status, retryAfter) {
      fetching = false;
      if (b != batch) return; // sent by beacon meanwhile
      if (status >= 200 && status < 300) {
        stats.sent += b.n;
      } else if ((!status || status == 429 || status >= 500) && b.tries < cfg.maxRetries && !stopped) {
        b.tries++;
        stats.retries++;
        retryT = later(send, delay(b.tries, retryAfter));
        return;
      } else {
        stats.failed += b.n;
      }
      batch = null;
      if (q.length >= cfg.batchSize || q.length && !flushT) flush();
    }

    // delay is Retry-After (seconds or an HTTP date) when the server sent
    // one, else exponential backoff with jitter.
    function delay(tries, retryAfter) {
      if (retryAfter) {
        var ms = /^\d+$/.test(retryAfter) ? retryAfter * 1000 : Date.parse(retryAfter) - now();
        if (ms >= 0) return Math.min(ms, 3600000);
      }
      var d = Math.min(cfg.retryMax, cfg.retryBase * Math.pow(2, tries - 1));
      return d / 2 + Math.random() * d / 2;
    }

    // beacon hands everything still queued to the browser as the page goes
    // away: sendBeacon (which cannot set headers, so the key and the batch
    // id travel in the query) within the 64 KB budget, the oldest events
    // dropped when they do not fit. A request already in flight is a
    // keepalive fetch and finishes on its own.
    function beacon() {
      pending();
      var budget = BEACON_BUDGET - 1024 - (fetching ? batch.size : 0);
      if (batch && !fetching) {
        // A batch waiting to be retried goes with its own id.
        retryT = clear(retryT);
        if (batch.size <= budget && post(batch)) budget -= batch.size;
        else stats.failed += batch.n;
        batch = null;
      }
      var sizes = q.map(function (e) { return bytes(JSON.stringify(e)) + 1; }), total = 0, i;
      // Keep the newest events that fit (the unload event is the last).
      for (i = sizes.length; i > 0 && total + sizes[i - 1] <= budget; i--) total += sizes[i - 1];
      stats.dropped += i;
      q.splice(0, i);
      flushT = clear(flushT);
      while (q.length) {
        var b = take();
        if (!post(b)) {
          stats.failed += b.n;
        }
      }
    }

    function post(b) {
      if (nav.sendBeacon) {
        var u = url + '?idempotency_key=' + b.id + (cfg.key ? '&key=' + encodeURIComponent(cfg.key) : '');
        if (nav.sendBeacon(u, b.body)) {
          stats.sent += b.n;
          return true;
        }
        return false;
      }
      var h = {'Content-Type': 'application/json', 'Idempotency-Key': b.id};
      if (cfg.key) h.Authorization = 'Bearer ' + cfg.key;
      win.fetch(url, {method: 'POST', headers: h, body: b.body, keepalive: true, credentials: 'omit', mode: 'cors'}).then(null, function () {});
      stats.sent += b.n;
      return true;
    }

    // ---- capture

    var moves = [], lastMove = -1e9, moveT = 0;
    var chain = null, chainT = 0, lastButton = null, lastButtonT = -1e9;
    var keys = [], sentence = '', keyEl = null, keyT = 0;
    var textEl = null, textT = 0;
    var selStart = 0, lastSel = '';
    var scroll = null, scrollT = 0, resizeT = 0;

    function flushMoves() {
      moveT = clear(moveT);
      if (moves.length > 1) emit('movements', {points: moves});
      moves = [];
    }
    function endChain() {
      chainT = clear(chainT);
      if (chain) emit('click', chain.d);
      chain = null;
    }
    function flushKeys() {
      keyT = clear(keyT);
      if (keys.length) emit('keySequence', {keySequence: keys, sentence: cut(sentence)});
      keys = [];
      sentence = '';
      keyEl = null;
    }
    function flushText(el, t) {
      textT = clear(textT);
      textEl = null;
      if (textField(el)) emit('text', {timeStamp: t, text: cut(el.value)});
    }
    function flushScroll() {
      scrollT = clear(scrollT);
      if (scroll) {
        scroll.x = win.scrollX || win.pageXOffset || 0;
        scroll.y = win.scrollY || win.pageYOffset || 0;
        emit('scroll', scroll);
      }
      scroll = null;
    }
    // pending emits whatever the debouncers hold.
    function pending() {
      flushMoves();
      endChain();
      flushKeys();
      if (textEl) flushText(textEl, ts());
      flushScroll();
    }

    if (cap.mouse) {
      ['mousedown', 'mouseup'].forEach(function (type) {
        on(doc, type, function (e) {
          emit(type, {x: e.clientX, y: e.clientY, button: e.button, target: target(e.target, 1)});
        });
      });
    }
    if (cap.movements) {
      // Sampled every 100 ms; Crowd Frame sends the points after 500 ms
      // without movement, the clicks family one dejavu mousemove each.
      on(doc, 'mousemove', function (e) {
        var t = ts(e);
        if (t - lastMove < 100) return;
        lastMove = t;
        if (!cf) return emit('mousemove', {x: e.clientX, y: e.clientY, button: e.buttons, target: target(e.target)});
        moves.push({timeStamp: t, x: e.clientX, y: e.clientY, target: target(e.target)});
        moveT = clear(moveT);
        if (moves.length >= 300) flushMoves();
        else moveT = later(flushMoves, 500);
      });
    }
    if (cap.clicks || cap.buttons) {
      on(doc, 'click', function (e) {
        var t = ts(e), el = e.target;
        if (cap.clicks) {
          // Clicks on one element less than 500 ms apart are one event with
          // the first and last time and the count.
          if (chain && chain.el != el) endChain();
          if (!chain) chain = {el: el, d: {mouseButton: 'left', startTime: t, endTime: t, x: e.clientX, y: e.clientY, target: target(el), clicks: 0}};
          chain.d.endTime = t;
          chain.d.clicks++;
          chainT = clear(chainT);
          chainT = later(endChain, 500);
        }
        var b = cap.buttons && el && el.closest && el.closest('button,input[type=button],input[type=submit],[role=button]');
        if (b) {
          // Debounced 1 s: a burst of clicks on one button is one event.
          if (b != lastButton || t - lastButtonT >= 1000) {
            emit('button', {button: cut(b.innerText || b.value || b.textContent || '').trim().toUpperCase(), timeStamp: t, x: e.clientX, y: e.clientY});
          }
          lastButton = b;
          lastButtonT = t;
        }
      });
    }
    if (cap.clicks) {
      on(doc, 'contextmenu', function (e) {
        var t = ts(e);
        endChain();
        emit('click', {mouseButton: 'right', startTime: t, endTime: t, x: e.clientX, y: e.clientY, target: target(e.target), clicks: 1});
      });
    }
    if (cap.shortcuts || cap.keys || cap.text) {
      on(doc, 'keydown', function (e) {
        var el = e.target, k = e.key, t = ts(e);
        // Nothing typed in a password field is ever looked at.
        if (secret(el) || !k || /^(Control|Alt|AltGraph|Meta|Shift|CapsLock|Dead|Process|Unidentified)$/.test(k)) return;
        if ((e.ctrlKey || e.metaKey || e.altKey) && !(e.getModifierState && e.getModifierState('AltGraph'))) {
          if (cap.shortcuts) emit('shortcut', {timeStamp: t, ctrl: !!(e.ctrlKey || e.metaKey), alt: !!e.altKey, key: k});
          return;
        }
        if (cap.text && k == 'Backspace' && textField(el)) {
          if (textEl && textEl != el) flushText(textEl, t);
          textEl = el;
          textT = clear(textT);
          textT = later(function () { flushText(el, t); }, 3000);
        }
        if (!cap.keys) return;
        if (keyEl && keyEl != el) flushKeys();
        keyEl = el;
        keys.push({timeStamp: t, key: k});
        // The sentence as typed: characters, Backspace and Enter.
        if (k.length == 1 || k.length == 2 && k.charCodeAt(0) >> 10 == 54) sentence += k;
        else if (k == 'Backspace') sentence = sentence.slice(0, -1);
        else if (k == 'Enter') sentence += '\n';
        keyT = clear(keyT);
        if (keys.length >= 500) flushKeys();
        else keyT = later(flushKeys, 1000);
      });
    }
    if (cap.text) {
      on(doc, 'focusout', function (e) {
        if (textField(e.target)) flushText(e.target, ts(e));
      });
    }
    if (cap.selection) {
      on(doc, 'mousedown', function (e) { selStart = ts(e); });
      on(doc, 'mouseup', function (e) {
        var el = doc.activeElement;
        if (secret(e.target) || secret(el)) return;
        var s = selectedText(el);
        if (s && s != lastSel) emit('selection', {startTime: selStart, endTime: ts(e), selected: cut(s)});
        lastSel = s;
      });
    }
    if (cap.clipboard) {
      ['copy', 'cut', 'paste'].forEach(function (type) {
        on(doc, type, function (e) {
          var el = e.target;
          if (secret(el) || secret(doc.activeElement)) return;
          var d = {timeStamp: ts(e)};
          if (type == 'paste') d.text = cut(e.clipboardData ? e.clipboardData.getData('text') : '');
          else d.target = cut(selectedText(el));
          emit(type, d);
        });
      });
    }
    if (cap.radio) {
      on(doc, 'change', function (e) {
        var el = e.target;
        if (el && el.type == 'radio' && !secret(el)) emit('radioChange', {timeStamp: ts(e), group: el.name, value: el.value});
      });
    }
    if (cap.scroll) {
      // Debounced 300 ms: first and last time, then the top-left corner.
      on(win, 'scroll', function (e) {
        var t = ts(e);
        if (!scroll) scroll = {startTimestamp: t};
        scroll.endTimestamp = t;
        scrollT = clear(scrollT);
        scrollT = later(flushScroll, 300);
      }, false);
    }
    if (cap.resize) {
      if (cf) emit('init', size());
      on(win, 'resize', function (e) {
        var t = ts(e);
        resizeT = clear(resizeT);
        resizeT = later(function () { emit('resize', size(t)); }, 300);
      }, false);
    }
    if (cap.focus) {
      on(win, 'focus', function (e) { emit('window_focus', {timeStamp: ts(e)}); }, false);
      on(win, 'blur', function (e) { emit('window_blur', {timeStamp: ts(e)}); }, false);
    }
    // The page going away, or into the background where it may be killed
    // unseen, sends everything by beacon.
    on(win, 'pagehide', function (e) {
      pending();
      if (cap.unload) emit('unload', {timeStamp: ts(e)});
      beacon();
    }, false);
    on(doc, 'visibilitychange', function () {
      if (doc.visibilityState == 'hidden') beacon();
    }, false);

    return {
      // track queues an event of the caller's own: details become the Crowd
      // Frame details (with the section) or the clicks info.
      track: function (type, details) {
        var d = {}, k;
        for (k in details) d[k] = details[k];
        emit(type, d);
      },
      // flush emits what the debouncers hold and sends the queue now.
      flush: function () {
        pending();
        flush();
      },
      // set changes the context (worker, task, batch, unitId, section) for
      // the events that follow.
      set: function (c) {
        for (var k in c) ctx[k] = c[k];
        if (c.worker) worker = c.worker;
      },
      stats: function () {
        var s = {queued: q.length + (batch ? batch.n : 0)}, k;
        for (k in stats) s[k] = stats[k];
        return s;
      },
      stop: function () {
        stopped = true;
        offs.forEach(function (f) { f(); });
        [flushT, retryT, moveT, chainT, keyT, textT, scrollT, resizeT].forEach(clear);
      }
    };
  }

  var Sluice = {
    create: create,
    // init starts the page's agent (again, when called twice).
    init: function (opts) {
      if (Sluice.agent) Sluice.agent.stop();
      return Sluice.agent = create(root, opts || {});
    }
  };
  ['track', 'flush', 'set', 'stats'].forEach(function (m) {
    Sluice[m] = function (a, b) { return Sluice.agent && Sluice.agent[m](a, b); };
  });
  if (typeof module == 'object' && module.exports) module.exports = Sluice;
  else root.Sluice = Sluice;
})(typeof window != 'undefined' ? window : this);
