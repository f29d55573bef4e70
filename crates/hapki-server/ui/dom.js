// dom.js: builds the DOM safely. Every string given as a child becomes a text node,
// never markup, so names from certificates (which anyone who sends a CSR chooses) cannot
// inject anything. Also the few widgets several pages share: tables that scroll
// sideways, description lists, notes, and confirmation steps.

const SVG_NS = 'http://www.w3.org/2000/svg';

// Properties set on the element itself rather than as attributes.
const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'required', 'readOnly']);

function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'style') throw new Error('inline styles are refused by the Content-Security-Policy; use a class');
    if (key === 'dataset') {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    } else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (PROPS.has(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h('a', {href: '#/x', class: 'detail'}, 'text', otherNode). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element, made in the SVG namespace. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === 'style') throw new Error('inline styles are refused by the Content-Security-Policy; use a class');
    el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/**
 * A table inside a region that scrolls sideways on narrow screens (keyboard users
 * scroll it once it has focus). `head` is the column titles; `rows` are <tr>s.
 */
export function table({ id, caption, head, rows, label }) {
  const t = h('table', { id },
    caption ? h('caption', null, caption) : null,
    h('thead', null, h('tr', null, head.map((title) => h('th', { scope: 'col' }, title)))),
    h('tbody', null, rows));
  return h('div', { class: 'table-wrap', role: 'region', tabindex: '0', 'aria-label': label || caption || 'table' }, t);
}

/** A row whose first cell is a row header: row(th, td, td...). */
export function cells(...values) {
  return values.map((v, i) => (i === 0 ? h('th', { scope: 'row' }, v) : h('td', null, v)));
}

/** A description list from [term, value] pairs; pairs whose value is null are left out. */
export function dl(pairs, attrs) {
  const out = h('dl', attrs);
  for (const [term, value] of pairs) {
    if (value === null || value === undefined || value === '') continue;
    out.append(h('dt', null, term), h('dd', null, value));
  }
  return out;
}

/** A page heading that receives focus after navigation. */
export function heading(text) {
  return h('h1', { tabindex: '-1', class: 'page-title' }, text);
}

/** A short explanation in the flow of a page. */
export function note(...children) {
  return h('p', { class: 'note' }, children);
}

/** A polite live region for the outcome of an action (errors go to #error instead). */
export function status(attrs, ...children) {
  return h('p', { role: 'status', class: 'status-line', ...attrs }, children);
}

/** A command to copy, shown as code. */
export function command(text) {
  return h('pre', { class: 'command' }, h('code', null, text));
}

/**
 * A two-step action: `trigger` shows a confirmation with `question`, a confirm and a
 * cancel button; confirm runs `action` (the buttons stay disabled while it runs).
 * Returns the element to insert (the trigger and the hidden confirmation step).
 */
export function confirmStep({ trigger, question, confirmLabel, confirmId, cancelId, action, onOpen, onClose, danger = true }) {
  const text = h('p', { class: 'confirm-question' });
  const confirm = h('button', { type: 'button', id: confirmId, class: danger ? 'danger' : null }, confirmLabel);
  const cancel = h('button', { type: 'button', id: cancelId }, 'Cancel');
  const box = h('div', { class: 'confirm', role: 'group', 'aria-label': 'Confirm', hidden: true }, text, h('div', { class: 'buttons' }, confirm, cancel));
  const close = () => {
    box.hidden = true;
    trigger.disabled = false;
    if (onClose) onClose();
    trigger.focus();
  };
  trigger.addEventListener('click', () => {
    text.replaceChildren(...[question()].flat());
    box.hidden = false;
    trigger.disabled = true;
    if (onOpen) onOpen();
    cancel.focus();
  });
  cancel.addEventListener('click', close);
  confirm.addEventListener('click', async () => {
    confirm.disabled = cancel.disabled = true;
    try {
      await action();
    } finally {
      confirm.disabled = cancel.disabled = false;
      if (box.isConnected) close();
    }
  });
  return box;
}
