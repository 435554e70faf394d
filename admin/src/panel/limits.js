'use strict';

// Per-key limits in the panel (DESIGN §12): each row shows its rate limit, quota and
// allowed addresses beside its scopes, and the addresses it was last used from beside
// its last-used time; "Limits" opens an editor that changes them with
// `PATCH keys/{id}`. Its recent addresses can fill the allowlist, as Stripe suggests;
// but `recent_ips` holds every address that proved the key, a thief's included, so
// each is shown with how recently it was seen, none is checked until the person checks
// it, and a confirmation lists exactly the addresses that will be allowed. Data reaches
// the page only as text. panel.js announces each render of the key list with the
// records, its `api` function and `reload`.
(() => {
  const { el, say } = panelDom;

  function describeLimits(record) {
    const parts = [];
    if (record.rate_limit) {
      parts.push(`${record.rate_limit.requests} requests / ${record.rate_limit.per_secs} s`);
    }
    if (record.quota) parts.push(`${record.quota.requests} requests / ${record.quota.per}`);
    if (record.allowed_ips) parts.push(`only from ${record.allowed_ips.join(', ')}`);
    return parts;
  }

  // ---- the editor ------------------------------------------------------------------

  /** The API's fields, each with the inputs it is read from and its error slot. */
  const FIELDS = ['name', 'rate_limit', 'quota', 'allowed_ips'];

  let dialog = null;
  let inputs = null;

  function field(id, label, control, help) {
    return el(
      'div',
      { class: 'field' },
      el('label', { for: id }, label),
      control,
      help ? el('p', { class: 'help', id: `${id}-help` }, help) : null,
    );
  }

  function number(id, describedBy) {
    return el('input', {
      id,
      type: 'number',
      min: '1',
      max: '4294967295',
      step: '1',
      inputmode: 'numeric',
      'aria-describedby': describedBy,
    });
  }

  function errorSlot(name) {
    return el('p', { id: `limits-${name}-error`, class: 'field-error', hidden: true });
  }

  /** Builds the dialog once; later openings refill it. */
  function editor() {
    if (dialog) return dialog;
    inputs = {
      name: el('input', {
        id: 'limits-name',
        type: 'text',
        maxlength: '128',
        autocomplete: 'off',
        'aria-describedby': 'limits-name-error',
      }),
      rateRequests: number('limits-rate-requests', 'limits-rate-help limits-rate_limit-error'),
      ratePer: number('limits-rate-per', 'limits-rate-help limits-rate_limit-error'),
      quotaRequests: number('limits-quota-requests', 'limits-quota-help limits-quota-error'),
      quotaPer: el(
        'select',
        { id: 'limits-quota-per', 'aria-describedby': 'limits-quota-help limits-quota-error' },
        el('option', { value: 'day' }, 'per UTC day'),
        el('option', { value: 'month' }, 'per UTC month'),
      ),
      ips: el('textarea', {
        id: 'limits-ips',
        rows: '4',
        spellcheck: 'false',
        autocapitalize: 'off',
        'aria-describedby': 'limits-ips-help limits-allowed_ips-error',
      }),
      recent: el('ul', { id: 'limits-recent', class: 'recent-list' }),
      restrict: el(
        'button',
        {
          type: 'button',
          id: 'limits-restrict',
          class: 'secondary',
          'aria-describedby': 'limits-restrict-help limits-restrict-error',
        },
        'Restrict to checked addresses…',
      ),
      restrictError: el('p', { id: 'limits-restrict-error', class: 'field-error', hidden: true }),
      error: el('p', { id: 'limits-error', class: 'field-error', hidden: true }),
      save: el('button', { type: 'submit', id: 'limits-save' }, 'Save'),
      cancel: el('button', { type: 'button', id: 'limits-cancel', class: 'secondary' }, 'Cancel'),
      title: el('h2', { id: 'limits-title' }),
    };
    const form = el(
      'form',
      { id: 'limits-form', method: 'dialog', novalidate: true },
      inputs.title,
      field('limits-name', 'Name', inputs.name),
      errorSlot('name'),
      el(
        'fieldset',
        { class: 'field' },
        el('legend', {}, 'Rate limit'),
        field('limits-rate-requests', 'Requests', inputs.rateRequests),
        field('limits-rate-per', 'per seconds', inputs.ratePer),
        el(
          'p',
          { class: 'help', id: 'limits-rate-help' },
          'A burst of that many requests, then one every (seconds ÷ requests). Both empty: no rate limit.',
        ),
        errorSlot('rate_limit'),
      ),
      el(
        'fieldset',
        { class: 'field' },
        el('legend', {}, 'Quota'),
        field('limits-quota-requests', 'Requests', inputs.quotaRequests),
        field('limits-quota-per', 'Period', inputs.quotaPer),
        el('p', { class: 'help', id: 'limits-quota-help' }, 'Counted per UTC calendar day or month. Empty: no quota.'),
        errorSlot('quota'),
      ),
      field(
        'limits-ips',
        'Allowed addresses',
        inputs.ips,
        'IPv4 or IPv6 addresses or CIDR networks, one per line (at most 64). Empty: any address.',
      ),
      errorSlot('allowed_ips'),
      el(
        'fieldset',
        { class: 'recent', 'aria-describedby': 'limits-recent-help' },
        el('legend', {}, 'Recently used from'),
        el(
          'p',
          { class: 'help', id: 'limits-recent-help' },
          'Newest first. The key\'s record keeps its last 5 addresses in the order they were last seen, with a time for the newest only (the key\'s last use); it keeps no time for the others. Every address that proved the key is here, a leaked copy\'s too: check only those you recognise.',
        ),
        inputs.recent,
        inputs.restrict,
        inputs.restrictError,
        el(
          'p',
          { class: 'help', id: 'limits-restrict-help' },
          'Replaces the allowed addresses with the checked ones, after you confirm; then save. Any other address, a leaked copy\'s included, is then refused.',
        ),
      ),
      inputs.error,
      el('div', { class: 'actions' }, inputs.cancel, inputs.save),
    );
    dialog = el('dialog', { id: 'limits', 'aria-labelledby': 'limits-title' }, form);
    inputs.cancel.addEventListener('click', () => dialog.close());
    document.body.append(dialog);
    return dialog;
  }

  // ---- restricting to recent addresses ---------------------------------------------

  const NEWEST = ['newest', '2nd newest', '3rd newest', '4th newest', '5th newest'];

  /** `2026-05-01 12:00 UTC`. */
  function utc(iso) {
    const text = new Date(iso).toISOString();
    return `${text.slice(0, 10)} ${text.slice(11, 16)} UTC`;
  }

  /**
   * How recently the `index`th of the key's recent addresses was seen: the record holds
   * their order and the time of the key's last use, which was the newest address's.
   */
  function seen(index, record) {
    const rank = NEWEST[index] || `number ${index + 1}`;
    if (index === 0) {
      return record.last_used_at ? `${rank}: the key's last use, ${utc(record.last_used_at)}` : rank;
    }
    return `${rank}: seen before the one above; no time recorded`;
  }

  /** One recent address: a checkbox, unchecked, labelled by the address. */
  function recentItem(ip, index, record) {
    const id = `limits-recent-${index}`;
    return el(
      'li',
      {},
      el('input', { type: 'checkbox', id, value: ip, 'aria-describedby': `${id}-seen` }),
      el('label', { for: id }, el('code', {}, ip)),
      el('span', { class: 'seen', id: `${id}-seen` }, seen(index, record)),
    );
  }

  let pin = null;

  /** The confirmation before the allowlist is filled; built once. */
  function pinDialog() {
    if (pin) return pin;
    const ok = el('button', { type: 'submit', id: 'limits-pin-ok' }, 'Allow only these');
    const cancel = el('button', { type: 'button', id: 'limits-pin-cancel', class: 'secondary' }, 'Cancel');
    const form = el(
      'form',
      { id: 'limits-pin-form', method: 'dialog', novalidate: true },
      el('h2', { id: 'limits-pin-title' }, 'Allow only these addresses?'),
      el(
        'p',
        { id: 'limits-pin-text' },
        'Once you save, this key is accepted from these addresses only:',
      ),
      el('ul', { id: 'limits-pin-list', class: 'recent-list' }),
      el('p', { id: 'limits-pin-others' }),
      el('div', { class: 'actions' }, cancel, ok),
    );
    pin = {
      dialog: el(
        'dialog',
        { id: 'limits-pin', 'aria-labelledby': 'limits-pin-title', 'aria-describedby': 'limits-pin-text' },
        form,
      ),
      form,
      list: form.querySelector('#limits-pin-list'),
      others: form.querySelector('#limits-pin-others'),
      cancel,
    };
    cancel.addEventListener('click', () => pin.dialog.close());
    document.body.append(pin.dialog);
    return pin;
  }

  /**
   * Asks before the allowlist is replaced by `chosen`, naming the recent addresses left
   * out; on confirmation fills it, else leaves it as it was.
   */
  function confirmPin(chosen, leftOut) {
    const { dialog: asking, form, list, others, cancel } = pinDialog();
    list.replaceChildren(...chosen.map((ip) => el('li', {}, el('code', {}, ip))));
    others.textContent = leftOut.length
      ? `Refused from then on, with every other address: ${leftOut.join(', ')}.`
      : 'Every other address is refused from then on.';
    form.onsubmit = (event) => {
      event.preventDefault();
      inputs.ips.value = chosen.join('\n');
      asking.close();
      say(
        `The allowed addresses now hold the ${chosen.length} checked address${chosen.length === 1 ? '' : 'es'}; save to apply.`,
      );
      inputs.ips.focus();
    };
    asking.onclose = () => {
      if (document.activeElement === document.body || asking.contains(document.activeElement)) {
        inputs.restrict.focus();
      }
    };
    asking.showModal();
    // Cancel first: pinning is what needs a decision.
    cancel.focus();
  }

  function clearErrors() {
    for (const name of FIELDS) {
      const slot = document.getElementById(`limits-${name}-error`);
      slot.textContent = '';
      slot.hidden = true;
    }
    inputs.error.textContent = '';
    inputs.error.hidden = true;
    for (const input of dialog.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  }

  /** The inputs an API field is read from. */
  function inputsOf(name) {
    switch (name) {
      case 'name':
        return [inputs.name];
      case 'rate_limit':
        return [inputs.rateRequests, inputs.ratePer];
      case 'quota':
        return [inputs.quotaRequests, inputs.quotaPer];
      default:
        return [inputs.ips];
    }
  }

  /** Puts each of the API's field errors (`quota.per` under `quota`) next to its inputs. */
  function showErrors(errors, fallback) {
    let first = null;
    for (const error of errors) {
      const name = String(error.field).split('.')[0];
      if (!FIELDS.includes(name)) {
        inputs.error.textContent = `${inputs.error.textContent} ${error.field}: ${error.detail}`.trim();
        inputs.error.hidden = false;
        continue;
      }
      const slot = document.getElementById(`limits-${name}-error`);
      slot.textContent = slot.textContent ? `${slot.textContent} ${error.detail}` : error.detail;
      slot.hidden = false;
      for (const input of inputsOf(name)) input.setAttribute('aria-invalid', 'true');
      first = first || inputsOf(name)[0];
    }
    if (!errors.length) {
      inputs.error.textContent = fallback;
      inputs.error.hidden = false;
    }
    (first || inputs.save).focus();
  }

  /** A whole number as the API takes it, or the text itself (the server says why not). */
  function count(input) {
    const text = input.value.trim();
    return /^\d+$/.test(text) ? Number(text) : text;
  }

  /** The PATCH body: the name if it changed, and every limit (`null` removes it). */
  function bodyOf(record) {
    const body = {};
    const name = inputs.name.value.trim();
    if (name !== record.name) body.name = name;
    const [rateRequests, ratePer] = [inputs.rateRequests.value.trim(), inputs.ratePer.value.trim()];
    body.rate_limit =
      rateRequests || ratePer
        ? { requests: count(inputs.rateRequests), per_secs: count(inputs.ratePer) }
        : null;
    body.quota = inputs.quotaRequests.value.trim()
      ? { requests: count(inputs.quotaRequests), per: inputs.quotaPer.value }
      : null;
    const ips = inputs.ips.value.split(/[\s,]+/).filter(Boolean);
    body.allowed_ips = ips.length ? ips : null;
    return body;
  }

  function open(record, api, reload, button) {
    editor();
    clearErrors();
    inputs.title.textContent = `Limits of “${record.name}” (${record.id})`;
    inputs.name.value = record.name;
    inputs.rateRequests.value = record.rate_limit ? record.rate_limit.requests : '';
    inputs.ratePer.value = record.rate_limit ? record.rate_limit.per_secs : '';
    inputs.quotaRequests.value = record.quota ? record.quota.requests : '';
    inputs.quotaPer.value = record.quota ? record.quota.per : 'day';
    inputs.ips.value = (record.allowed_ips || []).join('\n');
    const recent = record.recent_ips || [];
    inputs.recent.replaceChildren(
      ...(recent.length
        ? recent.map((ip, index) => recentItem(ip, index, record))
        : [el('li', { class: 'none' }, 'No address recorded yet: use the key first.')]),
    );
    inputs.restrict.disabled = recent.length === 0;
    inputs.restrictError.textContent = '';
    inputs.restrictError.hidden = true;
    inputs.restrict.onclick = () => {
      const boxes = [...inputs.recent.querySelectorAll('input[type=checkbox]')];
      const chosen = boxes.filter((box) => box.checked).map((box) => box.value);
      if (!chosen.length) {
        inputs.restrictError.textContent = 'Check the addresses to allow first: only those you recognise.';
        inputs.restrictError.hidden = false;
        boxes[0].focus();
        return;
      }
      inputs.restrictError.textContent = '';
      inputs.restrictError.hidden = true;
      confirmPin(chosen, recent.filter((ip) => !chosen.includes(ip)));
    };
    const form = dialog.querySelector('form');
    form.onsubmit = async (event) => {
      event.preventDefault();
      clearErrors();
      inputs.save.disabled = true;
      try {
        const response = await api('PATCH', `keys/${encodeURIComponent(record.id)}`, bodyOf(record));
        // The record, or a problem document.
        let answer = {};
        try {
          answer = await response.json();
        } catch {
          answer = {};
        }
        if (!response.ok) {
          const detail = answer.detail ? `: ${answer.detail}` : '';
          const errors = Array.isArray(answer.errors) ? answer.errors : [];
          showErrors(errors, `${response.status} ${answer.title || response.statusText}${detail}`);
          return;
        }
        dialog.close();
        say(`Limits of “${answer.name}” (${record.id}) saved.`);
        await reload();
      } catch {
        // panel.js has shown what went wrong (a refused admin key, an unreachable server).
      } finally {
        inputs.save.disabled = false;
      }
    };
    dialog.onclose = () => {
      if (button && button.isConnected) button.focus();
    };
    dialog.showModal();
    inputs.rateRequests.focus();
  }

  // ---- the rows --------------------------------------------------------------------

  document.addEventListener('tower-apikey:rendered', (event) => {
    const { records, api, reload } = event.detail;
    for (const record of records) {
      const row = document.getElementById(`key-${record.id}`);
      if (!row) continue;
      const scopes = row.querySelector('[data-label="Scopes"]');
      const limits = describeLimits(record);
      if (scopes && limits.length) {
        scopes.append(el('ul', { class: 'limits' }, ...limits.map((text) => el('li', {}, text))));
      }
      const lastUsed = row.querySelector('[data-label="Last used"]');
      if (lastUsed && record.recent_ips && record.recent_ips.length) {
        lastUsed.append(el('span', { class: 'recent-ips' }, `from ${record.recent_ips.join(', ')}`));
      }
      const actions = row.querySelector('[data-label="Actions"]');
      if (actions && !record.revoked_at) {
        const button = el(
          'button',
          { type: 'button', class: 'secondary limits', 'aria-label': `Limits of ${record.name} (${record.id})` },
          'Limits',
        );
        button.addEventListener('click', () => open(record, api, reload, button));
        actions.prepend(button);
      }
    }
  });
})();
