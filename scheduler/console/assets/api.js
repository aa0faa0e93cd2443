// The scheduler's HTTP API, with the operator's token. The token lives in
// sessionStorage (gone when the tab closes) and travels only in the
// Authorization header, also for the event stream: it is read with fetch
// rather than EventSource, which cannot send headers, so the token never
// appears in a URL or an access log.

const KEY = 'tiltai.token';

export function token() {
  return sessionStorage.getItem(KEY) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

// ApiError is an error answer: its status and JSON body.
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || 'HTTP ' + status);
    this.status = status;
    this.body = body || {};
  }
}

function headers(extra) {
  const h = new Headers(extra || {});
  const t = token();
  if (t) h.set('Authorization', 'Bearer ' + t);
  return h;
}

// call sends a request and returns {data, res}; an error answer throws
// ApiError.
export async function call(method, path, { body, type, ifMatch, signal } = {}) {
  const h = headers({ Accept: 'application/json' });
  if (type) h.set('Content-Type', type);
  if (ifMatch !== undefined && ifMatch !== null) h.set('If-Match', '"' + ifMatch + '"');
  const res = await fetch(path, { method, headers: h, body, signal, cache: 'no-store', credentials: 'omit' });
  const text = await res.text();
  let data = text;
  if ((res.headers.get('Content-Type') || '').startsWith('application/json')) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) throw new ApiError(res.status, typeof data === 'object' ? data : { error: text.slice(0, 200) });
  return { data, res };
}

export const get = (path, opt) => call('GET', path, opt).then((r) => r.data);

// allTasks follows the pages of GET /v1/tasks (Link: rel="next"), up to
// max tasks; it returns {tasks, total}.
export async function allTasks(query, max = 20000) {
  let url = '/v1/tasks?limit=5000' + (query ? '&' + query : '');
  const tasks = [];
  let total = 0;
  while (url && tasks.length < max) {
    const { data, res } = await call('GET', url);
    tasks.push(...data);
    total = Number(res.headers.get('X-Total-Count') || tasks.length);
    const m = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('Link') || '');
    url = m && m[1].startsWith('/v1/tasks?') ? m[1] : null;
  }
  return { tasks, total };
}

// stream reads GET /v1/events until signal aborts or the stream ends,
// calling onOpen once connected and onEvent for each event. It resolves
// when the stream ends, and rejects on an error answer or a network error.
export async function stream(signal, onOpen, onEvent) {
  const res = await fetch('/v1/events', { headers: headers({ Accept: 'text/event-stream' }), signal, cache: 'no-store', credentials: 'omit' });
  if (!res.ok) {
    let body = {};
    try { body = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, body);
  }
  onOpen();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n?/g, '\n');
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let type = 'message', data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
        if (field === 'event') type = val;
        else if (field === 'data') data += (data ? '\n' : '') + val;
      }
      if (!data) continue;
      let ev;
      try { ev = JSON.parse(data); } catch { continue; }
      if (ev && typeof ev === 'object') onEvent(type, ev);
    }
  }
}
