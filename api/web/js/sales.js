// Per-category sales (organizer of the event, ADMIN): the sales view's table, and the
// held / sold figures that let the event page tell "all held" from "sold out".

import { api, enc } from "./api.js";
import { onFrameOf, watchCurrent } from "./feed.js";
import { markEventDirty } from "./render.js";
import { isCurrent, nextNav, registerView, setView } from "./router.js";
import { canManage, mergeEvent, state } from "./state.js";
import { onStockMoved } from "./stock.js";
import { $, clock, clone, count, el, eventHref, money, plural, setText, showError } from "./util.js";

const SALES_REFRESH_MS = 1000;
const SALES_POLL_MS = 5000;

// ---- throttled reads, one per event --------------------------------------------------

const fetchers = new Map(); // event id -> {inflight, again, last, timer}
const listeners = []; // fn(sales) for every fresh read

function wanted(eventId) {
  const v = state.view;
  if (!state.auth) return false;
  if (v.name === "sales" && v.eventId === eventId) return true;
  if (v.name === "event" && v.eventId === eventId) return canManage(state.events.get(eventId));
  return false;
}

/** Read the event's sales soon: at most one request in flight and one a second, with a
 * trailing refresh, and only while a view shows them. */
export function requestSales(eventId) {
  if (!wanted(eventId)) return;
  let f = fetchers.get(eventId);
  if (!f) fetchers.set(eventId, (f = { inflight: false, again: false, last: -Infinity, timer: 0 }));
  if (f.inflight) {
    f.again = true;
    return;
  }
  const wait = f.last + SALES_REFRESH_MS - performance.now();
  if (wait > 0) {
    if (!f.timer) {
      f.timer = setTimeout(() => {
        f.timer = 0;
        requestSales(eventId);
      }, wait);
    }
    return;
  }
  fetchSales(eventId, f);
}

async function fetchSales(eventId, f) {
  f.inflight = true;
  f.last = performance.now();
  try {
    const { data } = await api(`/api/admin/events/${enc(eventId)}/sales`);
    applySales(data);
    for (const fn of listeners) fn(data, null);
  } catch (err) {
    for (const fn of listeners) fn(null, err, eventId);
  } finally {
    f.inflight = false;
    if (f.again) {
      f.again = false;
      requestSales(eventId);
    }
  }
}

function applySales(s) {
  const ev = state.events.get(s.eventoId);
  if (!ev) return;
  for (const r of s.categorias) {
    const c = ev.cats.get(r.categoriaId);
    if (!c) continue;
    c.held = r.retenidos;
    c.sold = r.vendidos;
  }
  markEventDirty(ev);
}

export function onSales(fn) {
  listeners.push(fn);
}

// ---- the sales view --------------------------------------------------------------------

const view = { rows: new Map(), eventId: "" };

function showSales(eventId) {
  const nav = nextNav();
  setView("sales", eventId);
  $("sales-back").href = eventHref(eventId);
  if (view.eventId !== eventId) clearSales(eventId);
  watchCurrent();
  if (!state.events.has(eventId)) {
    api(`/api/events/${enc(eventId)}`)
      .then(({ data }) => isCurrent(nav) && mergeEvent(data))
      .catch(() => {});
  }
  if (!state.auth) {
    showError($("sales-error"), "Sign in as the event's organizer or an admin to see its sales.");
    return;
  }
  showError($("sales-error"), null);
  requestSales(eventId);
}

export function clearSales(eventId) {
  view.eventId = eventId;
  view.rows = new Map();
  $("sales-rows").replaceChildren();
  $("sales-totals").replaceChildren();
  $("sales-queue").hidden = true;
  $("sales-queue-list").replaceChildren();
  setText($("sales-name"), "Sales");
  setText($("sales-updated"), "");
}

function salesRow() {
  const tr = clone("tpl-sales-row");
  const cell = (cls) => tr.querySelector(cls);
  return {
    tr,
    name: cell(".s-name"),
    total: cell(".s-total"),
    sold: cell(".s-sold"),
    held: cell(".s-held"),
    avail: cell(".s-avail"),
    rev: cell(".s-rev"),
    wait: cell(".s-wait"),
    mix: cell(".mix"),
  };
}

function fillSalesRow(row, r, name) {
  setText(row.name, name);
  setText(row.total, count.format(r.total));
  setText(row.sold, count.format(r.vendidos));
  setText(row.held, count.format(r.retenidos));
  setText(row.avail, count.format(r.disponibles));
  setText(row.rev, money.format(r.ingresos));
  // The waitlist's length per category (SPEC 10.4), when the API reports it.
  setText(row.wait, typeof r.enEspera === "number" ? count.format(r.enEspera) : "—");
  row.mix.style.gridTemplateColumns = `${r.vendidos}fr ${r.retenidos}fr ${r.disponibles}fr`;
}

function renderSales(s) {
  if (state.view.name !== "sales" || state.view.eventId !== s.eventoId) return;
  setText($("sales-name"), `Sales · ${s.nombre}`);
  const seen = new Set();
  const body = $("sales-rows");
  const ordered = [];
  for (const r of s.categorias) {
    seen.add(r.categoriaId);
    let row = view.rows.get(r.categoriaId);
    if (!row) {
      row = salesRow();
      row.tr.dataset.cat = r.categoriaId;
      view.rows.set(r.categoriaId, row);
    }
    fillSalesRow(row, r, r.nombre);
    ordered.push(row.tr);
  }
  for (const id of [...view.rows.keys()]) if (!seen.has(id) && id !== "__totals__") view.rows.delete(id);
  if (body.children.length !== ordered.length || ordered.some((tr, i) => body.children[i] !== tr)) {
    body.replaceChildren(...ordered);
  }
  let totals = view.rows.get("__totals__");
  if (!totals) {
    totals = salesRow();
    totals.tr.className = "totals";
    view.rows.set("__totals__", totals);
    $("sales-totals").replaceChildren(totals.tr);
  }
  const waiting = s.categorias.some((r) => typeof r.enEspera === "number")
    ? s.categorias.reduce((n, r) => n + (r.enEspera || 0), 0)
    : undefined;
  fillSalesRow(totals, { ...s, enEspera: waiting }, "All categories");
  renderQueueFigures(s.cola);
  setText($("sales-updated"), `Updated ${clock.format(new Date())} · refreshes as tickets move`);
}

// ---- the admission queue's figures (the sales JSON's `cola`) ----------------------------

export const QUEUE_STATE_TEXT = {
  PRE: "Not open yet",
  ABIERTA: "Open",
  AGOTADA: "Sold out",
  CERRADA: "Closed",
};

const QUEUE_FIGURES = [
  ["enCola", "Waiting in the queue", (q) => count.format(q.enCola)],
  ["admitidos", "Admitted", (q) => count.format(q.admitidos)],
  ["admitidosSinReserva", "Admitted, not holding yet", (q) => count.format(q.admitidosSinReserva)],
  ["convertidos", "Admitted and held", (q) => count.format(q.convertidos)],
  ["perdidos", "Lost their place", (q) => count.format(q.perdidos)],
  ["caducados", "Admissions that ran out", (q) => count.format(q.caducados)],
  ["salidaPorMinuto", "Admitted in the last minute", (q) => plural(q.salidaPorMinuto, "buyer")],
  ["abiertaEn", "Opened at", (q) => (q.abiertaEn ? clock.format(new Date(q.abiertaEn)) : "not yet")],
  ["agotadoEn", "Sold out at", (q) => (q.agotadoEn ? clock.format(new Date(q.agotadoEn)) : "not sold out")],
];

function renderQueueFigures(q) {
  const box = $("sales-queue");
  box.hidden = !q;
  if (!q) return;
  const pill = $("sales-queue-state");
  setText(pill, QUEUE_STATE_TEXT[q.estado] || q.estado);
  pill.dataset.estado = q.estado;
  const list = $("sales-queue-list");
  if (list.children.length !== QUEUE_FIGURES.length) {
    list.replaceChildren(
      ...QUEUE_FIGURES.map(([key, label]) => {
        const item = el("div", "stat");
        item.dataset.stat = key;
        item.append(el("dt", "", label), el("dd"));
        return item;
      }),
    );
  }
  QUEUE_FIGURES.forEach(([key, , fmt], i) => {
    if (key in q) setText(list.children[i].querySelector("dd"), fmt(q));
  });
}

export function startSales() {
  registerView("sales", {
    show: showSales,
    rerender: () => requestSales(state.view.eventId),
  });
  onSales((s, err, eventId) => {
    if (s) {
      if (state.view.name === "sales" && state.view.eventId === s.eventoId) {
        requestAnimationFrame(() => renderSales(s));
        showError($("sales-error"), null);
      }
      return;
    }
    if (state.view.name === "sales" && state.view.eventId === eventId) {
      showError($("sales-error"), err);
      // Whoever is signed in now may not see what the previous user saw.
      if (err.status === 401 || err.status === 403 || err.status === 404) clearSales(eventId);
    }
  });
  onStockMoved((eventId) => requestSales(eventId));
  // The queue's own frame (at most one a second, at once on a state change) moves its
  // figures: admissions, sell-out, reopening.
  onFrameOf("queue:update", (d) => requestSales(d.eventoId));
  // A confirmation moves tickets from held to sold without changing availability, so no
  // room frame announces it: poll slowly besides refreshing on every stock frame.
  setInterval(() => {
    if (document.hidden) return;
    if (state.view.eventId) requestSales(state.view.eventId);
  }, SALES_POLL_MS);
}
