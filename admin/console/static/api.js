// The admin API and the console's session, over fetch with the session cookie.
// Unsafe methods carry the session's CSRF secret in X-CSRF-Token. A 401 means the
// session ended (signed out, idle, or its token revoked): the console goes back
// to the sign-in form. A 503 or an unreachable listener shows the banner.

export const SESSION = '/console/v1/session';
let csrf = '';

export function setCsrf(value) {
  csrf = value;
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `the request failed (${status})`);
    this.status = status;
    this.code = (body && body.error) || 'error';
    this.field = (body && body.field) || null;
  }
}

export function banner(text) {
  const el = document.getElementById('banner');
  el.textContent = text || '';
  el.hidden = !text;
}

export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!['GET', 'HEAD'].includes(method)) headers['X-CSRF-Token'] = csrf;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    banner('The admin listener cannot be reached. Check that Keystile is running, then retry.');
    throw new ApiError(0, { error: 'unreachable', message: 'the admin listener cannot be reached' });
  }
  const data = await parsed(response);
  if (response.status === 503) {
    banner('The credential store is unavailable: nothing can be read or changed right now. Retry in a moment.');
  } else {
    banner('');
  }
  if (response.status === 401 && path !== SESSION) {
    window.dispatchEvent(new CustomEvent('keystile:signed-out'));
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

async function parsed(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: 'bad_answer', message: `unexpected answer (${response.status})` };
  }
}

export const admin = (method, path, body) => call(method, `/admin/v1${path}`, body);

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
