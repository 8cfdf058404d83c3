// "Add token" and "Edit": User (chosen from existing users, or added in a
// dialog without leaving the form), Description, Role, the access table and
// "Expiration (months)", then "Save", "Save and add another" or "Save and
// continue editing". A new token's secret appears once, in the secret dialog.

import { admin, query } from './api.js';
import { append, field, flash, go, h, heading, takeFlash, uid } from './dom.js';
import { modal, secret } from './dialogs.js';
import { submitting } from './forms.js';
import { accessTable } from './access.js';

const ADMIN_API = { name: 'admin', description: 'this admin API and console' };

function addMonths(months) {
  const date = new Date();
  date.setUTCMonth(date.getUTCMonth() + months);
  return `${date.toISOString().slice(0, 19)}Z`;
}

function userDialog(select) {
  const username = h('input', { type: 'text', 'data-field': 'username', required: true, autocomplete: 'off' });
  const display = h('input', { type: 'text', 'data-field': 'display_name', autocomplete: 'off' });
  const email = h('input', { type: 'email', 'data-field': 'email', autocomplete: 'off' });
  const form = h('form', { method: 'dialog' }, field('Username', username), field('Display name', display), field('Email', email),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save'), h('button', { type: 'button', class: 'secondary', value: 'cancel' }, 'Cancel')));
  const dialog = modal('Add user', form);
  form.querySelector('[value=cancel]').addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let user;
    const ok = await submitting(form, async () => {
      user = await admin('POST', '/users', { username: username.value.trim(), display_name: display.value.trim(), email: email.value.trim() });
    });
    if (!ok) return;
    select.append(h('option', { value: user.username }, user.username));
    select.value = user.username;
    dialog.close();
    select.focus();
  });
  username.focus();
}

// Edit keeps the expiry unless asked; a self-service token can never outlive the
// calling one, so "me" offers the default (shortened by the API to the caller's
// expiry) and only the choices that end before it.
function expiryChoices(session, token, self) {
  const options = [];
  if (token) options.push(h('option', { value: '', selected: true }, `Keep (${token.expires_at.slice(0, 10)})`));
  if (self) {
    const until = (session.expires_at || '').slice(0, 10);
    options.push(h('option', { value: '', selected: true }, `${session.default_expiry_months} (at most until ${until}, when your token expires)`));
  }
  for (const months of session.expiry_months_choices) {
    if (self && (!session.expires_at || addMonths(months) >= session.expires_at)) continue;
    const selected = !token && !self && months === session.default_expiry_months;
    options.push(h('option', { value: String(months), selected }, String(months)));
  }
  return h('select', { 'data-field': token ? 'expires_at' : 'expires_in_months', id: uid('months') }, options);
}

async function userSelect(ctx, current) {
  const users = (await admin('GET', `/users${query({ limit: 1000, order: 'username' })}`)).items;
  const select = h('select', { 'data-field': 'user', id: uid('user'), required: true },
    h('option', { value: '' }, 'Choose a user'),
    ...users.map((u) => h('option', { value: u.username, selected: u.username.toLowerCase() === (current || '').toLowerCase() }, u.display_name ? `${u.username} (${u.display_name})` : u.username)));
  if (current && select.value === '') select.append(h('option', { value: current, selected: true }, current));
  return select;
}

async function roleSelect(token) {
  const roles = (await admin('GET', '/roles')).items;
  return h('select', { 'data-field': 'role', id: uid('role') },
    h('option', { value: '' }, 'No role'),
    ...roles.map((r) => h('option', { value: r.name, selected: token && token.role === r.name }, r.description ? `${r.name} (${r.description})` : r.name)));
}

// The form; `mode` is "admin" (/tokens) or "me" (/me/tokens: no user, no role).
export async function tokenForm(page, ctx, { token = null, mode = 'admin' } = {}) {
  const self = mode === 'me';
  const user = self ? null : await userSelect(ctx, token ? token.user : ctx.params.get('user'));
  const role = self ? null : await roleSelect(token);
  const description = h('input', { type: 'text', 'data-field': 'description', maxlength: 1000, value: token ? token.description : '' });
  const apis = self ? ctx.session.apis : [...ctx.session.apis, ADMIN_API];
  const access = accessTable(apis, token ? token.access : {}, { wildcard: !self });
  const months = expiryChoices(ctx.session, token, self);
  const addUser = user ? h('button', { type: 'button', class: 'secondary' }, 'Add user') : null;
  if (addUser) addUser.addEventListener('click', () => userDialog(user));
  const buttons = [['save', 'Save'], ['another', 'Save and add another'], ['continue', 'Save and continue editing']];
  const form = h('form', { class: 'token-form', novalidate: true },
    user ? h('div', { class: 'field' }, h('label', { for: user.id }, 'User'), h('div', { class: 'inline' }, user, addUser)) : null,
    field('Description', description),
    role ? field('Role', role, 'A role\'s access applies where the token has no entry of its own.') : null,
    access.element,
    field('Expiration (months)', months),
    h('div', { class: 'actions' }, ...buttons.map(([value, label], i) => h('button', { type: 'submit', value, class: i ? 'secondary' : 'primary' }, label))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const next = (event.submitter && event.submitter.value) || 'save';
    const body = { description: description.value, access: access.value() };
    if (user) body.user = user.value;
    if (role) body.role = role.value || null;
    let saved;
    const ok = await submitting(form, async () => {
      if (token) {
        if (months.value) body.expires_at = addMonths(Number(months.value));
        saved = await admin('PATCH', `/tokens/${encodeURIComponent(token.client_id)}`, body);
      } else {
        if (months.value) body.expires_in_months = Number(months.value);
        saved = await admin('POST', self ? '/me/tokens' : '/tokens', body);
      }
    }, { user, access: access.element });
    if (!ok) return;
    if (saved.token) await secret(saved);
    afterSave(saved, next, { self, edited: Boolean(token) });
  });
  return form;
}

function afterSave(saved, next, { self, edited }) {
  const id = encodeURIComponent(saved.client_id);
  flash(edited ? `Saved ${saved.client_id}.` : `Added ${saved.client_id}.`);
  if (self) go('#/mine');
  else if (next === 'another') go('#/tokens/new');
  else if (next === 'continue') go(`#/tokens/${id}/edit`);
  else go(edited ? `#/tokens/${id}` : '#/tokens');
}

export async function add(page, ctx) {
  append(page, heading('Add token'), await tokenForm(page, ctx));
}

export async function edit(page, ctx) {
  const [clientId] = ctx.args;
  const token = await admin('GET', `/tokens/${encodeURIComponent(clientId)}`);
  append(page, heading(`Edit ${clientId}`), takeFlash(), await tokenForm(page, ctx, { token }));
}
