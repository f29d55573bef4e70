// format.js: how numbers, times and sizes read on every page. Times are shown in UTC,
// as the node's logs and the CLI write them, with a relative hint beside them.

const rel = new Intl.RelativeTimeFormat('en', { numeric: 'always', style: 'short' });

function pad(n) {
  return String(n).padStart(2, '0');
}

/** A Date as "2026-12-07 10:36:09 UTC". */
export function date(d) {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) return '-';
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** Unix seconds (the API's times) as a date; '-' for null. */
export function unix(secs) {
  return secs === null || secs === undefined ? '-' : date(new Date(secs * 1000));
}

/** An RFC 3339 string (the key archive's times) as a date. */
export function rfc3339(text) {
  return text ? date(new Date(text)) : '-';
}

/** How far a Date is from now: "in 12 days", "3 hr. ago". */
export function relative(d) {
  const secs = (d.getTime() - Date.now()) / 1000;
  const abs = Math.abs(secs);
  const [value, unit] =
    abs < 90 ? [secs, 'second'] :
    abs < 90 * 60 ? [secs / 60, 'minute'] :
    abs < 36 * 3600 ? [secs / 3600, 'hour'] :
    abs < 120 * 86400 ? [secs / 86400, 'day'] :
    [secs / (365.25 * 86400), 'year'];
  return rel.format(Math.round(value), unit);
}

/** Unix seconds as the day alone, "2026-12-07". */
export function day(secs) {
  return secs === null || secs === undefined ? '-' : date(new Date(secs * 1000)).slice(0, 10);
}

/** Unix seconds relative to now: "in 12 days". */
export function fromNow(secs) {
  return secs === null || secs === undefined ? '' : relative(new Date(secs * 1000));
}

/** Unix seconds as "date (relative)". */
export function unixWithRelative(secs) {
  if (secs === null || secs === undefined) return '-';
  const d = new Date(secs * 1000);
  return `${date(d)} (${relative(d)})`;
}

/** Milliseconds as "850 ms" or "12.5 s". */
export function millis(ms) {
  if (ms === null || ms === undefined) return '-';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Bytes as "512 B", "1.2 KiB", "3.4 MiB". */
export function bytes(n) {
  if (n === null || n === undefined) return '-';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A number, or '-' when absent. */
export function num(n) {
  return n === null || n === undefined ? '-' : Number(n).toLocaleString('en');
}

/** The first `n` characters of a long hex string, with an ellipsis. */
export function short(hex, n = 12) {
  if (!hex) return '-';
  return hex.length > n ? `${hex.slice(0, n)}…` : hex;
}

/** "1 certificate", "3 certificates". */
export function plural(n, word, many = `${word}s`) {
  return `${num(n)} ${n === 1 ? word : many}`;
}
