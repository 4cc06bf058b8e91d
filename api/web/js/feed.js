// The /ws feed: one WebSocket, rooms for the events on screen, resume with `since`,
// exponential backoff with jitter, and a client-side send budget under the server's.

import { state } from "./state.js";
import { $, count, idAfter, plural, setText } from "./util.js";

const RECONNECT_BASE_MS = 500;
const RECONNECT_MAX_MS = 30000;
// The server allows 50 messages/s with a burst of 100 per socket, then closes it.
const SEND_PER_SECOND = 40;
const SEND_BURST = 80;

const feed = {
  ws: null,
  attempt: 0,
  timer: 0,
  queue: [],
  tokens: SEND_BURST,
  refilled: performance.now(),
  drainTimer: 0,
  joined: new Set(), // rooms asked for on the current socket
  watched: new Set(), // rooms the page wants
};

const handlers = new Map(); // frame event name -> [fn(data, frame)]
const openHooks = [];

/** Call fn(data, frame) for every frame named `event`. */
export function onFrameOf(event, fn) {
  if (!handlers.has(event)) handlers.set(event, []);
  handlers.get(event).push(fn);
}

/** Call fn() every time a socket opens (after a drop too). */
export function onFeedOpen(fn) {
  openHooks.push(fn);
}

function wsUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
}

function setConn(stateName, text) {
  const el = $("conn");
  el.dataset.state = stateName;
  setText(el, text);
  // The red LIVE badge is lit only while the feed really is live.
  document.body.dataset.feed = stateName;
  const badge = $("brand-live");
  setText(badge, stateName === "live" ? "live" : "offline");
}

export function connect() {
  clearTimeout(feed.timer);
  feed.timer = 0;
  setConn("connecting", "connecting…");
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  feed.ws = ws;
  feed.joined = new Set();
  feed.queue = [];
  feed.tokens = SEND_BURST; // the server's budget is per socket
  ws.onopen = () => {
    if (ws !== feed.ws) return;
    setConn("live", "live");
    if (state.auth) authenticateFeed();
    syncRooms();
    for (const hook of openHooks) hook();
  };
  ws.onmessage = (msg) => {
    if (ws !== feed.ws) return;
    feed.attempt = 0; // the server is answering: the next drop starts the backoff afresh
    onFrame(msg.data);
  };
  ws.onclose = () => {
    if (ws !== feed.ws) return;
    feed.ws = null;
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** feed.attempt);
  const delay = Math.round(base * (0.5 + Math.random() * 0.5));
  feed.attempt = Math.min(feed.attempt + 1, 16);
  setConn("down", delay >= 1000 ? `reconnecting in ${plural(Math.round(delay / 1000), "second")}` : "reconnecting…");
  feed.timer = setTimeout(connect, delay);
}

export function restartFeed() {
  const old = feed.ws;
  feed.ws = null;
  if (old) old.close(1000, "restart");
  connect();
}

export function send(event, data) {
  if (!feed.ws || feed.ws.readyState !== WebSocket.OPEN) return; // onopen resends all
  feed.queue.push(JSON.stringify({ event, data }));
  drain();
}

function drain() {
  const ws = feed.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const now = performance.now();
  feed.tokens = Math.min(SEND_BURST, feed.tokens + ((now - feed.refilled) / 1000) * SEND_PER_SECOND);
  feed.refilled = now;
  while (feed.queue.length && feed.tokens >= 1) {
    ws.send(feed.queue.shift());
    feed.tokens -= 1;
  }
  if (feed.queue.length && !feed.drainTimer) {
    feed.drainTimer = setTimeout(() => {
      feed.drainTimer = 0;
      drain();
    }, 100);
  }
}

export function authenticateFeed() {
  send("auth", { token: state.auth.token });
  send("join:user", { userId: state.auth.user.id });
}

/** The rooms the current view wants: the list page's events, the open event, extras. */
export function watchCurrent() {
  const ids = new Set(state.listIds);
  if (state.view.eventId) ids.add(state.view.eventId);
  for (const id of state.extraWatched) ids.add(id);
  feed.watched = ids;
  syncRooms();
}

function syncRooms() {
  if (!feed.ws || feed.ws.readyState !== WebSocket.OPEN) return;
  for (const id of [...feed.joined]) {
    if (feed.watched.has(id)) continue;
    send("leave:event", { eventId: id });
    feed.joined.delete(id);
    forgetFeed(id);
  }
  for (const id of feed.watched) {
    if (feed.joined.has(id)) continue;
    const since = state.lastId.get(id);
    send("join:event", since ? { eventId: id, since } : { eventId: id });
    feed.joined.add(id);
  }
}

function forgetFeed(eventId) {
  // A later join starts from a fresh snapshot rather than replaying a long gap.
  state.lastId.delete(eventId);
  const ev = state.events.get(eventId);
  if (ev) for (const c of ev.cats.values()) c.live = false;
}

function noteId(eventId, id) {
  if (!id || !feed.joined.has(eventId)) return;
  const last = state.lastId.get(eventId);
  if (idAfter(id, last)) state.lastId.set(eventId, id);
}

const ROOM_FRAMES = new Set(["ticket:stock-update", "ticket:almost-sold-out", "event:update", "queue:update"]);

function onFrame(raw) {
  let frame;
  try {
    frame = JSON.parse(raw);
  } catch {
    return;
  }
  const d = frame.data || {};
  if (ROOM_FRAMES.has(frame.event)) noteId(d.eventoId, frame.id);
  else if (frame.event === "joined" && d.room === "event") noteId(d.eventId, d.id);
  else if (frame.event === "error") return onFeedError(d);
  const list = handlers.get(frame.event);
  if (list) for (const fn of list) fn(d, frame);
}

// Refusals a view answers itself (a `join:queue` racing a leave or a removed queue: the
// waiting room reads its place through REST): not the connection's status.
const QUIET_ERRORS = new Set(["event_not_found", "not_in_queue", "queue_not_found"]);

function onFeedError(d) {
  if (QUIET_ERRORS.has(d.code)) return; // the event or place is gone; REST shows it
  if (d.code === "unauthorized" || d.code === "forbidden") {
    setConn("live", "live (order updates off)");
    return;
  }
  setConn(feed.ws ? "live" : "down", `live (${d.message || d.code || "feed error"})`);
}

export function startFeed() {
  setInterval(() => {
    const n = state.stockFrames;
    state.stockFrames = 0;
    setText($("rate"), n ? `${count.format(n)} ${n === 1 ? "update" : "updates"}/s` : "");
  }, 1000);
  window.addEventListener("online", () => {
    if (!feed.ws) {
      feed.attempt = 0;
      connect();
    }
  });
  connect();
}
