// Users: the list (search and sort by the API), "Add user", and a user's page
// with its profile form (active / inactive), its tokens, "Add token" for it,
// "Revoke all" (confirmed) and "Delete user" (confirmed; its tokens go too).

import { admin, query } from './api.js';
import { append, field, flash, go, h, heading, link, rerender, takeFlash, when } from './dom.js';
import { confirm } from './dialogs.js';
import { submitting } from './forms.js';
import { parseOrder, sortHeader } from './sorting.js';
import { pager, tokenTable } from './tokens.js';

const COLUMNS = [['Username', 'username'], ['Display name', 'display_name'], ['Email', 'email'], ['Active', 'active'], ['Created', 'created_at']];

function hrefWith(params, changes) {
  const next = new URLSearchParams(params);
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === '' || value === undefined) next.delete(name);
    else next.set(name, value);
  }
  const text = next.toString();
  return `#/users${text ? `?${text}` : ''}`;
}

export async function list(page, ctx) {
  const { params } = ctx;
  const found = await admin('GET', `/users${query({ q: params.get('q'), order: params.get('order'), offset: params.get('offset') })}`);
  const keys = parseOrder(params.get('order'));
  const search = h('input', { type: 'search', id: 'search', name: 'q', value: params.get('q') || '', maxlength: 200 });
  const form = h('form', { role: 'search', class: 'filters' },
    h('div', { class: 'field search' }, h('label', { for: 'search' }, 'Search'),
      h('div', { class: 'inline' }, search, h('button', { type: 'submit' }, 'Search'))));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = hrefWith(params, { q: search.value.trim(), offset: null });
  });
  const rows = found.items.map((u) => h('tr', {},
    h('td', {}, link(`#/users/${encodeURIComponent(u.username)}`, u.username)), h('td', {}, u.display_name), h('td', {}, u.email),
    h('td', {}, u.active ? 'active' : h('span', { class: 'status status-revoked' }, 'inactive')), h('td', {}, when(u.created_at))));
  if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: COLUMNS.length, class: 'empty' }, 'No users match.')));
  const table = h('table', { class: 'list' }, h('caption', { class: 'vh' }, 'Users'),
    h('thead', {}, h('tr', {}, COLUMNS.map(([label, column]) => sortHeader(label, column, keys, (order) => hrefWith(params, { order, offset: null }))))),
    h('tbody', {}, rows));
  const count = params.get('q')
    ? h('p', { class: 'count', role: 'status' }, `${found.total} results (`, link('#/users', 'all users'), ')')
    : h('p', { class: 'count' }, `${found.total} users`);
  append(page, heading('Users'), takeFlash(), form, count,
    ctx.canWrite ? h('div', { class: 'toolbar' }, h('a', { href: '#/users/new', class: 'button primary' }, 'Add user')) : null,
    h('div', { class: 'table-wrap' }, table), pager(found, params, hrefWith));
}

function profileForm(user, ctx) {
  const username = user ? null : h('input', { type: 'text', 'data-field': 'username', required: true, autocomplete: 'off' });
  const display = h('input', { type: 'text', 'data-field': 'display_name', value: user ? user.display_name : '' });
  const email = h('input', { type: 'email', 'data-field': 'email', value: user ? user.email : '' });
  const active = h('input', { type: 'checkbox', id: 'user-active', 'data-field': 'active', checked: user ? user.active : true });
  const form = h('form', { class: 'user-form', novalidate: true },
    username ? field('Username', username) : null, field('Display name', display), field('Email', email),
    h('div', { class: 'field check' }, active, h('label', { for: 'user-active' }, 'Active')),
    h('p', { class: 'hint' }, 'An inactive user\'s tokens are all refused until the user is active again.'),
    ctx.canWrite ? h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save')) : null);
  if (!ctx.canWrite) for (const el of form.querySelectorAll('input')) el.disabled = true;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { display_name: display.value.trim(), email: email.value.trim(), active: active.checked };
    let saved;
    const ok = await submitting(form, async () => {
      saved = user
        ? await admin('PATCH', `/users/${encodeURIComponent(user.username)}`, body)
        : await admin('POST', '/users', { username: username.value.trim(), ...body });
    });
    if (!ok) return;
    flash(`Saved ${saved.username}.`);
    go(`#/users/${encodeURIComponent(saved.username)}`);
  });
  return form;
}

export async function add(page, ctx) {
  append(page, h('p', { class: 'crumbs' }, link('#/users', 'Users')), heading('Add user'), profileForm(null, ctx));
}

async function revokeAll(user) {
  const text = `Revoke every token of ${user.username}? They stop working at once, for good.`;
  if (!(await confirm('Revoke all tokens', text, 'Revoke all'))) return;
  const answer = await admin('POST', '/tokens/bulk-revoke', { user: user.username });
  flash(`Revoked ${answer.revoked} token${answer.revoked === 1 ? '' : 's'} of ${user.username}.`);
  rerender();
}

async function removeUser(user) {
  const text = `Delete ${user.username} and all of its tokens? This cannot be undone.`;
  if (!(await confirm('Delete user', text, 'Delete'))) return;
  await admin('DELETE', `/users/${encodeURIComponent(user.username)}`);
  flash(`Deleted ${user.username}.`);
  go('#/users');
}

export async function show(page, ctx) {
  const [name] = ctx.args;
  const id = encodeURIComponent(name);
  const [user, tokens] = await Promise.all([
    admin('GET', `/users/${id}`),
    admin('GET', `/tokens${query({ user: name, limit: 1000 })}`),
  ]);
  const bar = h('div', { class: 'toolbar' });
  if (ctx.canWrite) {
    bar.append(h('a', { href: `#/tokens/new?user=${id}`, class: 'button primary' }, 'Add token'),
      h('button', { type: 'button', class: 'danger', onclick: () => revokeAll(user) }, 'Revoke all'),
      h('button', { type: 'button', class: 'danger', onclick: () => removeUser(user) }, 'Delete user'));
  }
  append(page, h('p', { class: 'crumbs' }, link('#/users', 'Users')), heading(`User ${user.username}`), takeFlash(),
    profileForm(user, ctx), h('h2', {}, `Tokens of ${user.username} (${tokens.total})`), bar,
    tokenTable(tokens.items, { caption: `Tokens of ${user.username}` }));
}
