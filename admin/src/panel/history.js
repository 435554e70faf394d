'use strict';

// The audit trail in the panel: a "History" view per key (its events and the last 30
// days of requests), an organisation-wide activity list, a small request chart beside
// each key's last-used time, and a flag on keys someone used after they ended. Plain
// DOM and SVG built here; the page's CSP allows nothing inline. panel.js announces
// each render of the key list with the records and its `api` function.
(() => {
  const auditMeta = document.querySelector('meta[name="tower-apikey-audit"]');
  if (!auditMeta || auditMeta.content !== 'on') return;
  const SVG = 'http://www.w3.org/2000/svg';
  /** Keys whose chart is drawn in the list at once; others draw in their history. */
  const CHARTS_IN_LIST = 50;

  const { el } = panelDom;

  const svg = (tag, attributes) => {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  };

  /** The next page's path from a `Link: <?…>; rel="next"` header, relative to `path`. */
  function nextPath(response, path) {
    const link = response.headers.get('Link');
    const match = link && /<([^>]*)>;\s*rel="next"/.exec(link);
    return match ? path.split('?')[0] + match[1] : null;
  }

  /** A bar per day; the title and label say the numbers, for screen readers too. */
  function chart(days) {
    const width = 120;
    const height = 24;
    const max = Math.max(1, ...days.map((d) => d.requests));
    const total = days.reduce((sum, d) => sum + d.requests, 0);
    const label = `${total} requests in the last ${days.length} days`;
    const root = svg('svg', {
      class: 'usage-chart',
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': label,
    });
    const title = svg('title', {});
    title.textContent = label;
    root.append(title);
    const step = width / days.length;
    days.forEach((day, i) => {
      const h = day.requests ? Math.max(1, Math.round((day.requests / max) * (height - 1))) : 0;
      const bar = svg('rect', {
        x: (i * step).toFixed(2),
        y: height - h,
        width: Math.max(1, step - 1).toFixed(2),
        height: h,
        class: 'usage-bar',
      });
      const tip = svg('title', {});
      tip.textContent = `${day.date}: ${day.requests}`;
      bar.append(tip);
      root.append(bar);
    });
    return root;
  }

  async function usageChart(api, id) {
    const response = await api('GET', `keys/${encodeURIComponent(id)}/usage?days=30`);
    if (!response.ok) return null;
    const body = await response.json();
    return Array.isArray(body.days) ? chart(body.days) : null;
  }

  function describeEvent(event) {
    const d = event.detail || {};
    switch (event.type) {
      case 'created':
        return d.related_key_id ? `created, replacing ${d.related_key_id}` : 'created';
      case 'rotated':
        return `rotated into ${d.related_key_id}${d.ends_at ? `, ending ${d.ends_at}` : ''}`;
      case 'revoked':
        // An heir revoked with the key it was minted from (by self-rotation, at any
        // depth) names that key.
        return d.related_key_id ? `revoked with ${d.related_key_id}, the key it descends from` : 'revoked';
      case 'first_used':
        return 'first used';
      case 'expiring':
        return `ends within ${d.days} day${d.days === 1 ? '' : 's'} (${d.ends_at})`;
      case 'ended_key_used':
        return `used after it ended (${d.attempts} attempt${d.attempts === 1 ? '' : 's'})`;
      case 'changed':
        return 'name, limits or addresses changed';
      default:
        return event.type;
    }
  }

  function eventItem(event, withKey) {
    const who = event.actor ? ` by ${event.actor}` : '';
    const item = el(
      'li',
      { class: `event event-${event.type}`, 'data-type': event.type },
      el('time', { datetime: event.at }, event.at.replace('T', ' ').replace(/\.\d+/, '')),
      ' ',
    );
    if (withKey) item.append(el('code', {}, event.key_id), ' ');
    item.append(`${describeEvent(event)}${who}`);
    return item;
  }

  /** Fills `list` from `path`, one page at a time; "More" follows the Link header. */
  async function eventList(api, path, list, more, withKey) {
    const response = await api('GET', path);
    if (!response.ok) {
      list.append(el('li', { class: 'none' }, `The events could not be read (${response.status}).`));
      return;
    }
    const events = await response.json();
    if (!events.length && !list.children.length) list.append(el('li', { class: 'none' }, 'No events yet.'));
    list.append(...events.map((e) => eventItem(e, withKey)));
    const next = nextPath(response, path);
    more.hidden = !next;
    more.onclick = next ? () => eventList(api, next, list, more, withKey) : null;
  }

  let dialog = null;

  async function openHistory(api, record) {
    if (!dialog) {
      dialog = el('dialog', { id: 'history', 'aria-labelledby': 'history-title' });
      document.body.append(dialog);
    }
    // A region that scrolls (panel.css): focusable and named, so that a keyboard can
    // scroll it and a screen reader says what it is.
    const list = el('ol', { class: 'events', id: 'history-events', tabindex: '0', 'aria-labelledby': 'history-title' });
    const more = el('button', { type: 'button', class: 'secondary', hidden: '' }, 'More');
    const close = el('button', { type: 'button' }, 'Close');
    close.addEventListener('click', () => dialog.close());
    const usage = el('div', { class: 'usage', id: 'history-usage' }, 'Requests, last 30 days: ');
    dialog.replaceChildren(
      el('h2', { id: 'history-title' }, `History of ${record.name}`),
      el('p', {}, el('code', {}, record.id)),
      usage,
      list,
      el('div', { class: 'tools' }, more, close),
    );
    dialog.showModal();
    const drawn = await usageChart(api, record.id);
    if (drawn) usage.append(drawn);
    await eventList(api, `keys/${encodeURIComponent(record.id)}/events?limit=50`, list, more, false);
  }

  let activity = null;

  function activitySection(api) {
    if (!activity) {
      const list = el('ol', { class: 'events', id: 'activity-events', tabindex: '0', 'aria-labelledby': 'activity-title' });
      const more = el('button', { type: 'button', class: 'secondary', hidden: '' }, 'More');
      activity = el(
        'section',
        { id: 'activity', 'aria-labelledby': 'activity-title' },
        el('h2', { id: 'activity-title' }, 'Activity'),
        el('p', { class: 'help' }, 'What happened to every key, newest first.'),
        list,
        more,
      );
      const keys = document.getElementById('keys');
      keys.after(activity);
      activity.list = list;
      activity.more = more;
    }
    activity.list.replaceChildren();
    return eventList(api, 'events?limit=20', activity.list, activity.more, true);
  }

  /** Keys with an `ended_key_used` event among the latest 1000. */
  async function endedKeysUsed(api) {
    const response = await api('GET', 'events?limit=1000');
    if (!response.ok) return new Set();
    const events = await response.json();
    return new Set(events.filter((e) => e.type === 'ended_key_used').map((e) => e.key_id));
  }

  document.addEventListener('tower-apikey:rendered', async (event) => {
    const { records, api } = event.detail;
    const ended = await endedKeysUsed(api).catch(() => new Set());
    records.forEach(async (record, i) => {
      const row = document.getElementById(`key-${record.id}`);
      if (!row) return;
      // In the name's cell: the actions cell holds only what changes the key.
      const actions = row.querySelector('[data-label="Name"]');
      if (actions) {
        const history = el(
          'button',
          { type: 'button', class: 'secondary history', 'aria-label': `History of ${record.name} (${record.id})` },
          'History',
        );
        history.addEventListener('click', () => openHistory(api, record).catch(() => {}));
        actions.append(' ', history);
      }
      const state = row.querySelector('[data-label="State"]');
      if (state && ended.has(record.id)) {
        state.append(
          ' ',
          el('span', { class: 'badge ended-used', title: 'Someone proved this key after it was revoked or rotated out: an integration that never switched, or a leaked copy.' }, 'used after it ended'),
        );
      }
      const lastUsed = row.querySelector('[data-label="Last used"]');
      if (lastUsed && i < CHARTS_IN_LIST) {
        const drawn = await usageChart(api, record.id).catch(() => null);
        if (drawn) lastUsed.append(drawn);
      }
    });
    activitySection(api).catch(() => {});
  });
})();
