// A token's page: every field of its record and its effective access per API,
// with "Edit", "Regenerate" (expiration and grace period; the new secret shown
// once), "Revoke" and "Delete" (both confirmed), and "History"; below, its
// usage and suggested access (advice.js). While a regeneration's grace period
// is open, "Grace period": who still uses the old secret, and "End grace
// period" (confirmed).

import { admin } from './api.js';
import { append, field, flash, go, h, heading, link, rerender, statusBadge, takeFlash, uid, when } from './dom.js';
import { confirm, modal, secret } from './dialogs.js';
import { submitting } from './forms.js';
import { usageSections } from './advice.js';

const LABEL = { none: 'No access', read: 'Read access', full: 'Full access' };

function effective(api, token, role) {
  const own = token.access || {};
  const roleAccess = (role && role.access) || {};
  if (own[api]) return [own[api], 'the token'];
  if (own['*']) return [own['*'], 'the token (all APIs)'];
  if (roleAccess[api]) return [roleAccess[api], `role ${role.name}`];
  if (roleAccess['*']) return [roleAccess['*'], `role ${role.name} (all APIs)`];
  return ['none', '—'];
}

function record(token) {
  const rows = [
    ['Client ID', h('code', {}, token.client_id)],
    ['User', link(`#/users/${encodeURIComponent(token.user)}`, token.user)],
    ['Description', token.description || h('span', { class: 'muted' }, '—')],
    ['Role', token.role || h('span', { class: 'muted' }, '—')],
    ['Status', statusBadge(token.status)],
    ['Created', when(token.created_at)],
    ['Created by', token.created_by || '—'],
    ['Expires', when(token.expires_at)],
    ['Last access', when(token.last_used_at)],
    ['Revoked at', when(token.revoked_at)],
    ['Revoked by', token.revoked_by || h('span', { class: 'muted' }, '—')],
    ['Regenerated at', when(token.regenerated_at)],
  ];
  return h('dl', { class: 'record' }, rows.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

function accessSummary(token, role, apis) {
  const rows = [...apis, { name: 'admin' }].map((api) => {
    const [level, from] = effective(api.name, token, role);
    return h('tr', {}, h('th', { scope: 'row' }, api.name), h('td', {}, LABEL[level]), h('td', {}, from));
  });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'list effective' },
    h('caption', {}, 'Effective access'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'API'), h('th', { scope: 'col' }, 'Level'), h('th', { scope: 'col' }, 'From'))),
    h('tbody', {}, rows)));
}

function regenerate(token, session) {
  const months = h('select', { 'data-field': 'expires_in_months', id: uid('months') },
    session.expiry_months_choices.map((m) => h('option', { value: String(m), selected: m === session.default_expiry_months }, String(m))));
  const grace = h('input', { type: 'number', min: 0, max: session.max_grace_seconds, value: 0, step: 1, 'data-field': 'grace_seconds', inputmode: 'numeric' });
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const form = h('form', { novalidate: true },
    h('p', {}, 'A new secret replaces the current one. Clients using the old secret are refused once the grace period ends.'),
    field('Expiration (months)', months),
    field('Grace period (seconds)', grace, `The old secret keeps working this long (0 to ${session.max_grace_seconds}).`),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Regenerate'), cancel));
  const dialog = modal(`Regenerate ${token.client_id}`, form);
  cancel.addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let issued;
    const ok = await submitting(form, async () => {
      issued = await admin('POST', `/tokens/${encodeURIComponent(token.client_id)}/regenerate`, {
        expires_in_months: Number(months.value), grace_seconds: Number(grace.value || 0),
      });
    });
    if (!ok) return;
    dialog.close();
    await secret(issued);
    flash(`Regenerated ${token.client_id}.`);
    rerender();
  });
  months.focus();
}

async function revoke(token) {
  const text = `Revoke ${token.client_id}? It stops working at once, for good; the record stays for the audit.`;
  if (!(await confirm('Revoke token', text, 'Revoke'))) return;
  await admin('POST', `/tokens/${encodeURIComponent(token.client_id)}/revoke`, {});
  flash(`Revoked ${token.client_id}.`);
  rerender();
}

async function remove(token) {
  const text = `Delete ${token.client_id}? It stops working at once and its record and history are gone for good.`;
  if (!(await confirm('Delete token', text, 'Delete'))) return;
  await admin('DELETE', `/tokens/${encodeURIComponent(token.client_id)}`);
  flash(`Deleted ${token.client_id}.`);
  go('#/tokens');
}

function actions(token, ctx) {
  const id = encodeURIComponent(token.client_id);
  const bar = h('div', { class: 'toolbar' });
  if (ctx.canWrite) {
    bar.append(h('a', { href: `#/tokens/${id}/edit`, class: 'button' }, 'Edit'));
    if (token.status !== 'revoked') {
      bar.append(h('button', { type: 'button', onclick: () => regenerate(token, ctx.session) }, 'Regenerate'));
      bar.append(h('button', { type: 'button', class: 'danger', onclick: () => revoke(token) }, 'Revoke'));
    }
    bar.append(h('button', { type: 'button', class: 'danger', onclick: () => remove(token) }, 'Delete'));
  }
  bar.append(h('a', { href: `#/tokens/${id}/history`, class: 'button secondary' }, 'History'));
  return bar;
}

export async function show(page, ctx) {
  const [clientId] = ctx.args;
  const token = await admin('GET', `/tokens/${encodeURIComponent(clientId)}`);
  const role = token.role ? await admin('GET', `/roles/${encodeURIComponent(token.role)}`).catch(() => null) : null;
  append(page, h('p', { class: 'crumbs' }, link('#/tokens', 'Tokens')), heading(`Token ${token.client_id}`), takeFlash(),
    actions(token, ctx), record(token), graceSection(token, ctx), accessSummary(token, role, ctx.session.apis), await usageSections(token, ctx));
}

// -- rotation evidence: the old secret's uses during a grace period ----------------

function graceSection(token, ctx) {
  const grace = token.grace;
  if (!grace) return null;
  const muted = (text) => h('span', { class: 'muted' }, text);
  const facts = [
    ['Old secret valid until', when(grace.until)],
    ['Old secret uses', String(grace.old_secret_uses)],
    ['Last old use', when(grace.last_old_use_at)],
  ];
  const rows = grace.clients.map((c) => h('tr', {},
    h('td', {}, c.address === null ? muted('other clients') : h('code', {}, c.address)),
    h('td', {}, c.user_agent === null ? muted('—') : (c.user_agent || muted('none sent'))),
    h('td', {}, String(c.uses)), h('td', {}, when(c.last_used_at))));
  if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'The old secret has not been used since the regeneration.')));
  const end = ctx.canWrite ? h('div', { class: 'toolbar' },
    h('button', { type: 'button', class: 'danger', onclick: () => endGrace(token) }, 'End grace period')) : null;
  return h('section', { class: 'grace', 'aria-labelledby': 'grace-heading' },
    h('h2', { id: 'grace-heading' }, 'Grace period'),
    h('dl', { class: 'record' }, facts.map(([term, v]) => [h('dt', {}, term), h('dd', {}, v)])),
    h('div', { class: 'table-wrap' }, h('table', { class: 'list grace-clients' },
      h('caption', {}, 'Clients still using the old secret, latest first'),
      h('thead', {}, h('tr', {}, ['Address', 'User agent', 'Uses', 'Last use'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows))),
    end);
}

async function endGrace(token) {
  const text = `End the grace period of ${token.client_id}? Its old secret stops working at once, everywhere; the new one keeps working.`;
  if (!(await confirm('End grace period', text, 'End grace period'))) return;
  await admin('POST', `/tokens/${encodeURIComponent(token.client_id)}/end-grace`, {});
  flash(`Ended the grace period of ${token.client_id}.`);
  rerender();
}

function value(v) {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '—');
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// One row per changed field: when, who, what, field, old and new value.
export function changeRows(entries, { target = false } = {}) {
  const rows = [];
  for (const entry of entries) {
    const changes = Object.entries(entry.changes || {});
    const lines = changes.length ? changes : [[null, [null, null]]];
    for (const [name, [old, now]] of lines) {
      rows.push(h('tr', {}, h('td', {}, when(entry.at)), h('td', {}, entry.actor), h('td', {}, entry.action),
        target ? h('td', {}, `${entry.kind} ${entry.target}`) : null,
        h('td', {}, name || '—'), h('td', { class: 'value' }, value(old)), h('td', { class: 'value' }, value(now))));
    }
  }
  return rows;
}

export function changeTable(entries, caption, { target = false } = {}) {
  const heads = ['When', 'Who', 'What', ...(target ? ['Record'] : []), 'Field', 'Old value', 'New value'];
  const rows = changeRows(entries, { target });
  if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: heads.length, class: 'empty' }, 'No changes recorded.')));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'list history' }, h('caption', {}, caption),
    h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows)));
}

export async function history(page, ctx) {
  const [clientId] = ctx.args;
  const id = encodeURIComponent(clientId);
  const entries = (await admin('GET', `/tokens/${id}/history`)).items;
  append(page, h('p', { class: 'crumbs' }, link('#/tokens', 'Tokens'), ' › ', link(`#/tokens/${id}`, clientId)),
    heading(`History of ${clientId}`), changeTable([...entries].reverse(), 'Every change, newest first'));
}
