// cert-detail.js: one certificate, #/certs/<serial>. GET /v1/certs/{serial} gives the
// API's fields and the PEM; the browser decodes the PEM for the issuer's name, key,
// usages and URLs, and offers it as PEM and DER downloads. The chain comes from the
// issuer's publication route, GET /v1/issuers/{id}/ca.pem. Agents and admins revoke a
// valid certificate here: a reason, a confirmation, POST /v1/certs/{serial}/revoke
// (with an Idempotency-Key), then the certificate is read again to show its new status.

import { get, post } from './api.js';
import { h, heading, dl, note, status, confirmStep } from './dom.js';
import { clearError, showError } from './errors.js';
import { decodeCertificate } from './der.js';
import { blocks, offer, sha256, safeName } from './pem.js';
import { can } from './session.js';
import * as fmt from './format.js';

// The reasons POST /v1/certs/{serial}/revoke accepts (RFC 5280 names; certificateHold
// and removeFromCRL are refused: revocation in hapki is permanent).
const REASONS = [
  ['unspecified', 'unspecified'],
  ['keyCompromise', 'key compromise'],
  ['cACompromise', 'CA compromise'],
  ['affiliationChanged', 'affiliation changed'],
  ['superseded', 'superseded'],
  ['cessationOfOperation', 'cessation of operation'],
  ['privilegeWithdrawn', 'privilege withdrawn'],
  ['aACompromise', 'AA compromise'],
];

function list(items) {
  return items && items.length ? h('ul', { class: 'plain' }, items.map((i) => h('li', null, i))) : null;
}

async function decoded(pem) {
  const [leaf] = blocks(pem);
  if (!leaf) return { der: null, info: null, fingerprint: null };
  let info = null;
  try {
    info = decodeCertificate(leaf.der);
  } catch (e) {
    console.warn('certificate not decoded', e);
  }
  return { der: leaf.der, info, fingerprint: await sha256(leaf.der).catch(() => null) };
}

/** The chain: the issuer's certificate and those above it, each with its subject. */
async function chainSection(cert, ctx) {
  const section = h('section', { 'aria-labelledby': 'chain-title' }, h('h2', { id: 'chain-title' }, 'Chain'));
  let pem;
  try {
    pem = new TextDecoder().decode(await get(`/v1/issuers/${encodeURIComponent(cert.issuer_id)}/ca.pem`, { auth: false, bytes: true, signal: ctx.signal }));
  } catch (e) {
    if (e.name !== 'AbortError') section.append(note(`The issuer's chain could not be read (${e.message}).`));
    return { section, pem: '' };
  }
  const items = [h('li', null, `${cert.subject} (this certificate)`)];
  for (const b of blocks(pem)) {
    let subject = 'not decoded';
    try {
      subject = decodeCertificate(b.der).subject;
    } catch {
      // shown as not decoded
    }
    items.push(h('li', null, h('details', null, h('summary', null, subject), h('pre', { class: 'pem' }, b.text))));
  }
  section.append(h('ol', { class: 'chain' }, items));
  return { section, pem };
}

function revokeControls(cert, reload) {
  const select = h('select', { id: 'revoke-reason', name: 'reason' }, REASONS.map(([v, words]) => h('option', { value: v }, words)));
  const trigger = h('button', { id: 'revoke', type: 'button', class: 'danger' }, 'Revoke…');
  const confirm = confirmStep({
    trigger,
    confirmId: 'revoke-confirm',
    cancelId: 'revoke-cancel',
    confirmLabel: 'Revoke now',
    question: () => [
      'Revoke ', h('code', null, cert.serial), ` (${cert.subject}) for `, h('strong', null, select.value),
      '? Revocation is permanent: the next CRL and every OCSP answer list it as revoked.'],
    onOpen: () => { select.disabled = true; },
    onClose: () => { select.disabled = false; },
    action: async () => {
      let done;
      try {
        done = await post(`/v1/certs/${encodeURIComponent(cert.serial)}/revoke`, { reason: select.value }, { idempotent: true });
      } catch (e) {
        showError('Revoking the certificate', e);
        return;
      }
      clearError();
      try {
        await reload(`Revoked for ${done.reason} at ${fmt.unix(done.revoked_at)}; CRL number ${done.crl_number} lists it.`);
      } catch (e) {
        showError('Reading the revoked certificate again', e);
      }
    },
  });
  return h('section', { class: 'revoke', 'aria-labelledby': 'revoke-title' },
    h('h2', { id: 'revoke-title' }, 'Revoke'),
    h('div', { class: 'field inline' }, h('label', { for: 'revoke-reason' }, 'Reason'), select, trigger),
    confirm);
}

async function render(ctx) {
  const serial = ctx.params[0];
  ctx.root.append(heading('Certificate'), h('p', null, h('a', { href: '#/certs' }, '← Certificates')));
  const holder = h('div');
  ctx.root.append(holder);

  const load = async (outcome) => {
    const cert = await get(`/v1/certs/${encodeURIComponent(serial)}`, { signal: ctx.signal });
    if (!ctx.isCurrent()) return;
    const { der, info, fingerprint } = await decoded(cert.certificate);
    const chain = await chainSection(cert, ctx);
    if (!ctx.isCurrent()) return;
    const base = safeName(cert.serial);
    const pemLink = offer(h('a', { id: 'download-pem', class: 'button' }, 'Certificate (PEM)'), cert.certificate || '', `${base}.pem`, 'application/x-pem-file', ctx);
    const derLink = der ? offer(h('a', { id: 'download-der', class: 'button' }, 'Certificate (DER)'), der, `${base}.der`, 'application/pkix-cert', ctx) : h('a', { id: 'download-der', 'aria-disabled': 'true' }, 'DER not available');
    const fullLink = chain.pem ? offer(h('a', { id: 'download-chain', class: 'button' }, 'Certificate and chain (PEM)'), (cert.certificate || '') + chain.pem, `${base}-chain.pem`, 'application/x-pem-file', ctx) : null;
    const state = h('span', { id: 'cert-status', class: `cert-state ${cert.status}` }, cert.status);
    const section = h('section', { id: 'cert-detail', 'aria-labelledby': 'cert-subject' },
      h('h2', { id: 'cert-subject' }, cert.subject || cert.serial),
      outcome ? status({ id: 'cert-outcome', tabindex: '-1' }, outcome) : null,
      dl([
        ['Status', state],
        ['Serial', h('code', null, cert.serial)],
        ['Subject', cert.subject],
        ['Subject alternative names', list(cert.sans) || 'none'],
        ['Issuer', [info ? info.issuer : '', ' ', h('span', { class: 'muted' }, `(issuer id ${cert.issuer_id})`)]],
        ['Profile', cert.profile],
        ['Not before', fmt.unixWithRelative(cert.not_before)],
        ['Not after', fmt.unixWithRelative(cert.not_after)],
        ['Issued at', fmt.unix(cert.issued_at)],
        ['Revoked at', cert.revoked_at ? fmt.unixWithRelative(cert.revoked_at) : null],
        ['Revocation reason', cert.revocation_reason],
        ['Key', info ? info.key : null],
        ['Signature', info ? info.signature : null],
        ['Key usage', info && info.keyUsage.length ? info.keyUsage.join(', ') : null],
        ['Extended key usage', info && info.extKeyUsage.length ? info.extKeyUsage.join(', ') : null],
        ['CA', info ? (info.ca ? 'yes' : 'no') : null],
        ['CRL distribution points', info ? list(info.crl) : null],
        ['Authority information access', info ? list(info.aia) : null],
        ['Extensions', info ? info.extensions.join(', ') : null],
        ['SHA-256 fingerprint', fingerprint ? h('code', { class: 'wrap' }, fingerprint) : null],
      ], { class: 'fields-list' }),
      info ? null : note('The certificate could not be decoded in the browser; the fields above are the API\'s.'),
      h('div', { class: 'downloads', role: 'group', 'aria-label': 'Downloads' }, pemLink, derLink, fullLink),
      h('details', null, h('summary', null, 'PEM'), h('pre', { class: 'pem' }, cert.certificate || '')),
      cert.status === 'valid' && can('revoke') ? revokeControls(cert, load) : null,
      chain.section);
    holder.replaceChildren(section);
    if (outcome) section.querySelector('#cert-outcome').focus();
  };
  await load(null);
}

export const page = { name: 'cert-detail', title: 'Certificate', render };
