// The dashboard page: snapshots of the server's counters arrive over a WebSocket once a second
// (examples/dashboard.lua) and are drawn with uPlot, one line per series and worker. The last
// WINDOW seconds are shown; window.dashboard exposes the page's state (for tests and curious people).
'use strict';

(function () {
  // seconds on the charts: ?window=N in the page's address (10 to 3600), 120 by default
  const asked = Number(new URLSearchParams(location.search).get('window'));
  const WINDOW = asked >= 10 && asked <= 3600 ? asked : 120;
  const two = (n) => String(n).padStart(2, '0');
  const clock = (t) => { const d = new Date(t * 1000); return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`; };
  const COLORS = ['#4fb3ff', '#ffb347', '#7bd88f', '#ff6b8b', '#c39bff', '#f2e86d', '#5ee0d6', '#ff9f6b'];

  const CHARTS = [
    { id: 'connections', title: 'Open connections', series: [['connections', 'open']] },
    { id: 'messages', title: 'Messages per second', series: [['messages_received_rate', 'in'], ['messages_sent_rate', 'out']] },
    { id: 'bytes', title: 'Payload bytes per second', series: [['bytes_received_rate', 'in'], ['bytes_sent_rate', 'out']], bytes: true },
    { id: 'trouble', title: 'Drops, refusals and closes per second',
      series: [['dropped_rate', 'dropped'], ['refused_rate', 'refused'], ['closes_rate', 'closes']] },
  ];

  const state = { samples: 0, last: null, workers: {}, charts: {}, max: {}, connected: false };
  window.dashboard = state;

  function human(n, bytes) {
    if (n == null || !isFinite(n)) return '–';
    const units = bytes ? ['B', 'KiB', 'MiB', 'GiB'] : ['', 'k', 'M', 'G'];
    const step = bytes ? 1024 : 1000;
    let i = 0;
    while (Math.abs(n) >= step && i < units.length - 1) { n /= step; i++; }
    const s = Math.abs(n) >= 100 || Number.isInteger(n) ? n.toFixed(0) : n.toFixed(1);
    return s + (units[i] ? ' ' + units[i] : '');
  }

  // Series of a chart: for each worker seen, each of the chart's keys.
  function seriesOf(chart) {
    const workers = Object.keys(state.workers).sort();
    const out = [];
    workers.forEach((w) => chart.series.forEach(([key, label]) => {
      out.push({ worker: w, key, label: workers.length > 1 ? `worker ${w} ${label}` : label });
    }));
    return out;
  }

  function makeChart(chart, el, series) {
    const width = Math.max(300, el.clientWidth - 16);
    const opts = {
      width, height: 220,
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: () => { const t = state.last ? state.last.t : Date.now() / 1000; return [t - WINDOW, t]; } },
        y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] },
      },
      legend: { live: false },
      axes: [
        { stroke: '#8a97a6', grid: { stroke: '#26303b' }, ticks: { stroke: '#26303b' }, space: 70,
          values: (u, vals) => vals.map(clock) },
        { stroke: '#8a97a6', grid: { stroke: '#26303b' }, ticks: { stroke: '#26303b' }, size: 60,
          values: (u, vals) => vals.map((v) => human(v, chart.bytes)) },
      ],
      series: [{}].concat(series.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true,
        dash: s.label.endsWith('out') ? [6, 4] : undefined, // an echo's "out" lies on its "in"
        fill: COLORS[i % COLORS.length] + '22', points: { show: false },
        value: (u, v) => human(v, chart.bytes),
      }))),
    };
    return new uPlot(opts, [[]].concat(series.map(() => [])), el);
  }

  const chartsEl = document.getElementById('charts');
  CHARTS.forEach((chart) => {
    const box = document.createElement('div');
    box.className = 'chart';
    box.id = 'chart-' + chart.id;
    const h = document.createElement('h2');
    h.textContent = chart.title;
    box.appendChild(h);
    const plot = document.createElement('div');
    box.appendChild(plot);
    chartsEl.appendChild(box);
    chart.el = plot;
  });

  function redraw() {
    // one x axis for every worker: the union of their samples' times in the window; a worker's
    // series has no value at another worker's times, and its line spans those gaps
    const now = state.last ? state.last.t : Date.now() / 1000;
    const seen = new Set();
    Object.keys(state.workers).forEach((w) => state.workers[w].list.forEach((s) => seen.add(s.t)));
    const xs = Array.from(seen).filter((t) => t > now - WINDOW).sort((a, b) => a - b);
    CHARTS.forEach((chart) => {
      const series = seriesOf(chart);
      const sig = series.map((s) => s.worker + '/' + s.key).join(',');
      if (!state.charts[chart.id] || chart.sig !== sig) {
        if (state.charts[chart.id]) state.charts[chart.id].destroy();
        chart.el.innerHTML = '';
        state.charts[chart.id] = makeChart(chart, chart.el, series);
        chart.sig = sig;
      }
      const data = [xs].concat(series.map((s) => {
        const byTime = state.workers[s.worker].byTime;
        return xs.map((t) => (byTime.has(t) ? byTime.get(t)[s.key] : null));
      }));
      state.charts[chart.id].setData(data);
    });
  }

  function tiles(sample) {
    // summed over the workers' latest samples
    const sum = {};
    Object.keys(state.workers).forEach((w) => {
      const latest = state.workers[w].latest;
      if (!latest) return;
      Object.keys(latest).forEach((k) => { if (typeof latest[k] === 'number') sum[k] = (sum[k] || 0) + latest[k]; });
    });
    const set = (id, v, bytes) => {
      const el = document.getElementById('v-' + id);
      if (el) el.textContent = human(v, bytes);
    };
    set('connections', sum.connections);
    set('messages_received_rate', sum.messages_received_rate);
    set('messages_sent_rate', sum.messages_sent_rate);
    set('bytes_received_rate', sum.bytes_received_rate, true);
    set('bytes_sent_rate', sum.bytes_sent_rate, true);
    set('dropped', sum.dropped);
    set('accepted', sum.accepted);
    set('workers', sample.workers);
  }

  function add(sample) {
    const w = sample.worker || 'main';
    const entry = state.workers[w] || (state.workers[w] = { list: [], byTime: new Map(), latest: null });
    entry.list.push(sample);
    entry.byTime.set(sample.t, sample);
    entry.latest = sample;
    while (entry.list.length && entry.list[0].t < sample.t - WINDOW - 5) entry.byTime.delete(entry.list.shift().t);
    Object.keys(sample).forEach((k) => {
      if (typeof sample[k] === 'number') state.max[k] = Math.max(state.max[k] || 0, sample[k]);
    });
    state.samples++;
    if (!state.last || sample.t >= state.last.t) state.last = sample;
  }

  const statusEl = document.getElementById('status');
  function status(cls, text) {
    statusEl.className = 'status ' + cls;
    statusEl.textContent = text;
  }

  function connect() {
    const url = location.origin.replace(/^http/, 'ws') + '/dashboard';
    const sock = new WebSocket(url);
    sock.onopen = () => { state.connected = true; status('live', 'live'); };
    sock.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === 'history') msg.samples.forEach(add);
      else if (msg.type === 'sample') add(msg.sample);
      else return;
      if (state.last) {
        tiles(state.last);
        redraw();
      }
    };
    sock.onclose = () => {
      state.connected = false;
      status('lost', 'reconnecting…');
      setTimeout(connect, 1000);
    };
  }

  window.addEventListener('resize', () => {
    CHARTS.forEach((chart) => {
      const u = state.charts[chart.id];
      if (u) u.setSize({ width: Math.max(300, chart.el.clientWidth - 16), height: 220 });
    });
  });

  redraw();
  connect();
})();
