// api.js: the console's only way to the node. It holds this tab's bearer token, sends
// JSON requests to /v1/..., turns every refusal into an ApiError carrying the server's
// {"error": {"code", "message", "request_id"}} body, and retries a write the cluster
// could not commit yet (503 no_leader, no_quorum, unavailable, timeout) with the same
// Idempotency-Key, so that it takes effect once, as the CLI does.

let token = null;
let unauthorized = () => {};

/** The token sent as `Authorization: Bearer`; null when signed out. */
export function setToken(value) {
  token = value;
}

/** Called with the ApiError of any 401, after which the session is over. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export class ApiError extends Error {
  constructor(status, code, message, requestId = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // 0 when the node did not answer at all
    this.code = code;
    this.requestId = requestId;
  }
}

// 503 codes that pass (an election, a lost majority): worth another try.
const TRANSIENT = new Set(['no_leader', 'no_quorum', 'unavailable', 'timeout']);

/** A fresh Idempotency-Key. */
export function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new DOMException('aborted', 'AbortError'));
    }, { once: true });
  });
}

/** `?a=1&b=2` from an object, leaving out empty values. */
export function queryString(query) {
  if (!query) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

async function errorOf(resp) {
  const text = await resp.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (body && body.error && typeof body.error.message === 'string') {
      return new ApiError(resp.status, String(body.error.code || 'error'), body.error.message, body.error.request_id || null);
    }
  } catch {
    // not JSON: a proxy or load balancer answered; fall through
  }
  const words = text.trim().slice(0, 200) || resp.statusText || 'no explanation given';
  return new ApiError(resp.status, `http_${resp.status}`, words);
}

/**
 * One API call. Options: method, body (sent as JSON), query (object), signal,
 * auth (default true: send the token), bearer (a token other than the session's),
 * idempotent (send an Idempotency-Key and retry transient failures with it),
 * key (the Idempotency-Key to use), bytes (answer an ArrayBuffer instead of JSON).
 */
export async function call(path, opts = {}) {
  const method = opts.method || 'GET';
  const headers = { Accept: opts.bytes ? '*/*' : 'application/json' };
  const bearer = opts.bearer ?? token;
  if (opts.auth !== false && bearer) headers.Authorization = `Bearer ${bearer}`;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.idempotent) headers['Idempotency-Key'] = opts.key || idempotencyKey();
  const retries = opts.idempotent ? 3 : 0;
  for (let attempt = 0; ; attempt++) {
    let resp;
    try {
      resp = await fetch(path + queryString(opts.query), {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: opts.signal,
        cache: 'no-store',
        credentials: 'omit',
        redirect: 'error',
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      if (attempt < retries) {
        await sleep(1000 * (attempt + 1), opts.signal);
        continue;
      }
      throw new ApiError(0, 'network', `the node did not answer (${e.message || e})`);
    }
    if (resp.ok) {
      if (opts.bytes) return resp.arrayBuffer();
      if (resp.status === 204) return null;
      try {
        return await resp.json();
      } catch {
        throw new ApiError(resp.status, 'bad_answer', 'the node answered something that is not JSON');
      }
    }
    const err = await errorOf(resp);
    if (err.status === 503 && TRANSIENT.has(err.code) && attempt < retries) {
      const after = Number(resp.headers.get('Retry-After')) || 1;
      await sleep(Math.min(after, 5) * 1000 * (attempt + 1), opts.signal);
      continue;
    }
    if (err.status === 401 && opts.auth !== false && opts.bearer === undefined) unauthorized(err);
    throw err;
  }
}

export const get = (path, opts) => call(path, opts);
export const post = (path, body, opts) => call(path, { ...opts, method: 'POST', body });
