// cluster.js: the cluster page. GET /v1/cluster/summary every 2 s while the page is
// shown (paused while the tab is hidden): the overall GOOD/BAD with its reasons, one
// row per node (status, role, version, address, root of trust, last contact, lag,
// applied index, digest), and the alarms (each node's recent warnings and errors, and
// digests that differ at one applied index). A failed poll keeps the last rows, marks
// them stale and retries.

import { get } from './api.js';
import { h, heading, note, table } from './dom.js';
import { clearError, showError } from './errors.js';
import { can } from './session.js';
import * as fmt from './format.js';

const EVERY_MS = 2000;

/** "GOOD" or "BAD: a; b" as [verdict, reasons]. */
function verdict(overall) {
  const text = String(overall || '');
  if (text === 'GOOD') return ['GOOD', []];
  return ['BAD', text.replace(/^BAD:?\s*/, '').split('; ').filter(Boolean)];
}

function roleText(role) {
  if (role === 'leader') return 'leader';
  if (role === 'voter' || role === 'learner') return `follower (${role})`;
  return role || '-';
}

function nodeRow(n) {
  const statusClass = n.status === 'ready' ? 'ok' : n.status === 'down' || n.status === 'sealed' ? 'bad' : 'warn';
  const digest = n.digest ? h('code', { title: n.digest }, fmt.short(n.digest)) : '-';
  const lag = n.lag_entries === null || n.lag_entries === undefined ? '-'
    : `${fmt.plural(n.lag_entries, 'entry', 'entries')} (${fmt.bytes(n.lag_bytes)})`;
  const contact = n.role === 'leader' ? 'leader itself'
    : n.last_contact_ms === null || n.last_contact_ms === undefined ? '-' : `${fmt.millis(n.last_contact_ms)} ago`;
  const tr = h('tr', { dataset: { node: n.id } },
    h('th', { scope: 'row' }, h('span', { class: 'node-name' }, n.name || n.id), h('br'),
      h('code', { class: 'muted' }, n.id), h('br'), h('span', { class: 'muted' }, n.address || ''),
      n.root_of_trust ? [h('br'), h('span', { class: 'muted' }, `root of trust: ${n.root_of_trust}`)] : null),
    h('td', { class: `status ${statusClass}` }, n.status),
    h('td', { class: 'role' }, roleText(n.role)),
    h('td', null, n.version || '-', n.max_format ? [h('br'), h('span', { class: 'muted' }, `format ${n.max_format}`)] : null),
    h('td', null, contact),
    h('td', { class: 'nowrap' }, lag),
    h('td', null, fmt.num(n.applied_index), n.apply_rate ? h('span', { class: 'muted' }, ` (${n.apply_rate}/s)`) : null),
    h('td', null, digest),
    h('td', { class: 'reason' }, n.reason || ''),
  );
  return tr;
}

/** Alarms: every node's recent warnings and errors, and digests that disagree. */
function alarmsOf(summary) {
  const out = [];
  const byIndex = new Map();
  for (const n of summary.nodes) {
    for (const e of n.errors || []) out.push({ at: e.at, text: `${n.name || n.id}: ${e.level} ${e.message}` });
    if (n.digest && n.applied_index !== null && n.applied_index !== undefined) {
      const seen = byIndex.get(n.applied_index) || new Set();
      seen.add(n.digest);
      byIndex.set(n.applied_index, seen);
    }
  }
  out.sort((a, b) => b.at - a.at);
  const list = out.slice(0, 20).map((a) => h('li', null, h('time', null, fmt.unix(a.at)), ' ', a.text));
  for (const [index, digests] of byIndex) {
    if (digests.size > 1) list.unshift(h('li', { class: 'bad' }, `Nodes at applied index ${index} report different state digests: the replicas diverge.`));
  }
  return list;
}

async function render(ctx) {
  ctx.root.append(heading('Cluster'));
  if (!can('status')) {
    ctx.root.append(note('A requester token cannot read the cluster\'s state. It can issue certificates and read back the ones it issued, by serial.'));
    return;
  }
  const health = h('span', { id: 'cluster-health', class: 'health' }, '…');
  const reasons = h('ul', { id: 'cluster-reasons', class: 'reasons' });
  const updated = h('p', { class: 'muted', id: 'cluster-updated' });
  const tbody = h('tbody');
  const nodes = table({
    id: 'nodes', caption: 'Nodes', label: 'Nodes',
    head: ['Node', 'Status', 'Role', 'Version', 'Last contact', 'Lag', 'Applied index', 'Digest', 'Reason'],
    rows: [],
  });
  nodes.querySelector('tbody').replaceWith(tbody);
  const alarms = h('ul', { id: 'cluster-alarms', class: 'alarms' });
  const format = h('p', { class: 'muted' });
  ctx.root.append(
    h('section', { class: 'health-box', 'aria-labelledby': 'health-title' },
      h('h2', { id: 'health-title' }, 'Overall: ', health),
      reasons, updated),
    nodes,
    format,
    h('section', { 'aria-labelledby': 'alarms-title' }, h('h2', { id: 'alarms-title' }, 'Alarms'), alarms),
  );

  let failing = false;
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));

  const setHealth = (word, why) => {
    if (health.textContent !== word) health.textContent = word;
    health.className = `health ${word === 'GOOD' ? 'ok' : 'bad'}`;
    reasons.replaceChildren(...why.map((r) => h('li', null, r)));
  };

  const refresh = async () => {
    try {
      const summary = await get('/v1/cluster/summary', { signal: ctx.signal });
      if (!ctx.isCurrent()) return true;
      const [word, why] = verdict(summary.overall);
      setHealth(word, why);
      tbody.replaceChildren(...summary.nodes.map(nodeRow));
      nodes.classList.remove('stale');
      const rising = summary.members_apply && summary.members_apply > summary.effective_format
        ? `; every member applies ${summary.members_apply}, so it rises within seconds` : '';
      format.textContent = `State format ${summary.effective_format}${rising}.`;
      const list = alarmsOf(summary);
      alarms.replaceChildren(...(list.length ? list : [h('li', { class: 'muted' }, 'None.')]));
      updated.textContent = `Computed by the node at ${fmt.rfc3339(summary.computed_at)}; refreshed every 2 s.`;
      if (failing) clearError();
      failing = false;
      return true;
    } catch (e) {
      if (e.name === 'AbortError' || !ctx.isCurrent()) return false;
      failing = true;
      showError('Refreshing the cluster summary', e);
      if (e.status === 401 || e.status === 403) return false; // retrying will not help
      setHealth('BAD', [`The node this console talks to did not give a summary (${e.message}); retrying every 2 s.`]);
      nodes.classList.add('stale');
      updated.textContent = `Last attempt failed at ${fmt.date(new Date())}; the rows show the last summary received.`;
      return true;
    }
  };

  const loop = async () => {
    if (!ctx.isCurrent()) return;
    const again = document.hidden ? true : await refresh();
    if (again && ctx.isCurrent()) timer = setTimeout(loop, EVERY_MS);
  };
  if (await refresh()) timer = setTimeout(loop, EVERY_MS);
}

export const page = { name: 'cluster', title: 'Cluster', render };
