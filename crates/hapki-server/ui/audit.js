// audit.js: the audit log (admin). GET /v1/audit/verify checks the whole log against its
// seals. GET /v1/audit pages oldest first from a position (after, limit); newest first
// is a window of positions ending at the head: a first call with limit=1 gives head,
// then after=head-50&limit=50, shown reversed, and "Older" moves the window back
// (#/audit?before=N). With a filter (action, actor, object) the API matches records
// after a position, so filtered results page oldest first (#/audit?action=…&after=N).

import { get } from './api.js';
import { h, heading, note, table } from './dom.js';
import { showError } from './errors.js';
import { navigate } from './router.js';
import * as fmt from './format.js';

const WINDOW = 50;
const FILTERS = ['action', 'actor', 'object'];

function filterForm(query) {
  const input = (name, label, hint) => h('div', { class: 'field' },
    h('label', { for: `a-${name}` }, label),
    h('input', { id: `a-${name}`, name, type: 'text', value: query.get(name) || '', autocomplete: 'off', spellcheck: 'false', placeholder: hint }));
  const form = h('form', { id: 'audit-filter', class: 'search', 'aria-label': 'Filter the audit log' },
    h('div', { class: 'fields' },
      input('action', 'Action', 'issue_cert, revoke, …'),
      input('actor', 'Actor (token id or name)', 'node'),
      input('object', 'Object contains', 'a serial, a token id')),
    h('div', { class: 'buttons' }, h('button', { id: 'audit-submit', type: 'submit' }, 'Filter'), h('a', { href: '#/audit' }, 'Newest, unfiltered')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) q.set(k, String(v).trim());
    navigate(`#/audit${q.toString() ? `?${q}` : ''}`);
  });
  return form;
}

async function verifyBox(ctx) {
  const box = h('section', { id: 'audit-verify', class: 'health-box', 'aria-labelledby': 'verify-title', 'aria-busy': 'true' },
    h('h2', { id: 'verify-title' }, 'Verification'), h('p', null, 'Checking the log against its seals…'));
  const run = async () => {
    box.setAttribute('aria-busy', 'true');
    try {
      const v = await get('/v1/audit/verify', { signal: ctx.signal });
      const verdict = v.fault ? 'BAD' : 'GOOD';
      const lines = [h('p', null, h('span', { id: 'audit-verdict', class: `health ${v.fault ? 'bad' : 'ok'}` }, verdict), ' ',
        `${fmt.plural(v.records, 'record')} and ${fmt.plural(v.seals, 'seal')} checked; sealed through position ${fmt.num(v.sealed_through)} of ${fmt.num(v.head)}.`)];
      if (v.fault) lines.push(h('p', { class: 'bad' }, `First fault at record ${v.fault.seq}: ${v.fault.kind.replace('_', ' ')}: ${v.fault.message}`));
      else if (v.sealed_through < v.head) lines.push(h('p', { class: 'muted' }, 'The newest records are not sealed yet; the leader seals within moments.'));
      const again = h('button', { type: 'button', class: 'small' }, 'Verify again');
      again.addEventListener('click', run);
      box.replaceChildren(box.firstChild, ...lines, again);
    } catch (e) {
      if (e.name === 'AbortError') return;
      box.replaceChildren(box.firstChild, h('p', null, 'The log could not be verified.'));
      showError('Verifying the audit log', e);
    } finally {
      box.removeAttribute('aria-busy');
    }
  };
  run();
  return box;
}

function recordRow(r, sealedThrough) {
  return h('tr', { dataset: { seq: r.seq } },
    h('th', { scope: 'row' }, String(r.seq)),
    h('td', { class: 'nowrap' }, fmt.unix(r.at)),
    h('td', null, r.actor_name, r.actor ? [h('br'), h('code', { class: 'muted' }, r.actor)] : null,
      h('br'), h('span', { class: 'muted' }, 'node '), h('code', { class: 'muted' }, r.node)),
    h('td', null, r.action),
    h('td', { class: 'wrap' }, r.object),
    h('td', { class: r.outcome === 'applied' ? '' : 'warn' }, r.outcome),
    h('td', null, r.seq <= sealedThrough ? 'sealed' : 'not yet', h('br'), h('code', { class: 'muted', title: r.hash }, fmt.short(r.hash, 10))));
}

async function render(ctx) {
  const q = ctx.query;
  ctx.root.append(heading('Audit log'));
  ctx.root.append(await verifyBox(ctx), filterForm(q));
  const filtered = FILTERS.some((f) => q.get(f));
  const pager = h('div', { class: 'pager' });
  let page;
  let summary;
  try {
    if (filtered) {
      const after = Number(q.get('after') || 0);
      page = await get('/v1/audit', { query: { after, limit: WINDOW, action: q.get('action'), actor: q.get('actor'), object: q.get('object') }, signal: ctx.signal });
      summary = `${fmt.plural(page.records.length, 'matching record')} after position ${after}, oldest first (a filtered search pages forward).`;
      if (page.records.length === WINDOW) {
        const next = new URLSearchParams(q);
        next.set('after', page.records[page.records.length - 1].seq);
        pager.append(h('button', { type: 'button', id: 'audit-next', onclick: () => navigate(`#/audit?${next}`) }, 'Next'));
      }
    } else {
      const head = (await get('/v1/audit', { query: { limit: 1 }, signal: ctx.signal })).head;
      const end = Math.min(Number(q.get('before') || head) || head, head);
      const start = Math.max(0, end - WINDOW);
      page = end > start
        ? await get('/v1/audit', { query: { after: start, limit: end - start }, signal: ctx.signal })
        : { records: [], head, sealed_through: 0 };
      page.records = page.records.filter((r) => r.seq <= end).reverse();
      summary = end > start
        ? `Positions ${end} down to ${start + 1} of ${head}, newest first.`
        : 'The log is empty.';
      if (end < head) pager.append(h('a', { href: '#/audit', id: 'audit-newest' }, 'Newest'));
      if (start > 0) pager.append(h('button', { type: 'button', id: 'audit-older', onclick: () => navigate(`#/audit?before=${start}`) }, 'Older'));
    }
  } catch (e) {
    showError('Reading the audit log', e);
    return;
  }
  ctx.root.append(
    h('p', { class: 'results-summary' }, summary),
    table({
      id: 'audit', caption: 'Audit records', label: 'Audit records',
      head: ['Position', 'Time', 'Actor and node', 'Action', 'Object', 'Outcome', 'Seal and hash'],
      rows: page.records.length ? page.records.map((r) => recordRow(r, page.sealed_through)) : [h('tr', null, h('td', { colspan: '7', class: 'empty' }, 'No records.'))],
    }),
    pager,
    note('Export the whole log for offline checking with ', h('code', null, 'hapki audit export -o audit.jsonl'), ' and ', h('code', null, 'hapki audit verify --file audit.jsonl --cert audit.pem'), '.'));
}

export const page = { name: 'audit', title: 'Audit', needs: 'audit', denied: 'Only an admin token may read the audit log.', render };
