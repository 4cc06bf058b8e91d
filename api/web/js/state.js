// The page's state: who is signed in, the events seen (with live stock), the orders seen.

const AUTH_KEY = "onsale.auth";

function loadAuth() {
  try {
    const raw = sessionStorage.getItem(AUTH_KEY);
    const auth = raw ? JSON.parse(raw) : null;
    return auth && typeof auth.token === "string" && auth.user ? auth : null;
  } catch {
    return null;
  }
}

export const state = {
  auth: loadAuth(),
  events: new Map(), // id -> {id, nombre, descripcion, fecha, ubicacion, enVenta, organizadorId, maxPorComprador, deleted, cats}
  lastId: new Map(), // event id -> id of the last room frame applied (for `since`)
  listIds: [],
  extraWatched: new Set(), // rooms a view wants besides the list and the open event
  page: 1,
  totalPages: 1,
  view: { name: "", eventId: "" },
  orders: new Map(), // order id -> {data: order JSON, txId}
  orderId: "", // the order shown on the event page
  clockSkew: 0, // server clock minus local clock, ms
  stockFrames: 0,
  returnTo: "", // where sign-up / sign-in goes back to
};

export function saveAuth(auth) {
  state.auth = auth;
  if (auth) sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
  else sessionStorage.removeItem(AUTH_KEY);
}

export const role = () => (state.auth ? state.auth.user.role : "");
export const isOrganizer = () => role() === "ORGANIZADOR" || role() === "ADMIN";

export function canManage(ev) {
  const user = state.auth && state.auth.user;
  return Boolean(
    user && ev && (user.role === "ADMIN" || (user.role === "ORGANIZADOR" && user.id === ev.organizadorId)),
  );
}

export function mergeEvent(e) {
  let ev = state.events.get(e.id);
  if (!ev) {
    ev = { id: e.id, cats: new Map(), deleted: false };
    state.events.set(e.id, ev);
  }
  ev.nombre = e.nombre;
  ev.descripcion = e.descripcion || "";
  ev.fecha = e.fecha;
  ev.ubicacion = e.ubicacion;
  ev.enVenta = e.enVenta;
  ev.organizadorId = e.organizadorId;
  ev.capacidadTotal = e.capacidadTotal;
  ev.precioBase = e.precioBase;
  ev.maxPorComprador = "maxPorComprador" in e ? e.maxPorComprador : undefined;
  const cats = new Map();
  for (const c of e.categorias || []) {
    const old = ev.cats.get(c.id);
    // Once the feed has spoken for a category it is newer than any REST read.
    const live = Boolean(old && old.live);
    cats.set(c.id, {
      id: c.id,
      nombre: c.nombre,
      precio: c.precio,
      total: c.cantidadTotal,
      beneficios: Array.isArray(c.beneficios) ? c.beneficios : [],
      available: live ? old.available : c.disponible,
      live,
      lowAt: old ? old.lowAt : null,
      // Held and sold are not public: known only from the sales endpoint (organizer, admin).
      held: old ? old.held : null,
      sold: old ? old.sold : null,
      cameBack: old ? old.cameBack : false, // seen going from 0 back up (holds ran out)
    });
  }
  ev.cats = cats;
  return ev;
}

export function totalAvailable(ev) {
  let n = 0;
  for (const c of ev.cats.values()) n += Math.max(0, c.available);
  return n;
}

const LOW_FRACTION = 0.1;

/**
 * What a category's stock means to a buyer:
 * "open" | "low" | "held" (none available, some held: they may come back) |
 * "soldout" (none available, none held: known only to who sees the sales) |
 * "taken" (none available, held or sold not known: the public view).
 */
export function catStatus(c) {
  const available = Math.max(0, c.available);
  if (available > 0) {
    const low = (c.lowAt !== null && available <= c.lowAt) || available <= c.total * LOW_FRACTION;
    return low ? "low" : "open";
  }
  if (c.held !== null && c.held !== undefined) return c.held > 0 ? "held" : "soldout";
  return "taken";
}

export const STATUS_BADGE = {
  open: "",
  low: "Almost gone",
  held: "All held",
  soldout: "Sold out",
  taken: "None left now",
};

export const STATUS_NOTE = {
  open: "",
  low: "",
  held: "All tickets are held right now. Some may come back if they are not paid in time.",
  soldout: "Sold out: every ticket is paid for.",
  taken: "None left right now. Held tickets that are not paid in time come back here.",
};

/** Why nothing of this event can be bought now, or "" when something can. */
export function eventUnavailableReason(ev) {
  if (ev.deleted) return "This event was cancelled.";
  if (!ev.enVenta) return "This event is not on sale right now.";
  if (!ev.cats.size) return "No tickets have been put on sale for this event yet.";
  if (totalAvailable(ev) > 0) return "";
  const statuses = [...ev.cats.values()].map(catStatus);
  if (statuses.every((s) => s === "soldout")) return "Sold out: every ticket is paid for.";
  if (statuses.every((s) => s === "held"))
    return "All tickets are held right now. Some may come back if they are not paid in time; this page updates live.";
  if (statuses.some((s) => s === "held"))
    return "No tickets left right now. Some are held and may come back if they are not paid in time; this page updates live.";
  return "No tickets left right now. Held tickets that are not paid in time come back; this page updates live.";
}

export const eventIdOfOrder = (orderId) => String(orderId).split(".")[0];
