// The demo page: a tic-tac-toe board wired to the Sluice agent, and a feed
// of the events the gateway accepted. ?family=clicks switches to dejavu's
// shape; ?key= and ?workerId= override the development key and the worker.
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var family = params.get('family') === 'clicks' ? 'clicks' : 'crowdframe';
  var worker = params.get('workerId') || sessionStorage.getItem('sluice.demo.worker');
  if (!worker) {
    worker = 'demo-' + Math.random().toString(36).slice(2, 8);
    sessionStorage.setItem('sluice.demo.worker', worker);
  }
  Sluice.init({
    key: params.get('key') || 'dev',
    family: family,
    context: {worker: worker, task: 'tictactoe', batch: 'demo', section: 'board', session: worker},
    capture: family === 'clicks' ? {mouse: true, movements: true} : {}
  });

  // The game.
  var board = document.getElementById('board');
  var status = document.getElementById('status');
  var cells = {};
  var turn = 'X', over = false, moves = 0;
  var lines = [
    ['(0,0)', '(1,0)', '(2,0)'], ['(0,1)', '(1,1)', '(2,1)'], ['(0,2)', '(1,2)', '(2,2)'],
    ['(0,0)', '(0,1)', '(0,2)'], ['(1,0)', '(1,1)', '(1,2)'], ['(2,0)', '(2,1)', '(2,2)'],
    ['(0,0)', '(1,1)', '(2,2)'], ['(2,0)', '(1,1)', '(0,2)']
  ];
  Array.prototype.forEach.call(board.querySelectorAll('td'), function (td) { cells[td.id] = td; });
  board.addEventListener('click', function (e) {
    var td = e.target.closest('td');
    if (!td || over || td.textContent) return;
    td.textContent = turn;
    moves++;
    var won = lines.some(function (l) {
      return l.every(function (id) { return cells[id].textContent === turn; });
    });
    if (won || moves === 9) {
      over = true;
      status.textContent = won ? turn + ' wins' : 'Draw';
      Sluice.track('gameOver', {winner: won ? turn : '', moves: moves});
      return;
    }
    turn = turn === 'X' ? 'O' : 'X';
    status.textContent = turn + ' to play';
  });
  document.getElementById('reset').addEventListener('click', function () {
    Object.keys(cells).forEach(function (id) { cells[id].textContent = ''; });
    turn = 'X';
    over = false;
    moves = 0;
    status.textContent = 'X to play';
  });
  // Sections, as Crowd Frame has them: the part of the page in view.
  if (window.IntersectionObserver) {
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (en) {
        if (en.isIntersecting) Sluice.set({section: en.target.getAttribute('data-section')});
      });
    }, {threshold: 0.6});
    [['board', 'board'], ['comment', 'form'], ['p1', 'reading']].forEach(function (p) {
      var el = document.getElementById(p[0]);
      el.setAttribute('data-section', p[1]);
      seen.observe(el);
    });
  }

  // The feed of accepted events.
  var feed = document.getElementById('feed');
  var stats = document.getElementById('stats');
  function summary(ev) {
    var e = ev.event || {};
    var d = e.details || e.info || {};
    var s = JSON.stringify(d);
    return s.length > 160 ? s.slice(0, 160) + '…' : s;
  }
  function poll() {
    var st = Sluice.stats() || {};
    stats.textContent = 'agent (' + family + '): sent ' + st.sent + ', queued ' + st.queued +
      ', dropped ' + st.dropped + ', retries ' + st.retries + ', failed ' + st.failed;
    fetch('/demo/recent', {cache: 'no-store'}).then(function (r) { return r.ok ? r.json() : {events: []}; }).then(function (j) {
      feed.textContent = '';
      j.events.slice(0, 40).forEach(function (ev) {
        var li = document.createElement('li');
        var b = document.createElement('b');
        var type = ev.event && ev.event.type || '?';
        b.textContent = ev.received_at.slice(11, 23) + ' ' + ev.family + ' ' + type;
        li.appendChild(b);
        li.appendChild(document.createTextNode(' ' + summary(ev)));
        feed.appendChild(li);
      });
    }, function () {}).then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
