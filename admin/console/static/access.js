// The access table of the seeds: one row per API with the radio choices "No
// access" (the default), "Read access", "Full access"; or one "Access level"
// with "Apply to all APIs", which sends the wildcard "*" (every API, present
// and future). Self-service callers cannot grant "*", so for them "Apply to
// all APIs" sets every row instead.

import { h, uid } from './dom.js';

const LEVELS = [['none', 'No access'], ['read', 'Read access'], ['full', 'Full access']];

export function accessTable(apis, access = {}, { wildcard = true } = {}) {
  const name = uid('access');
  const rows = apis.map((api) => {
    const level = access[api.name] || 'none';
    const radios = LEVELS.map(([value, label]) => {
      const input = h('input', { type: 'radio', name: `${name}-${api.name}`, value, checked: value === level });
      return h('td', {}, h('label', {}, input, ' ', label));
    });
    const title = api.description ? `${api.name} (${api.description})` : api.name;
    return h('tr', { 'data-field': `access.${api.name}`, 'data-api': api.name }, h('th', { scope: 'row' }, title), ...radios);
  });
  const allLevel = h('select', { id: uid('all-level') },
    ...LEVELS.map(([value, label]) => h('option', { value, selected: value === (access['*'] || 'none') }, label)));
  const allBox = h('input', { type: 'checkbox', id: uid('all'), checked: wildcard && '*' in access });
  const table = h('table', { class: 'access' },
    h('caption', {}, 'Access'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'API'), ...LEVELS.map(([, label]) => h('th', { scope: 'col' }, label)))),
    h('tbody', {}, rows));
  const sync = () => {
    if (!wildcard && allBox.checked) {
      for (const row of rows) row.querySelector(`input[value=${allLevel.value}]`).checked = true;
    }
    for (const input of table.querySelectorAll('input')) input.disabled = wildcard && allBox.checked;
  };
  allBox.addEventListener('change', sync);
  allLevel.addEventListener('change', sync);
  const group = h('fieldset', { class: 'access-group', 'data-field': 'access' },
    h('legend', {}, 'Access per API'),
    h('div', { class: 'table-wrap' }, table),
    h('div', { class: 'inline all-apis' },
      h('label', { for: allLevel.id }, 'Access level'), allLevel,
      h('span', { class: 'check' }, allBox, h('label', { for: allBox.id }, 'Apply to all APIs'))));
  sync();
  return {
    element: group,
    value() {
      if (wildcard && allBox.checked) return { '*': allLevel.value };
      const map = {};
      for (const row of rows) {
        const level = row.querySelector('input:checked').value;
        if (level !== 'none') map[row.dataset.api] = level;
      }
      return map;
    },
  };
}

export function describe(access) {
  const entries = Object.entries(access || {});
  if (!entries.length) return 'none';
  return entries.map(([api, level]) => `${api === '*' ? 'all APIs' : api}: ${level}`).join(', ');
}
