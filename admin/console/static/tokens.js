// The landing page: the token list, one page at a time from GET /admin/v1/tokens
// (search, filters, multi-column order and the page all done by the API), with
// the row checkboxes and "Delete selected" for full administrators.

import { admin, query } from './api.js';
import { append, flash, h, heading, link, rerender, statusBadge, takeFlash, when } from './dom.js';
import { confirm } from './dialogs.js';
import { parseOrder, sortHeader } from './sorting.js';

export const COLUMNS = [
  ['Client ID', 'client_id'], ['User', 'user'], ['Description', 'description'], ['Role', 'role'],
  ['Status', 'status'], ['Created', 'created_at'], ['Expires', 'expires_at'], ['Last access', 'last_used_at'],
];
const FILTERS = ['q', 'status', 'user', 'role', 'api', 'revoked'];
const PAGE = 50;

function cells(token, base) {
  return [
    h('td', {}, base
      ? h('a', { href: `${base}/${encodeURIComponent(token.client_id)}`, class: 'client-id' }, token.client_id)
      : h('code', { class: 'client-id' }, token.client_id)),
    h('td', {}, base === '#/tokens' ? link(`#/users/${encodeURIComponent(token.user)}`, token.user) : token.user),
    h('td', { class: 'description' }, token.description),
    h('td', {}, token.role || h('span', { class: 'muted' }, '—')),
    h('td', {}, statusBadge(token.status)),
    h('td', {}, when(token.created_at)),
    h('td', {}, when(token.expires_at)),
    h('td', {}, when(token.last_used_at)),
  ];
}

// The token table; `selected` (a Set) adds the row checkboxes, `extra` a last cell.
export function tokenTable(items, { keys = [], href = null, selected = null, base = '#/tokens', extra = null, caption = 'Tokens' }) {
  const head = h('tr', {});
  if (selected) {
    const all = h('input', { type: 'checkbox', 'aria-label': 'Select all tokens on this page' });
    all.addEventListener('change', () => {
      for (const box of table.querySelectorAll('tbody input[type=checkbox]')) {
        box.checked = all.checked;
        box.dispatchEvent(new Event('change'));
      }
    });
    head.append(h('th', { scope: 'col', class: 'select' }, all));
  }
  for (const [label, column] of COLUMNS) {
    head.append(href ? sortHeader(label, column, keys, href) : h('th', { scope: 'col' }, label));
  }
  if (extra) head.append(h('th', { scope: 'col' }, h('span', { class: 'vh' }, 'Actions')));
  const body = h('tbody', {});
  for (const token of items) {
    const row = h('tr', {});
    if (selected) {
      const box = h('input', { type: 'checkbox', 'aria-label': `Select ${token.client_id}`, value: token.client_id });
      box.addEventListener('change', () => {
        if (box.checked) selected.add(token.client_id);
        else selected.delete(token.client_id);
        table.dispatchEvent(new Event('selection'));
      });
      row.append(h('td', { class: 'select' }, box));
    }
    row.append(...cells(token, base));
    if (extra) row.append(h('td', { class: 'row-actions' }, extra(token)));
    body.append(row);
  }
  if (!items.length) {
    const span = COLUMNS.length + (selected ? 1 : 0) + (extra ? 1 : 0);
    body.append(h('tr', {}, h('td', { colspan: span, class: 'empty' }, 'No tokens match.')));
  }
  const table = h('table', { class: 'list tokens' }, h('caption', { class: 'vh' }, caption), h('thead', {}, head), body);
  return h('div', { class: 'table-wrap' }, table);
}

function apiParams(params) {
  const status = params.get('status') || (params.get('revoked') === 'hide' ? 'active,expired' : '');
  return {
    q: params.get('q'), user: params.get('user'), role: params.get('role'), api: params.get('api'), status,
    order: params.get('order'), limit: params.get('limit') || PAGE, offset: params.get('offset'),
  };
}

function hrefWith(params, changes) {
  const next = new URLSearchParams(params);
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === '' || value === undefined) next.delete(name);
    else next.set(name, value);
  }
  const text = next.toString();
  return `#/tokens${text ? `?${text}` : ''}`;
}

function select(label, name, options, value) {
  const el = h('select', { name, id: `filter-${name}` },
    ...options.map(([v, text]) => h('option', { value: v, selected: v === (value || '') }, text)));
  return h('div', { class: 'field' }, h('label', { for: el.id }, label), el);
}

async function filters(params, ctx) {
  const roles = (await admin('GET', '/roles')).items;
  const apis = [...ctx.session.apis.map((api) => api.name), 'admin'];
  const search = h('input', { type: 'search', name: 'q', id: 'search', value: params.get('q') || '', maxlength: 200 });
  const user = h('input', { type: 'text', name: 'user', id: 'filter-user', value: params.get('user') || '' });
  const showRevoked = h('input', { type: 'checkbox', name: 'show-revoked', id: 'filter-revoked', checked: params.get('revoked') !== 'hide' });
  const form = h('form', { role: 'search', class: 'filters' },
    h('div', { class: 'field search' }, h('label', { for: 'search' }, 'Search'),
      h('div', { class: 'inline' }, search, h('button', { type: 'submit' }, 'Search'))),
    select('Filter by status', 'status', [['', 'Any status'], ['active', 'Active'], ['expired', 'Expired'], ['revoked', 'Revoked']], params.get('status')),
    h('div', { class: 'field check' }, showRevoked, h('label', { for: 'filter-revoked' }, 'Show revoked tokens')),
    h('div', { class: 'field' }, h('label', { for: 'filter-user' }, 'Filter by user'), user),
    select('Filter by role', 'role', [['', 'Any role'], ...roles.map((r) => [r.name, r.name])], params.get('role')),
    select('Filter by API', 'api', [['', 'Any API'], ...apis.map((a) => [a, a])], params.get('api')));
  const apply = (event) => {
    if (event) event.preventDefault();
    const data = new FormData(form);
    location.hash = hrefWith(params, {
      q: data.get('q').trim(), status: data.get('status'), user: data.get('user').trim(),
      role: data.get('role'), api: data.get('api'), revoked: showRevoked.checked ? null : 'hide', offset: null,
    });
  };
  form.addEventListener('submit', apply);
  for (const el of form.querySelectorAll('select, input[type=checkbox]')) el.addEventListener('change', () => apply());
  return form;
}

function summary(page, params, total) {
  const filtered = FILTERS.some((name) => params.get(name));
  if (!filtered) return h('p', { class: 'count' }, `${page.total} token${page.total === 1 ? "" : "s"}`);
  const full = hrefWith(new URLSearchParams(params.get('order') ? { order: params.get('order') } : {}), {});
  return h('p', { class: 'count', role: 'status' }, `${page.total} results (`, link(full, `${total} total`), ')');
}

export function pager(page, params, href) {
  const { offset, limit, total } = page;
  const prev = offset > 0 ? h('a', { href: href(params, { offset: Math.max(0, offset - limit) || null }), rel: 'prev' }, 'Previous') : null;
  const next = offset + limit < total ? h('a', { href: href(params, { offset: offset + limit }), rel: 'next' }, 'Next') : null;
  const shown = total ? `${offset + 1}–${Math.min(offset + limit, total)} of ${total}` : '0 of 0';
  return h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, h('span', {}, shown), next);
}

async function deleteSelected(selected) {
  const n = selected.size;
  const ok = await confirm('Delete tokens', `Delete ${n} selected token${n === 1 ? '' : 's'}? They stop working at once and cannot be restored.`, 'Delete');
  if (!ok) return;
  const answer = await admin('POST', '/tokens/bulk-delete', { client_ids: [...selected] });
  flash(`Deleted ${answer.deleted ?? n} token${n === 1 ? '' : 's'}.`);
  rerender();
}

export async function show(page, ctx) {
  const { params } = ctx;
  const filtered = FILTERS.some((name) => params.get(name));
  const [found, all] = await Promise.all([
    admin('GET', `/tokens${query(apiParams(params))}`),
    filtered ? admin('GET', '/tokens?limit=1') : null,
  ]);
  const selected = ctx.canWrite ? new Set() : null;
  const keys = parseOrder(params.get('order'));
  const table = tokenTable(found.items, { keys, selected, href: (order) => hrefWith(params, { order, offset: null }) });
  const actions = h('div', { class: 'toolbar' });
  if (ctx.canWrite) {
    const remove = h('button', { type: 'button', class: 'danger', disabled: true }, 'Delete selected');
    remove.addEventListener('click', () => deleteSelected(selected));
    table.firstChild.addEventListener('selection', () => { remove.disabled = selected.size === 0; });
    actions.append(h('a', { href: '#/tokens/new', class: 'button primary' }, 'Add token'), remove);
  }
  append(page, heading('Tokens'), takeFlash(), await filters(params, ctx),
    summary(found, params, all ? all.total : found.total), actions, table, pager(found, params, hrefWith));
}
