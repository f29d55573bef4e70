// errors.js: the #error alert region. It says what failed, the node's own words, and
// what to do next, for each kind of refusal the API gives (docs/api.md, error table).

import { ApiError } from './api.js';
import { role } from './session.js';
import { h } from './dom.js';

function region() {
  return document.getElementById('error');
}

/** What to do about `err`, in a sentence. */
function advice(err) {
  if (!(err instanceof ApiError)) return 'Reload the page; if it happens again, report it with the browser console output.';
  switch (err.status) {
    case 0: return 'The node is unreachable: check that it runs and that this browser trusts its certificate. Pages that refresh keep retrying.';
    case 400: return 'Correct the input and try again.';
    case 401: return 'Sign in again with a valid token.';
    case 403: return `The token's role${role() ? ` (${role()})` : ''} or its limits do not allow this; use a token that may do it.`;
    case 404: return 'Check the serial, id or name.';
    case 409: return 'Nothing was changed; reload to see the current state.';
    case 413: return 'Send less (the node limits request bodies).';
    case 429: return 'The token has too many requests in progress; wait a moment and retry.';
    case 503:
      if (err.code === 'no_leader') return 'The cluster is electing a leader (or this node cannot reach it); retry in a moment.';
      if (err.code === 'no_quorum') return 'This node cannot reach a majority of the cluster; retry in a moment or use another node.';
      if (err.code === 'not_clustered') return 'This node has not formed or joined a cluster; use `hapki cluster new` or join it first.';
      if (err.code === 'sealed') return 'The node cannot reach its root of trust; restore it (`hapki node unseal`) or use another node.';
      return 'Retry in a moment, possibly on another node.';
    default:
      if (err.status >= 500) return err.requestId
        ? `The node's log has the details under request id ${err.requestId}.`
        : 'The node failed; its log has the details.';
      return '';
  }
}

/** The node's words for `err`, with its code. */
function words(err) {
  if (err instanceof ApiError) {
    return err.status === 0 ? err.message : `${err.message} (${err.status} ${err.code})`;
  }
  return String((err && err.message) || err);
}

/** Shows that `doing` failed with `err` ("Loading the cluster summary", err). */
export function showError(doing, err) {
  if (err && err.name === 'AbortError') return;
  const el = region();
  el.replaceChildren(
    h('p', null, h('strong', null, `${doing} failed: `), words(err)),
    h('p', null, advice(err)),
  );
}

/** Empties #error. */
export function clearError() {
  region().replaceChildren();
}

/** Whether #error currently shows something. */
export function hasError() {
  return region().childNodes.length > 0;
}
