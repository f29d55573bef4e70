// recovery.js: key recovery requests (agents and admins). GET /v1/keys/recoveries lists
// them newest first; a pending request made by another token can be approved here with
// POST /v1/keys/recoveries/{id}/approve (no body), after a confirmation. Requesting a
// recovery and fetching the recovered key stay with the CLI: the fetch hands out the
// private key as a PKCS#12 file, once, to the requester, and a browser is the wrong
// place to receive it, so the page shows the commands instead.

import { get, post } from './api.js';
import { h, heading, note, table, command, status, confirmStep } from './dom.js';
import { clearError, showError } from './errors.js';
import { navigate } from './router.js';
import { self } from './session.js';
import * as fmt from './format.js';

function approvals(r) {
  const names = r.approvals.map((a) => `${a.token_name || a.token_id} (${fmt.rfc3339(a.at)})`);
  return [`${r.approvals.length} of ${r.required}`, names.length ? h('br') : null, names.join(', ')];
}

function actionCell(r, me) {
  if (r.status === 'approved' && r.requested_by === me.id) {
    return [h('p', null, 'Approved: fetch the key (once) with'), command(`hapki key recover fetch ${r.id} --password-file p12.pass --out ${r.serial}.p12`)];
  }
  if (r.status !== 'pending') return r.status === 'approved' ? 'approved; the requester fetches it' : '-';
  if (r.requested_by === me.id) return 'your request: other tokens approve it';
  if (r.approvals.some((a) => a.token_id === me.id)) return 'you approved it';
  const trigger = h('button', { type: 'button', class: 'approve', dataset: { recovery: r.id }, 'aria-label': `Approve recovery ${r.id} of ${r.subject}` }, 'Approve…');
  const confirm = confirmStep({
    trigger,
    confirmId: `approve-confirm-${r.id}`,
    cancelId: `approve-cancel-${r.id}`,
    confirmLabel: 'Approve',
    question: () => [
      'Approve releasing the private key of ', h('strong', null, r.subject), ' (', h('code', null, r.serial), ') to ',
      h('strong', null, r.requested_by_name || r.requested_by), ` for "${r.reason}"?`],
    action: async () => {
      try {
        const after = await post(`/v1/keys/recoveries/${encodeURIComponent(r.id)}/approve`, undefined, {});
        clearError();
        navigate(`#/recovery?approved=${encodeURIComponent(after.id)}&n=${after.approvals.length}&of=${after.required}`);
      } catch (e) {
        showError('Approving the recovery', e);
      }
    },
  });
  return [trigger, confirm];
}

async function render(ctx) {
  ctx.root.append(heading('Key recovery'));
  const done = ctx.query.get('approved');
  if (done) {
    const line = status({ tabindex: '-1', id: 'recovery-outcome' }, `Approved ${done}: ${ctx.query.get('n')} of ${ctx.query.get('of')} approvals.`);
    ctx.root.append(line);
    ctx.focus = line;
  }
  let list;
  try {
    list = await get('/v1/keys/recoveries', { signal: ctx.signal });
  } catch (e) {
    showError('Listing the key recoveries', e);
    return;
  }
  const me = self();
  ctx.root.append(
    table({
      id: 'recoveries', caption: 'Recovery requests, newest first', label: 'Recovery requests',
      head: ['Request', 'Certificate', 'Reason', 'Requested by', 'Requested', 'Expires', 'Status', 'Approvals', 'Action'],
      rows: list.recoveries.length ? list.recoveries.map((r) => h('tr', { dataset: { recovery: r.id } },
        h('th', { scope: 'row' }, h('code', null, r.id)),
        h('td', null, h('a', { href: `#/certs/${encodeURIComponent(r.serial)}` }, h('code', null, r.serial)), h('br'), r.subject),
        h('td', null, r.reason),
        h('td', null, r.requested_by_name || r.requested_by),
        h('td', null, fmt.rfc3339(r.requested_at)),
        h('td', null, fmt.rfc3339(r.expires_at)),
        h('td', { class: `recovery-state ${r.status}` }, r.status, r.fetched_at ? ` ${fmt.rfc3339(r.fetched_at)}` : ''),
        h('td', null, approvals(r)),
        h('td', { class: 'actions' }, actionCell(r, me)))) : [h('tr', null, h('td', { colspan: '9', class: 'empty' }, 'No recovery requests.'))],
    }),
    h('section', { 'aria-labelledby': 'recovery-cli' },
      h('h2', { id: 'recovery-cli' }, 'With the CLI'),
      note('A recovery is requested, and the recovered key fetched, with the CLI; the console only approves.'),
      command('hapki key recover request <serial> --reason "host lost"'),
      command('hapki key recover fetch <id> --password-file p12.pass --out key.p12')));
}

export const page = { name: 'recovery', title: 'Recovery', needs: 'recovery', denied: 'A requester token cannot see or approve key recoveries.', render };
