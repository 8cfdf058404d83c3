// Multi-column sort, as the API's `order` takes it (user,-created_at).
// Clicking the first key reverses it; clicking any other column makes it the
// first key, ascending, and the others keep their order behind it. Every key
// shows its priority number beside its name; the first has aria-sort.

import { h } from './dom.js';

export function parseOrder(text) {
  if (!text) return [];
  return text.split(',').filter(Boolean).map((item) => ({
    column: item.replace(/^-/, ''),
    descending: item.startsWith('-'),
  }));
}

export function formatOrder(keys) {
  return keys.map((key) => (key.descending ? '-' : '') + key.column).join(',');
}

export function clicked(keys, column) {
  if (keys.length && keys[0].column === column) {
    return [{ column, descending: !keys[0].descending }, ...keys.slice(1)];
  }
  return [{ column, descending: false }, ...keys.filter((key) => key.column !== column)];
}

// A <th> whose button sorts by `column`; the marks are aria-hidden, so the button's
// name is the label alone and aria-sort tells the direction.
export function sortHeader(label, column, keys, href) {
  const at = keys.findIndex((key) => key.column === column);
  const key = keys[at];
  const th = h('th', { scope: 'col', class: at >= 0 ? 'sorted' : null });
  if (at === 0) th.setAttribute('aria-sort', key.descending ? 'descending' : 'ascending');
  const marks = at >= 0
    ? [
      h('span', { class: 'priority', 'aria-hidden': 'true', title: `sort key ${at + 1}` }, String(at + 1)),
      h('span', { class: 'arrow', 'aria-hidden': 'true' }, key.descending ? '▼' : '▲'),
    ]
    : [];
  const target = href(formatOrder(clicked(keys, column)));
  const go = () => { location.hash = target; };
  th.append(h('button', { type: 'button', class: 'sort', onclick: go }, label, ...marks));
  return th;
}
