// pem.js: PEM text and the files the console hands out. It splits a PEM bundle into
// blocks, turns a block's base64 into DER bytes, and makes download links from Blobs
// whose object URLs are revoked when the page is left.

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** The blocks of a PEM text: [{label, text, der}]. */
export function blocks(pem) {
  const out = [];
  for (const m of String(pem || '').matchAll(BLOCK)) {
    out.push({ label: m[1], text: `${m[0]}\n`, der: base64ToBytes(m[2]) });
  }
  return out;
}

/** Bytes of a base64 text (whitespace ignored). */
export function base64ToBytes(b64) {
  const bin = atob(b64.replace(/\s+/g, ''));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Lower-case hex with colons: "ab:cd:...". */
export function colonHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** SHA-256 of `bytes` as colon hex, or null where the browser has no SubtleCrypto. */
export async function sha256(bytes) {
  if (!globalThis.crypto || !crypto.subtle) return null;
  return colonHex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
}

/**
 * Points link `a` at a download of `data` (string or bytes) named `filename`.
 * `ctx.onLeave` revokes the object URL when the page goes.
 */
export function offer(a, data, filename, type, ctx) {
  const url = URL.createObjectURL(new Blob([data], { type }));
  a.href = url;
  a.download = filename;
  ctx.onLeave(() => URL.revokeObjectURL(url));
  return a;
}

/** A file name from untrusted text: letters, digits, dot, dash, underscore only. */
export function safeName(text) {
  return String(text).replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80) || 'download';
}
