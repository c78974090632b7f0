// Tarsier's first UI page: LogQL and PromQL through the same public APIs Grafana uses.
'use strict';

const $ = (id) => document.getElementById(id);
const COLORS = ['#f0a030', '#4fb3ff', '#7bd88f', '#ff6b6b', '#c792ea', '#ffd866', '#78dce8'];

function showTab(name) {
  document.querySelectorAll('.tab').forEach((t) => t.classList.toggle('active', t.dataset.tab === name));
  document.querySelectorAll('.panel').forEach((p) => { p.hidden = p.id !== name; });
  const params = new URLSearchParams(location.hash.slice(1));
  params.set('tab', name);
  history.replaceState(null, '', '#' + params.toString());
}

async function getJSON(url) {
  const res = await fetch(url);
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = null; }
  if (!res.ok) throw new Error((body && body.error) || text || res.statusText);
  return body;
}

function escapeHTML(s) {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function needles(query) {
  const out = [];
  const re = /\|=\s*"((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(query)) !== null) out.push(m[1]);
  return out.filter((n) => n.length > 0);
}

function highlight(line, words) {
  let html = escapeHTML(line);
  for (const w of words) {
    const e = escapeHTML(w).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    html = html.replace(new RegExp(e, 'g'), (m) => `<mark>${m}</mark>`);
  }
  return html;
}

async function runLogs(ev) {
  if (ev) ev.preventDefault();
  const query = $('logql').value.trim() || '{job=~".+"}';
  const span = Number($('logs-range').value);
  const end = Date.now() * 1e6;
  const start = end - span * 1e9;
  $('logs-error').hidden = true;
  const params = new URLSearchParams({ query, start: String(start), end: String(end), limit: '500', direction: 'backward' });
  history.replaceState(null, '', '#' + new URLSearchParams({ tab: 'logs', logql: query, range: String(span) }).toString());
  try {
    const body = await getJSON('/loki/api/v1/query_range?' + params);
    const rows = [];
    for (const s of body.data.result) {
      const labels = Object.entries(s.stream).map(([k, v]) => `${k}="${v}"`).join(', ');
      for (const [ts, line] of s.values) rows.push({ ts: BigInt(ts), line, labels });
    }
    rows.sort((a, b) => (a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : 0));
    const words = needles(query);
    $('logs-results').innerHTML = rows.map((r) => {
      const t = new Date(Number(r.ts / 1000000n)).toISOString();
      const cls = /\b(error|fatal|panic)\b/i.test(r.line) ? ' class="lvl-error"' : '';
      return `<li${cls}><time>${t}</time><span class="labels">{${escapeHTML(r.labels)}}</span>${highlight(r.line, words)}</li>`;
    }).join('');
    $('logs-summary').textContent = `${rows.length} lines`;
  } catch (e) {
    $('logs-error').textContent = e.message;
    $('logs-error').hidden = false;
  }
}

function drawChart(series, start, end) {
  const svg = $('chart');
  let min = Infinity;
  let max = -Infinity;
  for (const s of series) for (const [, v] of s.values) { const f = Number(v); if (isFinite(f)) { min = Math.min(min, f); max = Math.max(max, f); } }
  if (!isFinite(min)) { svg.innerHTML = ''; return; }
  if (max === min) { max += 1; min -= 1; }
  const x = (t) => ((t - start) / (end - start)) * 1000;
  const y = (v) => 290 - ((v - min) / (max - min)) * 280;
  svg.innerHTML = series.map((s, i) => {
    const pts = s.values.filter(([, v]) => isFinite(Number(v))).map(([t, v]) => `${x(t).toFixed(1)},${y(Number(v)).toFixed(1)}`).join(' ');
    return `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5" points="${pts}"/>`;
  }).join('');
}

async function runMetrics(ev) {
  if (ev) ev.preventDefault();
  const query = $('promql').value.trim();
  if (!query) return;
  const span = Number($('metrics-range').value);
  const end = Date.now() / 1000;
  const start = end - span;
  const step = Math.max(1, Math.round(span / 250));
  $('metrics-error').hidden = true;
  history.replaceState(null, '', '#' + new URLSearchParams({ tab: 'metrics', promql: query, range: String(span) }).toString());
  try {
    const body = await getJSON('/api/v1/query_range?' + new URLSearchParams({ query, start: String(start), end: String(end), step: String(step) }));
    const series = body.data.result;
    drawChart(series, start, end);
    $('metrics-table').querySelector('tbody').innerHTML = series.map((s, i) => {
      const name = Object.entries(s.metric).map(([k, v]) => (k === '__name__' ? v : `${k}="${v}"`)).join(', ');
      const last = s.values.length ? s.values[s.values.length - 1][1] : '';
      return `<tr><td class="c${i % COLORS.length}">${escapeHTML(name)}</td><td>${escapeHTML(last)}</td></tr>`;
    }).join('');
  } catch (e) {
    $('metrics-error').textContent = e.message;
    $('metrics-error').hidden = false;
  }
}

async function showLabels() {
  try {
    const body = await getJSON('/loki/api/v1/labels');
    $('logs-labels').textContent = body.data.length ? 'labels: ' + body.data.join(', ') : 'no logs yet';
  } catch { /* the labels hint is optional */ }
}

document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('.tab').forEach((t) => t.addEventListener('click', () => showTab(t.dataset.tab)));
  $('logs-form').addEventListener('submit', runLogs);
  $('metrics-form').addEventListener('submit', runMetrics);
  document.addEventListener('keydown', (e) => {
    if (e.key === '/' && document.activeElement.tagName !== 'INPUT') { e.preventDefault(); (($('logs').hidden) ? $('promql') : $('logql')).focus(); }
  });
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get('logql')) $('logql').value = params.get('logql');
  if (params.get('promql')) $('promql').value = params.get('promql');
  const range = params.get('range');
  for (const select of [$('logs-range'), $('metrics-range')]) {
    if (range && [...select.options].some((o) => o.value === range)) select.value = range;
  }
  showTab(params.get('tab') || 'logs');
  showLabels();
  if (params.get('tab') === 'metrics') runMetrics(); else runLogs();
});
