// Batched rendering: feed handlers only store values and mark keys dirty; one
// requestAnimationFrame callback runs the updaters bound to the dirty keys. Updaters only
// write (text, a transform, a class, a data attribute) and skip unchanged writes, and
// nothing reads layout, so a rush of frames costs one small DOM pass per display frame.

import { state, catStatus, STATUS_BADGE, STATUS_NOTE } from "./state.js";
import { clone, count, el, money, setText } from "./util.js";

let bound = new Map(); // dirty key -> updaters bound by the current view
const dirty = new Set();
let framePending = false;

export function resetBindings() {
  bound = new Map();
}

export function bind(key, update) {
  let list = bound.get(key);
  if (!list) bound.set(key, (list = []));
  list.push(update);
  update();
}

export function markDirty(key) {
  dirty.add(key);
  if (!framePending) {
    framePending = true;
    requestAnimationFrame(flush);
  }
}

function flush() {
  framePending = false;
  for (const key of dirty) {
    const updaters = bound.get(key);
    if (updaters) for (const update of updaters) update();
  }
  dirty.clear();
}

export const catKey = (eventId, catId) => `c:${eventId}:${catId}`;
export const eventKey = (eventId) => `e:${eventId}`;

export function markEventDirty(ev) {
  for (const catId of ev.cats.keys()) markDirty(catKey(ev.id, catId));
  markDirty(eventKey(ev.id));
}

/**
 * One category: name, price, bar, "n of m left", a badge (almost gone / all held / sold
 * out / none left now). With `opts.qty` (an input) it is the event page's row: the box is
 * disabled when nothing can be had, with the reason next to it, and the benefits show.
 */
export function catWidget(eventId, catId, opts = {}) {
  const qtyInput = opts.qty || null;
  const node = clone("tpl-cat");
  const nameEl = node.querySelector(".cat-name");
  const priceEl = node.querySelector(".cat-price");
  const badge = node.querySelector(".cat-badge");
  const fill = node.querySelector(".bar-fill");
  const countEl = node.querySelector(".cat-count");
  const note = node.querySelector(".cat-note");
  const perks = node.querySelector(".cat-perks");
  node.dataset.cat = catId;
  if (qtyInput) {
    const label = el("label", "qty-label");
    label.append(el("span", "visually-hidden", "Tickets"), qtyInput);
    node.querySelector(".cat-foot").append(label);
    note.id = `note-${catId}`;
    qtyInput.setAttribute("aria-describedby", note.id);
  }
  if (opts.extra) node.append(opts.extra);
  let shown = "";
  const update = () => {
    const ev = state.events.get(eventId);
    const c = ev && ev.cats.get(catId);
    if (!c) return;
    const open = ev.enVenta && !ev.deleted;
    const status = catStatus(c);
    const signature = `${c.available}|${c.total}|${status}|${c.nombre}|${c.precio}|${open}|${c.beneficios.join("\n")}`;
    if (signature === shown) return;
    shown = signature;
    const available = Math.max(0, c.available);
    const none = available === 0;
    setText(nameEl, c.nombre);
    setText(priceEl, money.format(c.precio));
    fill.style.transform = `scaleX(${c.total > 0 ? Math.min(1, available / c.total) : 0})`;
    setText(countEl, `${count.format(available)} of ${count.format(c.total)} left`);
    setText(badge, STATUS_BADGE[status]);
    node.dataset.status = status;
    node.classList.toggle("soldout", status === "soldout");
    node.classList.toggle("none", none);
    node.classList.toggle("held", status === "held" || status === "taken");
    node.classList.toggle("low", status === "low");
    node.dataset.available = String(available);
    if (qtyInput) {
      qtyInput.setAttribute("aria-label", `tickets of ${c.nombre}`); // renamed live
      setText(note, STATUS_NOTE[status]);
      perks.replaceChildren(...c.beneficios.map((b) => el("li", "", b)));
      perks.hidden = !c.beneficios.length;
      qtyInput.disabled = none || !open || !state.auth;
      qtyInput.max = String(available);
      if (none && qtyInput.value !== "0") {
        qtyInput.value = "0";
        if (opts.onChange) opts.onChange();
      }
      if (opts.onStatus) opts.onStatus(c, status);
    }
  };
  // A view re-binds a widget it keeps (renderEvent on sign-in): the next update re-applies
  // everything, since what it depends on beyond the stock (the signed-in user) may differ.
  node.rebind = () => {
    shown = "";
    bind(catKey(eventId, catId), update);
  };
  node.rebind();
  return node;
}
