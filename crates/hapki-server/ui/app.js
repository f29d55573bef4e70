// app.js: starts the console. It owns the sign-in form and the sign-out button, the
// session bar (#whoami) and which nav links the token's role sees, and maps the hash
// routes to the page modules; everything else lives in those modules.

import { onUnauthorized, ApiError } from './api.js';
import { clearError, showError } from './errors.js';
import { start, stop, parse } from './router.js';
import { signIn, signOut, storedToken, can, label } from './session.js';
import { page as cluster } from './cluster.js';
import { page as certs } from './certs.js';
import { page as certDetail } from './cert-detail.js';
import { page as issue } from './issue.js';
import { page as cas } from './cas.js';
import { page as expiry } from './expiry.js';
import { page as audit } from './audit.js';
import { page as recovery } from './recovery.js';

const DEFAULT = '#/cluster';
const PAGES = { cluster, issue, cas, expiry, audit, recovery };

function resolve(route) {
  if (route.name === 'certs') return route.params.length ? certDetail : certs;
  return PAGES[route.name] || null;
}

const $ = (id) => document.getElementById(id);

function showSignIn() {
  stop();
  $('app').hidden = true;
  $('session-bar').hidden = true;
  $('whoami').textContent = '';
  $('signin-view').hidden = false;
  $('token').value = '';
  $('token').focus();
}

function showApp() {
  $('signin-view').hidden = true;
  $('whoami').textContent = label();
  $('session-bar').hidden = false;
  // Links the role cannot use are hidden (the node would refuse those pages anyway).
  for (const [href, what] of [['#/audit', 'audit'], ['#/recovery', 'recovery']]) {
    const link = document.querySelector(`#nav a[href="${href}"]`);
    link.closest('li').hidden = !can(what);
  }
  $('app').hidden = false;
  if (!parse()) location.replace(DEFAULT);
  start(resolve, DEFAULT);
}

async function submitSignIn(ev) {
  ev.preventDefault();
  const button = $('signin-submit');
  const token = $('token').value.trim();
  if (!token) return;
  button.disabled = true;
  try {
    await signIn(token);
    clearError();
    $('token').value = '';
    showApp();
  } catch (e) {
    showError('Signing in', e);
    $('token').select();
  } finally {
    button.disabled = false;
  }
}

async function restore() {
  const token = storedToken();
  if (!token) {
    showSignIn();
    return;
  }
  try {
    await signIn(token);
    showApp();
  } catch (e) {
    // A token the node refuses is forgotten; an unreachable node leaves it for a retry.
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) signOut();
    showSignIn();
    showError('Resuming the session', e);
  }
}

onUnauthorized((err) => {
  signOut();
  showSignIn();
  showError('The request', err);
});

$('signin').addEventListener('submit', submitSignIn);
$('signout').addEventListener('click', () => {
  signOut();
  clearError();
  showSignIn();
});

restore();
