// API errors beside the field they name (the error body's `field`, a dotted path
// such as access.orders), never as raw JSON; what names no field goes on top.

import { h, uid } from './dom.js';

export function clearErrors(form) {
  for (const el of form.querySelectorAll('.error')) el.remove();
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid');
    el.removeAttribute('aria-describedby');
  }
}

function target(form, name, fields) {
  if (!name) return null;
  const parts = name.split('.');
  for (let n = parts.length; n > 0; n -= 1) {
    const key = parts.slice(0, n).join('.');
    if (fields && fields[key]) return fields[key];
    const el = form.querySelector(`[data-field="${CSS.escape(key)}"]`);
    if (el) return el;
  }
  return null;
}

export function showError(form, error, fields) {
  const message = error.message || 'The request failed.';
  const el = target(form, error.field, fields);
  const note = h('p', { class: 'error', id: uid('err'), role: 'alert' }, message);
  if (el) {
    el.setAttribute('aria-invalid', 'true');
    el.setAttribute('aria-describedby', note.id);
    (el.closest('.field') || el).after(note);
    if (typeof el.focus === 'function') el.focus();
  } else {
    form.prepend(note);
  }
  return note;
}

// Runs `action`; an ApiError lands in the form. Answers whether it succeeded.
export async function submitting(form, action, fields) {
  clearErrors(form);
  const buttons = [...form.querySelectorAll('button')];
  for (const b of buttons) b.disabled = true;
  try {
    await action();
    return true;
  } catch (error) {
    if (error.status !== 401) showError(form, error, fields);
    return false;
  } finally {
    for (const b of buttons) if (b.isConnected) b.disabled = false;
  }
}
