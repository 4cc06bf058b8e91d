// Room frames: stock moves, almost-sold-out levels and event changes, applied to state
// and marked dirty (the DOM follows in the next animation frame).

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
  for (const catId of ev.cats.keys()) markDirty(catKey(ev.id, catId));
  markDirty(eventKey(ev.id));
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
