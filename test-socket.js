// The dashboard's script (test-socket.html), served from this origin: the page's CSP allows no inline script.
(function () {
  'use strict';

  // Data comes from users (keys, batch ids, error messages): it is only ever rendered with textContent.
  const MAX_BATCHES = 50;
  const MAX_KEYS = 20;
  const ACK_TIMEOUT_MS = 10000;
  // Under constant load a card is redrawn at most this often: numbers and charts move, the page does not flicker.
  const RENDER_EVERY_MS = 500;
  // series:update brings the newest minute of each update; late points and coarser steps come from reading the range
  // again, at most this often per card while data arrives.
  const REFETCH_EVERY_MS = 5000;
  const STORAGE_KEY = 'realtime-dashboard';
  const MINUTE = 60000;
  const RANGES = {
    '15m': { span: 15 * MINUTE, step: '1m', stepMs: MINUTE },
    '1h': { span: 60 * MINUTE, step: '1m', stepMs: MINUTE },
    '24h': { span: 24 * 60 * MINUTE, step: '1m', stepMs: MINUTE },
    '7d': { span: 7 * 24 * 60 * MINUTE, step: '1h', stepMs: 60 * MINUTE },
  };
  const STAT_FIELDS = [
    ['count', 'Count'],
    ['avg', 'Avg'],
    ['min', 'Min'],
    ['max', 'Max'],
    ['lastValue', 'Last'],
    ['lastTimestamp', 'Last at'],
  ];

  const $ = (id) => document.getElementById(id);
  const statusEl = $('status');
  const errorEl = $('error');
  const cardsEl = $('cards');
  const cardsEmptyEl = $('cards-empty');
  const batchesEl = $('batches');
  const batchesEmptyEl = $('batches-empty');
  const sendResultEl = $('send-result');
  const resultsEl = $('key-results');
  const resultsEmptyEl = $('key-results-empty');
  const allBatchesEl = $('all-batches');

  const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 });
  const countFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

  function formatNumber(value) {
    if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
    const abs = Math.abs(value);
    // Beyond these, grouped decimals get unreadable or round to 0.
    if (abs !== 0 && (abs >= 1e15 || abs < 1e-4)) return value.toExponential(4);
    return numberFormat.format(value);
  }

  function formatTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '—';
    return date.toDateString() === new Date().toDateString() ? timeFormat.format(date) : dateTimeFormat.format(date);
  }

  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (name === 'text') node.textContent = value;
      else if (name === 'className') node.className = value;
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(name, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function showError(message) {
    errorEl.textContent = message;
    errorEl.hidden = !message;
  }

  function setStatus(state, label) {
    statusEl.dataset.state = state;
    statusEl.textContent = label || state;
  }

  /** Commas separate when present (keys may hold spaces); otherwise any whitespace does. */
  function parseKeys(raw) {
    const parts = raw.includes(',') ? raw.split(',') : raw.split(/\s+/);
    return [...new Set(parts.map((part) => part.trim()).filter((part) => part.length > 0))];
  }

  /** Aggregates only grow, so the one with more points (or the later update) is the newer. */
  function isNewer(next, current) {
    if (!next) return false;
    if (!current) return true;
    return next.count > current.count || (next.count === current.count && next.updatedAt >= current.updatedAt);
  }

  // --- Selection: the keys chosen, in order, and the range; kept in the URL and in localStorage. ---

  function readSelection() {
    const params = new URLSearchParams(location.search);
    let keys = params.getAll('key');
    let range = params.get('range');
    if (keys.length === 0 && !range) {
      try {
        const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || '{}');
        if (Array.isArray(saved.keys)) keys = saved.keys.filter((key) => typeof key === 'string');
        if (typeof saved.range === 'string') range = saved.range;
      } catch {
        // A broken saved selection is no selection.
      }
    }
    return { keys: [...new Set(keys)].slice(0, MAX_KEYS), range: RANGES[range] ? range : '1h' };
  }

  function saveSelection() {
    const keys = [...cards.keys()];
    const params = new URLSearchParams();
    for (const key of keys) params.append('key', key);
    params.set('range', range);
    history.replaceState(null, '', `${location.pathname}?${params}${location.hash}`);
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify({ keys, range }));
    } catch {
      // Private mode: the URL still holds the selection.
    }
  }

  // --- Cards: one per chosen key, with its statistics and its chart. ---

  /** key -> {node, stats, buckets: Map<startMs, bucket>, chart, dirty, loaded} in the order chosen. */
  const cards = new Map();
  let range = '1h';

  function seriesOf(card) {
    const { span, stepMs } = RANGES[range];
    const now = Date.now();
    const last = Math.floor(now / stepMs) * stepMs;
    const first = last - Math.ceil(span / stepMs) * stepMs + stepMs;
    const xs = [];
    const avg = [];
    const min = [];
    const max = [];
    const rate = [];
    // Every step of the range is on the axis; an empty bucket draws a gap in the values and a rate of 0.
    for (let t = first; t <= last; t += stepMs) {
      const bucket = card.buckets.get(t);
      xs.push(t / 1000);
      avg.push(bucket ? bucket.avg : null);
      min.push(bucket ? bucket.min : null);
      max.push(bucket ? bucket.max : null);
      rate.push(bucket ? bucket.count / (stepMs / MINUTE) : 0);
    }
    return [xs, avg, min, max, rate];
  }

  function sparse(u) {
    const filled = u.data[1].filter((value) => value !== null).length;
    return filled > 0 && filled <= u.bbox.width / devicePixelRatio / 12;
  }

  function chartOptions(width) {
    return {
      width,
      height: 200,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, rate: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [
        { stroke: '#667085', grid: { stroke: '#eef0f3' } },
        { stroke: '#667085', grid: { stroke: '#eef0f3' }, size: 56, values: (_u, values) => values.map(formatNumber) },
        { scale: 'rate', side: 1, stroke: '#98a2b3', grid: { show: false }, size: 48, values: (_u, values) => values.map(formatNumber) },
      ],
      series: [
        {},
        // Dots where buckets are few or alone between gaps: a line needs two neighbours to show at all.
        { label: 'avg', stroke: '#2f6fed', width: 2, spanGaps: false, points: { show: sparse, size: 6, fill: '#2f6fed' } },
        { label: 'min', stroke: 'rgba(47,111,237,0.25)', width: 1, points: { show: false } },
        { label: 'max', stroke: 'rgba(47,111,237,0.25)', width: 1, points: { show: false } },
        { label: 'points/min', scale: 'rate', stroke: '#f79009', width: 1.5, fill: 'rgba(247,144,9,0.08)', points: { show: false } },
      ],
      bands: [{ series: [3, 2], fill: 'rgba(47,111,237,0.12)' }],
    };
  }

  function createCard(key) {
    const remove = el('button', { type: 'button', className: 'secondary', text: 'Remove', dataset: { action: 'unsubscribe' } });
    const up = el('button', { type: 'button', className: 'secondary', text: '↑', title: 'Move up', dataset: { action: 'up' } });
    const stats = el(
      'dl',
      { className: 'stats' },
      STAT_FIELDS.map(([field, label]) => el('div', {}, [el('dt', { text: label }), el('dd', { text: '—', dataset: { field } })])),
    );
    const chartEl = el('div', { className: 'chart' });
    const emptyEl = el('p', { className: 'chart-empty', text: 'No points in this range yet.' });
    const legend = el('p', { className: 'legend' }, [
      el('span', { text: 'avg', style: '--swatch: #2f6fed' }),
      el('span', { text: 'min–max', style: '--swatch: rgba(47,111,237,0.3)' }),
      el('span', { text: 'points per minute (right axis)', style: '--swatch: #f79009' }),
    ]);
    const node = el('section', { className: 'card', dataset: { key, state: 'empty' } }, [
      el('div', { className: 'card-head' }, [el('h3', { text: key, title: key }), el('div', { className: 'card-actions' }, [up, remove])]),
      stats,
      chartEl,
      emptyEl,
      legend,
    ]);
    const card = {
      key,
      node,
      chartEl,
      emptyEl,
      stats: null,
      buckets: new Map(),
      chart: null,
      dirty: false,
      fetchedAt: 0,
      refetch: undefined,
    };
    remove.addEventListener('click', () => unsubscribe(key, remove));
    up.addEventListener('click', () => {
      const previous = node.previousElementSibling;
      if (!previous) return;
      cardsEl.insertBefore(node, previous);
      const order = [...cardsEl.children].map((child) => child.dataset.key);
      const entries = new Map(order.map((k) => [k, cards.get(k)]));
      cards.clear();
      for (const [k, v] of entries) cards.set(k, v);
      saveSelection();
    });
    return card;
  }

  function addCard(key) {
    if (cards.has(key)) return cards.get(key);
    const card = createCard(key);
    cards.set(key, card);
    cardsEl.append(card.node);
    cardsEmptyEl.hidden = true;
    return card;
  }

  function removeCard(key) {
    const card = cards.get(key);
    if (!card) return;
    if (card.chart) card.chart.destroy();
    clearTimeout(card.refetch);
    card.node.remove();
    cards.delete(key);
    cardsEmptyEl.hidden = cards.size > 0;
    saveSelection();
  }

  function renderStats(card) {
    for (const dd of card.node.querySelectorAll('dd[data-field]')) {
      const field = dd.dataset.field;
      const raw = card.stats ? card.stats[field] : undefined;
      dd.textContent =
        raw === undefined
          ? '—'
          : field === 'lastTimestamp'
            ? formatTime(raw)
            : field === 'count'
              ? countFormat.format(raw)
              : formatNumber(raw);
      dd.title = raw === undefined ? '' : String(raw);
      dd.dataset.value = raw === undefined ? '' : String(raw);
    }
    card.node.dataset.state = card.stats ? 'live' : 'empty';
  }

  function renderChart(card) {
    const data = seriesOf(card);
    const width = Math.max(200, card.chartEl.clientWidth || card.node.clientWidth - 32);
    if (!card.chart) {
      card.chart = new uPlot(chartOptions(width), data, card.chartEl);
      // For the browser tests and the curious: what the chart draws, bucket by bucket.
      card.chartEl.uplot = card.chart;
    } else {
      card.chart.setData(data);
    }
    card.emptyEl.hidden = card.buckets.size > 0;
  }

  function render(card) {
    card.dirty = false;
    renderStats(card);
    renderChart(card);
  }

  // Marks a card for the next render turn: many updates in a turn cost one redraw.
  function touch(card) {
    card.dirty = true;
  }
  setInterval(() => {
    for (const card of cards.values()) if (card.dirty) render(card);
  }, RENDER_EVERY_MS);

  const resize = new ResizeObserver(() => {
    for (const card of cards.values()) {
      if (card.chart) card.chart.setSize({ width: Math.max(200, card.chartEl.clientWidth), height: 200 });
    }
  });
  resize.observe(cardsEl);

  // --- Reading the API. ---

  const apiKey = new URLSearchParams(location.hash.slice(1)).get('apiKey') || '';
  const authHeaders = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};

  async function getJson(url) {
    const response = await fetch(url, { headers: authHeaders });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error((body && body.error && body.error.message) || `The API answered HTTP ${response.status}.`);
    return body;
  }

  /** Reads the buckets of the range for these keys (10 per request, as the API takes them). */
  async function loadSeries(keys) {
    const { span, step } = RANGES[range];
    const now = Date.now();
    for (let i = 0; i < keys.length; i += 10) {
      const part = keys.slice(i, i + 10);
      const params = new URLSearchParams();
      for (const key of part) params.append('key', key);
      params.set('step', step);
      params.set('from', String(now - span));
      params.set('to', String(now));
      try {
        const body = await getJson(`/api/data/series?${params}`);
        for (const entry of body.series) {
          const card = cards.get(entry.key);
          if (!card) continue;
          const read = new Map(entry.buckets.map((bucket) => [Date.parse(bucket.start), bucket]));
          // A series:update that arrived while the read was under way is newer than what it returned.
          for (const [start, bucket] of card.buckets) {
            const returned = read.get(start);
            if ((returned && bucket.count > returned.count) || (!returned && start >= now - span)) read.set(start, bucket);
          }
          card.buckets = read;
          card.fetchedAt = Date.now();
          render(card);
        }
      } catch (error) {
        showError(`Could not read the series: ${error.message}`);
      }
    }
  }

  /** Reads the card's range again once REFETCH_EVERY_MS has passed since its last read (one read for many updates). */
  function scheduleRefetch(card) {
    if (card.refetch) return;
    const delay = Math.max(0, card.fetchedAt + REFETCH_EVERY_MS - Date.now());
    card.refetch = setTimeout(() => {
      card.refetch = undefined;
      if (cards.get(card.key) === card) void loadSeries([card.key]);
    }, delay);
  }

  let searchTimer;
  let searchSeq = 0;
  async function search(prefix) {
    const seq = (searchSeq += 1);
    const params = new URLSearchParams({ limit: '20' });
    if (prefix) params.set('prefix', prefix);
    try {
      const body = await getJson(`/api/data/stats?${params}`);
      if (seq !== searchSeq) return;
      resultsEl.replaceChildren(
        ...body.items.map((stats) => {
          const pick = el('button', { type: 'button', className: 'secondary', text: cards.has(stats.key) ? 'Shown' : 'Show' });
          if (cards.has(stats.key)) pick.disabled = true;
          pick.addEventListener('click', () => {
            pick.disabled = true;
            pick.textContent = 'Shown';
            void choose([stats.key], false);
          });
          return el('li', { dataset: { key: stats.key } }, [
            el('span', { className: 'key-name', text: stats.key, title: stats.key }),
            el('span', { className: 'key-count', text: `${countFormat.format(stats.count)} pts` }),
            pick,
          ]);
        }),
      );
      resultsEmptyEl.hidden = body.items.length > 0;
    } catch (error) {
      showError(`Could not search the keys: ${error.message}`);
    }
  }

  // --- Live updates. ---

  if (typeof io !== 'function' || typeof uPlot !== 'function') {
    setStatus('disconnected', 'no client');
    showError('Could not load the page scripts from this server; is the API running?');
    return;
  }
  const socket = io({ path: '/ws', auth: apiKey ? { token: apiKey } : {} });

  /** Subscribes to keys (and the batch feed); the ack's snapshot fills their statistics at once. */
  function subscribe(keys, fromUser) {
    return new Promise((resolve) => {
      socket.timeout(ACK_TIMEOUT_MS).emit('subscribe', { keys, jobs: true }, (timeoutError, reply) => {
        if (timeoutError) {
          showError(`The server did not answer within ${ACK_TIMEOUT_MS / 1000} s; check the connection and try again.`);
        } else if (!reply || !reply.ok) {
          showError((reply && reply.error && reply.error.message) || 'The server refused the subscription.');
        } else {
          if (fromUser) showError('');
          for (const [key, stats] of Object.entries(reply.snapshot || {})) {
            const card = cards.get(key);
            if (card && isNewer(stats, card.stats)) {
              card.stats = stats;
              renderStats(card);
            }
          }
        }
        resolve(Boolean(reply && reply.ok));
      });
    });
  }

  /** Adds keys to the dashboard: subscribed first, so no update between the read and the subscription is missed. */
  async function choose(keys, fromUser) {
    const fresh = keys.filter((key) => !cards.has(key));
    if (cards.size + fresh.length > MAX_KEYS) {
      showError(`The dashboard shows at most ${MAX_KEYS} keys; remove some first.`);
      return false;
    }
    if (fresh.length === 0) return true;
    for (const key of fresh) addCard(key);
    const ok = await subscribe(fresh, fromUser);
    if (!ok) {
      for (const key of fresh) removeCard(key);
      return false;
    }
    saveSelection();
    await loadSeries(fresh);
    if (!$('batch-key').value) $('batch-key').value = fresh[0];
    return true;
  }

  function unsubscribe(key, button) {
    button.disabled = true;
    socket.timeout(ACK_TIMEOUT_MS).emit('unsubscribe', { keys: [key] }, (timeoutError, reply) => {
      if (!timeoutError && reply && reply.ok) {
        removeCard(key);
        const result = resultsEl.querySelector(`li[data-key="${CSS.escape(key)}"] button`);
        if (result) {
          result.disabled = false;
          result.textContent = 'Show';
        }
        return;
      }
      button.disabled = false;
      showError(
        timeoutError ? 'The server did not answer; try again.' : (reply && reply.error && reply.error.message) || 'Could not remove it.',
      );
    });
  }

  socket.on('connect', () => {
    setStatus('connected');
    // A new connection has joined no room yet: watch the same keys again and read what was missed.
    const keys = [...cards.keys()];
    if (keys.length > 0) void subscribe(keys, false).then(() => loadSeries(keys));
  });
  socket.on('disconnect', () => setStatus(socket.active ? 'reconnecting' : 'disconnected'));
  socket.on('connect_error', (error) => {
    setStatus(socket.active ? 'reconnecting' : 'disconnected');
    // Refused by the server (no or wrong API key): it will not retry, so say why.
    if (!socket.active) showError(`${error.message} Open this page as /test-socket.html#apiKey=<key>.`);
  });
  socket.io.on('reconnect_attempt', (attempt) => setStatus('reconnecting', `reconnecting (attempt ${attempt})…`));

  socket.on('stats:update', (update) => {
    const card = update && cards.get(update.key);
    if (!card || !isNewer(update.stats, card.stats)) return;
    card.stats = update.stats;
    touch(card);
    scheduleRefetch(card);
  });
  socket.on('series:update', (update) => {
    const card = update && cards.get(update.key);
    if (!card || update.step !== RANGES[range].step || !update.bucket) return;
    const start = Date.parse(update.bucket.start);
    const current = card.buckets.get(start);
    // Buckets only grow: an update that arrives late never takes one back.
    if (current && current.count > update.bucket.count) return;
    card.buckets.set(start, update.bucket);
    touch(card);
  });

  // --- Batches: this page's own by default. ---

  const sentBatches = new Set();
  const seenBatches = [];

  function batchItem(done) {
    const keysLabel = `${countFormat.format(done.keys)} ${done.keys === 1 ? 'key' : 'keys'}`;
    const pointsLabel = `${countFormat.format(done.points)} ${done.points === 1 ? 'point' : 'points'}`;
    const line = el('div', { className: 'batch-line' }, [
      el('span', { className: 'badge', text: done.status, dataset: { status: done.status } }),
      el('span', { className: 'batch-id', text: done.batchId, title: done.batchId }),
    ]);
    if (sentBatches.has(done.batchId)) line.append(el('span', { className: 'badge mine', text: 'sent here' }));
    return el('li', { dataset: { batchId: done.batchId, status: done.status } }, [
      line,
      el('div', { className: 'batch-meta', text: `${pointsLabel} · ${keysLabel} · ${formatNumber(done.durationMs)} ms · ${done.at}` }),
    ]);
  }

  function renderBatches() {
    const shown = seenBatches.filter((done) => allBatchesEl.checked || sentBatches.has(done.batchId)).slice(0, MAX_BATCHES);
    batchesEl.replaceChildren(...shown.map(batchItem));
    batchesEmptyEl.hidden = shown.length > 0;
    batchesEmptyEl.textContent = allBatchesEl.checked
      ? 'No batch has finished since this page opened.'
      : 'No batch sent from this page has finished yet.';
  }

  socket.on('batch:done', (done) => {
    if (!done || typeof done.batchId !== 'string') return;
    seenBatches.unshift({ ...done, at: timeFormat.format(new Date()) });
    if (seenBatches.length > 500) seenBatches.length = 500;
    if (allBatchesEl.checked || sentBatches.has(done.batchId)) renderBatches();
  });
  allBatchesEl.addEventListener('change', renderBatches);

  // --- Forms and controls. ---

  $('key-search').addEventListener('input', (event) => {
    clearTimeout(searchTimer);
    const prefix = event.target.value;
    searchTimer = setTimeout(() => void search(prefix), 200);
  });
  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    void search($('key-search').value);
  });

  $('subscribe-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const keys = parseKeys($('keys').value);
    if (keys.length === 0) {
      showError('Type at least one key, e.g. sensor-1/temp.');
      return;
    }
    const button = $('subscribe');
    button.disabled = true;
    const ok = await choose(keys, true);
    button.disabled = false;
    if (ok) $('keys').value = '';
  });

  function selectRange(next) {
    range = next;
    for (const button of $('range').querySelectorAll('button')) button.setAttribute('aria-pressed', String(button.dataset.range === range));
    saveSelection();
    for (const card of cards.values()) card.buckets = new Map();
    void loadSeries([...cards.keys()]);
  }
  $('range').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-range]');
    if (button && button.dataset.range !== range) selectRange(button.dataset.range);
  });

  function showSendResult(state, parts) {
    sendResultEl.dataset.state = state;
    sendResultEl.replaceChildren(...parts);
    sendResultEl.hidden = false;
  }

  $('send-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = $('batch-key').value.trim();
    const count = Math.min(10000, Math.max(1, Math.floor(Number($('batch-points').value) || 10)));
    const points = Array.from({ length: count }, () => ({ key, value: Math.round(Math.random() * 10000) / 100 }));
    const button = $('send');
    button.disabled = true;
    try {
      const response = await fetch('/api/data/ingest', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...authHeaders },
        body: JSON.stringify({ points }),
      });
      const body = await response.json().catch(() => null);
      if (response.status === 202 && body) {
        sentBatches.add(body.batchId);
        // A small batch can finish before its 202 arrives.
        renderBatches();
        const rejected = body.rejected && body.rejected.length ? `, ${body.rejected.length} rejected` : '';
        showSendResult('ok', [
          `202 Accepted: ${countFormat.format(body.accepted)} accepted${rejected} · batch `,
          el('code', { text: body.batchId, dataset: { field: 'batchId' } }),
        ]);
      } else {
        const message = (body && body.error && body.error.message) || `The API answered HTTP ${response.status}.`;
        showSendResult('error', [`${response.status}: ${message}`]);
      }
    } catch (error) {
      showSendResult('error', [`Could not reach the API: ${error.message}`]);
    } finally {
      button.disabled = false;
    }
  });

  // --- Start: the saved selection, the first keys of the list. ---

  const initial = readSelection();
  range = initial.range;
  for (const button of $('range').querySelectorAll('button')) button.setAttribute('aria-pressed', String(button.dataset.range === range));
  for (const key of initial.keys) addCard(key);
  saveSelection();
  void search('');
})();
