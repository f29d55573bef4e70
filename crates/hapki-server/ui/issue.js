// issue.js: issuing a certificate from a CSR. The profile is picked from
// GET /v1/profiles (agents and admins), from the token's own profile limits
// (GET /v1/tokens/self), or typed (a requester may not list profiles); the issuer from
// GET /v1/ca when the role may read it. POST /v1/certs {csr, profile, issuer?, ttl?}
// with an Idempotency-Key kept while the same request is retried; the answer's
// certificate and chain are shown in pre#issued-chain and offered for download.

import { get, post, idempotencyKey } from './api.js';
import { h, heading, note, dl, command } from './dom.js';
import { clearError, showError } from './errors.js';
import { offer, safeName } from './pem.js';
import { can, role, self } from './session.js';
import * as fmt from './format.js';

function field(id, label, control, hint) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null);
}

/** The profile control: a select when the names are known, a text input otherwise. */
async function profileControl(ctx) {
  const limits = (self() && self().profiles) || [];
  if (can('status')) {
    try {
      const { profiles } = await get('/v1/profiles', { signal: ctx.signal });
      const usable = limits.length ? profiles.filter((p) => limits.includes(p.name)) : profiles;
      const adminOnly = (p) => p.ca || p.ocsp_no_check;
      const select = h('select', { id: 'profile', name: 'profile', required: true },
        usable.map((p) => h('option', {
          value: p.name,
          selected: p.name === 'server',
          disabled: role() !== 'admin' && adminOnly(p),
        }, `${p.name}${p.description ? `: ${p.description}` : ''}${role() !== 'admin' && adminOnly(p) ? ' (admin only)' : ''}`)));
      return { control: select, hint: null };
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      return { control: textProfile(), hint: `The profiles could not be listed (${e.message}); type the name.` };
    }
  }
  if (limits.length) {
    return { control: h('select', { id: 'profile', name: 'profile', required: true }, limits.map((p) => h('option', { value: p }, p))), hint: 'the profiles this token is limited to' };
  }
  return { control: textProfile(), hint: 'e.g. server, client, db-server; a requester token cannot list the profiles' };
}

function textProfile() {
  return h('input', { id: 'profile', name: 'profile', type: 'text', required: true, value: 'server', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'profile-hint' });
}

/** The issuer control, or null when the token cannot choose. */
async function issuerControl(ctx) {
  const limits = (self() && self().issuers) || [];
  if (can('status')) {
    try {
      const { issuers } = await get('/v1/ca', { signal: ctx.signal });
      const active = issuers.filter((i) => i.status === 'active' && (!limits.length || limits.includes(i.id)));
      return h('select', { id: 'issuer', name: 'issuer' },
        h('option', { value: '' }, 'the default issuer'),
        active.map((i) => h('option', { value: i.id }, `${i.name} (${i.id})${i.default ? ', default' : ''}`)));
    } catch (e) {
      if (e.name === 'AbortError') throw e;
    }
  }
  if (limits.length) {
    return h('select', { id: 'issuer', name: 'issuer' }, h('option', { value: '' }, 'the default issuer'), limits.map((i) => h('option', { value: i }, i)));
  }
  return null;
}

function result(issued, ctx) {
  const chainPem = [issued.certificate, ...issued.chain].map((p) => p.trimEnd()).join('\n') + '\n';
  const base = safeName(issued.serial);
  const title = h('h2', { id: 'issued-title', tabindex: '-1' }, 'Issued');
  const section = h('section', { id: 'issued', 'aria-labelledby': 'issued-title' },
    title,
    dl([
      ['Serial', h('a', { href: `#/certs/${encodeURIComponent(issued.serial)}` }, h('code', null, issued.serial))],
      ['Subject', issued.subject],
      ['Profile', issued.profile],
      ['Issuer', h('code', null, issued.issuer_id)],
      ['Not before', fmt.unixWithRelative(issued.not_before)],
      ['Not after', fmt.unixWithRelative(issued.not_after)],
    ], { class: 'fields-list' }),
    h('div', { class: 'downloads', role: 'group', 'aria-label': 'Downloads' },
      offer(h('a', { id: 'download-issued', class: 'button' }, 'Certificate and chain (PEM)'), chainPem, `${base}-chain.pem`, 'application/x-pem-file', ctx),
      offer(h('a', { id: 'download-issued-cert', class: 'button' }, 'Certificate only (PEM)'), issued.certificate, `${base}.pem`, 'application/x-pem-file', ctx)),
    h('p', null, 'The certificate, then its chain (issuer first, root last):'),
    h('pre', { id: 'issued-chain', class: 'pem', tabindex: '0', 'aria-label': 'Certificate and chain, PEM' }, chainPem));
  return { section, title };
}

async function render(ctx) {
  ctx.root.append(heading('Issue a certificate'));
  const [{ control: profile, hint: profileHint }, issuer] = await Promise.all([profileControl(ctx), issuerControl(ctx)]);
  const csr = h('textarea', {
    id: 'csr', name: 'csr', rows: '12', required: true, spellcheck: 'false', 'aria-describedby': 'csr-hint',
    placeholder: '-----BEGIN CERTIFICATE REQUEST-----',
  });
  const file = h('input', { id: 'csr-file', type: 'file', accept: '.csr,.pem,.req,.txt' });
  file.addEventListener('change', async () => {
    const f = file.files && file.files[0];
    if (f) csr.value = await f.text();
  });
  const ttl = h('input', { id: 'ttl', name: 'ttl', type: 'text', autocomplete: 'off', placeholder: '30d', pattern: '\\s*\\d+\\s*[smhd]?\\s*', 'aria-describedby': 'ttl-hint' });
  const submit = h('button', { id: 'issue-submit', type: 'submit' }, 'Issue');
  const form = h('form', { id: 'issue', 'aria-label': 'Issue a certificate' },
    field('csr', 'CSR (PEM)', csr, 'Paste a PKCS#10 request. The key stays with you: only the request is sent.'),
    field('csr-file', 'or read the CSR from a file', file),
    field('profile', 'Profile', profile, profileHint),
    issuer ? field('issuer', 'Issuer', issuer) : null,
    field('ttl', 'Validity (optional)', ttl, '90s, 45m, 12h or 30d; the profile\'s default when empty'),
    h('div', { class: 'buttons' }, submit));
  const out = h('div', { id: 'issue-result' });
  ctx.root.append(
    form,
    h('details', { class: 'help' }, h('summary', null, 'Making a CSR'),
      note('With the hapki CLI (the key is written next to it, mode 0600):'),
      command('hapki csr web CN:web.example.com subjectAltName:web.example.com,www.example.com'),
      note('or with OpenSSL:'),
      command('openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout web.key -subj /CN=web.example.com -addext subjectAltName=DNS:web.example.com -out web.csr')),
    out);

  // One Idempotency-Key per distinct request: a retry of the same request after a failure
  // that may have gone through (no answer, 503) reuses it, so it issues at most once.
  let pending = null; // { body: JSON text, key }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { csr: csr.value.trim(), profile: profile.value.trim() };
    if (issuer && issuer.value) body.issuer = issuer.value;
    if (ttl.value.trim()) body.ttl = ttl.value.replace(/\s+/g, '');
    const text = JSON.stringify(body);
    if (!pending || pending.body !== text) pending = { body: text, key: idempotencyKey() };
    submit.disabled = true;
    submit.textContent = 'Issuing…';
    try {
      const issued = await post('/v1/certs', body, { idempotent: true, key: pending.key, signal: ctx.signal });
      pending = null;
      clearError();
      const { section, title } = result(issued, ctx);
      out.replaceChildren(section);
      title.focus();
    } catch (e) {
      // A refusal the node answered (4xx) did not issue; a new attempt may use a new key.
      if (e.status >= 400 && e.status < 500) pending = null;
      showError('Issuing the certificate', e);
    } finally {
      submit.disabled = false;
      submit.textContent = 'Issue';
    }
  });
}

export const page = { name: 'issue', title: 'Issue', render };
