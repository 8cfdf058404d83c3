// The global change log, newest first, from GET /admin/v1/audit.

import { admin, query } from './api.js';
import { append, heading } from './dom.js';
import { changeTable } from './tokenpage.js';

export async function show(page) {
  const entries = (await admin('GET', `/audit${query({ limit: 200 })}`)).items;
  append(page, heading('Audit'), changeTable(entries, 'The last 200 changes, newest first', { target: true }));
}
