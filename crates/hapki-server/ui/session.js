// session.js: who is signed in. The token lives in memory and in sessionStorage under
// 'hapki.token' (this tab only, gone when it closes), never in a URL, localStorage or
// a cookie. The token's own record (GET /v1/tokens/self) says its role, which decides
// what the console offers; the node still checks every request itself.

import { get, setToken } from './api.js';

const KEY = 'hapki.token';
let current = null; // { token, self: {id, role, name, created_at, expires_at, revoked, profiles, issuers} }

// What each role may do, as the node's auth rules allow it (see docs: Roles).
const ABILITIES = {
  status: ['admin', 'agent'],   // cluster state, CAs, profiles
  list: ['admin', 'agent'],     // list and search certificates
  revoke: ['admin', 'agent'],
  recovery: ['admin', 'agent'], // see and approve key recoveries
  audit: ['admin'],
  issue: ['admin', 'agent', 'requester'],
  read: ['admin', 'agent', 'requester'],
};

/** The token this tab kept, if any. */
export function storedToken() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

/** Checks `token` with the node and starts the session; throws the ApiError otherwise. */
export async function signIn(token, signal) {
  const self = await get('/v1/tokens/self', { bearer: token, signal });
  if (!self || !ABILITIES.read.includes(self.role)) {
    throw new Error(`the node answered an unknown role for this token (${self && self.role})`);
  }
  current = { token, self };
  setToken(token);
  try {
    sessionStorage.setItem(KEY, token);
  } catch {
    // storage refused (private mode): the session lasts as long as the page
  }
  return self;
}

/** Forgets the token everywhere. */
export function signOut() {
  current = null;
  setToken(null);
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing kept
  }
}

/** The signed-in token's record, or null. */
export function self() {
  return current ? current.self : null;
}

/** 'admin', 'agent', 'requester', or null. */
export function role() {
  return current ? current.self.role : null;
}

/** Whether the role may do `what` (a key of ABILITIES). */
export function can(what) {
  return Boolean(current && (ABILITIES[what] || []).includes(current.self.role));
}

/** "admin token ops" (the name, or the id when it has none). */
export function label() {
  if (!current) return '';
  const { role: r, name, id } = current.self;
  return `${r} token ${name || id}`;
}
