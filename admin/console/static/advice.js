// A token's observed uses and the access they suggest (docs/least-privilege.md):
// "Usage" (uses per API in the last 30 days, safe and unsafe methods apart)
// and "Suggested access" (the tightest access that allowed every one of them),
// with "Apply suggestion" (confirmed) for callers with full admin access. The
// suggestion applied is the one shown: it is sent as `expected`, so one that
// changed meanwhile is refused and nothing changes. Admin is an API like any
// other here: its calls are counted, so it has a row when its level changes.

import { admin } from './api.js';
import { flash, h, rerender } from './dom.js';
import { confirm } from './dialogs.js';

const LABEL = { none: 'No access', read: 'Read access', full: 'Full access' };

function table(cls, caption, heads, rows, empty) {
  if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: heads.length, class: 'empty' }, empty)));
  return h('div', { class: 'table-wrap' }, h('table', { class: `list ${cls}` }, h('caption', {}, caption),
    h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows)));
}

function usageTable(usage) {
  const rows = usage.items.map((item) => h('tr', {}, h('th', { scope: 'row' }, item.api),
    h('td', {}, String(item.safe)), h('td', {}, String(item.unsafe)), h('td', {}, item.last_day || '—')));
  return table('usage', `Usage since ${usage.since} (UTC days)`, ['API', 'Safe', 'Unsafe', 'Last day'], rows, 'No APIs.');
}

async function apply(token, advice) {
  const text = `Give ${token.client_id} the suggested access ${JSON.stringify(advice.proposed)}? `
    + 'It takes effect at once; the change is recorded in its history.';
  if (!(await confirm('Apply suggestion', text, 'Apply'))) return;
  await admin('POST', `/tokens/${encodeURIComponent(token.client_id)}/advice/apply`, { expected: advice.proposed });
  flash(`Applied the suggested access to ${token.client_id}.`);
  rerender();
}

// The signed-in token may not apply a suggestion that takes its own full admin
// access (the API answers 409): it could not undo it.
function locksOut(token, advice, ctx) {
  return token.client_id === ctx.session.client_id && advice.proposed.admin !== 'full';
}

function suggestion(token, advice, ctx) {
  const rows = Object.entries(advice.changes).map(([api, [now, then]]) => h('tr', {},
    h('th', { scope: 'row' }, api), h('td', {}, LABEL[now]), h('td', {}, LABEL[then])));
  const changes = table('suggestion', 'Suggested access', ['API', 'Now', 'Suggested'], rows,
    'Nothing to tighten: every level was needed.');
  const offered = ctx.canWrite && Object.keys(advice.changes).length;
  const selfLock = offered && locksOut(token, advice, ctx);
  const button = offered && !selfLock
    ? h('button', { type: 'button', onclick: () => apply(token, advice) }, 'Apply suggestion') : null;
  const lockHint = selfLock ? h('p', { class: 'hint' },
    'This is the token you signed in with: applying would take its full admin access. Apply it with another admin token.') : null;
  return h('section', { class: 'advice' }, changes,
    h('p', {}, 'Access map suggested: ', h('code', {}, JSON.stringify(advice.proposed))),
    advice.notes.map((note) => h('p', { class: 'hint' }, note)), lockHint, button);
}

export async function usageSections(token, ctx) {
  const id = encodeURIComponent(token.client_id);
  const [usage, advice] = await Promise.all([admin('GET', `/tokens/${id}/usage`), admin('GET', `/tokens/${id}/advice`)]);
  return [usageTable(usage), suggestion(token, advice, ctx)];
}
