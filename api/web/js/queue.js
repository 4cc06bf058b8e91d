// The event page's waiting room (SPEC 10.1): on an event with an admission queue the buyer
// joins, sees their place, the people ahead, an estimated wait and the tickets left move
// live, and is told when admitted (with the time left to hold: the hold form then appears
// and sends the Admission-Token) or when it is sold out.
//
// Live: the socket sends `join:queue {eventId}` (the buyer's heartbeat while it is open)
// and follows `queue:position`, `queue:admitted`, `queue:sold-out` and the room's
// `queue:update`; `GET .../queue/me` runs on load and every `latidoSegundos` as the
// fallback heartbeat (and corrects anything a lost frame missed).

import { api, capabilities, enc } from "./api.js";
import { onFeedOpen, onFrameOf, send } from "./feed.js";
import { bind, eventKey, markDirty } from "./render.js";
import { isCurrent } from "./router.js";
import { state, totalAvailable } from "./state.js";
import { $, count, el, formatWhen, plural, setText, showError } from "./util.js";

export const queueKey = (eventId) => `q:${eventId}`;

/** The open event's queue: info (GET .../queue) and the buyer's place (or null). */
const q = {
  eventId: "",
  info: null, // queue JSON, null: no queue (or not known yet)
  place: null, // place JSON, null: not in it
  watching: "", // event id whose `join:queue` the socket was sent
  poll: 0,
  tick: 0,
  reopen: 0, // timer: read again after the opening time passed
  busy: false,
  announced: "",
};

const hooks = { changed: () => {} };

/** fn() when whether the hold form may show changes (the event page re-evaluates it). */
export function onQueueChange(fn) {
  hooks.changed = fn;
}

/** Is the open event behind a queue, and the admission token to hold with (or ""). */
export function queueGate(eventId) {
  if (q.eventId !== eventId || !q.info) return { queued: false, token: "" };
  return { queued: true, token: admittedToken() };
}

function admittedToken() {
  const p = q.place;
  if (!p || p.estado !== "ADMITIDO" || !p.admisionToken) return "";
  if (p.admisionExpiraEn && msLeft(p.admisionExpiraEn) <= 0) return "";
  return p.admisionToken;
}

const msLeft = (iso) => Date.parse(iso) - (Date.now() + state.clockSkew);

// ---- loading -----------------------------------------------------------------------------

/** Read the event's queue (and the buyer's place): on the event page, after the event. */
export async function loadQueue(eventId, nav) {
  if (q.eventId !== eventId) resetQueue(eventId);
  const caps = await capabilities();
  if (!caps.queue) return;
  let info = null;
  try {
    ({ data: info } = await api(`/api/events/${enc(eventId)}/queue`));
  } catch (err) {
    if (err.status !== 404) {
      if (isCurrent(nav)) showError($("queue-error"), err);
      return;
    }
  }
  if (!isCurrent(nav) || q.eventId !== eventId) return;
  q.info = info;
  if (info && state.auth) await readPlace(eventId);
  changed();
  schedule();
}

async function readInfo(eventId) {
  try {
    const { data } = await api(`/api/events/${enc(eventId)}/queue`);
    if (q.eventId === eventId) q.info = data;
  } catch (err) {
    if (q.eventId === eventId && err.status === 404) {
      q.info = null; // removed: open to all again
      q.place = null;
    }
  }
}

/** GET .../queue/me: the place, and a heartbeat. */
async function readPlace(eventId) {
  if (!state.auth) return;
  try {
    const { data } = await api(`/api/events/${enc(eventId)}/queue/me`);
    if (q.eventId === eventId) setPlace(data);
  } catch (err) {
    if (q.eventId !== eventId) return;
    if (err.body && err.body.code === "not_in_queue") setPlace(null);
    else if (err.body && err.body.code === "queue_not_found") {
      q.info = null;
      setPlace(null);
    }
    // a 429 or a network error: keep what is shown, the socket is the heartbeat too
  }
}

function setPlace(place) {
  const before = q.place;
  q.place = place;
  if (place && !before) watchQueue();
  if (!place && before) unwatchQueue();
}

/** Everything again (opening passed, a refusal, a state change). */
async function refresh() {
  const eventId = q.eventId;
  if (!eventId) return;
  await readInfo(eventId);
  if (q.info) await readPlace(eventId);
  changed();
  schedule();
}

function changed() {
  markDirty(queueKey(q.eventId));
  hooks.changed();
}

function resetQueue(eventId) {
  unwatchQueue();
  clearInterval(q.poll);
  clearInterval(q.tick);
  clearTimeout(q.reopen);
  Object.assign(q, { eventId, info: null, place: null, poll: 0, tick: 0, reopen: 0, announced: "" });
  showError($("queue-error"), null);
}

/** The event page is left, or the buyer signs out. */
export function leaveQueueView() {
  resetQueue("");
}

// ---- the socket ----------------------------------------------------------------------------

function watchQueue() {
  if (!state.auth || !q.eventId) return;
  q.watching = q.eventId;
  send("join:queue", { eventId: q.eventId });
}

function unwatchQueue() {
  if (q.watching) send("leave:queue", { eventId: q.watching });
  q.watching = "";
}

function forThisEvent(d) {
  return q.info && d && d.eventoId === q.eventId;
}

function onPosition(d) {
  if (!forThisEvent(d) || !q.place) return;
  // A position is only said to a buyer who waits (also after a sold-out queue reopened);
  // one that crossed this page's hold with the token is stale, never a step back.
  if (q.place.estado === "USADO" || q.place.estado === "PERDIDO") return;
  q.place = {
    ...q.place,
    estado: "ESPERANDO",
    posicion: d.posicion,
    delante: d.delante,
    esperaEstimadaSegundos: d.esperaEstimadaSegundos,
    entradasRestantes: d.entradasRestantes,
  };
  changed();
}

function onAdmitted(d) {
  if (!forThisEvent(d)) return;
  const first = !q.place || q.place.admisionToken !== d.admisionToken;
  q.place = {
    ...(q.place || { eventoId: d.eventoId, entradasRestantes: 0 }),
    estado: "ADMITIDO",
    posicion: null,
    delante: null,
    esperaEstimadaSegundos: null,
    admisionToken: d.admisionToken,
    admisionExpiraEn: d.admisionExpiraEn,
  };
  changed();
  if (first) {
    // Bring the news and the now visible hold form into view, and move the focus there.
    requestAnimationFrame(() => {
      const heading = $("queue-heading");
      heading.scrollIntoView({ block: "start", behavior: "smooth" });
      heading.focus({ preventScroll: true });
    });
  }
}

function onSoldOut(d) {
  if (!forThisEvent(d)) return;
  if (q.info) q.info = { ...q.info, estado: "AGOTADA" };
  if (q.place && q.place.estado === "ESPERANDO") q.place = { ...q.place, estado: "AGOTADO" };
  changed();
}

function onUpdate(d) {
  if (!forThisEvent(d)) return;
  const was = q.info.estado;
  q.info = { ...q.info, estado: d.estado, enCola: d.enCola, admitidos: d.admitidos };
  changed();
  // Opened (the seed is revealed, places are drawn), sold out, reopened: read it all again.
  if (was !== d.estado) refresh();
}

// ---- timers: the fallback heartbeat and the countdowns ------------------------------------

function schedule() {
  clearInterval(q.poll);
  q.poll = 0;
  if (!q.info) {
    clearInterval(q.tick);
    q.tick = 0;
    return;
  }
  const every = Math.max(1, Number(q.info.latidoSegundos) || 30) * 1000;
  if (q.place && state.auth) {
    const eventId = q.eventId;
    q.poll = setInterval(async () => {
      await readPlace(eventId);
      changed();
    }, every);
  }
  if (!q.tick) q.tick = setInterval(onTick, 500);
}

function onTick() {
  if (!q.info) return;
  markDirty(queueKey(q.eventId));
  hooks.changed(); // an admission running out hides the hold form again
  // Past the opening but still PRE here (a frame missed): read again, every 2 s at most.
  if (q.info.estado === "PRE" && msLeft(q.info.abreEn) < -1000 && !q.reopen) {
    q.reopen = setTimeout(async () => {
      await refresh();
      q.reopen = 0;
    }, 1000);
  }
  // An admission that ran out unused: the server says PERDIDO.
  const p = q.place;
  if (p && p.estado === "ADMITIDO" && p.admisionExpiraEn && msLeft(p.admisionExpiraEn) < -1000 && !q.reopen) {
    q.reopen = setTimeout(async () => {
      await refresh();
      q.reopen = 0;
    }, 1000);
  }
}

// ---- wording --------------------------------------------------------------------------------

/** "under a minute", "about 3 minutes", "about 1 hour 20 minutes". */
export function waitText(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return "under a minute";
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 60) return `about ${plural(minutes, "minute")}`;
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return `about ${plural(h, "hour")}${m ? ` ${plural(m, "minute")}` : ""}`;
}

/** "5 seconds", "2 min 05 s", "1 h 03 min". */
function inText(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return plural(s, "second");
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

function clockText(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

const STATE_PILL = { PRE: "Opens soon", ABIERTA: "Open", AGOTADA: "Sold out", CERRADA: "Closed" };

function placeSentence(info, p, ticketsLeft) {
  if (!p) {
    if (info.estado === "AGOTADA") return "Sold out: every ticket is held or sold. If held tickets come back, the queue reopens.";
    if (info.estado === "CERRADA") return "This event is not on sale right now.";
    if (!state.auth) return "Sign in to join the queue.";
    return info.estado === "PRE"
      ? "Join now: everyone who joins before the opening gets a place in a fair random order."
      : "Join the queue to buy: you will be let in as soon as tickets are left for you.";
  }
  switch (p.estado) {
    case "ESPERANDO": {
      if (p.posicion === null || p.posicion === undefined) {
        return "You are in the pre-queue. At the opening everyone in it is put in a fair random order.";
      }
      const ahead = p.delante === 0 ? "You are next." : `${plural(p.delante, "person", "people")} ahead of you.`;
      const wait = waitText(p.esperaEstimadaSegundos);
      const eta = wait ? ` Estimated wait: ${wait}.` : " Estimating your wait…";
      return `You are number ${count.format(p.posicion)} in line. ${ahead}${eta} ${ticketsText(ticketsLeft)}`;
    }
    case "ADMITIDO":
      return "It's your turn: choose your tickets and hold them before the time runs out.";
    case "AGOTADO":
      return "Sold out: every ticket is held or sold. You keep your place: if held tickets come back, the queue moves again.";
    case "PERDIDO":
      return "You lost your place (the page was away too long, or the admission ran out). Join again to queue at the back.";
    case "USADO":
      return "You used your admission: your order is below.";
    default:
      return p.estado;
  }
}

const ticketsText = (n) => (n > 0 ? `${plural(n, "ticket")} left.` : "No tickets left right now.");

// ---- the panel ------------------------------------------------------------------------------

const FIGURES = [
  ["posicion", "Your place", (p) => (p && typeof p.posicion === "number" ? count.format(p.posicion) : "")],
  ["delante", "Ahead of you", (p) => (p && typeof p.delante === "number" ? count.format(p.delante) : "")],
  ["espera", "Estimated wait", (p) => (p && p.estado === "ESPERANDO" && typeof p.posicion === "number" ? waitText(p.esperaEstimadaSegundos) || "estimating…" : "")],
  ["restantes", "Tickets left", (p, left) => count.format(left)],
  ["enCola", "In the queue", (p, left, info) => count.format(info.enCola)],
  ["admitidos", "Admitted so far", (p, left, info) => count.format(info.admitidos)],
];

function renderPanel() {
  const panel = $("queue-panel");
  const info = q.info;
  panel.hidden = !info;
  if (!info) return;
  const ev = state.events.get(q.eventId);
  const p = q.place;
  const waiting = p && p.estado === "ESPERANDO" && typeof p.posicion === "number";
  const left = waiting || (p && p.estado === "AGOTADO") ? p.entradasRestantes : ev ? totalAvailable(ev) : 0;
  panel.dataset.estado = info.estado;
  panel.dataset.place = p ? p.estado : "";

  const pill = $("queue-state");
  setText(pill, STATE_PILL[info.estado] || info.estado);
  pill.dataset.estado = info.estado;
  pill.classList.toggle("pill-muted", info.estado !== "ABIERTA");

  const opens = msLeft(info.abreEn);
  setText(
    $("queue-when"),
    info.estado === "PRE" || opens > 0
      ? `The sale opens at ${formatWhen(info.abreEn)}${opens > 0 ? ` (in ${inText(opens)})` : " (opening now…)"}.`
      : `The sale opened at ${formatWhen(info.abreEn)}.`,
  );

  const sentence = placeSentence(info, p, left);
  // The live region speaks on change only: a ticking estimate would be noise.
  if (sentence !== q.announced) {
    q.announced = sentence;
    setText($("queue-place"), sentence);
  }

  const countdown = $("queue-countdown");
  const token = admittedToken();
  if (p && p.estado === "ADMITIDO" && p.admisionExpiraEn) {
    const ms = msLeft(p.admisionExpiraEn);
    countdown.hidden = false;
    setText(countdown, ms > 0 ? `${clockText(ms)} left to hold your tickets` : "Your admission ran out…");
    countdown.classList.toggle("urgent", ms < 60000);
  } else {
    countdown.hidden = true;
    setText(countdown, "");
  }

  const list = $("queue-figures");
  if (list.children.length !== FIGURES.length) {
    list.replaceChildren(
      ...FIGURES.map(([key, label]) => {
        const item = el("div", "stat");
        item.dataset.stat = key;
        item.append(el("dt", "", label), el("dd"));
        return item;
      }),
    );
  }
  FIGURES.forEach(([, , fmt], i) => {
    const text = fmt(p, left, info);
    const item = list.children[i];
    item.hidden = text === "";
    setText(item.querySelector("dd"), text);
  });

  const canJoin = Boolean(state.auth) && (!p || p.estado === "PERDIDO") && info.estado !== "CERRADA";
  const preStarts = Date.parse(info.abreEn) - (Number(info.preColaMinutos) || 0) * 60000;
  const tooEarly = info.estado === "PRE" && preStarts - (Date.now() + state.clockSkew) > 0;
  const join = $("queue-join");
  join.hidden = !canJoin;
  join.disabled = q.busy || tooEarly;
  setText(join, p && p.estado === "PERDIDO" ? "Join the queue again" : "Join the queue");
  const leave = $("queue-leave");
  leave.hidden = !(p && (p.estado === "ESPERANDO" || p.estado === "AGOTADO" || (p.estado === "ADMITIDO" && token)));
  leave.disabled = q.busy;
  setText(
    $("queue-hint"),
    tooEarly && canJoin
      ? `You can join from ${formatWhen(new Date(preStarts).toISOString())} (in ${inText(preStarts - Date.now() - state.clockSkew)}).`
      : p && p.estado === "ESPERANDO"
        ? "Keep this page open: it holds your place. Leaving it for long loses it."
        : "",
  );

  setText($("queue-commit"), info.compromisoSemilla || "");
  const seed = info.semilla || "";
  $("queue-seed-line").hidden = !seed;
  setText($("queue-seed"), seed);
  setText(
    $("queue-verify"),
    seed
      ? `To check the draw: sha256 of the seed's bytes must equal the commitment, and the pre-queue is sorted by HMAC-SHA256(key = the seed's bytes, message = each buyer's user id), ascending${state.auth ? ` (your user id is ${state.auth.user.id})` : ""}; the server's own check is \`onsale queue verify ${q.eventId}\`.`
      : "The seed is revealed when the sale opens, so anyone can recompute the order.",
  );
}

// ---- actions ------------------------------------------------------------------------------------

async function onJoin() {
  const eventId = q.eventId;
  if (!eventId || !state.auth) return;
  q.busy = true;
  changed();
  showError($("queue-error"), null);
  try {
    const { data } = await api(`/api/events/${enc(eventId)}/queue/join`, { method: "POST" });
    if (q.eventId !== eventId) return;
    q.place = null; // a rejoin after PERDIDO watches afresh
    unwatchQueue();
    setPlace(data);
    focusAfter("queue-leave");
  } catch (err) {
    showError($("queue-error"), err);
    if (err.body && err.body.code === "queue_not_found") await refresh();
  } finally {
    q.busy = false;
    changed();
    schedule();
  }
}

async function onLeave() {
  const eventId = q.eventId;
  if (!eventId || !state.auth) return;
  q.busy = true;
  changed();
  showError($("queue-error"), null);
  try {
    await api(`/api/events/${enc(eventId)}/queue/me`, { method: "DELETE" });
    if (q.eventId !== eventId) return;
    setPlace(null);
    await readInfo(eventId);
    focusAfter("queue-join");
  } catch (err) {
    showError($("queue-error"), err);
    if (err.status === 404) await refresh();
  } finally {
    q.busy = false;
    changed();
    schedule();
  }
}

/** After an action the button pressed is gone: move the focus to its counterpart once
 * the panel shows it (the panel renders in the next animation frame). */
function focusAfter(id) {
  setTimeout(() => {
    renderPanel();
    const target = $(id);
    if (!target.hidden && !target.disabled) target.focus();
  }, 0);
}

/** A hold with the admission token went through: the token is spent. */
export function admissionUsed(eventId) {
  if (q.eventId !== eventId || !q.place) return;
  q.place = { ...q.place, estado: "USADO", admisionToken: null };
  changed();
  refresh();
}

/** A hold was refused: an admission_* refusal means what the page knew is stale. */
export function holdRefused(eventId, err) {
  const code = err && err.body && err.body.code;
  if (q.eventId === eventId && typeof code === "string" && code.startsWith("admission_")) refresh();
}

export function startQueue() {
  onFrameOf("queue:position", onPosition);
  onFrameOf("queue:admitted", onAdmitted);
  onFrameOf("queue:sold-out", onSoldOut);
  onFrameOf("queue:update", onUpdate);
  // A new socket (a reconnect, a sign-in) follows the place again; a frame missed while
  // away is corrected by reading it.
  onFeedOpen(() => {
    if (q.place && state.auth && q.eventId) {
      q.watching = "";
      watchQueue();
      readPlace(q.eventId).then(changed);
    }
  });
  $("queue-join").addEventListener("click", onJoin);
  $("queue-leave").addEventListener("click", onLeave);
}

/** Bind the panel to the render loop (the event page calls it on every render). */
export function bindQueuePanel(eventId) {
  bind(queueKey(eventId), renderPanel);
  bind(eventKey(eventId), renderPanel); // the tickets left follow the stock when not queued
}
