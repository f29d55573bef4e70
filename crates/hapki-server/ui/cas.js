// cas.js: the CAs and their CRLs. GET /v1/ca lists the issuers with their CRL number;
// the API gives no CRL age, so a "Check CRL" button per issuer fetches its complete CRL
// (GET /v1/issuers/{id}/crl, DER) and delta CRL (…/delta-crl; 404 while delta CRLs are
// off) on demand and reads their dates, numbers and entry counts in the browser: a CRL
// can be megabytes, so it is not fetched for every view. Download links point at the
// publication routes, which need no token.

import { get, ApiError } from './api.js';
import { h, heading, note, table } from './dom.js';
import { showError } from './errors.js';
import { decodeCrl } from './der.js';
import { can } from './session.js';
import * as fmt from './format.js';

function links(id) {
  const base = `/v1/issuers/${encodeURIComponent(id)}`;
  const a = (path, text, file) => h('a', { href: `${base}/${path}`, download: file, class: 'button' }, text);
  return h('div', { class: 'downloads', role: 'group', 'aria-label': `Downloads for issuer ${id}` },
    a('ca.pem', 'CA certificate and chain (PEM)', `${id}-ca.pem`),
    a('ca.der', 'CA certificate (DER)', `${id}-ca.der`),
    a('crl.pem', 'CRL (PEM)', `${id}-crl.pem`),
    a('crl', 'CRL (DER)', `${id}.crl`),
    a('delta-crl.pem', 'Delta CRL (PEM, if enabled)', `${id}-delta-crl.pem`));
}

function crlText(kind, c, size) {
  const next = c.nextUpdate ? `next update ${fmt.relative(c.nextUpdate)}` : 'no next update';
  const overdue = c.nextUpdate && c.nextUpdate < new Date() ? ' (OVERDUE)' : '';
  return `${kind} #${c.number ?? '?'}: published ${fmt.relative(c.thisUpdate)} (${fmt.date(c.thisUpdate)}), ${next}${overdue}; ` +
    `${fmt.plural(c.entries, 'entry', 'entries')}, ${fmt.bytes(size)}${c.deltaOf ? `; delta of #${c.deltaOf}` : ''}.`;
}

/** Fetches and reads the issuer's CRLs into `out`. */
async function checkCrl(id, out, signal) {
  out.replaceChildren('Reading the CRL…');
  const base = `/v1/issuers/${encodeURIComponent(id)}`;
  const lines = [];
  try {
    const der = new Uint8Array(await get(`${base}/crl`, { auth: false, bytes: true, signal }));
    lines.push(crlText('CRL', decodeCrl(der), der.length));
  } catch (e) {
    if (e.name === 'AbortError') return;
    lines.push(`The CRL could not be read: ${e.message}.`);
  }
  try {
    const der = new Uint8Array(await get(`${base}/delta-crl`, { auth: false, bytes: true, signal }));
    lines.push(crlText('Delta CRL', decodeCrl(der), der.length));
  } catch (e) {
    if (e.name === 'AbortError') return;
    lines.push(e instanceof ApiError && e.status === 404 ? 'No delta CRL (delta CRLs are off, or began after this CRL).' : `The delta CRL could not be read: ${e.message}.`);
  }
  out.replaceChildren(...lines.map((l) => h('p', null, l)));
}

function issuerRow(i) {
  const rollover = [
    i.successor ? `succeeded by ${i.successor}${i.switch_at ? ` from ${fmt.unix(i.switch_at)}` : ''}` : null,
    i.predecessor ? `took over from ${i.predecessor}` : null,
  ].filter(Boolean).join('; ');
  return h('tr', { dataset: { issuer: i.id } },
    h('th', { scope: 'row' }, i.name, i.default ? h('span', { class: 'badge' }, 'default') : null),
    h('td', null, h('code', null, i.id)),
    h('td', null, i.status),
    h('td', { class: 'nowrap' }, i.key_type),
    h('td', { class: 'nowrap', title: fmt.unix(i.not_after) }, i.not_after ? [fmt.day(i.not_after), h('br'), h('span', { class: 'muted' }, fmt.fromNow(i.not_after))] : '-'),
    h('td', null, i.crl_number === null || i.crl_number === undefined ? 'none yet' : `#${i.crl_number}`),
    h('td', null, rollover || '-'));
}

/** Downloads and the on-demand CRL check of one active issuer. */
function issuerSection(i, signal) {
  const out = h('div', { class: 'crl-info', 'aria-live': 'polite' });
  const check = h('button', { type: 'button', class: 'check-crl', dataset: { issuer: i.id } }, 'Check CRL age');
  check.addEventListener('click', async () => {
    check.disabled = true;
    await checkCrl(i.id, out, signal);
    check.disabled = false;
  });
  const title = `issuer-${i.id}`;
  return h('section', { class: 'issuer', 'aria-labelledby': title },
    h('h2', { id: title }, i.name, ' ', h('code', { class: 'muted' }, i.id)),
    links(i.id),
    h('div', { class: 'buttons' }, check),
    out);
}

async function render(ctx) {
  ctx.root.append(heading('CAs and CRLs'),
    h('p', null, 'The default issuer, for relying parties (no token needed): ',
      h('a', { href: '/v1/ca.pem', download: 'ca.pem' }, 'CA certificate and chain'), ', ',
      h('a', { href: '/v1/crl.pem', download: 'crl.pem' }, 'CRL'), '.'));
  if (!can('status')) {
    ctx.root.append(note('A requester token cannot list the issuers; the links above need no token.'));
    return;
  }
  let list;
  try {
    list = await get('/v1/ca', { signal: ctx.signal });
  } catch (e) {
    showError('Listing the CAs', e);
    return;
  }
  ctx.root.append(
    table({
      id: 'issuers', caption: 'Issuers', label: 'Issuers',
      head: ['Name', 'Id', 'Status', 'Key', 'Not after', 'CRL number', 'Rollover'],
      rows: list.issuers.map(issuerRow),
    }),
    ...list.issuers.filter((i) => i.status === 'active').map((i) => issuerSection(i, ctx.signal)),
    note('CRL numbers come from the node. "Check CRL age" downloads the issuer\'s CRL and delta CRL to read when they were published; they are not fetched otherwise, since a CRL with many revocations is large.'));
}

export const page = { name: 'cas', title: 'CAs', render };
