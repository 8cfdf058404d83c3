// Building elements without innerHTML: every value from the API becomes a text
// node or an attribute, never markup, so a description cannot inject a script.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, ...children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

// RFC 3339 UTC from the API, shown as "2026-05-31 14:02 UTC" in a <time>.
export function when(value) {
  if (!value) return h('span', { class: 'muted' }, '—');
  const text = value.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC');
  return h('time', { datetime: value }, text);
}

export function field(label, control, hint) {
  const id = control.id || uid('f');
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('p', { class: 'hint' }, hint) : null);
}

export function heading(text) {
  document.title = `${text} · Keystile console`;
  return h('h1', { tabindex: '-1' }, text);
}

export function link(href, text) {
  return h('a', { href }, text);
}

export function statusBadge(status) {
  return h('span', { class: `status status-${status}` }, status);
}

// A note for the next rendered page ("Deleted 3 tokens."), then the page again.
let pending = '';
export function flash(text) {
  pending = text;
}
export function takeFlash() {
  const text = pending;
  pending = '';
  return text ? h('p', { class: 'notice', role: 'status' }, text) : null;
}
export function rerender() {
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}
export function go(hash) {
  if (location.hash === hash) rerender();
  else location.hash = hash;
}
