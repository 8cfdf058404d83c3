// Real <dialog> elements opened with showModal(): focus moves into the dialog and
// back to the control that opened it when it closes; Escape cancels.

import { h, uid } from './dom.js';

export function modal(title, body, { closable = true } = {}) {
  const titleId = uid('dlg');
  const dialog = h('dialog', { 'aria-labelledby': titleId }, h('h2', { id: titleId }, title), body);
  const opener = document.activeElement;
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
  if (!closable) dialog.addEventListener('cancel', (event) => event.preventDefault());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

// A confirmation: resolves true when `confirmLabel` is pressed, false otherwise.
export function confirm(title, text, confirmLabel, { danger = true } = {}) {
  return new Promise((resolve) => {
    let answer = false;
    const yes = h('button', { type: 'button', class: danger ? 'danger' : '' }, confirmLabel);
    const no = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const dialog = modal(title, [h('p', {}, text), h('div', { class: 'actions' }, yes, no)]);
    yes.addEventListener('click', () => { answer = true; dialog.close(); });
    no.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => resolve(answer));
    no.focus();
  });
}

// The one time a secret is shown: the token with "Copy", its client id, a
// warning, and "I have saved the secret" to close. Escape does not close it,
// and the secret lives only in this dialog, which is removed from the page
// when it closes: a reload cannot show it again.
export function secret(issued) {
  return new Promise((resolve) => {
    const value = h('input', { type: 'text', readonly: true, id: uid('secret'), value: issued.token, class: 'secret', spellcheck: 'false', autocomplete: 'off' });
    const copied = h('span', { class: 'copied', role: 'status' });
    const copy = h('button', { type: 'button' }, 'Copy');
    const done = h('button', { type: 'button', class: 'primary' }, 'I have saved the secret');
    const dialog = modal('Save the new token', [
      h('p', { class: 'warning' }, 'This is the only time the token is shown. Copy it now and keep it somewhere safe: it cannot be shown again, only regenerated.'),
      h('dl', { class: 'record' }, h('dt', {}, 'Client ID'), h('dd', {}, h('code', { class: 'client-id' }, issued.client_id))),
      h('div', { class: 'field' }, h('label', { for: value.id }, 'New token'), h('div', { class: 'inline' }, value, copy, copied)),
      h('div', { class: 'actions' }, done),
    ], { closable: false });
    copy.addEventListener('click', async () => {
      value.select();
      try {
        await navigator.clipboard.writeText(issued.token);
        copied.textContent = 'Copied.';
      } catch {
        copied.textContent = document.execCommand('copy') ? 'Copied.' : 'Select the token and copy it.';
      }
    });
    done.addEventListener('click', () => {
      // Gone from the page now, not when the close event runs.
      value.value = '';
      value.removeAttribute('value');
      dialog.close();
    });
    dialog.addEventListener('close', () => resolve());
    value.focus();
    value.select();
  });
}
