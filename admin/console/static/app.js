// The console's shell: sign-in, the navigation for the caller's level, and the
// hash router (#/tokens?order=user,-created_at&q=...: a view is a bookmark).

import { SESSION, banner, call, setCsrf } from './api.js';
import { h, heading, rerender } from './dom.js';
import { showError, clearErrors } from './forms.js';
import * as tokens from './tokens.js';
import * as tokenForm from './tokenform.js';
import * as tokenPage from './tokenpage.js';
import * as users from './users.js';
import * as roles from './roles.js';
import * as audit from './audit.js';
import * as mine from './mine.js';

const main = document.getElementById('main');
let session = null;

const ROUTES = [
  [/^\/tokens$/, tokens.show, 'read'],
  [/^\/tokens\/new$/, tokenForm.add, 'full'],
  [/^\/tokens\/([^/]+)\/edit$/, tokenForm.edit, 'full'],
  [/^\/tokens\/([^/]+)\/history$/, tokenPage.history, 'read'],
  [/^\/tokens\/([^/]+)$/, tokenPage.show, 'read'],
  [/^\/users$/, users.list, 'read'],
  [/^\/users\/new$/, users.add, 'full'],
  [/^\/users\/([^/]+)$/, users.show, 'read'],
  [/^\/roles$/, roles.list, 'read'],
  [/^\/roles\/new$/, roles.add, 'full'],
  [/^\/roles\/([^/]+)$/, roles.show, 'read'],
  [/^\/audit$/, audit.show, 'read'],
  [/^\/mine$/, mine.list, 'none'],
  [/^\/mine\/new$/, mine.add, 'none'],
];
const RANK = { none: 0, read: 1, full: 2 };

function landing() {
  return session.level === 'none' ? '#/mine' : '#/tokens';
}

function navigation() {
  const items = session.level === 'none'
    ? [['#/mine', 'My tokens']]
    : [['#/tokens', 'Tokens'], ['#/users', 'Users'], ['#/roles', 'Roles'], ['#/audit', 'Audit'], ['#/mine', 'My tokens']];
  const path = location.hash.split('?')[0];
  document.getElementById('nav').replaceChildren(...items.map(([href, text]) => h('li', {},
    h('a', { href, 'aria-current': path.startsWith(href) ? 'page' : null }, text))));
  const level = { full: 'full access', read: 'read access', none: 'self-service' }[session.level];
  document.getElementById('whoami').textContent = `${session.user} (${level})`;
  document.getElementById('bar').hidden = false;
}

async function route() {
  if (!session) return;
  const [path, search] = location.hash.slice(1).split('?');
  const found = ROUTES.map(([pattern, view, needs]) => [path.match(pattern), view, needs]).find(([m]) => m);
  if (!found || RANK[session.level] < RANK[found[2]]) {
    location.replace(landing());
    return;
  }
  const [match, view] = found;
  navigation();
  const ctx = {
    session,
    params: new URLSearchParams(search || ''),
    args: match.slice(1).map(decodeURIComponent),
    canWrite: session.level === 'full',
  };
  const page = h('div', { class: 'page' });
  main.replaceChildren(page);
  try {
    await view(page, ctx);
  } catch (error) {
    if (error.status === 401) return;
    page.replaceChildren(...failed(error));
  }
  const title = page.querySelector('h1');
  if (title && document.activeElement === document.body) title.focus();
}

// A page that could not load: the banner already says why when the store or the
// listener is down; anything else shows the API's own message.
function failed(error) {
  const retry = h('button', { type: 'button', onclick: rerender }, 'Retry');
  if (error.status === 503 || error.status === 0) {
    return [heading('Not available right now'), h('p', {}, 'This page could not be loaded. '), retry];
  }
  return [heading('Something went wrong'), h('p', { class: 'error', role: 'alert' }, error.message), retry];
}

function signInForm(message) {
  session = null;
  setCsrf('');
  document.getElementById('bar').hidden = true;
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const form = h('form', { class: 'sign-in', novalidate: true },
    heading('Sign in to Keystile'),
    message ? h('p', { class: 'notice', role: 'status' }, message) : null,
    h('p', {}, 'Paste an API token. Your access on the admin API decides what the console shows.'),
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'Token'), input),
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      session = await call('POST', SESSION, { token: input.value });
    } catch (error) {
      input.value = '';
      showError(form, error, { token: input });
      return;
    }
    input.value = '';
    started();
  });
  main.replaceChildren(form);
  input.focus();
}

function started() {
  setCsrf(session.csrf);
  if (!location.hash || location.hash === '#/' || location.hash === '#') location.replace(landing());
  route();
}

async function signOut() {
  try {
    await call('DELETE', SESSION);
  } finally {
    signInForm('You are signed out.');
  }
}

async function boot() {
  document.getElementById('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  window.addEventListener('keystile:signed-out', () => {
    if (session) signInForm('Your session has ended. Sign in again.');
  });
  try {
    session = await call('GET', SESSION);
  } catch (error) {
    if (error.status && error.status !== 401) banner(error.message);
    signInForm();
    return;
  }
  started();
}

boot();
