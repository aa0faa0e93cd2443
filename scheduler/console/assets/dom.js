// DOM helpers. Every string from the server reaches the page through
// textContent or setAttribute on a fixed list of harmless attributes, never
// parsed as markup: a service or spec name is always text.

const SVG = 'http://www.w3.org/2000/svg';

// Attributes that cannot run code or load anything whatever their value.
const SAFE_ATTRS = new Set([
  'class', 'id', 'title', 'type', 'value', 'placeholder', 'min', 'max', 'step', 'for', 'name', 'role',
  'aria-label', 'colspan', 'x', 'y', 'x1', 'y1', 'x2', 'y2', 'cx', 'cy', 'r', 'rx', 'width', 'height',
  'd', 'points', 'viewBox', 'text-anchor', 'dominant-baseline', 'transform', 'data-service', 'data-task',
  'data-kind', 'tabindex', 'dir',
]);

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (!SAFE_ATTRS.has(k)) throw new Error('refusing attribute ' + k);
    el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : text(String(c)));
  }
  return el;
}

// h builds an HTML element: h('td', {class: 'num'}, 'text', child…).
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// s builds an SVG element.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

// Controls (C0, C1), bidi overrides and isolates, zero-width and line
// separators: shown as visible escapes, so a name cannot reorder or hide
// what follows it.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/g;

// show makes a server string safe to display as text.
export function show(v) {
  if (v === undefined || v === null) return '';
  return String(v).replace(UNSAFE, (c) => '\\u{' + c.codePointAt(0).toString(16).toUpperCase() + '}');
}

// showLines is show for text of many lines (a log): line breaks stay.
export function showLines(v) {
  return String(v ?? '').split('\n').map(show).join('\n');
}

// text is a text node of a server string, shown safely.
export function text(v) {
  return document.createTextNode(show(v));
}

// clear empties an element.
export function clear(el) {
  el.replaceChildren();
  return el;
}

export function fmtRate(r) {
  if (!isFinite(r) || r <= 0) return '0/s';
  if (r >= 1000) return (r / 1000).toFixed(1) + 'k/s';
  if (r >= 10) return r.toFixed(0) + '/s';
  return r.toFixed(1) + '/s';
}

export function fmtAge(ms) {
  const sec = Math.max(0, Math.round(ms / 1000));
  if (sec < 60) return sec + 's';
  if (sec < 3600) return Math.floor(sec / 60) + 'm' + String(sec % 60).padStart(2, '0') + 's';
  return Math.floor(sec / 3600) + 'h' + String(Math.floor(sec / 60) % 60).padStart(2, '0') + 'm';
}

export function fmtNum(n) {
  return (n || 0).toLocaleString('en-US');
}

// sparkline draws values (oldest first) as a small SVG polyline.
export function sparkline(values, w = 80, hgt = 18, cls = '') {
  const svg = s('svg', { class: 'spark', width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}` });
  if (values.length < 2) return svg;
  const top = Math.max(...values, 1e-9);
  const step = w / (values.length - 1);
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(hgt - 1 - (v / top) * (hgt - 2)).toFixed(1)}`);
  svg.append(s('polyline', { points: pts.join(' '), class: cls }));
  return svg;
}
