// The event page: description, date and place, every category with its live bar, its
// benefits and a quantity box; Hold tickets (disabled, with the reason, when nothing can be
// bought); a waitlist for a category with none left (once the API has one).

import { api, capabilities, enc } from "./api.js";
import { onFrameOf, watchCurrent } from "./feed.js";
import { renderOrder, loadMyOrder, setEventOrder } from "./orders.js";
import { admissionUsed, bindQueuePanel, holdRefused, leaveQueueView, loadQueue, onQueueChange, queueGate, startQueue } from "./queue.js";
import { bind, catWidget, eventKey, resetBindings } from "./render.js";
import { isCurrent, nextNav, registerView, setView } from "./router.js";
import { requestSales } from "./sales.js";
import { canManage, eventIdOfOrder, eventUnavailableReason, mergeEvent, state } from "./state.js";
import { refreshEventSoon } from "./stock.js";
import { $, el, eventHref, formatWhen, money, plural, randomHex, setText, showError } from "./util.js";

let caps = { waitlist: false };
capabilities().then((c) => {
  caps = c;
  if (state.view.name === "event") renderEvent(state.view.eventId);
});

let holdAttempt = null; // {signature, key}: a retry of the same choice reuses the key
let holding = false;

async function showEvent(eventId) {
  const nav = nextNav();
  setView("event", eventId);
  showError($("event-error"), null);
  showError($("hold-error"), null);
  showError($("order-error"), null);
  if (state.orderId && eventIdOfOrder(state.orderId) !== eventId) state.orderId = "";
  if (state.events.has(eventId)) renderEvent(eventId);
  else {
    $("event-cats").replaceChildren();
    $("event-cats").dataset.event = "";
  }
  renderOrder();
  try {
    const { data } = await api(`/api/events/${enc(eventId)}`);
    if (!isCurrent(nav)) return;
    mergeEvent(data);
    renderEvent(eventId);
    watchCurrent();
  } catch (err) {
    if (isCurrent(nav)) showError($("event-error"), err);
    return;
  }
  loadQueue(eventId, nav);
  if (canManage(state.events.get(eventId))) requestSales(eventId);
  if (state.auth) {
    loadMyOrder(eventId, nav);
    loadWaitlist(eventId, nav);
  }
}

export function renderEvent(eventId) {
  if (state.view.name !== "event" || state.view.eventId !== eventId) return;
  const ev = state.events.get(eventId);
  if (!ev) return;
  document.title = `${ev.nombre} · onsale`;
  resetBindings();
  const catsEl = $("event-cats");
  const catIds = [...ev.cats.keys()].join(" ");
  if (catsEl.dataset.event === eventId && catsEl.dataset.cats === catIds) {
    // Same event, same categories (sign-in, a refreshed event): keep the rows and their
    // inputs and bind them again. Replacing an input under a buyer who is typing into it
    // drops the focus and every keystroke after it (the flaky browser test of the hold
    // form: a sign-in's second render landed between Playwright's focus and its typing).
    for (const row of catsEl.children) row.rebind();
  } else {
    buildEventRows(eventId, ev, catsEl, catIds);
  }
  bindEventHeader(eventId);
  bindQueuePanel(eventId);
  applyQueueGate();
  updateHoldTotal();
}

/** Behind a queue the hold form shows only to an admitted buyer (the waiting room instead). */
function applyQueueGate() {
  const eventId = state.view.eventId;
  if (state.view.name !== "event" || !eventId) return;
  const gate = queueGate(eventId);
  const hide = gate.queued && !gate.token;
  const form = $("hold-form");
  if (form.hidden !== hide) form.hidden = hide;
  $("event-layout").classList.toggle("no-form", hide);
  form.dataset.admission = gate.token ? "yes" : "";
}

function buildEventRows(eventId, ev, catsEl, catIds) {
  // Keep what the buyer typed when the categories change under them.
  const typed = new Map();
  if (catsEl.dataset.event === eventId) {
    for (const input of catsEl.querySelectorAll("input.qty")) typed.set(input.name, input.value);
  }
  const rows = [];
  waitBoxes.clear();
  for (const cat of ev.cats.values()) {
    const qty = document.createElement("input");
    qty.type = "number";
    qty.min = "0";
    qty.step = "1";
    qty.value = typed.get(cat.id) || "0";
    qty.inputMode = "numeric";
    qty.className = "qty";
    qty.name = cat.id;
    qty.id = `qty-${cat.id}`;
    qty.setAttribute("aria-label", `tickets of ${cat.nombre}`);
    qty.addEventListener("input", updateHoldTotal);
    const wait = waitlistBox(eventId, cat.id, cat.nombre);
    rows.push(
      catWidget(eventId, cat.id, {
        qty,
        extra: wait.node,
        onChange: updateHoldTotal,
        onStatus: (c, status) => {
          wait.update(status);
          updateHoldTotal(); // a price changed live (event:update) changes the total
        },
      }),
    );
  }
  catsEl.replaceChildren(...rows);
  catsEl.dataset.event = eventId;
  catsEl.dataset.cats = catIds;
}

function bindEventHeader(eventId) {
  const salesLink = $("sales-link");
  salesLink.href = `${eventHref(eventId)}/sales`;
  $("edit-link").href = `${eventHref(eventId)}/edit`;
  bind(eventKey(eventId), () => {
    const e = state.events.get(eventId);
    setText($("event-name"), e.nombre);
    setText($("event-meta"), `${formatWhen(e.fecha)} · ${e.ubicacion}`);
    setText($("event-desc"), e.descripcion || "");
    $("event-desc").hidden = !e.descripcion;
    const cap = typeof e.maxPorComprador === "number" && e.maxPorComprador > 0;
    setText($("event-cap"), cap ? `Up to ${plural(e.maxPorComprador, "ticket")} per buyer for this event.` : "");
    const open = e.enVenta && !e.deleted;
    $("event-closed").hidden = open;
    setText($("event-closed"), e.deleted ? "Cancelled" : "Not on sale");
    const manage = canManage(e);
    salesLink.hidden = !manage;
    $("edit-link").hidden = !manage;
    // Nothing on sale, sold out, all held: say why, and do not offer a button that cannot work.
    const reason = eventUnavailableReason(e);
    $("hold-btn").disabled = Boolean(reason) || !state.auth || holding;
    setText($("hold-hint"), reason || (!state.auth ? "Sign in to hold tickets." : ""));
    $("hold-signup").hidden = Boolean(state.auth) || Boolean(reason);
    $("hold-form").dataset.available = reason ? "none" : "some";
  });
}

function chosenTickets() {
  const tickets = [];
  for (const input of $("event-cats").querySelectorAll("input.qty")) {
    const n = Number(input.value);
    if (Number.isInteger(n) && n > 0) tickets.push({ categoriaId: input.name, cantidad: n });
  }
  return tickets;
}

function updateHoldTotal() {
  const ev = state.events.get(state.view.eventId);
  if (!ev) return;
  let tickets = 0;
  let total = 0;
  for (const t of chosenTickets()) {
    const cat = ev.cats.get(t.categoriaId);
    if (!cat) continue;
    tickets += t.cantidad;
    total += t.cantidad * cat.precio;
  }
  setText($("hold-total"), tickets ? `${plural(tickets, "ticket")} · ${money.format(total)}` : "");
}

async function onHold(e) {
  e.preventDefault();
  const eventId = state.view.eventId;
  const errEl = $("hold-error");
  showError(errEl, null);
  if (!state.auth) return showError(errEl, "Sign in to hold tickets.");
  const ev = state.events.get(eventId);
  const reason = ev && eventUnavailableReason(ev);
  if (reason) return showError(errEl, reason);
  const tickets = chosenTickets();
  if (!tickets.length) {
    showError(errEl, "Choose how many tickets you want first.");
    const first = $("event-cats").querySelector("input.qty:not(:disabled)");
    if (first) first.focus();
    return;
  }
  const signature = JSON.stringify([eventId, tickets]);
  if (!holdAttempt || holdAttempt.signature !== signature) {
    holdAttempt = { signature, key: `web-${randomHex(16)}` };
  }
  const gate = queueGate(eventId);
  const headers = { "Idempotency-Key": holdAttempt.key };
  if (gate.token) headers["Admission-Token"] = gate.token;
  const btn = $("hold-btn");
  holding = true;
  btn.disabled = true;
  setText(btn, "Holding…");
  try {
    const { data, sentAt, receivedAt } = await api("/api/orders", {
      method: "POST",
      body: { eventoId: eventId, tickets },
      headers,
    });
    holdAttempt = null;
    if (gate.token) admissionUsed(eventId);
    // creadoEn is the server's "now" (ms), so it corrects the countdown for clock skew.
    const created = Date.parse(data.creadoEn);
    if (!Number.isNaN(created)) state.clockSkew = created - (sentAt + receivedAt) / 2;
    for (const input of $("event-cats").querySelectorAll("input.qty")) input.value = "0";
    updateHoldTotal();
    setEventOrder(data, { reveal: true });
  } catch (err) {
    if (err.status && err.status < 500) holdAttempt = null; // refused: nothing was held
    showError(errEl, holdError(err));
    holdRefused(eventId, err);
  } finally {
    holding = false;
    setText(btn, "Hold tickets");
    const current = state.events.get(eventId);
    btn.disabled = !(current && state.auth && !eventUnavailableReason(current));
  }
}

function holdError(err) {
  const catId = err.body && err.body.categoriaId;
  const cat = catId && state.events.get(state.view.eventId)?.cats.get(catId);
  return cat ? `${cat.nombre}: ${err.message}` : err;
}

// ---- waitlist (POST /api/events/{id}/waitlist, once the API has it) ---------------------------

const waitEntries = new Map(); // "event:category" -> entry JSON

const WAIT_TEXT = {
  ESPERANDO: (w) => `You are on the waitlist${w.posicion ? ` (number ${w.posicion})` : ""}.`,
  OFERTADO: () => "Tickets are offered to you: see My orders.",
  CADUCADO: () => "Your waitlist offer ran out.",
  COMPRADO: () => "You bought tickets from the waitlist.",
  RETIRADO: () => "You left the waitlist.",
};

function waitlistBox(eventId, catId, catName) {
  const node = el("div", "cat-wait");
  node.hidden = true;
  const label = el("label", "wait-label", "Waitlist for ");
  const qty = document.createElement("input");
  qty.type = "number";
  qty.min = "1";
  qty.step = "1";
  qty.value = "1";
  qty.className = "wait-qty";
  qty.id = `wait-${catId}`;
  qty.setAttribute("aria-label", `waitlist tickets of ${catName}`);
  label.append(qty);
  const btn = el("button", "ghost wait-btn", "Join the waitlist");
  btn.type = "button";
  const status = el("span", "wait-status");
  status.setAttribute("role", "status");
  node.append(label, btn, status);
  const key = `${eventId}:${catId}`;
  const show = () => {
    const w = waitEntries.get(key);
    const joined = Boolean(w && (w.estado === "ESPERANDO" || w.estado === "OFERTADO"));
    label.hidden = joined;
    btn.hidden = joined;
    setText(status, w ? (WAIT_TEXT[w.estado] || (() => w.estado))(w) : "");
  };
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    setText(status, "");
    try {
      const { data } = await api(`/api/events/${enc(eventId)}/waitlist`, {
        method: "POST",
        body: { categoriaId: catId, cantidad: Number(qty.value) || 1 },
      });
      waitEntries.set(key, data);
      show();
    } catch (err) {
      setText(status, err.message);
    } finally {
      btn.disabled = false;
    }
  });
  let lastStatus = "";
  const box = {
    node,
    update(catState) {
      lastStatus = catState;
      const none = catState === "held" || catState === "taken" || catState === "soldout";
      const ev = state.events.get(eventId);
      const buyer = state.auth && state.auth.user.role === "COMPRADOR"; // the waitlist is for buyers
      node.hidden = !(caps.waitlist && none && buyer && ev && ev.enVenta && !ev.deleted) && !waitEntries.has(key);
      show();
    },
  };
  waitBoxes.set(key, () => box.update(lastStatus));
  return box;
}

const waitBoxes = new Map();

async function loadWaitlist(eventId, nav) {
  const c = await capabilities();
  if (!c.waitlist || !state.auth) return;
  try {
    const { data } = await api(`/api/events/${enc(eventId)}/waitlist/me`);
    if (!isCurrent(nav)) return;
    const entries = Array.isArray(data) ? data : (data && data.data) || [];
    for (const w of entries) waitEntries.set(`${eventId}:${w.categoriaId}`, w);
    for (const [key, refresh] of waitBoxes) if (key.startsWith(`${eventId}:`)) refresh();
  } catch {
    // the join button still works
  }
}

// The organizer removed a category the buyer waited for: its waitlist closed with it
// (`waitlist:closed` on the user's channel). Say so, and read the event again: the
// category leaves the page.
function onWaitlistClosed(d) {
  const ev = state.events.get(d.eventoId);
  const cat = ev && ev.cats.get(d.categoriaId);
  waitEntries.delete(`${d.eventoId}:${d.categoriaId}`);
  // The room's event:update may have removed the category from the page already.
  const name = cat ? cat.nombre : ev && ev.removedNames && ev.removedNames.get(d.categoriaId);
  const what = name || "a ticket category";
  const where = ev && ev.nombre ? ` from ${ev.nombre}` : "";
  setText($("waitlist-text"), `The organizer removed ${what}${where}: you are no longer on its waitlist.`);
  $("waitlist-banner").hidden = false;
  refreshEventSoon(d.eventoId);
}

export function forgetWaitlist() {
  waitEntries.clear();
  $("waitlist-banner").hidden = true;
}

export function startEvent() {
  registerView("event", {
    show: showEvent,
    rerender: () => renderEvent(state.view.eventId),
    leave: leaveQueueView,
  });
  $("hold-form").addEventListener("submit", onHold);
  $("waitlist-dismiss").addEventListener("click", () => {
    $("waitlist-banner").hidden = true;
  });
  onFrameOf("waitlist:closed", onWaitlistClosed);
  startQueue();
  onQueueChange(applyQueueGate);
}
