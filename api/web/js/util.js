// Small helpers shared by every view: DOM access, formatting, plurals, ids.

export const $ = (id) => document.getElementById(id);

export const money = new Intl.NumberFormat(undefined, { style: "currency", currency: "EUR" });
export const count = new Intl.NumberFormat();
const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
export const clock = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

const whenCache = new Map();
export function formatWhen(iso) {
  // Event headers re-render on every stock frame; Intl formatting is the costly part.
  let text = whenCache.get(iso);
  if (text === undefined) whenCache.set(iso, (text = when.format(new Date(iso))));
  return text;
}

/** "1 ticket", "3 tickets" (the plural is the word with an "s" unless given). */
export function plural(n, one, many = `${one}s`) {
  return `${count.format(n)} ${n === 1 ? one : many}`;
}

export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function showError(el, err) {
  if (!err) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.textContent = typeof err === "string" ? err : err.message;
  el.hidden = false;
}

export function randomHex(bytes) {
  // getRandomValues works outside secure contexts too (randomUUID does not).
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function idAfter(a, b) {
  // Redis stream ids "ms-seq": is a after b?
  if (!b) return true;
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am > bm || (am === bm && (as || 0) > (bs || 0));
}

/** An element with a class and text (server data only ever goes in as text). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function clone(templateId) {
  return $(templateId).content.firstElementChild.cloneNode(true);
}

export const ID = "[A-Za-z0-9_-]{1,64}";
export const eventHref = (id) => `#/events/${encodeURIComponent(id)}`;
