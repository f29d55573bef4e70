// certs.js: the certificate search. The form's fields become the page's hash
// (#/certs?subject=...&after=...), so Back returns to a search and a search can be
// linked. GET /v1/certs takes status, subject, san, profile, expiring_within, limit and
// after (the next page's cursor is the answer's next_after); a serial is read directly
// with GET /v1/certs/{serial}.

import { get, ApiError } from './api.js';
import { h, heading, note, table } from './dom.js';
import { showError } from './errors.js';
import { navigate } from './router.js';
import { can } from './session.js';
import * as fmt from './format.js';

const FIELDS = ['serial', 'subject', 'san', 'status', 'profile', 'expiring_within', 'limit'];
const LIMITS = ['25', '50', '100', '250', '1000'];

function field(id, label, input, hint) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null);
}

function searchForm(query) {
  const text = (id, name, attrs = {}) => h('input', { id, name, type: 'text', value: query.get(name) || '', autocomplete: 'off', spellcheck: 'false', ...attrs });
  const status = h('select', { id: 'q-status', name: 'status' },
    [['all', 'any'], ['valid', 'valid'], ['revoked', 'revoked'], ['expired', 'expired']].map(([value, words]) =>
      h('option', { value, selected: (query.get('status') || 'all') === value }, words)));
  const limit = h('select', { id: 'q-limit', name: 'limit' },
    LIMITS.map((n) => h('option', { value: n, selected: (query.get('limit') || '50') === n }, n)));
  const form = h('form', { id: 'cert-search', class: 'search', 'aria-label': 'Search certificates' },
    h('div', { class: 'fields' },
      field('q-serial', 'Serial', text('q-serial', 'serial', { placeholder: 'hex, colons allowed', 'aria-describedby': 'q-serial-hint' }), 'alone: reads that one certificate'),
      field('q-subject', 'Subject', text('q-subject', 'subject', { placeholder: 'web.example.com', 'aria-describedby': 'q-subject-hint' }), 'common name, .example.com for all below it, or CN=…,O=…'),
      field('q-san', 'SAN', text('q-san', 'san', { placeholder: 'web.example.com', 'aria-describedby': 'q-san-hint' }), 'a whole name, or .example.com for all below it'),
      field('q-status', 'Status', status),
      field('q-profile', 'Profile', text('q-profile', 'profile')),
      field('q-expiring', 'Expiring within', text('q-expiring', 'expiring_within', { placeholder: '30d', pattern: '\\s*\\d+\\s*[smhd]?\\s*', 'aria-describedby': 'q-expiring-hint' }), '90s, 45m, 12h, 30d'),
      field('q-limit', 'Per page', limit)),
    h('div', { class: 'buttons' }, h('button', { id: 'search-submit', type: 'submit' }, 'Search')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      const value = String(v).trim();
      if (value && !(k === 'status' && value === 'all') && !(k === 'limit' && value === '50')) q.set(k, value);
    }
    navigate(`#/certs${q.toString() ? `?${q}` : ''}`);
  });
  return form;
}

function sanList(sans) {
  if (!sans || !sans.length) return '-';
  const shown = sans.slice(0, 3).join(', ');
  return sans.length > 3 ? `${shown} (+${sans.length - 3})` : shown;
}

function certRow(c) {
  return h('tr', { dataset: { serial: c.serial } },
    h('th', { scope: 'row' }, h('a', { class: 'detail', href: `#/certs/${encodeURIComponent(c.serial)}` }, h('code', null, c.serial))),
    h('td', null, c.subject || '-'),
    h('td', null, sanList(c.sans)),
    h('td', null, c.profile),
    h('td', { class: `cert-state ${c.status}` }, c.status),
    h('td', { class: 'nowrap', title: fmt.unix(c.not_after) }, fmt.day(c.not_after), h('br'), h('span', { class: 'muted' }, fmt.fromNow(c.not_after))),
    h('td', null, h('code', null, c.issuer_id)));
}

function resultsTable(rows, caption) {
  return table({
    id: 'certs', caption, label: 'Certificates',
    head: ['Serial', 'Subject', 'SANs', 'Profile', 'Status', 'Not after', 'Issuer'],
    rows: rows.length ? rows.map(certRow) : [h('tr', null, h('td', { colspan: '7', class: 'empty' }, 'No certificates match.'))],
  });
}

async function render(ctx) {
  const q = ctx.query;
  ctx.root.append(heading('Certificates'), searchForm(q));
  const results = h('section', { id: 'cert-results', 'aria-labelledby': 'results-title' });
  ctx.root.append(results);
  const summary = h('p', { id: 'results-title', tabindex: '-1', class: 'results-summary' });
  const searched = FIELDS.some((f) => q.has(f)) || q.has('after');

  const serial = (q.get('serial') || '').trim();
  if (serial) {
    try {
      const c = await get(`/v1/certs/${encodeURIComponent(serial)}`, { signal: ctx.signal });
      summary.textContent = 'The certificate with this serial (the other filters do not apply to a serial).';
      results.append(summary, resultsTable([c], 'Certificate by serial'));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        summary.textContent = `No certificate has serial ${serial}.`;
        results.append(summary, resultsTable([], 'Certificate by serial'));
      } else {
        showError('Reading the certificate', e);
      }
    }
    if (searched) ctx.focus = summary;
    return;
  }
  if (!can('list')) {
    results.append(note('A requester token cannot list certificates; give the serial of one it issued.'));
    return;
  }
  const query = {
    status: q.get('status') && q.get('status') !== 'all' ? q.get('status') : null,
    subject: q.get('subject'),
    san: q.get('san'),
    profile: q.get('profile') ? q.get('profile').trim() : null,
    expiring_within: q.get('expiring_within') ? q.get('expiring_within').replace(/\s+/g, '') : null,
    limit: q.get('limit') || '50',
    after: q.get('after'),
  };
  let page;
  try {
    page = await get('/v1/certs', { query, signal: ctx.signal });
  } catch (e) {
    showError('Searching certificates', e);
    return;
  }
  const rows = page.certs;
  const order = q.get('san') || q.get('subject') ? 'in name order'
    : q.get('expiring_within') || q.get('status') === 'expired' ? 'soonest to expire first' : 'in serial order';
  summary.textContent = `${fmt.plural(rows.length, 'certificate')} on this page, ${order}.`;
  const pager = h('div', { class: 'pager' });
  if (q.has('after')) {
    const first = new URLSearchParams(q);
    first.delete('after');
    pager.append(h('a', { href: `#/certs${first.toString() ? `?${first}` : ''}`, id: 'first-page' }, 'First page'));
  }
  if (page.next_after) {
    const next = new URLSearchParams(q);
    next.set('after', page.next_after);
    pager.append(h('button', { id: 'next-page', type: 'button', onclick: () => navigate(`#/certs?${next}`) }, 'Next page'));
  }
  results.append(summary, resultsTable(rows, 'Certificates found'), pager);
  if (searched) ctx.focus = summary;
}

export const page = { name: 'certs', title: 'Certificates', render };
