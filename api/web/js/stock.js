// Room frames: stock moves, almost-sold-out levels and event changes (the event's own
// fields, and its categories created, changed or removed), applied to state and marked
// dirty (the DOM follows in the next animation frame; a category that came or went
// re-renders the view).

import { api, enc } from "./api.js";
import { onFrameOf } from "./feed.js";
import { catKey, eventKey, markDirty } from "./render.js";
import { rerenderView } from "./router.js";
import { mergeEvent, state } from "./state.js";

const stockListeners = [];
/** fn(eventId) after a stock frame for an event (the sales views refresh from it). */
export function onStockMoved(fn) {
  stockListeners.push(fn);
}

function onStock(d) {
  state.stockFrames += 1;
  const ev = state.events.get(d.eventoId);
  if (!ev) return;
  const cat = ev.cats.get(d.categoriaId);
  if (!cat || d.nuevoStock > cat.total) refreshEventSoon(d.eventoId);
  if (!cat) return;
  // Stock coming back from zero: tickets were held, not sold (holds ran out or were
  // cancelled), the signal the public has that a "none left" may not be final.
  if (cat.available <= 0 && d.nuevoStock > 0) cat.cameBack = true;
  // A hold takes from available into held, a release gives back: keep a known held count
  // in step (a confirmation moves held to sold unannounced; the next sales read corrects).
  if (cat.held !== null) cat.held = Math.max(0, cat.held + (cat.available - d.nuevoStock));
  cat.available = d.nuevoStock;
  cat.live = true;
  markDirty(catKey(ev.id, cat.id));
  markDirty(eventKey(ev.id));
  for (const fn of stockListeners) fn(ev.id);
}

function onLowStock(d) {
  const cat = state.events.get(d.eventoId)?.cats.get(d.categoriaId);
  if (!cat) return;
  cat.lowAt = d.stockRestante;
  markDirty(catKey(d.eventoId, d.categoriaId));
}

function onEventUpdate(d) {
  const ev = state.events.get(d.eventoId);
  if (!ev) return;
  const changes = d.cambios || {};
  if (changes.eliminado) ev.deleted = true;
  for (const field of ["nombre", "descripcion", "fecha", "ubicacion", "enVenta", "maxPorComprador"]) {
    if (field in changes) ev[field] = changes[field];
  }
  if ("capacidadTotal" in changes || "categorias" in changes) refreshEventSoon(ev.id);
  let added = false;
  let removed = false;
  if (changes.categoria && typeof changes.categoria === "object") added = applyCategory(ev, changes.categoria);
  if (typeof changes.categoriaEliminada === "string") removed = removeCategory(ev, changes.categoriaEliminada);
  for (const catId of ev.cats.keys()) markDirty(catKey(ev.id, catId));
  markDirty(eventKey(ev.id));
  if (changes.categoria || removed) for (const fn of stockListeners) fn(ev.id);
  // A category came or went: the views build their rows again (the event page keeps
  // what the buyer typed into the others).
  if (added || removed) rerenderView();
}

/** A category created or changed (`cambios.categoria`, the category as the REST API shows
 * it, `disponible` as of the frame): true when it is new to the page. */
function applyCategory(ev, c) {
  if (typeof c.id !== "string") return false;
  const old = ev.cats.get(c.id);
  const cat = old || { id: c.id, lowAt: null, held: null, sold: null, cameBack: false };
  cat.nombre = String(c.nombre ?? cat.nombre ?? "");
  cat.precio = Number(c.precio ?? cat.precio ?? 0);
  cat.total = Number(c.cantidadTotal ?? cat.total ?? 0);
  cat.beneficios = Array.isArray(c.beneficios) ? c.beneficios.map(String) : cat.beneficios || [];
  if (typeof c.disponible === "number") {
    // Not a release: held counts stay (a stock frame after this one moves them).
    cat.available = c.disponible;
    cat.live = true; // the feed spoke: newer than a REST read
  }
  if (old) return false;
  if (typeof cat.available !== "number") cat.available = 0;
  ev.cats.set(c.id, cat);
  ev.removedNames?.delete(c.id);
  return true;
}

/** A category removed (`cambios.categoriaEliminada`): true when the page had it. Its name
 * is kept, so a `waitlist:closed` arriving after this frame can still name it. */
function removeCategory(ev, catId) {
  const cat = ev.cats.get(catId);
  if (!cat) return false;
  if (!ev.removedNames) ev.removedNames = new Map();
  ev.removedNames.set(catId, cat.nombre);
  ev.cats.delete(catId);
  return true;
}

const refreshing = new Map(); // event id -> timer
export function refreshEventSoon(eventId) {
  if (refreshing.has(eventId)) return;
  refreshing.set(
    eventId,
    setTimeout(async () => {
      try {
        const { data } = await api(`/api/events/${enc(eventId)}`);
        mergeEvent(data);
        rerenderView();
      } catch {
        // the next frame or navigation tries again
      } finally {
        refreshing.delete(eventId);
      }
    }, 300),
  );
}

export function startStock() {
  onFrameOf("ticket:stock-update", onStock);
  onFrameOf("ticket:almost-sold-out", onLowStock);
  onFrameOf("event:update", onEventUpdate);
}
