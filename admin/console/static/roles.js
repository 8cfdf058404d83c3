// Roles: the list, "Add role", and a role's page to edit its access map with
// the same access table, or delete it (a 409 while tokens use it, shown as is).

import { admin } from './api.js';
import { append, field, flash, go, h, heading, link, takeFlash } from './dom.js';
import { confirm } from './dialogs.js';
import { showError, submitting } from './forms.js';
import { accessTable, describe } from './access.js';

const ADMIN_API = { name: 'admin', description: 'this admin API and console' };

export async function list(page, ctx) {
  const roles = (await admin('GET', '/roles')).items;
  const rows = roles.map((r) => h('tr', {}, h('td', {}, link(`#/roles/${encodeURIComponent(r.name)}`, r.name)),
    h('td', {}, r.description), h('td', {}, describe(r.access))));
  if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: 3, class: 'empty' }, 'No roles yet.')));
  append(page, heading('Roles'), takeFlash(),
    ctx.canWrite ? h('div', { class: 'toolbar' }, h('a', { href: '#/roles/new', class: 'button primary' }, 'Add role')) : null,
    h('div', { class: 'table-wrap' }, h('table', { class: 'list' }, h('caption', { class: 'vh' }, 'Roles'),
      h('thead', {}, h('tr', {}, ['Name', 'Description', 'Access'].map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows))));
}

function roleForm(role, ctx) {
  const name = role ? null : h('input', { type: 'text', 'data-field': 'name', required: true, autocomplete: 'off' });
  const description = h('input', { type: 'text', 'data-field': 'description', value: role ? role.description : '' });
  const access = accessTable([...ctx.session.apis, ADMIN_API], role ? role.access : {});
  const form = h('form', { novalidate: true }, name ? field('Name', name) : null, field('Description', description), access.element,
    ctx.canWrite ? h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save')) : null);
  if (!ctx.canWrite) for (const el of form.querySelectorAll('input, select')) el.disabled = true;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const roleName = role ? role.name : name.value.trim();
    const ok = await submitting(form, async () => {
      if (!roleName) throw Object.assign(new Error('a role needs a name'), { field: 'name' });
      await admin('PUT', `/roles/${encodeURIComponent(roleName)}`, { description: description.value, access: access.value() });
    }, { name, access: access.element });
    if (!ok) return;
    flash(`Saved role ${roleName}.`);
    go(`#/roles/${encodeURIComponent(roleName)}`);
  });
  return form;
}

export async function add(page, ctx) {
  append(page, h('p', { class: 'crumbs' }, link('#/roles', 'Roles')), heading('Add role'), roleForm(null, ctx));
}

export async function show(page, ctx) {
  const [name] = ctx.args;
  const role = await admin('GET', `/roles/${encodeURIComponent(name)}`);
  const form = roleForm(role, ctx);
  const bar = h('div', { class: 'toolbar' });
  if (ctx.canWrite) {
    bar.append(h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!(await confirm('Delete role', `Delete the role ${role.name}?`, 'Delete'))) return;
      try {
        await admin('DELETE', `/roles/${encodeURIComponent(role.name)}`);
      } catch (error) {
        if (error.status !== 401) showError(form, error);
        return;
      }
      flash(`Deleted role ${role.name}.`);
      go('#/roles');
    } }, 'Delete'));
  }
  append(page, h('p', { class: 'crumbs' }, link('#/roles', 'Roles')), heading(`Role ${role.name}`), takeFlash(), bar, form);
}
