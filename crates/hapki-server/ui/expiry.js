// expiry.js: certificates expiring per week over the next 90 days, as an SVG bar chart
// drawn with DOM calls (13 bars, each with a <title>) and the same numbers as a table.
// The data is the listing, GET /v1/certs?status=valid&expiring_within=90d&limit=1000,
// page after page (after=next_after) up to MAX_PAGES; past that the page says the
// counts are capped.

import { get } from './api.js';
import { h, s, heading, note, table, cells } from './dom.js';
import { showError } from './errors.js';
import * as fmt from './format.js';

const WEEKS = 13;
const PAGE = 1000;
const MAX_PAGES = 10;
const WEEK = 7 * 86400;
const DAY_MS = 86400 * 1000;

const short = new Intl.DateTimeFormat('en', { month: 'short', day: 'numeric', timeZone: 'UTC' });

/** Counts per week from `now` (Unix seconds), week 0 first. */
function buckets(certs, now) {
  const counts = new Array(WEEKS).fill(0);
  for (const c of certs) {
    const w = Math.floor((c.not_after - now) / WEEK);
    if (w >= 0) counts[Math.min(w, WEEKS - 1)] += 1;
  }
  return counts;
}

/** A round upper bound for the axis and its step. */
function scale(max) {
  if (max <= 5) return { top: Math.max(max, 1), step: 1 };
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw);
  return { top: Math.ceil(max / step) * step, step };
}

function weekRange(i, now) {
  const from = new Date(now * 1000 + i * 7 * DAY_MS);
  // the last bar ends at day 90, the others after 7 days
  const to = new Date(now * 1000 + Math.min((i + 1) * 7, 90) * DAY_MS - 1);
  return [from, to];
}

function chart(counts, now) {
  const W = 820, H = 310, left = 48, right = 12, top = 28, bottom = 50;
  const plotW = W - left - right, plotH = H - top - bottom;
  const { top: ymax, step } = scale(Math.max(...counts));
  const slot = plotW / WEEKS;
  const y = (v) => top + plotH - (v / ymax) * plotH;
  const total = counts.reduce((a, b) => a + b, 0);
  const busiest = counts.indexOf(Math.max(...counts));
  const svg = s('svg', {
    id: 'expiry-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart',
    'aria-labelledby': 'expiry-chart-title expiry-chart-desc',
  },
  s('title', { id: 'expiry-chart-title' }, 'Certificates expiring per week, next 90 days'),
  s('desc', { id: 'expiry-chart-desc' }, total
    ? `${fmt.plural(total, 'certificate')} in all; the most, ${counts[busiest]}, in week ${busiest + 1}. The table below has every week.`
    : 'No certificate expires in the next 90 days.'));
  for (let v = 0; v <= ymax; v += step) {
    svg.append(
      s('line', { class: 'grid', x1: left, x2: W - right, y1: y(v), y2: y(v) }),
      s('text', { class: 'axis', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
  }
  counts.forEach((n, i) => {
    const [from, to] = weekRange(i, now);
    const x = left + i * slot + slot * 0.15;
    const barH = (n / ymax) * plotH;
    svg.append(
      s('rect', { class: 'bar', x: x.toFixed(1), y: (top + plotH - barH).toFixed(1), width: (slot * 0.7).toFixed(1), height: barH.toFixed(1), 'data-week': i + 1, 'data-count': n },
        s('title', null, `Week ${i + 1} (${short.format(from)} to ${short.format(to)}): ${fmt.plural(n, 'certificate')}`)),
      s('text', { class: 'value', x: (x + slot * 0.35).toFixed(1), y: (top + plotH - barH - 4).toFixed(1), 'text-anchor': 'middle' }, n ? String(n) : ''),
      s('text', { class: 'axis', x: (x + slot * 0.35).toFixed(1), y: H - bottom + 16, 'text-anchor': 'middle' }, `W${i + 1}`),
      s('text', { class: 'axis small', x: (x + slot * 0.35).toFixed(1), y: H - bottom + 32, 'text-anchor': 'middle' }, short.format(from)));
  });
  svg.append(s('line', { class: 'baseline', x1: left, x2: W - right, y1: top + plotH, y2: top + plotH }));
  return svg;
}

async function render(ctx) {
  ctx.root.append(heading('Expiry'),
    note('Valid certificates (not revoked) whose not-after falls in each of the next 13 weeks (90 days), read from the certificate listing.'));
  const progress = h('p', { role: 'status', class: 'muted' }, 'Reading certificates…');
  ctx.root.append(progress);
  const now = Math.floor(Date.now() / 1000);
  const certs = [];
  let after = null;
  let pages = 0;
  try {
    do {
      const page = await get('/v1/certs', { query: { status: 'valid', expiring_within: '90d', limit: PAGE, after }, signal: ctx.signal });
      certs.push(...page.certs);
      after = page.next_after;
      pages += 1;
      progress.textContent = `Read ${fmt.plural(certs.length, 'certificate')}…`;
    } while (after && pages < MAX_PAGES);
  } catch (e) {
    showError('Reading the certificates that expire', e);
    progress.textContent = '';
    return;
  }
  const counts = buckets(certs, now);
  const capped = Boolean(after);
  progress.textContent = capped
    ? `Capped: only the ${fmt.num(certs.length)} soonest to expire (${MAX_PAGES} pages of ${PAGE}) were counted; more expire in the next 90 days, so every bar may be low.`
    : `${fmt.plural(certs.length, 'certificate')} expire in the next 90 days.`;
  if (capped) progress.classList.add('warn');
  ctx.root.append(
    h('figure', { class: 'chart-box' }, chart(counts, now),
      h('figcaption', null, `Weeks start ${fmt.date(new Date(now * 1000))}. Hover a bar for its dates.`)),
    table({
      id: 'expiry-table', caption: 'Certificates expiring per week', label: 'Certificates expiring per week',
      head: ['Week', 'From', 'To', 'Certificates'],
      rows: counts.map((n, i) => {
        const [from, to] = weekRange(i, now);
        return h('tr', null, cells(`Week ${i + 1}`, short.format(from), short.format(to), String(n)));
      }),
    }));
}

export const page = { name: 'expiry', title: 'Expiry', needs: 'list', denied: 'A requester token cannot list certificates, so it cannot see what expires.', render };
