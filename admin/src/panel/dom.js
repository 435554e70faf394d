'use strict';

// The DOM helpers the panel's scripts share, loaded before them (`defer` keeps the
// page's order). They build the page without markup strings: the CSP allows nothing
// inline, and data reaches the page only as text. One global, `panelDom`.
const panelDom = Object.freeze({
  /**
   * An element with attributes and children (strings become text nodes). An attribute
   * that is null, undefined or false is left out, and `true` sets it empty; null and
   * undefined children are left out.
   */
  el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined && value !== false) {
        node.setAttribute(name, value === true ? '' : String(value));
      }
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  },

  /** The page's status line, read out by screen readers; empty text hides it. */
  say(text) {
    const status = document.getElementById('status');
    if (!status) return;
    status.textContent = text;
    status.hidden = !text;
  },
});
