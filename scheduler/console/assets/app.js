// The console: reads the API, draws the topology, follows the event
// stream, and offers scale and spec changes. See docs/console.md.
import { h, s, show, showLines, clear, fmtRate, fmtAge, fmtNum, sparkline } from './dom.js';
import { layout } from './layout.js';
import * as api from './api.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;         // counters (rates) and the selected service
const HISTORY_MS = 5 * 60000; // sparklines span this
const MAX_EVENTS = 500;
const TASK_PAGE = 500;        // tasks shown in a service's table

const st = {
  spec: null, specVersion: -1, specName: '', accepted: '',
  status: null,
  gateHist: new Map(), // service → [{t, gates}] from /v1/status
  selected: null, tasks: [], taskTotal: 0, taskHist: new Map(), links: [],
  events: [], zoom: 1, lastGraphKey: '',
  // The sandbox file shown: a task of the selected service, stdout or
  // stderr, what was read of it and where reading goes on.
  log: { task: null, file: 'stdout', text: '', offset: -1, note: '' },
};
const LOG_KEEP = 64 * 1024; // characters of a log kept on the page
const LOG_START = 16 * 1024; // bytes read back when a log is opened
// Offsets count bytes, the data is text: the next offset is the UTF-8
// length of what came (a log that is not UTF-8 may then be off by a few
// bytes, at worst a character repeated or skipped).
const utf8 = new TextEncoder();
const byteLength = (text) => utf8.encode(text).length;

// Figures the browser tests and the benchmark read.
const perf = { firstPaint: null, renders: [], streams: 0, cspViolations: 0 };
window.__console = perf;
document.addEventListener('securitypolicyviolation', () => { perf.cspViolations++; });

// ---- notices and connection -------------------------------------------

function notice(msg, error = false) {
  const n = $('notice');
  if (!msg) { n.hidden = true; return; }
  n.hidden = false;
  n.className = 'notice' + (error ? ' error' : '');
  n.replaceChildren(document.createTextNode(show(msg)));
}

function setConn(state, msg) {
  const c = $('conn');
  c.dataset.state = state;
  c.textContent = show(msg);
}

function explain(err) {
  if (err instanceof api.ApiError) {
    if (err.status === 401) return 'this scheduler needs a token: enter it above (' + err.message + ')';
    return err.message + ' (HTTP ' + err.status + ')';
  }
  return 'cannot reach the scheduler: ' + (err && err.message ? err.message : err);
}

// ---- data ------------------------------------------------------------

async function refreshSpec() {
  const info = await api.get('/v1/spec');
  st.spec = info.spec || { services: {}, links: [] };
  st.specVersion = info.version;
  st.specName = info.name || '';
  st.accepted = info.accepted || '';
  $('spec-info').textContent = show(`spec version ${info.version}${info.name ? ' · ' + info.name : ''}`);
}

async function refreshStatus() {
  const status = await api.get('/v1/status');
  st.status = status;
  const now = performance.now();
  for (const ss of status.services || []) {
    const hist = st.gateHist.get(ss.name) || [];
    hist.push({ t: now, gates: ss.gates || {} });
    while (hist.length > 2 && now - hist[0].t > 60000) hist.shift();
    st.gateHist.set(ss.name, hist);
  }
  if (status.spec_version !== st.specVersion) await refreshSpec();
}

async function refreshDetail() {
  const name = st.selected;
  if (!name) return;
  const q = 'service=' + encodeURIComponent(name);
  const [{ data: tasks, res }, links] = await Promise.all([
    api.call('GET', `/v1/tasks?limit=${TASK_PAGE}&${q}`), api.get('/v1/links'),
  ]);
  if (st.selected !== name) return;
  st.tasks = tasks;
  st.taskTotal = Number(res.headers.get('X-Total-Count') || tasks.length);
  st.links = links.filter((l) => l.service === name);
  const now = performance.now();
  for (const t of tasks) {
    const sum = { t: now, sent: 0, recv: 0, drop: 0 };
    for (const g of Object.values(t.gates || {})) { sum.sent += g.sent; sum.recv += g.received; sum.drop += g.dropped; }
    const hist = st.taskHist.get(t.id) || [];
    hist.push(sum);
    while (hist.length > 2 && now - hist[0].t > HISTORY_MS) hist.shift();
    st.taskHist.set(t.id, hist);
  }
}

// refreshLog reads what the chosen task wrote since the last read (the
// last LOG_START bytes when it is opened), through the scheduler, which
// reads the agent's sandbox.
async function refreshLog() {
  const lg = st.log;
  // One read at a time per log: the periodic refresh and a click may
  // both ask; a log replaced meanwhile (another task or file) drops
  // what its old read brings.
  if (!lg.task || lg.busy) return;
  lg.busy = true;
  const base = `/v1/tasks/${encodeURIComponent(lg.task)}/files/${lg.file}`;
  try {
    let text = '';
    let offset = lg.offset;
    if (offset < 0) {
      const end = (await api.get(base)).offset;
      offset = Math.max(0, end - LOG_START);
      const first = await api.get(`${base}?offset=${offset}&length=${end - offset}`);
      text = first.data;
      if (offset > 0) text = text.slice(text.indexOf('\n') + 1); // from a whole line
      offset = first.offset + byteLength(first.data);
    }
    for (let i = 0; i < 8; i++) {
      const more = await api.get(`${base}?offset=${offset}`);
      if (more.offset < offset) { text = ''; offset = 0; lg.text = ''; continue; } // truncated: from its start
      if (!more.data) break;
      text += more.data;
      offset = more.offset + byteLength(more.data);
    }
    if (st.log !== lg) return;
    lg.text += text;
    if (lg.text.length > LOG_KEEP) lg.text = lg.text.slice(lg.text.length - LOG_KEEP);
    lg.offset = offset;
    lg.note = '';
  } catch (err) {
    if (st.log !== lg) return;
    lg.note = err.status === 404 ? `No ${lg.file} yet: ${err.message}` : explain(err);
  } finally {
    lg.busy = false;
  }
}

function openLog(task, file) {
  st.log = { task, file, text: '', offset: -1, note: 'Reading…' };
  render();
  refreshLog().then(renderLog);
}

function renderLog() {
  const pane = $('d-log');
  if (!pane) return;
  const lg = st.log;
  const pick = $('log-file');
  if (pick) pick.value = lg.file;
  if (!lg.task) {
    pane.replaceChildren(h('p', { class: 'muted', 'data-kind': 'log-note' }, 'Click a task to read its stdout or stderr from its sandbox.'));
    return;
  }
  const pre = pane.querySelector('pre') || h('pre', { 'data-kind': 'log', class: 'log' });
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = showLines(lg.text);
  const head = h('p', { class: 'muted', 'data-kind': 'log-note' }, `${lg.task} ${lg.file}`, lg.note ? ' — ' + lg.note : '');
  if (!pane.contains(pre)) pane.replaceChildren(head, pre);
  else pane.replaceChild(head, pane.firstChild);
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

let refreshing = null;
let again = false;

// refresh reads status (and the spec when its version moved) and the
// selected service, then renders; calls while one runs coalesce.
async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      try {
        if (!st.spec) await refreshSpec();
        await refreshStatus();
        await refreshDetail();
        await refreshLog();
        notice('');
      } catch (err) {
        notice(explain(err), true);
      }
      render();
    } while (again);
  })();
  try { await refreshing; } finally { refreshing = null; }
}

let soon = null;
function refreshSoon() {
  if (soon) return;
  soon = setTimeout(() => { soon = null; refresh(); }, 100);
}

// rate is a counter's per-second rate over the last few seconds of hist.
function rate(hist, pick) {
  if (!hist || hist.length < 2) return 0;
  const last = hist[hist.length - 1];
  let first = hist[0];
  for (const x of hist) { if (last.t - x.t >= 3000) first = x; else break; }
  if (first === last) first = hist[hist.length - 2];
  const dt = (last.t - first.t) / 1000;
  if (dt <= 0) return 0;
  return Math.max(0, (pick(last) - pick(first)) / dt);
}

function gateRate(svc, gate, field) {
  return rate(st.gateHist.get(svc), (x) => (x.gates[gate] ? x.gates[gate][field] : 0));
}

// ---- the topology ----------------------------------------------------

const SENDS = new Set(['push', 'pub', 'req', 'pair']);

function graphModel() {
  const services = st.spec ? st.spec.services || {} : {};
  const links = st.spec ? st.spec.links || [] : [];
  const statusBy = new Map((st.status ? st.status.services || [] : []).map((x) => [x.name, x]));
  const names = [...new Set([...Object.keys(services), ...statusBy.keys()])].sort();
  const targets = new Set(links.map((l) => l.to));
  const sources = new Set(links.map((l) => l.from));
  const nodes = names.map((name) => {
    const svc = services[name] || { gates: {} };
    const ins = [], outs = [];
    for (const [g, pat] of Object.entries(svc.gates || {}).sort()) {
      const ref = name + '.' + g;
      if (sources.has(ref) || (!targets.has(ref) && SENDS.has(pat))) outs.push([g, pat]);
      if (targets.has(ref) || (!sources.has(ref) && !SENDS.has(pat))) ins.push([g, pat]);
    }
    const ports = Math.max(ins.length, outs.length, 1);
    return { id: name, svc, ss: statusBy.get(name), ins, outs, height: Math.max(96, 40 + 18 * ports) };
  });
  const edges = links.map((l) => {
    const [fs, ...fg] = l.from.split('.');
    const [ts, ...tg] = l.to.split('.');
    return { from: fs, to: ts, fromGate: fg.join('.'), toGate: tg.join('.') };
  });
  return { nodes, edges };
}

function describe(svc) {
  if (svc.image) return 'image ' + svc.image;
  if (svc.container && svc.container.image) return 'image ' + svc.container.image;
  return [svc.command, ...(svc.args || [])].filter(Boolean).join(' ');
}

// why says what holds a service back, from what the API has: a placement
// reason when the scheduler gives one, the restart backoff, pending tasks.
// waitingText says why a service's pending tasks wait, as tiltai ps's
// WAITING line: the reason that ruled out most offers, then the others.
function waitingText(wt) {
  let line = `${wt.tasks} pending: ${wt.reason}`;
  const reasons = wt.reasons || {};
  if (wt.reason !== 'no offers') {
    const n = reasons[wt.reason] || 0;
    line += ` ruled out ${n} offer${n === 1 ? '' : 's'}`;
  }
  const others = Object.keys(reasons).sort().filter((r) => r !== wt.reason).map((r) => `${r}: ${reasons[r]}`);
  if (others.length) line += ` (also ${others.join(', ')})`;
  return line;
}

function why(ss) {
  if (!ss) return '';
  const wt = ss.waiting;
  if (wt && ss.pending > 0) return waitingText(wt);
  const held = ss.held_until ? Date.parse(ss.held_until) - Date.now() : 0;
  if (held > 0) return `held ${fmtAge(held)} after ${ss.failures} failure(s): ${ss.last_failure || ''}`;
  if (ss.pending > 0) return `${ss.pending} pending: waiting for an offer that fits`;
  if (ss.failures > 0) return `${ss.failures} failure(s): ${ss.last_failure || ''}`;
  if (ss.unacked > 0) return `${ss.unacked} linking`;
  return '';
}

function nodeClass(ss) {
  if (!ss) return 'pend';
  if (ss.failures > 0 && !ss.converged) return 'fail';
  if (ss.pending > 0) return 'pend';
  if (ss.launching > 0 || ss.unacked > 0 || ss.retiring > 0 || ss.outdated > 0) return 'launch';
  return ss.converged ? 'ok' : 'launch';
}

function clip(str, n) {
  str = show(str);
  return str.length > n ? str.slice(0, n - 1) + '…' : str;
}

function renderGraph() {
  const t0 = performance.now();
  const { nodes, edges } = graphModel();
  const L = layout(nodes, edges);
  const W = L.nodeWidth;
  const svg = $('graph');
  const g = s('g');
  const portY = new Map(); // "svc.gate.in|out" → y
  for (const n of nodes) {
    const p = L.pos.get(n.id);
    n.ins.forEach(([gate], i) => portY.set(n.id + '.' + gate + '.in', p.y + 34 + i * 18));
    n.outs.forEach(([gate], i) => portY.set(n.id + '.' + gate + '.out', p.y + 34 + i * 18));
  }
  // Edges first, under the nodes.
  for (const e of edges) {
    const a = L.pos.get(e.from), b = L.pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = portY.get(e.from + '.' + e.fromGate + '.out') ?? a.y + 20;
    const x2 = b.x, y2 = portY.get(e.to + '.' + e.toGate + '.in') ?? b.y + 20;
    const dx = Math.max(40, Math.abs(x2 - x1) / 2);
    const r = gateRate(e.from, e.fromGate, 'sent');
    const drops = gateRate(e.from, e.fromGate, 'dropped') + gateRate(e.to, e.toGate, 'dropped');
    const cls = 'edge' + (r > 0 ? ' flowing' : '') + (drops > 0 ? ' dropping' : '');
    const title = `${e.from}.${e.fromGate} → ${e.to}.${e.toGate}: ${fmtRate(r)} sent, ${fmtRate(drops)} dropped`;
    g.append(s('path', { class: cls, d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`, 'data-kind': 'edge' },
      s('title', {}, title)));
    const label = fmtRate(r) + (drops > 0 ? ` · ${fmtRate(drops)} dropped` : '');
    g.append(s('text', { class: 'edge-label' + (drops > 0 ? ' drop' : ''), x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, 'text-anchor': 'middle', 'data-kind': 'rate' }, label));
  }
  for (const n of nodes) {
    const p = L.pos.get(n.id);
    const ss = n.ss || { wanted: n.svc.instances || 0, running: 0 };
    const node = s('g', { class: `node ${nodeClass(n.ss)}${st.selected === n.id ? ' selected' : ''}`, transform: `translate(${p.x},${p.y})`, 'data-service': n.id, tabindex: 0, role: 'button' });
    node.append(s('title', {}, `${n.id}: ${describe(n.svc)}`));
    node.append(s('rect', { class: 'box', width: W, height: n.height, rx: 6 }));
    node.append(s('text', { class: 'name', x: 10, y: 18 }, clip(n.id, 28)));
    // The instances bar: running, launching, pending, retiring of wanted.
    const total = Math.max(ss.wanted || 0, (ss.running || 0) + (ss.launching || 0) + (ss.pending || 0) + (ss.retiring || 0), 1);
    const bw = W - 20;
    node.append(s('rect', { class: 'bar-bg', x: 10, y: 25, width: bw, height: 6 }));
    let bx = 10;
    for (const [k, cls] of [['running', 'bar-run'], ['launching', 'bar-launch'], ['pending', 'bar-pend'], ['retiring', 'bar-retire']]) {
      const w = ((ss[k] || 0) / total) * bw;
      if (w > 0) node.append(s('rect', { class: cls, x: bx, y: 25, width: w, height: 6 }));
      bx += w;
    }
    node.append(s('text', { class: 'counts', x: 10, y: 46, 'data-kind': 'counts' }, `${ss.running || 0}/${ss.wanted || 0} running`));
    node.append(s('text', { class: 'cmd', x: 10, y: 62 }, clip(describe(n.svc), 34)));
    const w = why(n.ss);
    if (w) node.append(s('text', { class: 'why', x: 10, y: 78, 'data-kind': 'why' }, clip(w, 36), s('title', {}, w)));
    n.ins.forEach(([gate, pat], i) => {
      const y = 34 + i * 18;
      node.append(s('circle', { class: 'port', cx: 0, cy: y, r: 4 }, s('title', {}, `${gate} (${pat})`)));
      node.append(s('text', { class: 'port-label', x: -7, y: y + 13, 'text-anchor': 'end' }, clip(gate, 18)));
    });
    n.outs.forEach(([gate, pat], i) => {
      const y = 34 + i * 18;
      node.append(s('circle', { class: 'port', cx: W, cy: y, r: 4 }, s('title', {}, `${gate} (${pat})`)));
      node.append(s('text', { class: 'port-label', x: W + 7, y: y + 13 }, clip(gate, 18)));
    });
    g.append(node);
  }
  svg.replaceChildren(g);
  svg.setAttribute('viewBox', `-60 0 ${L.width + 120} ${L.height}`);
  const key = nodes.length + ':' + L.width + 'x' + L.height;
  // Fit again when the graph's shape changes; a zoom of the operator's
  // stays while it does not.
  if (nodes.length && key !== st.lastGraphKey) { st.lastGraphKey = key; fit(L, 0.6); }
  st.graphSize = [L.width + 120, L.height];
  applyZoom();
  const tasks = nodes.reduce((a, n) => a + ((n.ss && n.ss.running) || 0), 0);
  $('totals').textContent = `${nodes.length} services · ${fmtNum(tasks)} running tasks · ${edges.length} links`;
  const dt = performance.now() - t0;
  if (nodes.length && perf.firstPaint === null) perf.firstPaint = performance.now();
  perf.renders.push(dt);
  if (perf.renders.length > 200) perf.renders.shift();
}

// fit zooms the graph to the pane's width, but not below least: the first
// view of a large graph stays readable and scrolls; the fit button shows
// it whole.
function fit(L, least) {
  const wrap = $('graph-wrap');
  const w = L ? L.width + 120 : st.graphSize[0];
  const avail = wrap.clientWidth || 800;
  st.zoom = Math.min(1, Math.max(least, (avail - 8) / w));
}

function applyZoom() {
  if (!st.graphSize) return;
  const svg = $('graph');
  svg.setAttribute('width', Math.round(st.graphSize[0] * st.zoom));
  svg.setAttribute('height', Math.round(st.graphSize[1] * st.zoom));
}

// ---- the drill-down --------------------------------------------------

function taskSums(t) {
  const sum = { sent: 0, recv: 0, drop: 0 };
  for (const g of Object.values(t.gates || {})) { sum.sent += g.sent; sum.recv += g.received; sum.drop += g.dropped; }
  return sum;
}

function rates(hist) {
  const out = [];
  for (let i = 1; i < (hist || []).length; i++) {
    const dt = (hist[i].t - hist[i - 1].t) / 1000;
    out.push(dt > 0 ? Math.max(0, (hist[i].sent + hist[i].recv - hist[i - 1].sent - hist[i - 1].recv) / dt) : 0);
  }
  return out;
}

function serviceEvents(name) {
  return st.events.filter((e) => {
    const d = e.data || {};
    return d.service === name || (typeof d.task_id === 'string' && d.task_id.slice(0, d.task_id.lastIndexOf('.')) === name);
  });
}

// renderDetail keeps the selected service's frame (and the scale field
// the operator may be typing in) and replaces only what changes.
function renderDetail() {
  const pane = $('detail');
  const name = st.selected;
  if (!name) return;
  const svc = (st.spec && st.spec.services && st.spec.services[name]) || {};
  const ss = ((st.status && st.status.services) || []).find((x) => x.name === name) || {};
  if (pane.dataset.service !== name) {
    pane.dataset.service = name;
    const input = h('input', { type: 'number', min: 0, value: ss.wanted ?? svc.instances ?? 0, id: 'scale-n', 'aria-label': 'instances' });
    const form = h('form', { class: 'row scale' }, h('label', { for: 'scale-n' }, 'Instances'), input, h('button', { type: 'submit', id: 'scale-go' }, 'Scale'));
    form.addEventListener('submit', (ev) => { ev.preventDefault(); scale(name, Number(input.value)); });
    pane.replaceChildren(
      h('h2', { 'data-kind': 'detail-title' }, name),
      h('p', { class: 'muted', id: 'd-cmd' }),
      h('div', { id: 'd-state' }),
      form,
      h('div', { id: 'd-cols' },
        h('div', {}, h('div', { id: 'd-tasks' })),
        h('div', {},
          h('div', { id: 'd-links' }),
          h('h3', {}, 'Recent events'),
          h('div', { id: 'd-events' }),
          h('h3', {}, 'Sandbox logs ',
            h('select', { id: 'log-file', 'aria-label': 'file' }, h('option', { value: 'stdout' }, 'stdout'), h('option', { value: 'stderr' }, 'stderr'))),
          h('div', { id: 'd-log' }))));
    $('log-file').addEventListener('change', (ev) => { if (st.log.task) openLog(st.log.task, ev.target.value); else st.log.file = ev.target.value; });
    $('d-tasks').addEventListener('click', (ev) => {
      const row = ev.target.closest('tr[data-task]');
      if (row) openLog(row.dataset.task, st.log.file);
    });
  }
  $('d-cmd').textContent = show(describe(svc));
  const state = [h('p', {}, `${ss.running || 0}/${ss.wanted || 0} running`,
    ss.launching ? `, ${ss.launching} launching` : '', ss.pending ? `, ${ss.pending} pending` : '',
    ss.retiring ? `, ${ss.retiring} retiring` : '', ss.outdated ? `, ${ss.outdated} outdated` : '',
    ss.unacked ? `, ${ss.unacked} linking` : '', ss.failures ? `; ${ss.failures} restart(s) in a row` : '')];
  const w = why(ss);
  if (w) state.push(h('p', { class: 'why', 'data-kind': 'why' }, w));
  if (ss.last_failure && !w.includes(ss.last_failure)) state.push(h('p', { class: 'why' }, 'last failure: ' + ss.last_failure));
  $('d-state').replaceChildren(...state);
  $('d-tasks').replaceChildren(...taskTable());
  $('d-links').replaceChildren(...linkTable());
  renderLog();
  const evs = serviceEvents(name).slice(-12).reverse();
  $('d-events').replaceChildren(evs.length ? h('ol', { class: 'events' }, evs.map(eventItem)) : h('p', { class: 'muted' }, 'None since this page opened.'));
}

function taskTable() {
  const now = Date.now();
  const rows = st.tasks.map((t) => {
    const sum = taskSums(t);
    const ports = Object.entries(t.ports || {}).map(([g, p]) => `${g}:${p}`).join(' ');
    const links = t.links || {};
    return h('tr', { 'data-task': t.id, class: t.id === st.log.task ? 'chosen' : '', title: 'click to read its logs' },
      h('td', {}, t.id),
      h('td', { title: show(t.agent_id || '') }, clip(t.agent_id || '', 10)),
      h('td', {}, t.host || '', ports ? ' ' + ports : ''),
      h('td', { class: 'phase-' + show(t.phase), title: show([t.state, t.reason, t.message].filter(Boolean).join(' · ')) }, t.phase,
        t.retiring ? ' (retiring)' : '', t.outdated ? ' (outdated)' : '', t.phase !== 'running' && t.message ? ' ' + clip(t.message, 60) : ''),
      h('td', { class: 'num' + (links.acked === links.version ? '' : ' phase-pending'), title: `table version ${links.version}, sent ${links.sent}, acknowledged ${links.acked}` }, `${links.sent}/${links.acked}`),
      h('td', { class: 'num' }, fmtNum(sum.sent)),
      h('td', { class: 'num' }, fmtNum(sum.recv)),
      h('td', { class: 'num' + (sum.drop ? ' phase-killing' : '') }, fmtNum(sum.drop)),
      h('td', {}, sparkline(rates(st.taskHist.get(t.id)))),
      h('td', { class: 'num' }, fmtAge(now - Date.parse(t.created))));
  });
  return [
    h('h3', {}, `Tasks (${st.taskTotal}${st.taskTotal > st.tasks.length ? `, first ${st.tasks.length} shown` : ''})`),
    h('div', { class: 'scroll' }, h('table', { 'data-kind': 'tasks' },
      h('thead', {}, h('tr', {}, ...['Task', 'Agent', 'Host:ports', 'Phase', 'Links sent/acked', 'Sent', 'Received', 'Dropped', 'Msgs/s (5 min)', 'Age'].map((c) => h('th', {}, c)))),
      h('tbody', {}, rows))),
  ];
}

function linkTable() {
  const table = st.links.find((l) => l.table);
  const acked = st.links.filter((l) => l.table && l.acked === l.version).length;
  const out = [h('h3', {}, table ? `Link table (version ${table.version}; acknowledged by ${acked} of ${st.links.length} tasks)` : 'Link table')];
  const outs = table && table.table && table.table.out ? Object.entries(table.table.out).sort() : [];
  if (!outs.length) return [...out, h('p', { class: 'muted' }, 'No out-gates: this service sends to nobody.')];
  out.push(h('table', { 'data-kind': 'links' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Out-gate'), h('th', {}, 'Pattern'), h('th', {}, 'Peers'))),
    h('tbody', {}, outs.map(([gate, og]) => h('tr', {}, h('td', {}, gate), h('td', {}, og.pattern), h('td', {}, (og.peers || []).join(', ') || '(none)'))))));
  return out;
}

function select(name) {
  st.selected = name;
  st.tasks = []; st.taskTotal = 0; st.links = [];
  st.log = { task: null, file: st.log.file, text: '', offset: -1, note: '' };
  render();
  refresh();
}

// ---- events ----------------------------------------------------------

function eventItem(ev) {
  const time = (ev.time || '').slice(11, 19);
  const data = Object.entries(ev.data || {}).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' ');
  return h('li', {}, `${time} ${ev.type} ${data}`);
}

const REFRESHING = /^(task_|spec_|links_|subscribed|disconnected|executor_|agent_)/;

function onEvent(type, ev) {
  st.events.push(ev);
  if (st.events.length > MAX_EVENTS) st.events.shift();
  const list = $('events');
  list.prepend(eventItem(ev));
  while (list.childElementCount > 200) list.lastElementChild.remove();
  if (REFRESHING.test(ev.type || type)) refreshSoon();
}

// follow keeps the event stream open, reconnecting with backoff; it says
// on the page when the stream is lost.
let streamCtl = null;
async function follow() {
  let attempt = 0;
  for (;;) {
    streamCtl = new AbortController();
    const ctl = streamCtl;
    try {
      await api.stream(ctl.signal, () => {
        attempt = 0;
        perf.streams++;
        setConn('live', 'live');
        refresh();
      }, onEvent);
      if (!ctl.signal.aborted) setConn('lost', 'stream ended');
    } catch (err) {
      if (!ctl.signal.aborted) setConn('lost', 'stream lost: ' + explain(err));
    }
    if (ctl.signal.aborted) { attempt = 0; continue; }
    attempt++;
    const delay = Math.min(5000, 200 * 2 ** Math.min(attempt, 5));
    setConn('lost', `stream lost; reconnecting in ${(delay / 1000).toFixed(1)}s (attempt ${attempt})`);
    await new Promise((r) => setTimeout(r, delay));
    setConn('connecting', 'reconnecting…');
  }
}

// ---- actions ---------------------------------------------------------

async function scale(name, n) {
  if (!Number.isInteger(n) || n < 0) { notice('give a whole number of instances, 0 or more', true); return; }
  try {
    const { data } = await api.call('POST', `/v1/services/${encodeURIComponent(name)}/scale`, {
      body: JSON.stringify({ instances: n }), type: 'application/json', ifMatch: st.specVersion,
    });
    notice(data.changed ? `${name} scaled to ${n}: spec version ${data.version}` : `${name} already has ${n} instances`);
    refreshSoon();
  } catch (err) {
    if (err.status === 409) notice(`the spec changed meanwhile (now version ${err.body.current_version}); look again and retry`, true);
    else notice('cannot scale ' + name + ': ' + explain(err), true);
    refreshSoon();
  }
}

const editor = { base: null, checked: null };

async function openEditor() {
  $('spec-result').replaceChildren();
  $('spec-apply').disabled = true;
  $('spec-dialog').showModal();
  await loadCurrentSpec();
}

async function loadCurrentSpec() {
  try {
    const { data, res } = await api.call('GET', '/v1/spec?format=source');
    editor.base = Number((res.headers.get('ETag') || '').replace(/\D/g, ''));
    $('spec-text').value = typeof data === 'string' ? data : '';
    $('spec-name').value = '';
    $('spec-base').textContent = String(editor.base);
    editor.checked = null;
    $('spec-apply').disabled = true;
    $('spec-result').replaceChildren();
  } catch (err) {
    result([h('p', { class: 'problem' }, 'cannot load the spec: ' + explain(err))]);
  }
}

function result(nodes) {
  $('spec-result').replaceChildren(...nodes);
}

function specType(text) {
  return /^\s*[{[]/.test(text) ? 'application/json' : 'application/yaml';
}

async function submitSpec(dryRun) {
  const text = $('spec-text').value;
  // The name is the operator's (or the uploaded file's); its extension
  // tells the parser YAML from JSON, so an empty one follows the text.
  const name = $('spec-name').value.trim() || (specType(text) === 'application/json' ? 'console.json' : 'console.yaml');
  const q = new URLSearchParams();
  if (dryRun) q.set('dry_run', '1');
  if (name) q.set('name', name);
  try {
    const { data } = await api.call('PUT', '/v1/spec?' + q, { body: text, type: specType(text), ifMatch: editor.base });
    const out = [];
    if (dryRun) {
      // A dry run changes nothing, so its changes say what Apply would do.
      const will = (data.changes || []).length > 0;
      out.push(h('p', { class: 'ok-text', 'data-kind': 'dry-run' }, will ? 'Valid. Applying it would make these changes:' : 'Valid, and it changes nothing.'));
      editor.checked = text;
      $('spec-apply').disabled = !will;
    } else {
      out.push(h('p', { class: 'ok-text' }, `Applied: spec version ${data.version}.`));
      editor.base = data.version;
      $('spec-base').textContent = String(data.version);
      editor.checked = null;
      $('spec-apply').disabled = true;
      notice(`spec version ${data.version} applied`);
      refreshSoon();
    }
    out.push(h('ul', {}, (data.changes || []).map(changeItem)));
    for (const w of data.warnings || []) out.push(problemItem(w));
    result(out);
  } catch (err) {
    $('spec-apply').disabled = true;
    if (err.status === 409) {
      result([h('p', { class: 'problem', 'data-kind': 'conflict' }, `Someone changed the spec since you loaded version ${editor.base} (it is now version ${err.body.current_version}). Reload it, redo your edit, and check again.`)]);
    } else if (err.status === 422) {
      result([h('p', { class: 'problem' }, err.message), h('ul', { 'data-kind': 'problems' }, (err.body.problems || []).map(problemItem))]);
    } else {
      result([h('p', { class: 'problem' }, explain(err))]);
    }
  }
}

function changeItem(c) {
  const what = c.service || (c.link ? `${c.link.from} → ${c.link.to}` : '');
  const detail = [];
  if (c.from !== undefined && c.to !== undefined && (c.from || c.to)) detail.push(`instances ${c.from} → ${c.to}`);
  if (c.fields && c.fields.length) detail.push('fields ' + c.fields.join(', '));
  if (c.replaces) detail.push('replaces its tasks');
  return h('li', { class: 'change' }, `${c.kind} ${what}${detail.length ? ': ' + detail.join('; ') : ''}`);
}

function problemItem(p) {
  const pos = p.pos && p.pos.line ? `${p.pos.line}:${p.pos.col}` : '';
  const li = h('li', { class: 'problem ' + show(p.severity) },
    `${p.file ? p.file + ':' : ''}${pos}${pos ? ': ' : ''}${p.severity === 'warning' ? 'warning: ' : ''}${p.message}${p.hint ? ' — ' + p.hint : ''}`);
  if (p.pos && p.pos.line) li.addEventListener('click', () => gotoLine(p.pos.line, p.pos.col));
  return li;
}

function gotoLine(line, col) {
  const ta = $('spec-text');
  const lines = ta.value.split('\n');
  let at = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) at += lines[i].length + 1;
  const end = at + (lines[line - 1] || '').length;
  ta.focus();
  ta.setSelectionRange(at + Math.max(0, (col || 1) - 1), end);
}

// ---- wiring ----------------------------------------------------------

function render() {
  renderGraph();
  renderDetail();
}

function init() {
  $('token').value = api.token() ? '••••••••' : '';
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('token').value;
    if (v !== '••••••••') api.setToken(v.trim());
    $('token').value = api.token() ? '••••••••' : '';
    if (streamCtl) streamCtl.abort();
    refresh();
  });
  $('graph').addEventListener('click', (ev) => {
    const n = ev.target.closest('g.node');
    if (n) select(n.dataset.service);
  });
  $('graph').addEventListener('keydown', (ev) => {
    const n = ev.target.closest && ev.target.closest('g.node');
    if (n && (ev.key === 'Enter' || ev.key === ' ')) select(n.dataset.service);
  });
  $('zoom-in').addEventListener('click', () => { st.zoom = Math.min(3, st.zoom * 1.25); applyZoom(); });
  $('zoom-out').addEventListener('click', () => { st.zoom = Math.max(0.1, st.zoom / 1.25); applyZoom(); });
  $('zoom-fit').addEventListener('click', () => { fit(null, 0.1); applyZoom(); });
  $('edit-spec').addEventListener('click', openEditor);
  $('spec-reload').addEventListener('click', loadCurrentSpec);
  $('spec-check').addEventListener('click', () => submitSpec(true));
  $('spec-apply').addEventListener('click', () => {
    if (editor.checked === $('spec-text').value) submitSpec(false);
  });
  $('spec-text').addEventListener('input', () => { $('spec-apply').disabled = true; });
  $('spec-file').addEventListener('change', async (ev) => {
    const f = ev.target.files[0];
    if (!f) return;
    $('spec-text').value = await f.text();
    $('spec-name').value = f.name;
    $('spec-apply').disabled = true;
    result([]);
  });
  refresh();
  setInterval(refresh, POLL_MS);
  follow();
}

init();
