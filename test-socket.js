// The live page's script (test-socket.html), served from this origin: the page's CSP allows no inline script.
(function () {
  'use strict';

  // Data comes from users (keys, batch ids, error messages): it is only ever rendered with textContent.
  const MAX_BATCHES = 50;
  const ACK_TIMEOUT_MS = 10000;
  const FIELDS = ['count', 'sum', 'avg', 'min', 'max', 'lastValue', 'lastTimestamp', 'updatedAt'];
  const TIME_FIELDS = new Set(['lastTimestamp', 'updatedAt']);

  const $ = (id) => document.getElementById(id);
  const statusEl = $('status');
  const errorEl = $('error');
  const keysInput = $('keys');
  const rowsEl = $('rows');
  const rowsEmptyEl = $('rows-empty');
  const batchesEl = $('batches');
  const batchesEmptyEl = $('batches-empty');
  const sendResultEl = $('send-result');

  /** key -> latest aggregate (null: no data yet), for every key watched or being subscribed. */
  const statsByKey = new Map();
  /** key -> its table row, in subscription order. */
  const rowsByKey = new Map();
  /** Batch ids sent from this page, to mark them in the feed. */
  const sentBatches = new Set();

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
    // Today's times are the common case; the full ISO string is in the cell's title.
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

  function statsCells(stats) {
    if (!stats) return [el('td', { colspan: String(FIELDS.length), text: 'no data yet', dataset: { field: 'empty' } })];
    return FIELDS.map((field) => {
      const raw = stats[field];
      const text = TIME_FIELDS.has(field) ? formatTime(raw) : field === 'count' ? countFormat.format(raw) : formatNumber(raw);
      return el('td', { text, title: String(raw), dataset: { field, value: String(raw) } });
    });
  }

  function renderRow(key, flash) {
    const row = rowsByKey.get(key);
    if (!row) return;
    const stats = statsByKey.get(key) || null;
    const [keyCell, ...rest] = row.children;
    const actionCell = rest[rest.length - 1];
    row.replaceChildren(keyCell, ...statsCells(stats), actionCell);
    row.dataset.state = stats ? 'live' : 'empty';
    if (flash) {
      row.dataset.updates = String(Number(row.dataset.updates) + 1);
      row.classList.remove('flash');
      void row.offsetWidth; // restarts the animation when updates come quickly
      row.classList.add('flash');
    }
  }

  function addRow(key) {
    if (rowsByKey.has(key)) return;
    const button = el('button', { type: 'button', className: 'secondary', text: 'Unsubscribe', dataset: { action: 'unsubscribe' } });
    button.addEventListener('click', () => unsubscribe(key, button));
    const row = el('tr', { dataset: { key, updates: '0' } }, [
      el('td', { text: key, title: key, dataset: { field: 'key' } }),
      el('td', { dataset: { field: 'actions' } }, [button]),
    ]);
    rowsByKey.set(key, row);
    rowsEl.append(row);
    rowsEmptyEl.hidden = true;
    renderRow(key, false);
  }

  function removeRow(key) {
    const row = rowsByKey.get(key);
    if (row) row.remove();
    rowsByKey.delete(key);
    statsByKey.delete(key);
    rowsEmptyEl.hidden = rowsByKey.size > 0;
  }

  function applySnapshot(snapshot) {
    for (const [key, stats] of Object.entries(snapshot || {})) {
      if (!statsByKey.has(key) || isNewer(stats, statsByKey.get(key))) statsByKey.set(key, stats);
      addRow(key);
      renderRow(key, false);
    }
  }

  if (typeof io !== 'function') {
    setStatus('disconnected', 'no client');
    showError('Could not load the Socket.io client from /ws/socket.io.js; is the API running?');
    return;
  }
  // With API keys configured, open the page as /test-socket.html#apiKey=<key> (a fragment never leaves the browser).
  const apiKey = new URLSearchParams(location.hash.slice(1)).get('apiKey') || '';
  const authHeaders = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
  const socket = io({ path: '/ws', auth: apiKey ? { token: apiKey } : {} });

  /** Subscribes (and joins the batch feed); the ack's snapshot draws the rows at once. */
  function subscribe(keys, fromUser) {
    for (const key of keys) if (!statsByKey.has(key)) statsByKey.set(key, null);
    return new Promise((resolve) => {
      socket.timeout(ACK_TIMEOUT_MS).emit('subscribe', { keys, jobs: true }, (timeoutError, reply) => {
        if (timeoutError) {
          forgetPending(keys);
          showError(`The server did not answer within ${ACK_TIMEOUT_MS / 1000} s; check the connection and try again.`);
        } else if (!reply || !reply.ok) {
          forgetPending(keys);
          showError((reply && reply.error && reply.error.message) || 'The server refused the subscription.');
        } else {
          if (fromUser) showError('');
          applySnapshot(reply.snapshot);
        }
        resolve(Boolean(reply && reply.ok));
      });
    });
  }

  function forgetPending(keys) {
    for (const key of keys) if (!rowsByKey.has(key)) statsByKey.delete(key);
  }

  function unsubscribe(key, button) {
    button.disabled = true;
    socket.timeout(ACK_TIMEOUT_MS).emit('unsubscribe', { keys: [key] }, (timeoutError, reply) => {
      if (!timeoutError && reply && reply.ok) {
        removeRow(key);
        return;
      }
      button.disabled = false;
      showError(
        timeoutError ? 'The server did not answer; try again.' : (reply && reply.error && reply.error.message) || 'Could not unsubscribe.',
      );
    });
  }

  function markMine(item) {
    item.firstChild.append(el('span', { className: 'badge mine', text: 'sent here' }));
  }

  function addBatch(done) {
    const mine = sentBatches.has(done.batchId);
    const keysLabel = `${countFormat.format(done.keys)} ${done.keys === 1 ? 'key' : 'keys'}`;
    const pointsLabel = `${countFormat.format(done.points)} ${done.points === 1 ? 'point' : 'points'}`;
    const item = el('li', { dataset: { batchId: done.batchId, status: done.status } }, [
      el('div', { className: 'batch-line' }, [
        el('span', { className: 'badge', text: done.status, dataset: { status: done.status } }),
        el('span', { className: 'batch-id', text: done.batchId, title: done.batchId }),
      ]),
      el('div', {
        className: 'batch-meta',
        text: `${pointsLabel} · ${keysLabel} · ${formatNumber(done.durationMs)} ms · ${timeFormat.format(new Date())}`,
      }),
    ]);
    if (mine) markMine(item);
    batchesEl.prepend(item);
    while (batchesEl.children.length > MAX_BATCHES) batchesEl.lastElementChild.remove();
    batchesEmptyEl.hidden = true;
  }

  socket.on('connect', () => {
    setStatus('connected');
    // A new connection has joined no room yet: watch the same keys again and refresh what was missed.
    void subscribe([...rowsByKey.keys()], false);
  });
  socket.on('disconnect', () => setStatus(socket.active ? 'reconnecting' : 'disconnected'));
  socket.on('connect_error', (error) => {
    setStatus(socket.active ? 'reconnecting' : 'disconnected');
    // Refused by the server (no or wrong API key): it will not retry, so say why.
    if (!socket.active) showError(`${error.message} Open this page as /test-socket.html#apiKey=<key>.`);
  });
  socket.io.on('reconnect_attempt', (attempt) => setStatus('reconnecting', `reconnecting (attempt ${attempt})…`));

  socket.on('stats:update', (update) => {
    if (!update || !statsByKey.has(update.key)) return;
    if (!isNewer(update.stats, statsByKey.get(update.key))) return;
    statsByKey.set(update.key, update.stats);
    renderRow(update.key, true);
  });
  socket.on('batch:done', (done) => {
    if (done && typeof done.batchId === 'string') addBatch(done);
  });

  $('subscribe-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const keys = parseKeys(keysInput.value);
    if (keys.length === 0) {
      showError('Type at least one key, e.g. sensor-1/temp.');
      return;
    }
    const button = $('subscribe');
    button.disabled = true;
    const ok = await subscribe(keys, true);
    button.disabled = false;
    if (ok) {
      keysInput.value = '';
      if (!$('batch-key').value) $('batch-key').value = keys[0];
    }
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
        for (const item of batchesEl.children) if (item.dataset.batchId === body.batchId) markMine(item);
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
})();
