// "My tokens": the self-service page of any signed-in caller (/admin/v1/me),
// the caller's own tokens with "Revoke" and "Delete", and "Add token" with at
// most the calling token's own access.

import { admin } from './api.js';
import { append, flash, h, heading, rerender, takeFlash } from './dom.js';
import { confirm } from './dialogs.js';
import { tokenTable } from './tokens.js';
import { tokenForm } from './tokenform.js';

async function act(token, verb) {
  const id = encodeURIComponent(token.client_id);
  if (verb === 'Revoke') {
    if (!(await confirm('Revoke token', `Revoke ${token.client_id}? It stops working at once, for good.`, 'Revoke'))) return;
    await admin('POST', `/me/tokens/${id}/revoke`, {});
  } else {
    if (!(await confirm('Delete token', `Delete ${token.client_id}? It stops working at once and is gone for good.`, 'Delete'))) return;
    await admin('DELETE', `/me/tokens/${id}`);
  }
  flash(`${verb === 'Revoke' ? 'Revoked' : 'Deleted'} ${token.client_id}.`);
  rerender();
}

export async function list(page, ctx) {
  const found = await admin('GET', '/me/tokens?limit=1000');
  const own = ctx.session.client_id;
  const extra = (token) => [
    token.client_id === own ? h('span', { class: 'muted' }, 'this session') : null,
    token.status === 'revoked' ? null : h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke ${token.client_id}`, onclick: () => act(token, 'Revoke') }, 'Revoke'),
    h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${token.client_id}`, onclick: () => act(token, 'Delete') }, 'Delete'),
  ];
  append(page, heading('My tokens'), takeFlash(),
    h('div', { class: 'toolbar' }, h('a', { href: '#/mine/new', class: 'button primary' }, 'Add token')),
    tokenTable(found.items, { base: null, extra, caption: `Tokens of ${ctx.session.user}` }));
}

export async function add(page, ctx) {
  append(page, heading('Add token'), h('p', {}, 'A token of your own, with at most the access of the token you signed in with.'),
    await tokenForm(page, ctx, { mode: 'me' }));
}
