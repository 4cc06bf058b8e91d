// A buyer's orders: the event page's order panel (hold -> confirm / cancel, countdown,
// extension), the "My orders" view with every order live, and waitlist offers.

import { api, capabilities, enc } from "./api.js";
import { onFeedOpen, onFrameOf } from "./feed.js";
import { isCurrent, nextNav, registerView, setView } from "./router.js";
import { eventIdOfOrder, mergeEvent, state } from "./state.js";
import { $, clock, clone, el, eventHref, formatWhen, money, plural, randomHex, setText, showError } from "./util.js";

const FINAL_STATES = new Set(["CONFIRMED", "EXPIRED", "CANCELLED"]);
export const STATUS_TEXT = {
  RESERVED: "Held",
  CONFIRMED: "Confirmed",
  EXPIRED: "Expired",
  CANCELLED: "Cancelled",
};
const EXTEND_WINDOW_MS = 2 * 60 * 1000; // offer "Extend" in the last two minutes
const PAGE_SIZE = 20;

let caps = { extend: false, waitlist: false };
capabilities().then((c) => {
  caps = c;
  renderOrder();
});

// ---- the orders seen ------------------------------------------------------------------

/** Store an order (a new one gets its own transactionId, so a retried confirm is idempotent). */
export function upsertOrder(order) {
  const old = state.orders.get(order.id);
  if (old) {
    old.data = order;
    return old;
  }
  const entry = { data: order, txId: `web-${randomHex(12)}` };
  state.orders.set(order.id, entry);
  return entry;
}

function applyStatus(entry, d) {
  // A final state never goes back to RESERVED, whatever arrives late.
  if (FINAL_STATES.has(entry.data.estado) && !FINAL_STATES.has(d.nuevoEstado)) return false;
  entry.data.estado = d.nuevoEstado;
  if (d.expiraEn) entry.data.expiraEn = d.expiraEn;
  return true;
}

export function timeLeft(o) {
  return Date.parse(o.expiraEn) - (Date.now() + state.clockSkew);
}

function leftText(left) {
  if (left <= 0) return "Time is up: releasing the tickets…";
  const s = Math.ceil(left / 1000);
  const mm = String(Math.floor(s / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return `${mm}:${ss} left to confirm`;
}

function finalText(o) {
  if (o.estado === "CONFIRMED") {
    return `Paid${o.confirmadoEn ? ` at ${clock.format(new Date(o.confirmadoEn))}` : ""}. Enjoy the show!`;
  }
  if (o.estado === "EXPIRED") return "The hold ran out and the tickets went back on sale.";
  return "Cancelled: the tickets went back on sale.";
}

function orderLines(o) {
  return o.tickets.map((t) => {
    const li = document.createElement("li");
    li.append(el("span", "", `${t.cantidad} × ${t.nombre}`), el("span", "num", money.format(t.cantidad * t.precioUnitario)));
    return li;
  });
}

// ---- actions (shared by the panel and the list) -----------------------------------------

async function act(entry, action, body) {
  const { data } = await api(`/api/orders/${enc(entry.data.id)}/${action}`, { method: "PUT", body });
  entry.data = data;
  return data;
}

async function refreshOrder(entry) {
  try {
    const { data } = await api(`/api/orders/${enc(entry.data.id)}`);
    entry.data = data;
  } catch {
    // keep what is shown; the feed or the next action corrects it
  }
  renderAll(entry);
}

function runAction(entry, action, buttons, errEl, body) {
  for (const b of buttons) b.disabled = true;
  showError(errEl, null);
  return act(entry, action, body)
    .then(() => renderAll(entry))
    .catch((err) => {
      showError(errEl, err);
      if (err.status === 409) refreshOrder(entry);
    })
    .finally(() => {
      for (const b of buttons) b.disabled = false;
    });
}

// ---- countdowns: one 250 ms timer for every hold on screen ------------------------------

const tickers = new Set();
let tickTimer = 0;

function addTicker(fn) {
  tickers.add(fn);
  fn();
  if (!tickTimer) tickTimer = setInterval(() => tickers.forEach((f) => f()), 250);
}

function removeTicker(fn) {
  tickers.delete(fn);
  if (!tickers.size) {
    clearInterval(tickTimer);
    tickTimer = 0;
  }
}

function countdownTicker(entry, countdownEl, extendBtn) {
  return () => {
    const o = entry.data;
    if (o.estado !== "RESERVED") return;
    const left = timeLeft(o);
    setText(countdownEl, leftText(left));
    countdownEl.classList.toggle("urgent", left < 60000);
    if (extendBtn) extendBtn.hidden = !(caps.extend && left > 0 && left < EXTEND_WINDOW_MS);
  };
}

// ---- the event page's panel -------------------------------------------------------------

let panelTicker = null;

/** Show `order` in the event page's panel (after a hold, or the buyer's latest). */
export function setEventOrder(order, { reveal = false } = {}) {
  upsertOrder(order);
  state.orderId = order.id;
  showError($("order-error"), null);
  renderOrder();
  if (reveal) revealPanel();
}

function revealPanel() {
  // On a phone the panel is below the tickets: bring it (and Confirm) into view, and move
  // the focus to it so a keyboard or screen-reader user lands on the next step.
  const panel = $("order-panel");
  if (panel.hidden) return;
  const reduce = matchMedia("(prefers-reduced-motion: reduce)").matches;
  panel.scrollIntoView({ block: "nearest", behavior: reduce ? "auto" : "smooth" });
  $("order-heading").focus({ preventScroll: true });
}

export function clearEventOrder() {
  state.orderId = "";
  renderOrder();
}

export function renderOrder() {
  const panel = $("order-panel");
  const entry = state.orders.get(state.orderId);
  if (panelTicker) removeTicker(panelTicker);
  panelTicker = null;
  if (!entry || state.view.name !== "event" || eventIdOfOrder(entry.data.id) !== state.view.eventId) {
    panel.hidden = true;
    return;
  }
  const o = entry.data;
  panel.hidden = false;
  panel.dataset.estado = o.estado;
  panel.dataset.order = o.id;
  const status = $("order-status");
  status.dataset.estado = o.estado;
  setText(status, STATUS_TEXT[o.estado] || o.estado);
  $("order-lines").replaceChildren(...orderLines(o));
  setText($("order-total"), money.format(o.total));
  setText($("order-id"), `Order ${o.id}`);
  const reserved = o.estado === "RESERVED";
  $("confirm-form").hidden = !reserved;
  $("extend-btn").hidden = true;
  if (reserved) {
    panelTicker = countdownTicker(entry, $("order-countdown"), $("extend-btn"));
    addTicker(panelTicker);
  } else {
    setText($("order-countdown"), finalText(o));
    $("order-countdown").classList.remove("urgent");
  }
}

export async function loadMyOrder(eventId, nav) {
  try {
    const { data } = await api("/api/orders/my-orders?limit=50");
    if (!isCurrent(nav)) return;
    const mine = data.data.filter((o) => o.eventoId === eventId);
    const pick = mine.find((o) => o.estado === "RESERVED") || mine[0];
    if (pick && state.orderId !== pick.id) setEventOrder(pick);
  } catch {
    // the hold form still works; the panel appears with the next hold
  }
}

function bindPanel() {
  const current = () => state.orders.get(state.orderId);
  $("confirm-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const entry = current();
    if (!entry) return;
    runAction(entry, "confirm", [$("confirm-btn")], $("order-error"), {
      metodoPago: $("pay-method").value,
      transactionId: entry.txId,
    });
  });
  $("cancel-btn").addEventListener("click", () => {
    const entry = current();
    if (entry) runAction(entry, "cancel", [$("cancel-btn")], $("order-error"));
  });
  $("extend-btn").addEventListener("click", () => {
    const entry = current();
    if (entry) runAction(entry, "extend", [$("extend-btn")], $("order-error"));
  });
}

// ---- My orders ----------------------------------------------------------------------------

const list = { rows: new Map(), page: 0, totalPages: 0, reloadTimer: 0 };

async function showOrders() {
  const nav = nextNav();
  setView("orders");
  document.title = "My orders · onsale";
  showError($("orders-error"), null);
  if (!state.auth) {
    list.rows = new Map();
    $("orders-list").replaceChildren();
    $("orders-more").hidden = true;
    setText($("orders-empty"), "Sign in to see your orders.");
    $("orders-empty").hidden = false;
    return;
  }
  await loadOrders(nav, 1);
}

async function loadOrders(nav, page) {
  try {
    const { data } = await api(`/api/orders/my-orders?page=${page}&limit=${PAGE_SIZE}`);
    if (!isCurrent(nav)) return;
    const entries = data.data.map(upsertOrder);
    list.page = page;
    list.totalPages = data.pagination.totalPages;
    if (page === 1) {
      // A reload (a feed event, a reconnect) keeps the rows it already shows, so a payment
      // method chosen or a button about to be clicked is not swapped out under the buyer.
      const keep = new Set(entries.map((e) => e.data.id));
      for (const [id, row] of list.rows) {
        if (keep.has(id)) continue;
        removeTicker(row.ticker);
        row.node.remove();
        list.rows.delete(id);
      }
    }
    for (const entry of entries) addOrderRow(entry);
    if (page === 1) {
      const box = $("orders-list");
      const first = entries.map((e) => list.rows.get(e.data.id).node);
      if (first.some((node, i) => box.children[i] !== node)) {
        const rest = [...box.children].filter((node) => !first.includes(node));
        box.replaceChildren(...first, ...rest);
      }
    }
    $("orders-more").hidden = list.page >= list.totalPages;
    setText($("orders-empty"), "No orders yet: pick an event and hold some tickets.");
    $("orders-empty").hidden = list.rows.size > 0;
    loadEventNames(entries.map((e) => e.data.eventoId), nav);
  } catch (err) {
    if (isCurrent(nav)) showError($("orders-error"), err);
  }
}

async function loadEventNames(ids, nav) {
  for (const id of new Set(ids)) {
    if (state.events.has(id)) continue;
    try {
      const { data } = await api(`/api/events/${enc(id)}`);
      mergeEvent(data);
    } catch {
      continue; // the row keeps showing the id
    }
    if (!isCurrent(nav)) return;
    for (const row of list.rows.values()) if (row.entry.data.eventoId === id) row.render();
  }
}

function addOrderRow(entry) {
  const known = list.rows.get(entry.data.id);
  if (known) {
    known.render();
    return known;
  }
  const node = clone("tpl-order-row");
  const q = (cls) => node.querySelector(cls);
  const n = list.rows.size;
  const pay = q(".o-pay");
  pay.id = `o-pay-${n}`;
  q(".o-pay-label").htmlFor = pay.id;
  const row = {
    entry,
    node,
    ticker: countdownTicker(entry, q(".o-countdown"), q(".o-extend")),
    render() {
      const o = entry.data;
      const ev = state.events.get(o.eventoId);
      node.dataset.order = o.id;
      node.dataset.estado = o.estado;
      const link = q(".o-event");
      link.href = eventHref(o.eventoId);
      setText(link, ev ? ev.nombre : `Event ${o.eventoId}`);
      setText(q(".o-when"), ev ? `${formatWhen(ev.fecha)} · ${ev.ubicacion}` : "");
      const status = q(".o-status");
      status.dataset.estado = o.estado;
      setText(status, STATUS_TEXT[o.estado] || o.estado);
      q(".o-lines").replaceChildren(...orderLines(o));
      setText(q(".o-total"), money.format(o.total));
      setText(q(".o-count"), plural(o.tickets.reduce((a, t) => a + t.cantidad, 0), "ticket"));
      const reserved = o.estado === "RESERVED";
      q(".o-actions").hidden = !reserved;
      q(".o-extend").hidden = true;
      if (reserved) addTicker(row.ticker);
      else {
        removeTicker(row.ticker);
        setText(q(".o-countdown"), finalText(o));
        q(".o-countdown").classList.remove("urgent");
      }
    },
  };
  const errEl = q(".o-error");
  const buttons = [q(".o-confirm"), q(".o-cancel"), q(".o-extend")];
  q(".o-actions").addEventListener("submit", (e) => {
    e.preventDefault();
    runAction(entry, "confirm", buttons, errEl, { metodoPago: pay.value, transactionId: entry.txId });
  });
  q(".o-cancel").addEventListener("click", () => runAction(entry, "cancel", buttons, errEl));
  q(".o-extend").addEventListener("click", () => runAction(entry, "extend", buttons, errEl));
  list.rows.set(entry.data.id, row);
  $("orders-list").append(node);
  row.render();
  return row;
}

function leaveOrders() {
  for (const row of list.rows.values()) removeTicker(row.ticker);
}

function reloadOrdersSoon() {
  if (list.reloadTimer || state.view.name !== "orders") return;
  list.reloadTimer = setTimeout(() => {
    list.reloadTimer = 0;
    if (state.view.name === "orders") loadOrders(nextNav(), 1);
  }, 300);
}

/** Re-render an order wherever it shows. */
function renderAll(entry) {
  if (state.orderId === entry.data.id) renderOrder();
  const row = list.rows.get(entry.data.id);
  if (row && state.view.name === "orders") row.render();
}

// ---- live -------------------------------------------------------------------------------

function onOrderStatus(d) {
  const entry = state.orders.get(d.orderId);
  if (!entry) {
    reloadOrdersSoon(); // an order made elsewhere (another tab, a waitlist offer)
    return;
  }
  if (applyStatus(entry, d)) renderAll(entry);
}

let offerTicker = null;

async function onWaitlistOffer(d) {
  let order;
  try {
    ({ data: order } = await api(`/api/orders/${enc(d.orderId)}`));
  } catch {
    return;
  }
  const entry = upsertOrder(order);
  if (state.view.name === "event" && state.view.eventId === order.eventoId) setEventOrder(order, { reveal: true });
  reloadOrdersSoon();
  const banner = $("offer-banner");
  const ev = state.events.get(order.eventoId);
  setText($("offer-text"), `Tickets from the waitlist are yours to buy${ev ? ` for ${ev.nombre}` : ""}:`);
  $("offer-link").href = "#/orders";
  banner.hidden = false;
  if (offerTicker) removeTicker(offerTicker);
  offerTicker = () => {
    if (entry.data.estado !== "RESERVED") {
      banner.hidden = true;
      removeTicker(offerTicker);
      return;
    }
    setText($("offer-left"), leftText(timeLeft(entry.data)));
  };
  addTicker(offerTicker);
}

export function forgetOrders() {
  state.orders = new Map();
  state.orderId = "";
  list.rows = new Map();
  $("orders-list").replaceChildren();
  $("offer-banner").hidden = true;
  renderOrder();
}

export function startOrders() {
  bindPanel();
  registerView("orders", { show: showOrders, leave: leaveOrders, rerender: () => reloadOrdersSoon() });
  $("orders-more").addEventListener("click", () => loadOrders(nextNav(), list.page + 1));
  onFrameOf("order:status-change", onOrderStatus);
  onFrameOf("waitlist:offer", onWaitlistOffer);
  onFeedOpen(() => {
    // order:status-change has no replay: read the shown orders again after a gap.
    const entry = state.orders.get(state.orderId);
    if (entry && state.auth) refreshOrder(entry);
    if (state.view.name === "orders" && state.auth) reloadOrdersSoon();
  });
}
