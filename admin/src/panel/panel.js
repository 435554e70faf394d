// Connector Access Control: the key-management panel of tower-apikey's admin router.
//
// Plain JavaScript over the router's JSON API, with no dependencies. Rules this file keeps:
// - Data reaches the page only through `textContent` and attributes, never as markup:
//   key names are user input.
// - The admin key lives in `sessionStorage` only, and travels only in the
//   `Authorization` header. A new key is held by its one-time dialog alone, and the
//   dialog's text is cleared and the dialog removed when it is dismissed.
// - Behind the application's login (the page's `tower-apikey-auth` meta says
//   `session`), there is no admin key: calls carry the browser's same-origin cookies.
// - Nothing is logged: no data, and above all no key, goes to the developer tools.
'use strict';

(() => {
  // Building the page without markup strings: dom.js, loaded first.
  const { el, say } = panelDom;

  const STORAGE_ITEM = 'tower-apikey.admin-key';
  const DAY_MS = 24 * 60 * 60 * 1000;
  /** Keys expiring within this many days are "expiring soon" (the layer's warning window). */
  const EXPIRING_DAYS = 30;
  /** A key unused for this long is dormant. */
  const DORMANT_DAYS = 30;
  /** A key never used is dormant once it is this old: time enough to be deployed. */
  const NEVER_USED_DAYS = 7;
  /** The longest life of a key. */
  const MAX_DAYS = 365;
  /** The API's default grace for a rotation that ends the old key after the new key's first use. */
  const DEFAULT_GRACE_SECS = 300;

  // The API sits beside this script, wherever the application mounts the router, so
  // every URL is resolved against the script's own address.
  const scriptUrl = document.currentScript ? document.currentScript.src : location.href;
  const apiBase = new URL('.', scriptUrl);

  /** 'key': the administrator pastes an admin key. 'session': the application's login. */
  const authMeta = document.querySelector('meta[name="tower-apikey-auth"]');
  const AUTH = authMeta && authMeta.content === 'session' ? 'session' : 'key';

  const $ = (id) => document.getElementById(id);
  const ui = {
    session: $('session'),
    sessionKey: $('session-key'),
    forget: $('forget'),
    status: $('status'),
    alert: $('alert'),
    signin: $('signin'),
    signinForm: $('signin-form'),
    adminKey: $('admin-key'),
    panel: $('panel'),
    createForm: $('create-form'),
    createSubmit: $('create-submit'),
    name: $('create-name'),
    scopes: $('create-scopes'),
    scopesText: $('scopes-text'),
    scopeChoices: $('scopes-choices'),
    scopeList: $('scope-list'),
    expires: $('create-expires'),
    createError: $('create-error'),
    refresh: $('refresh'),
    newKey: $('new-key'),
    summary: $('summary'),
    rows: $('key-rows'),
    keysTitle: $('keys-title'),
    confirm: $('confirm'),
    confirmForm: $('confirm-form'),
    confirmTitle: $('confirm-title'),
    confirmText: $('confirm-text'),
    confirmHeirs: $('confirm-heirs'),
    confirmHeirsText: $('confirm-heirs-text'),
    confirmHeirsList: $('confirm-heirs-list'),
    confirmOverlap: $('confirm-overlap'),
    overlap: $('overlap'),
    confirmGrace: $('confirm-grace'),
    grace: $('grace'),
    confirmCancel: $('confirm-cancel'),
    confirmOk: $('confirm-ok'),
    find: $('find'),
    search: $('search'),
    stateFilter: $('state-filter'),
    sort: $('sort'),
    exportCsv: $('export'),
    more: $('more'),
    tenantShown: $('tenant-shown'),
    tenantFilterField: $('tenant-filter-field'),
    tenantFilter: $('tenant-filter'),
    tenantFilterError: $('tenant-filter-error'),
    tenantColumn: $('tenant-column'),
    createTenantField: $('create-tenant-field'),
    createTenant: $('create-tenant'),
  };

  /** The API's field names, and the inputs that hold them. */
  const FIELDS = { name: ui.name, tenant: ui.createTenant, scopes: ui.scopes, expires_at: ui.expires };

  /**
   * The scope catalogue (`null` without one: scopes are free text), and who is acting
   * with what they may grant, as `GET scopes` says.
   */
  let catalogue = null;
  let actor = null;

  /**
   * Whose keys the panel shows (DESIGN §14), as `GET scopes` says: `{ tenant: 'acme' }`
   * for a tenant's administrator, who sees that tenant alone; `{ operator: true }` for
   * an operator, who sees every tenant, filters by one and creates keys in any; `{}`
   * for a server that names no tenant.
   */
  let tenancy = {};

  /** A tenant id's alphabet, as the server's: the server stays the authority. */
  const TENANT_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

  // ---- the admin key: sessionStorage only -------------------------------------------

  function storedKey() {
    try {
      return sessionStorage.getItem(STORAGE_ITEM);
    } catch {
      return null;
    }
  }

  function storeKey(key) {
    try {
      sessionStorage.setItem(STORAGE_ITEM, key);
      return true;
    } catch {
      return false;
    }
  }

  function forgetKey() {
    try {
      sessionStorage.removeItem(STORAGE_ITEM);
    } catch {
      // Storage is unavailable, so nothing is stored either.
    }
  }

  /** The public id inside a key (`<prefix>_<id>_<secret>`), or null. */
  function keyIdOf(key) {
    const parts = (key || '').split('_');
    return parts.length === 3 && /^[0-9A-Za-z]{16}$/.test(parts[1]) ? parts[1] : null;
  }

  function warn(text) {
    ui.alert.textContent = text;
    ui.alert.hidden = !text;
  }

  // ---- talking to the API ----------------------------------------------------------

  /** Thrown once the panel has already shown what went wrong. */
  class Shown extends Error {}

  async function problemOf(response) {
    try {
      const body = await response.json();
      return body && typeof body === 'object' ? body : {};
    } catch {
      return {};
    }
  }

  function describe(response, problem) {
    const title = problem.title || response.statusText || 'Error';
    const detail = problem.detail ? `: ${problem.detail}` : '';
    return `${response.status} ${title}${detail}`;
  }

  /**
   * Calls the API with the admin key. A refused key (401, 403) sends the administrator
   * back to the sign-in form with a message saying which, and throws `Shown`.
   */
  async function api(method, path, body) {
    const headers = { Accept: 'application/json, application/problem+json' };
    if (AUTH === 'key') {
      const key = storedKey();
      if (!key) {
        signOut('Paste an admin key to continue.');
        throw new Shown();
      }
      headers.Authorization = `ApiKey-v2 ${key}`;
    }
    const init = {
      method,
      headers,
      cache: 'no-store',
      // The session cookie, behind a login; nothing ambient with an admin key.
      credentials: AUTH === 'session' ? 'same-origin' : 'omit',
      redirect: 'error',
      referrerPolicy: 'no-referrer',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(new URL(path, apiBase), init);
    } catch {
      warn('The server cannot be reached. Check that it is running, then press Refresh.');
      throw new Shown();
    }
    if (response.status === 401) {
      const problem = await problemOf(response);
      if (AUTH === 'session') {
        sessionEnded();
        throw new Shown();
      }
      const why = problem.detail ? ` The server says: ${problem.detail}.` : '';
      signOut(
        `401 Unauthorized: the server does not accept this admin key (unknown, mistyped, expired or revoked).${why} Paste a valid key.`,
      );
      throw new Shown();
    }
    if (response.status === 403) {
      // A key beyond what the signed-in actor may grant, or less restricted than the
      // acting key (DESIGN §12): the caller says so.
      const problem = await problemOf(response.clone());
      if (Array.isArray(problem.not_grantable) || Array.isArray(problem.too_loose)) return response;
      if (AUTH === 'session') {
        warn(describe(response, problem));
        throw new Shown();
      }
      signOut(
        '403 Forbidden: this key is valid but lacks the scope admin:keys, which key management needs. Paste a key that has it.',
      );
      throw new Shown();
    }
    return response;
  }

  /** Behind a login: nobody is signed in any more. There is no key to ask for. */
  function sessionEnded() {
    ui.rows.replaceChildren();
    ui.summary.textContent = '';
    ui.panel.hidden = true;
    ui.session.hidden = true;
    say('');
    warn(
      '401 Unauthorized: you are not signed in to this application, or your session has ended. Sign in again, then reload this page.',
    );
  }

  /** Shows an unexpected answer; `Shown` errors were shown already. */
  function fail(error) {
    if (!(error instanceof Shown)) {
      warn(`Something went wrong: ${error && error.message ? error.message : error}`);
    }
  }

  // ---- signing in and out ----------------------------------------------------------

  function signOut(message) {
    forgetKey();
    ui.rows.replaceChildren();
    ui.summary.textContent = '';
    ui.panel.hidden = true;
    ui.session.hidden = true;
    ui.sessionKey.textContent = '';
    ui.signin.hidden = false;
    say('');
    warn(message || '');
    ui.adminKey.focus();
  }

  function showPanel() {
    ui.signin.hidden = true;
    ui.panel.hidden = false;
    ui.session.hidden = false;
    ui.forget.hidden = AUTH !== 'key';
    if (AUTH === 'session') {
      ui.sessionKey.textContent = actor ? `Signed in as ${actor.name}` : 'Signed in';
    } else {
      const id = keyIdOf(storedKey());
      ui.sessionKey.textContent = id ? `Signed in with admin key ${id}` : 'Signed in';
    }
    if (actor) {
      ui.sessionKey.title = actor.may_grant.length
        ? `May grant: ${actor.may_grant.join(' ')}`
        : 'May grant no scopes';
    }
  }

  async function onSignin(event) {
    event.preventDefault();
    const key = ui.adminKey.value.trim();
    // The key leaves the DOM at once: from here on it is only in sessionStorage.
    ui.adminKey.value = '';
    if (!key) {
      warn('Paste an admin key: a key with the scope admin:keys.');
      ui.adminKey.focus();
      return;
    }
    if (!storeKey(key)) {
      warn('This browser refuses session storage, which the panel needs to keep the key.');
      return;
    }
    try {
      await loadAll();
      warn('');
      showPanel();
      say(`Signed in. ${ui.summary.textContent}`);
      ui.keysTitle.focus();
    } catch (error) {
      fail(error);
    }
  }

  // ---- time ------------------------------------------------------------------------

  const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

  /** `2026-05-01 12:00 UTC`, as a date and a time that each stay on one line. */
  function utc(iso) {
    const text = new Date(iso).toISOString();
    return [
      el('span', { class: 'date' }, text.slice(0, 10)),
      ' ',
      el('span', { class: 'clock' }, `${text.slice(11, 16)} UTC`),
    ];
  }

  function fromNow(iso, now) {
    const ms = Date.parse(iso) - now;
    const abs = Math.abs(ms);
    if (abs < 60 * 1000) return ms < 0 ? 'just now' : 'in under a minute';
    // Rounded first, so that 59.9 minutes reads "in 1 hour", not "in 60 minutes".
    const minutes = Math.round(ms / 60000);
    if (Math.abs(minutes) < 60) return relative.format(minutes, 'minute');
    if (abs < 2 * DAY_MS) return relative.format(Math.round(ms / 3600000), 'hour');
    return relative.format(Math.round(ms / DAY_MS), 'day');
  }

  function timeCell(iso, now, withRelative) {
    if (!iso) return [el('span', { class: 'never' }, 'never')];
    const parts = [el('time', { datetime: iso, title: iso }, ...utc(iso))];
    if (withRelative) parts.push(el('span', { class: 'relative' }, fromNow(iso, now)));
    return parts;
  }

  /** "5 min", "30 s": a grace for people. */
  function graceText(secs) {
    if (secs % 86400 === 0) return `${secs / 86400} d`;
    if (secs % 3600 === 0) return `${secs / 3600} h`;
    if (secs % 60 === 0) return `${secs / 60} min`;
    return `${secs} s`;
  }

  /**
   * The expiry and, under it, the end a rotation scheduled (the key stops at the
   * earlier), or the end an until-first-use rotation will set: `successor` is the key
   * that replaced this one, if listed.
   */
  function expiresCell(record, now, successor) {
    const parts = timeCell(record.expires_at, now, true);
    const ends = endOf(record);
    const pending =
      ends === null && !record.revoked_at && successor && successor.predecessor_grace_secs != null
        && !successor.last_used_at;
    if (pending) {
      parts.push(
        el(
          'span',
          { class: 'ends pending' },
          `ends ${graceText(successor.predecessor_grace_secs)} after the new key's first use`,
        ),
      );
    }
    if (ends !== null) {
      parts.push(
        el(
          'span',
          { class: 'ends' },
          ends <= now ? 'ended ' : 'ends ',
          el('time', { datetime: record.ends_at, title: record.ends_at }, ...utc(record.ends_at)),
          el('span', { class: 'relative' }, fromNow(record.ends_at, now)),
        ),
      );
    }
    return cell('Expires', ...parts);
  }

  function isoDate(ms) {
    return new Date(ms).toISOString().slice(0, 10);
  }

  /** The date picker offers tomorrow to 365 days from today (UTC), the API's range. */
  function limitExpiry() {
    const now = Date.now();
    ui.expires.min = isoDate(now + DAY_MS);
    ui.expires.max = isoDate(now + MAX_DAYS * DAY_MS);
  }

  // ---- the list --------------------------------------------------------------------

  const STATE_LABELS = {
    active: 'active',
    expiring: 'expiring soon',
    expired: 'expired',
    ended: 'ended by rotation',
    revoked: 'revoked',
  };

  /** The end a rotation scheduled, in ms, if it comes before the expiry (as the API sees it). */
  function endOf(record) {
    if (!record.ends_at) return null;
    const ends = Date.parse(record.ends_at);
    return ends < Date.parse(record.expires_at) ? ends : null;
  }

  /** Like the server: any revocation wins, then the earlier of the end and the expiry. */
  function stateOf(record, now) {
    if (record.revoked_at) return 'revoked';
    const expires = Date.parse(record.expires_at);
    const ends = endOf(record);
    if (ends !== null && ends <= now) return 'ended';
    if (expires <= now) return 'expired';
    const stops = ends === null ? expires : ends;
    if (stops - now <= EXPIRING_DAYS * DAY_MS) return 'expiring';
    return 'active';
  }

  function isInactive(state) {
    return state === 'revoked' || state === 'expired' || state === 'ended';
  }

  function isDormant(record, state, now) {
    if (isInactive(state)) return false;
    if (record.last_used_at) return now - Date.parse(record.last_used_at) > DORMANT_DAYS * DAY_MS;
    return now - Date.parse(record.created_at) > NEVER_USED_DAYS * DAY_MS;
  }

  /** A link to another row that moves focus there, leaving the URL alone. */
  function rowLink(id) {
    const link = el('a', { href: `#key-${id}`, class: 'row-link' }, el('code', {}, id));
    link.addEventListener('click', (event) => {
      event.preventDefault();
      // The other key of a rotation may be on a page not loaded yet: find it by id.
      if (!focusRow(id)) findKey(id);
    });
    return link;
  }

  function focusRow(id) {
    const row = $(`key-${id}`);
    if (row) {
      row.focus();
      return true;
    }
    return false;
  }

  function cell(label, ...children) {
    return el('td', { role: 'cell', 'data-label': label }, ...children);
  }

  /**
   * "by …": who acted on a key, a link to its row when it is a key on the list, else
   * the person's name as text. Nothing when the application itself acted.
   */
  function byLine(name, listed) {
    if (!name) return null;
    const who = listed.has(name) ? rowLink(name) : el('span', { class: 'person' }, name);
    return el('span', { class: 'by' }, 'by ', who);
  }

  function render(records) {
    const now = Date.now();
    // rotated_from links the new key to the old; show the way back too.
    const replacedBy = new Map();
    for (const r of records) if (r.rotated_from) replacedBy.set(r.rotated_from, r.id);
    const listed = new Set(records.map((r) => r.id));
    const byId = new Map(records.map((r) => [r.id, r]));

    const counts = { active: 0, expiring: 0, expired: 0, ended: 0, revoked: 0, dormant: 0 };
    const rows = records.map((record) => {
      const state = stateOf(record, now);
      const dormant = isDormant(record, state, now);
      counts[state] += 1;
      if (dormant) counts.dormant += 1;

      const idCell = cell('ID', el('code', {}, record.id));
      if (record.rotated_from) {
        idCell.append(el('span', { class: 'link' }, 'rotated from ', rowLink(record.rotated_from)));
      }
      if (replacedBy.has(record.id)) {
        idCell.append(el('span', { class: 'link' }, 'replaced by ', rowLink(replacedBy.get(record.id))));
      }

      const scopes = record.scopes.length
        ? el('ul', { class: 'scopes' }, ...record.scopes.map((s) => el('li', {}, el('code', {}, s))))
        : el('span', { class: 'none' }, 'none (authenticates only)');

      const stateCell = cell(
        'State',
        el('span', { class: `badge state-${state}` }, STATE_LABELS[state]),
      );
      if (dormant) stateCell.append(' ', el('span', { class: 'badge dormant' }, 'dormant'));
      const revokedBy = byLine(record.revoked_by, listed);
      if (revokedBy) stateCell.append(revokedBy);

      const actions = cell('Actions');
      const who = `${record.name} (${record.id})`;
      if (!isInactive(state)) {
        const rotate = el('button', { type: 'button', class: 'secondary', 'aria-label': `Rotate ${who}` }, 'Rotate');
        rotate.addEventListener('click', () => onRotate(record, rotate));
        actions.append(rotate);
      }
      if (state !== 'revoked') {
        const revoke = el('button', { type: 'button', class: 'danger', 'aria-label': `Revoke ${who}` }, 'Revoke');
        revoke.addEventListener('click', () => onRevoke(record, revoke));
        actions.append(revoke);
      }

      const classes = [`state-${state}`];
      if (dormant) classes.push('is-dormant');
      return el(
        'tr',
        { id: `key-${record.id}`, role: 'row', tabindex: '-1', class: classes.join(' ') },
        el('th', { scope: 'row', role: 'rowheader', 'data-label': 'Name', class: 'name' }, record.name),
        idCell,
        tenancy.operator ? tenantCell(record) : null,
        cell('Scopes', scopes),
        cell(
          'Created',
          ...timeCell(record.created_at, now, false),
          byLine(record.created_by, listed),
        ),
        expiresCell(record, now, byId.get(replacedBy.get(record.id))),
        cell('Last used', ...timeCell(record.last_used_at, now, true)),
        stateCell,
        actions,
      );
    });
    ui.rows.replaceChildren(...rows);
    // history.js adds each key's history, chart and flags (the audit trail).
    // limits.js adds each key's limits, recent addresses and editor; `reload` shows a change.
    document.dispatchEvent(
      new CustomEvent('tower-apikey:rendered', { detail: { records, api, reload: loadKeys } }),
    );

    const parts = [];
    for (const state of ['active', 'expiring', 'expired', 'ended', 'revoked']) {
      if (counts[state]) parts.push(`${counts[state]} ${STATE_LABELS[state]}`);
    }
    if (counts.dormant) parts.push(`${counts.dormant} dormant`);
    const total = `${records.length} ${records.length === 1 ? 'key' : 'keys'}`;
    const filtered = view.q || view.state || view.tenant;
    let summary = parts.length ? `${total}: ${parts.join(', ')}.` : `${total}.`;
    if (filtered && records.length === 0) {
      summary = view.tenant
        ? 'No key matches the search, state and tenant.'
        : 'No key matches the search and state.';
    }
    if (nextUrl) summary += ' More keys follow: press “Show more keys”.';
    ui.summary.textContent = summary;
    ui.more.hidden = !nextUrl;
    showSort();
    limitExpiry();
  }

  // ---- tenants (DESIGN §14) --------------------------------------------------------

  /** What a tenant id may hold, said as the field errors say it. */
  const TENANT_RULE =
    'a tenant id is 1 to 64 of the letters A-Z and a-z, digits and . _ : - (no spaces)';

  /** The tenant's name above the list, and the operator's filter, field and column. */
  function renderTenancy() {
    const operator = Boolean(tenancy.operator);
    ui.tenantFilterField.hidden = !operator;
    ui.createTenantField.hidden = !operator;
    ui.tenantColumn.hidden = !operator;
    if (!operator) {
      ui.tenantFilter.value = '';
      ui.createTenant.value = '';
      view.tenant = '';
    }
    showTenantShown();
  }

  /** "Keys of tenant acme", or "All tenants (operator)": whose keys the list holds. */
  function showTenantShown() {
    let text = '';
    if (tenancy.tenant) text = `Keys of tenant ${tenancy.tenant}`;
    else if (tenancy.operator && view.tenant) text = `Keys of tenant ${view.tenant} (operator)`;
    else if (tenancy.operator) text = 'All tenants (operator)';
    ui.tenantShown.textContent = text;
    ui.tenantShown.hidden = !text;
  }

  /** The operator's tenant filter into the view; false (and the error shown) if it is not a tenant id. */
  function readTenantFilter() {
    const text = tenancy.operator ? ui.tenantFilter.value.trim() : '';
    const valid = text === '' || TENANT_PATTERN.test(text);
    ui.tenantFilterError.textContent = valid ? '' : TENANT_RULE;
    ui.tenantFilterError.hidden = valid;
    if (valid) {
      ui.tenantFilter.removeAttribute('aria-invalid');
      view.tenant = text;
      showTenantShown();
    } else {
      ui.tenantFilter.setAttribute('aria-invalid', 'true');
      ui.tenantFilter.focus();
    }
    return valid;
  }

  /** A key's tenant, for an operator's list: its id, or "none" for the application's own. */
  function tenantCell(record) {
    return cell(
      'Tenant',
      record.tenant ? el('code', {}, record.tenant) : el('span', { class: 'none' }, 'none'),
    );
  }

  // ---- finding keys: search, state, order, pages, CSV export -------------------------
  //
  // The server filters, sorts and pages (`GET keys?q=&state=&sort=&limit=`); the page
  // shows what it has loaded and follows the `Link` header for more. The export
  // follows every page of the same query, 1000 at a time, and builds the file here:
  // an admin key travels only in a header, which a plain download link cannot carry,
  // and each request stays one bounded page for the server.

  /** Keys per page shown, and per request of an export (the API's maximum). */
  const PAGE_SIZE = 100;
  const EXPORT_PAGE_SIZE = 1000;

  /** What the list shows: the search text, the state filter and the order. */
  const view = { q: '', state: '', sort: '-created', tenant: '' };
  /** The records loaded so far, and where the next page is (`null`: no more). */
  let loaded = [];
  let nextUrl = null;
  /** Bumped by every new list, so that an answer to an older one is dropped. */
  let listGeneration = 0;

  function listUrl(limit) {
    const params = new URLSearchParams();
    params.set('limit', String(limit));
    if (view.q) params.set('q', view.q);
    if (view.state) params.set('state', view.state);
    if (view.sort !== '-created') params.set('sort', view.sort);
    if (tenancy.operator && view.tenant) params.set('tenant', view.tenant);
    return new URL(`keys?${params}`, apiBase);
  }

  /** The `rel="next"` target of a `Link` header, resolved against the request's URL. */
  function nextOf(response, requestUrl) {
    const link = response.headers.get('Link');
    if (!link) return null;
    for (const part of link.split(',')) {
      const match = /^\s*<([^>]*)>\s*;\s*rel="?next"?\s*$/i.exec(part);
      if (match) return new URL(match[1], requestUrl);
    }
    return null;
  }

  async function fetchPage(url) {
    const response = await api('GET', url);
    if (!response.ok) {
      warn(`The keys could not be listed. ${describe(response, await problemOf(response))}`);
      throw new Shown();
    }
    return { records: await response.json(), next: nextOf(response, url) };
  }

  async function loadKeys() {
    const generation = ++listGeneration;
    const page = await fetchPage(listUrl(PAGE_SIZE));
    if (generation !== listGeneration) return;
    loaded = page.records;
    nextUrl = page.next;
    render(loaded);
  }

  async function onMore() {
    if (!nextUrl) return;
    const generation = listGeneration;
    ui.more.disabled = true;
    try {
      const page = await fetchPage(nextUrl);
      if (generation !== listGeneration) return;
      const first = page.records[0];
      loaded = loaded.concat(page.records);
      nextUrl = page.next;
      render(loaded);
      if (first) focusRow(first.id);
    } catch (error) {
      fail(error);
    } finally {
      ui.more.disabled = false;
    }
  }

  /** Reads the search form and lists the first page it asks for. */
  async function applyView() {
    if (!readTenantFilter()) return;
    view.q = ui.search.value.trim();
    view.state = ui.stateFilter.value;
    view.sort = ui.sort.value;
    try {
      await loadKeys();
      // The summary, a live region, says what the list now holds.
      say('');
    } catch (error) {
      fail(error);
    }
  }

  /** The column headers say which one the list is sorted by, and which way. */
  function showSort() {
    const field = view.sort.replace(/^-/, '');
    for (const th of document.querySelectorAll('#key-table thead th[data-sort]')) {
      if (th.dataset.sort === field) {
        th.setAttribute('aria-sort', view.sort.startsWith('-') ? 'descending' : 'ascending');
      } else {
        th.removeAttribute('aria-sort');
      }
    }
  }

  /** A column header sorts by its column: descending first, then the other way. */
  function onSortBy(field) {
    ui.sort.value = view.sort === `-${field}` ? field : `-${field}`;
    applyView();
  }

  /** Shows one key found by its id, when it is not among the rows loaded. */
  async function findKey(id) {
    ui.search.value = id;
    ui.stateFilter.value = '';
    await applyView();
    focusRow(id);
  }

  const CSV_COLUMNS = [
    'name',
    'id',
    'scopes',
    'created',
    'expires',
    'ends',
    'last used',
    'state',
    'created_by',
  ];

  /** The export's columns: every row names its key's tenant (DESIGN §14), for an operator's
   * export and a tenant's alike, so that a file says whose keys it holds wherever it goes. */
  function csvColumns() {
    return [...CSV_COLUMNS, 'tenant'];
  }

  /**
   * One CSV cell: quoted (RFC 4180), with nothing a spreadsheet would run. A cell is a
   * formula when it starts with `=`, `+`, `-` or `@` (some tools strip a leading tab or
   * CR first); and a spreadsheet whose list separator is `;` (Excel in de-DE, fr-FR,
   * nl-NL…), or a tool that ignores quotes, starts a new cell at a `;`, `,` or tab
   * inside the text. So a `'` goes before each of those characters that starts the text
   * or follows a separator or line break (spaces between included), and before a
   * leading tab or CR: `Q3;=cmd|…` becomes `Q3;'=cmd|…`, text in every locale. The file
   * has no `sep=,` line: only Excel honours it, other tools read it as a row of data.
   */
  function csvCell(value) {
    const text = value === null || value === undefined ? '' : String(value);
    const inert = text.replace(/(^|[;,\t\r\n])(\s*)(?=[=+\-@])/g, "$1$2'").replace(/^(?=[\t\r])/, "'");
    return `"${inert.replace(/"/g, '""')}"`;
  }

  function csvRow(record, now) {
    const state = stateOf(record, now);
    const dormant = isDormant(record, state, now);
    return [
      record.name,
      record.id,
      record.scopes.join(' '),
      record.created_at,
      record.expires_at,
      record.ends_at,
      record.last_used_at,
      dormant ? `${state} dormant` : state,
      record.created_by,
      record.tenant,
    ]
      .map(csvCell)
      .join(',');
  }

  async function onExport() {
    ui.exportCsv.disabled = true;
    try {
      const now = Date.now();
      const lines = [csvColumns().map(csvCell).join(',')];
      let url = listUrl(EXPORT_PAGE_SIZE);
      while (url) {
        const page = await fetchPage(url);
        for (const record of page.records) lines.push(csvRow(record, now));
        say(`Exporting: ${lines.length - 1} keys so far…`);
        url = page.next;
      }
      const blob = new Blob([`${lines.join('\r\n')}\r\n`], { type: 'text/csv;charset=utf-8' });
      const href = URL.createObjectURL(blob);
      const link = el('a', { href, download: `api-keys-${isoDate(now)}.csv`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      // Long enough for the download to start; then the file's memory is released.
      setTimeout(() => URL.revokeObjectURL(href), 60 * 1000);
      say(`Exported ${lines.length - 1} ${lines.length === 2 ? 'key' : 'keys'} as CSV.`);
    } catch (error) {
      fail(error);
    } finally {
      ui.exportCsv.disabled = false;
    }
  }

  /** The scope catalogue and who is acting, shown as the create form's choices. */
  async function loadScopes() {
    const response = await api('GET', 'scopes');
    if (!response.ok) {
      warn(`The scopes could not be read. ${describe(response, await problemOf(response))}`);
      throw new Shown();
    }
    const body = await response.json();
    catalogue = Array.isArray(body.catalogue) ? body.catalogue : null;
    actor = body.actor && typeof body.actor.name === 'string' ? body.actor : null;
    if (typeof body.tenant === 'string') tenancy = { tenant: body.tenant };
    else if (body.tenant === null) tenancy = { operator: true };
    else tenancy = {};
    renderTenancy();
    renderScopes();
  }

  async function loadAll() {
    await loadScopes();
    await loadKeys();
  }

  /** Free text without a catalogue; with one, a checkbox per scope, those beyond the actor disabled. */
  function renderScopes() {
    ui.scopesText.hidden = catalogue !== null;
    ui.scopeChoices.hidden = catalogue === null;
    if (catalogue === null) {
      FIELDS.scopes = ui.scopes;
      ui.scopeList.replaceChildren();
      return;
    }
    FIELDS.scopes = ui.scopeChoices;
    const checked = new Set(checkedScopes());
    ui.scopeList.replaceChildren(
      ...catalogue.map((entry, i) => {
        const id = `scope-choice-${i}`;
        const box = el('input', {
          type: 'checkbox',
          id,
          name: 'scope',
          value: entry.scope,
          disabled: !entry.grantable,
          'aria-describedby': `${id}-description`,
        });
        box.checked = entry.grantable && checked.has(entry.scope);
        const description = entry.grantable
          ? entry.description
          : `${entry.description} (beyond what you may grant)`;
        return el(
          'li',
          {},
          el(
            'label',
            { for: id, class: entry.grantable ? null : 'beyond' },
            box,
            el('code', {}, entry.scope),
            el('span', { class: 'description', id: `${id}-description` }, description),
          ),
        );
      }),
    );
  }

  function checkedScopes() {
    return [...ui.scopeList.querySelectorAll('input[type=checkbox]:checked')].map((b) => b.value);
  }

  async function onRefresh() {
    try {
      await loadAll();
      warn('');
      say(`Refreshed. ${ui.summary.textContent}`);
    } catch (error) {
      fail(error);
    }
  }

  // ---- the one-time key display ----------------------------------------------------

  /**
   * Shows a new key once, in a modal dialog of its own. Dismissing it (button or
   * Escape) empties the dialog's text, removes the dialog and drops the key; then
   * `afterwards` puts focus back where the administrator was.
   */
  function showOnce(record, key, afterwards) {
    const heading = record.rotated_from
      ? `New key for “${record.name}”, replacing ${record.rotated_from}`
      : `New key “${record.name}”`;
    const code = el('code', { id: 'once-key', class: 'secret', tabindex: '0', 'aria-labelledby': 'once-key-label' }, key);
    const copyStatus = el('p', { id: 'once-copy-status', class: 'copy-status', role: 'status' });
    const copy = el('button', { type: 'button', id: 'once-copy' }, 'Copy key');
    const done = el('button', { type: 'button', id: 'once-done', class: 'secondary' }, 'I have stored it, close');
    const dialog = el(
      'dialog',
      { id: 'once', class: 'once', 'aria-labelledby': 'once-title', 'aria-describedby': 'once-warning' },
      el('h2', { id: 'once-title' }, heading),
      el(
        'p',
        { id: 'once-warning', class: 'warning' },
        el('strong', {}, 'This key will not be shown again. '),
        'Copy it now and keep it somewhere safe: the server stores only a digest of it. If it is lost, rotate the key.',
      ),
      el('p', { id: 'once-key-label', class: 'once-label' }, `Key ${record.id}`),
      code,
      copyStatus,
      el('div', { class: 'actions' }, copy, done),
    );

    let dismissed = false;
    const dismiss = () => {
      if (dismissed) return;
      dismissed = true;
      code.textContent = '';
      copyStatus.textContent = '';
      if (dialog.open) dialog.close();
      dialog.remove();
      key = null;
      afterwards();
    };
    // Escape closes it like the button does, and the key goes all the same.
    dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      dismiss();
    });
    done.addEventListener('click', dismiss);
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(code.textContent);
        copyStatus.textContent = 'Copied to the clipboard.';
      } catch {
        // No clipboard access (an insecure origin, or refused): select it for Ctrl+C.
        const range = document.createRange();
        range.selectNodeContents(code);
        const selection = getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        code.focus();
        copyStatus.textContent = 'The browser refused to copy. The key is selected: press Ctrl+C (⌘C on a Mac).';
      }
    });

    document.body.append(dialog);
    dialog.showModal();
    copy.focus();
  }

  // ---- create ----------------------------------------------------------------------

  /** Where a field's error goes: beside its input, or below the scope choices. */
  function errorSlot(field) {
    return $(`create-${field === 'expires_at' ? 'expires' : field}-error`);
  }

  /** What takes the focus for a field's error: the input, or the first scope choice. */
  function focusTarget(input) {
    if (input === ui.scopeChoices) {
      return ui.scopeList.querySelector('input:not([disabled])') || ui.name;
    }
    return input;
  }

  function clearFieldErrors() {
    for (const [field, input] of Object.entries(FIELDS)) {
      input.removeAttribute('aria-invalid');
      const error = errorSlot(field);
      error.textContent = '';
      error.hidden = true;
    }
    ui.createError.textContent = '';
    ui.createError.hidden = true;
  }

  /** Puts each of the API's field errors next to its field. */
  function showFieldErrors(response, problem) {
    const errors = Array.isArray(problem.errors) ? problem.errors : [];
    let first = null;
    const other = [];
    for (const error of errors) {
      const input = Object.hasOwn(FIELDS, error.field) ? FIELDS[error.field] : null;
      if (input) {
        const slot = errorSlot(error.field);
        slot.textContent = slot.textContent ? `${slot.textContent} ${error.detail}` : error.detail;
        slot.hidden = false;
        input.setAttribute('aria-invalid', 'true');
        first = first || input;
      } else {
        other.push(`${error.field}: ${error.detail}`);
      }
    }
    if (other.length || !errors.length) {
      ui.createError.textContent = other.length ? other.join(' ') : describe(response, problem);
      ui.createError.hidden = false;
    }
    const count = errors.length || 1;
    warn(`The key was not created: ${count === 1 ? 'a field needs' : `${count} fields need`} attention.`);
    focusTarget(first || ui.name).focus();
  }

  async function onCreate(event) {
    event.preventDefault();
    clearFieldErrors();
    warn('');
    const body = {
      name: ui.name.value.trim(),
      scopes:
        catalogue === null ? ui.scopes.value.split(/[\s,]+/).filter(Boolean) : checkedScopes(),
    };
    if (ui.expires.value) body.expires_at = `${ui.expires.value}T00:00:00Z`;
    const tenant = tenancy.operator ? ui.createTenant.value.trim() : '';
    if (tenant) {
      if (!TENANT_PATTERN.test(tenant)) {
        showFieldErrors({ status: 422, statusText: 'Unprocessable Content' }, {
          errors: [{ field: 'tenant', detail: TENANT_RULE }],
        });
        return;
      }
      body.tenant = tenant;
    }
    ui.createSubmit.disabled = true;
    try {
      const response = await api('POST', 'keys', body);
      if (response.status === 403) {
        const problem = await problemOf(response);
        ui.createError.textContent = describe(response, problem);
        ui.createError.hidden = false;
        if (Array.isArray(problem.too_loose)) {
          // The form sets no limits; the API takes them (see the README).
          warn('The key was not created: it would be less restricted than your own key.');
          focusTarget(ui.name).focus();
          return;
        }
        warn('The key was not created: it would hold scopes you may not grant.');
        focusTarget(ui.scopeChoices.hidden ? ui.scopes : ui.scopeChoices).focus();
        return;
      }
      if (response.status !== 201) {
        showFieldErrors(response, await problemOf(response));
        return;
      }
      const created = await response.json();
      const key = created.key;
      delete created.key;
      ui.createForm.reset();
      say(
        created.tenant
          ? `Key “${created.name}” (${created.id}) created in tenant ${created.tenant}.`
          : `Key “${created.name}” (${created.id}) created.`,
      );
      showOnce(created, key, () => {
        if (!focusRow(created.id)) ui.name.focus();
      });
      await loadKeys();
    } catch (error) {
      fail(error);
    } finally {
      ui.createSubmit.disabled = false;
    }
  }

  // ---- confirmations, rotate, revoke -----------------------------------------------

  /**
   * Asks before acting. Resolves to null (cancelled) or `{ overlap }`, the chosen
   * rotation overlap ('' to keep the old key until it is revoked).
   */
  function confirmAction({ title, text, heirs, ok, danger, overlap, returnTo }) {
    ui.confirmTitle.textContent = title;
    ui.confirmText.textContent = text;
    showHeirs(heirs);
    ui.confirmOk.textContent = ok;
    ui.confirmOk.className = danger ? 'danger' : '';
    ui.confirmOverlap.hidden = !overlap;
    ui.overlap.value = '';
    ui.confirmGrace.hidden = true;
    ui.grace.value = String(DEFAULT_GRACE_SECS);
    return new Promise((resolve) => {
      let answer = null;
      const onSubmit = (event) => {
        event.preventDefault();
        answer = { overlap: ui.overlap.value, grace: ui.grace.value };
        ui.confirm.close();
      };
      const onCancel = () => ui.confirm.close();
      const onClose = () => {
        ui.confirmForm.removeEventListener('submit', onSubmit);
        ui.confirmCancel.removeEventListener('click', onCancel);
        ui.confirm.removeEventListener('close', onClose);
        if (returnTo && returnTo.isConnected) returnTo.focus();
        resolve(answer);
      };
      ui.confirmForm.addEventListener('submit', onSubmit);
      ui.confirmCancel.addEventListener('click', onCancel);
      ui.confirm.addEventListener('close', onClose);
      ui.confirm.showModal();
      // A destructive action starts on Cancel, so that Enter does no harm.
      (danger ? ui.confirmCancel : overlap ? ui.overlap : ui.confirmOk).focus();
    });
  }

  /** The rotate body for the dialog's choice; the API checks the grace (422 if bad). */
  function rotateBody(choice) {
    if (choice.overlap === '') return undefined;
    if (choice.overlap === 'first-use') {
      const grace = choice.grace.trim() === '' ? DEFAULT_GRACE_SECS : Number(choice.grace);
      return { until_first_use: true, grace_secs: grace };
    }
    return { overlap_secs: Number(choice.overlap) };
  }

  async function onRotate(record, button) {
    const choice = await confirmAction({
      title: `Rotate “${record.name}” (${record.id})?`,
      text:
        'A new key with the same name and scopes is created and shown once. Switch the integration to it, wait until its last-used time appears here, then revoke the old key.',
      ok: 'Rotate',
      overlap: true,
      returnTo: button,
    });
    if (!choice) return;
    const body = rotateBody(choice);
    try {
      const response = await api('POST', `keys/${encodeURIComponent(record.id)}/rotate`, body);
      if (response.status !== 201) {
        warn(`The key was not rotated. ${describe(response, await problemOf(response))}`);
        return;
      }
      const created = await response.json();
      const key = created.key;
      delete created.key;
      say(`Key “${created.name}” rotated: ${created.id} replaces ${record.id}.`);
      showOnce(created, key, () => {
        if (!focusRow(created.id)) ui.keysTitle.focus();
      });
      await loadKeys();
    } catch (error) {
      fail(error);
    }
  }

  /**
   * What the revoke dialog says of the key's heirs: `heirs` is the list of records
   * `GET keys/{id}/heirs` answered, `null` when it could not be had, or undefined for
   * a dialog about something else.
   */
  function showHeirs(heirs) {
    ui.confirmHeirsList.replaceChildren();
    ui.confirmHeirsText.textContent = '';
    ui.confirmHeirs.hidden = heirs === undefined || (Array.isArray(heirs) && heirs.length === 0);
    if (ui.confirmHeirs.hidden) return;
    if (heirs === null) {
      ui.confirmHeirsText.textContent =
        'The keys this key created for itself could not be listed. Revoking it also revokes those that still work.';
      return;
    }
    const count = heirs.length === 1 ? '1 key' : `${heirs.length} keys`;
    ui.confirmHeirsText.textContent = `This also revokes ${count} that this key created for itself:`;
    for (const heir of heirs) {
      ui.confirmHeirsList.append(el('li', {}, `“${heir.name}” (${heir.id})`));
    }
  }

  /** The keys revoking `record` would revoke with it, or null if they cannot be had. */
  async function heirsOf(record) {
    const response = await api('GET', `keys/${encodeURIComponent(record.id)}/heirs`);
    if (response.status !== 200) return null;
    try {
      const heirs = await response.json();
      return Array.isArray(heirs) ? heirs : null;
    } catch {
      return null;
    }
  }

  async function onRevoke(record, button) {
    const own = keyIdOf(storedKey()) === record.id;
    let heirs;
    try {
      // Before asking: a key that rotated itself takes its heirs with it (a thief's
      // copy, or the integration's new key if the old one still works).
      heirs = await heirsOf(record);
    } catch (error) {
      if (error instanceof Shown) return;
      heirs = null;
    }
    const choice = await confirmAction({
      title: `Revoke “${record.name}” (${record.id})?`,
      text:
        'Requests with this key are refused from now on. This cannot be undone.' +
        (own ? ' This is the admin key you are signed in with: the panel will stop working.' : ''),
      heirs,
      ok: 'Revoke',
      danger: true,
      returnTo: button,
    });
    if (!choice) return;
    try {
      const response = await api('DELETE', `keys/${encodeURIComponent(record.id)}`);
      if (response.status !== 200) {
        warn(`The key was not revoked. ${describe(response, await problemOf(response))}`);
        return;
      }
      const revoked = await response.json();
      const gone = Array.isArray(revoked.heirs) ? revoked.heirs : [];
      say(
        `Key “${record.name}” (${record.id}) revoked` +
          (gone.length === 0
            ? '.'
            : `, and ${gone.length === 1 ? '1 key' : `${gone.length} keys`} it created for itself: ${gone
                .map((heir) => `“${heir.name}” (${heir.id})`)
                .join(', ')}.`),
      );
      await loadKeys();
      focusRow(record.id);
    } catch (error) {
      fail(error);
    }
  }

  // ---- start -----------------------------------------------------------------------

  ui.signinForm.addEventListener('submit', onSignin);
  ui.createForm.addEventListener('submit', onCreate);
  ui.refresh.addEventListener('click', onRefresh);
  ui.newKey.addEventListener('click', () => {
    ui.name.scrollIntoView({ block: 'center' });
    ui.name.focus();
  });
  ui.forget.addEventListener('click', () => {
    signOut('');
    say('The admin key is forgotten in this tab.');
  });
  ui.keysTitle.tabIndex = -1;
  // Searching as the administrator types, once typing pauses.
  let searchTimer = null;
  ui.search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(applyView, 250);
  });
  ui.find.addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    applyView();
  });
  ui.stateFilter.addEventListener('change', applyView);
  ui.tenantFilter.addEventListener('change', applyView);
  ui.sort.addEventListener('change', applyView);
  for (const button of document.querySelectorAll('#key-table button.sort-by')) {
    button.addEventListener('click', () => onSortBy(button.dataset.sort));
  }
  // The grace applies only to an end after the new key's first use.
  ui.overlap.addEventListener('change', () => {
    ui.confirmGrace.hidden = ui.overlap.value !== 'first-use';
  });
  ui.more.addEventListener('click', onMore);
  ui.exportCsv.addEventListener('click', onExport);
  limitExpiry();

  if (AUTH === 'session') {
    // Behind the application's login: the browser's session is the credential.
    loadAll().then(showPanel).catch(fail);
  } else if (storedKey()) {
    // The summary above the list says what there is; no message needed.
    loadAll().then(showPanel).catch(fail);
  } else {
    ui.signin.hidden = false;
    ui.adminKey.focus();
  }
})();
