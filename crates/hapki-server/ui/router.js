// router.js: hash routes (#/name/param?query) and each page's lifetime. A page gets a
// fresh root element inside main#page, an AbortSignal and onLeave callbacks that end
// its requests and timers when another page is shown; main#page carries
// data-page="<name>" once the page has loaded, so that tests and scripts can wait for it.

import { clearError, showError } from './errors.js';
import { can } from './session.js';
import { h, heading, note } from './dom.js';

let resolvePage = null;
let main = null;
let current = null; // { leave: [fn], controller }
let fallback = '#/cluster';
let running = false;

/** The route in location.hash: {name, params, query}; null for a hash that is no route. */
export function parse(hash = location.hash) {
  if (!hash.startsWith('#/')) return null;
  const [path, q = ''] = hash.slice(2).split('?', 2);
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { name: parts[0] || '', params: parts.slice(1), query: new URLSearchParams(q) };
}

function leave() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.leave) {
    try {
      fn();
    } catch (e) {
      console.error(e);
    }
  }
  current = null;
}

async function show() {
  if (!running) return;
  const route = parse();
  if (!route) {
    // An empty hash goes to the default page; in-page anchors (#page) are left alone.
    if (!location.hash || location.hash === '#' || location.hash === '#/') location.replace(fallback);
    return;
  }
  leave();
  clearError();
  const page = resolvePage(route);
  const controller = new AbortController();
  const mine = { leave: [], controller };
  current = mine;
  main.removeAttribute('data-page');
  const root = h('div', { class: 'page-root' });
  main.replaceChildren(root);
  markNav(route.name);
  const ctx = {
    root,
    params: route.params,
    query: route.query,
    signal: controller.signal,
    onLeave: (fn) => mine.leave.push(fn),
    isCurrent: () => current === mine,
    focus: null, // a page may name the element to focus instead of its heading
  };
  if (!page) {
    root.append(heading('Not found'), note('No page is called ', h('code', null, route.name), '. Use the navigation.'));
  } else if (page.needs && !can(page.needs)) {
    root.append(heading(page.title), note(page.denied || 'This token\'s role cannot use this page.'));
  } else {
    document.title = `${page.title} · hapki`;
    try {
      await page.render(ctx);
    } catch (e) {
      if (current === mine) showError(`Loading ${page.title.toLowerCase()}`, e);
    }
  }
  if (current !== mine) return;
  main.dataset.page = page ? page.name : 'not-found';
  const target = ctx.focus || root.querySelector('h1');
  if (target) target.focus({ preventScroll: false });
}

function markNav(name) {
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** Starts routing: `resolve(route)` names the page module for a route. */
export function start(resolve, defaultHash) {
  resolvePage = resolve;
  fallback = defaultHash;
  main = document.getElementById('page');
  if (!running) {
    running = true;
    window.addEventListener('hashchange', show);
  }
  show();
}

/** Stops routing and ends the current page (on sign-out). */
export function stop() {
  running = false;
  window.removeEventListener('hashchange', show);
  leave();
  if (main) {
    main.removeAttribute('data-page');
    main.replaceChildren();
  }
}

/** Goes to `hash`, rendering again even when it is the current one. */
export function navigate(hash) {
  if (location.hash === hash) show();
  else location.hash = hash;
}
