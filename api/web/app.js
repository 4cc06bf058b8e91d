/*
 * onsale live page: the event list with live stock bars, a buyer's hold / confirm / cancel
 * with a countdown and live order status, and the organizer's per-category sales.
 *
 * Data flow: REST for documents (events, orders, sales), the /ws feed for changes. Feed
 * frames only update plain state and mark keys dirty; the DOM is written once per
 * animation frame for the dirty keys (no layout reads anywhere), so a rush of hundreds of
 * frames a second costs a JSON.parse each and one small DOM pass per frame.
 *
 * Security: server data reaches the DOM through textContent and DOM properties only.
 */
"use strict";

(() => {
  const PAGE_SIZE = 12;
  const AUTH_KEY = "onsale.auth";
  const SALES_REFRESH_MS = 1000;
  const RECONNECT_BASE_MS = 500;
  const RECONNECT_MAX_MS = 30000;
  // The server allows 50 messages/s with a burst of 100 per socket, then closes it.
  const SEND_PER_SECOND = 40;
  const SEND_BURST = 80;
  const LOW_FRACTION = 0.1;
  const ID = "[A-Za-z0-9_-]{1,64}";
  const FINAL_STATES = new Set(["CONFIRMED", "EXPIRED", "CANCELLED"]);
  const STATUS_TEXT = {
    RESERVED: "Held",
    CONFIRMED: "Confirmed",
    EXPIRED: "Expired",
    CANCELLED: "Cancelled",
  };

  const $ = (id) => document.getElementById(id);
  const money = new Intl.NumberFormat(undefined, { style: "currency", currency: "EUR" });
  const count = new Intl.NumberFormat();
  const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const clock = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
  const whenCache = new Map();
  const formatWhen = (iso) => {
    // Event headers re-render on every stock frame; Intl formatting is the costly part.
    let text = whenCache.get(iso);
    if (text === undefined) whenCache.set(iso, (text = when.format(new Date(iso))));
    return text;
  };

  const state = {
    auth: loadAuth(),
    events: new Map(), // id -> {id, nombre, fecha, ubicacion, enVenta, organizadorId, deleted, cats}
    lastId: new Map(), // event id -> id of the last room frame applied (for `since`)
    listIds: [],
    page: 1,
    totalPages: 1,
    view: { name: "", eventId: "" },
    order: null, // {data: order JSON, txId}
    clockSkew: 0, // server clock minus local clock, ms
    stockFrames: 0,
  };

  // ---- small helpers -----------------------------------------------------------------

  function loadAuth() {
    try {
      const raw = sessionStorage.getItem(AUTH_KEY);
      const auth = raw ? JSON.parse(raw) : null;
      return auth && typeof auth.token === "string" && auth.user ? auth : null;
    } catch {
      return null;
    }
  }

  function randomHex(bytes) {
    // getRandomValues works outside secure contexts too (randomUUID does not).
    const buf = crypto.getRandomValues(new Uint8Array(bytes));
    return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function idAfter(a, b) {
    // Redis stream ids "ms-seq": is a after b?
    if (!b) return true;
    const [am, as] = a.split("-").map(Number);
    const [bm, bs] = b.split("-").map(Number);
    return am > bm || (am === bm && (as || 0) > (bs || 0));
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  function showError(el, err) {
    if (!err) {
      el.hidden = true;
      el.textContent = "";
      return;
    }
    el.textContent = typeof err === "string" ? err : err.message;
    el.hidden = false;
  }

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body || {};
    }
  }

  function problemMessage(status, body) {
    let message = (body && (body.detail || body.title)) || `request failed (HTTP ${status})`;
    if (body && Array.isArray(body.errors) && body.errors.length) {
      const fields = body.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
      message = `${message} (${fields})`;
    }
    return message;
  }

  async function api(path, { method = "GET", body, headers = {} } = {}) {
    const h = { Accept: "application/json", ...headers };
    if (body !== undefined) h["Content-Type"] = "application/json";
    if (state.auth) h.Authorization = `Bearer ${state.auth.token}`;
    const sentAt = Date.now();
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "The server could not be reached: check your connection and retry.");
    }
    const receivedAt = Date.now();
    noteServerDate(response.headers.get("date"), receivedAt);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      if (response.status === 401 && state.auth && !path.startsWith("/api/auth/")) {
        signOut("Your session has expired: sign in again.");
      }
      throw new ApiError(response.status, problemMessage(response.status, data), data);
    }
    return { data, sentAt, receivedAt };
  }

  function noteServerDate(header, receivedAt) {
    // The Date header has 1 s resolution: only trust it for a clearly wrong local clock.
    const server = Date.parse(header || "");
    if (Number.isNaN(server)) return;
    const skew = server + 500 - receivedAt;
    if (Math.abs(skew) > 2000) state.clockSkew = skew;
  }

  function eventIdOfOrder(orderId) {
    return String(orderId).split(".")[0];
  }

  // ---- state merges ------------------------------------------------------------------

  function mergeEvent(e) {
    let ev = state.events.get(e.id);
    if (!ev) {
      ev = { id: e.id, cats: new Map(), deleted: false };
      state.events.set(e.id, ev);
    }
    ev.nombre = e.nombre;
    ev.descripcion = e.descripcion;
    ev.fecha = e.fecha;
    ev.ubicacion = e.ubicacion;
    ev.enVenta = e.enVenta;
    ev.organizadorId = e.organizadorId;
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
        available: live ? old.available : c.disponible,
        live,
        lowAt: old ? old.lowAt : null,
      });
    }
    ev.cats = cats;
    return ev;
  }

  function totalAvailable(ev) {
    let n = 0;
    for (const c of ev.cats.values()) n += Math.max(0, c.available);
    return n;
  }

  // ---- batched rendering -------------------------------------------------------------

  let bound = new Map(); // dirty key -> updaters bound by the current view
  const dirty = new Set();
  let framePending = false;

  function bind(key, update) {
    let list = bound.get(key);
    if (!list) bound.set(key, (list = []));
    list.push(update);
    update();
  }

  function markDirty(key) {
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

  const catKey = (eventId, catId) => `c:${eventId}:${catId}`;
  const eventKey = (eventId) => `e:${eventId}`;

  // ---- the feed (/ws) ----------------------------------------------------------------

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

  function wsUrl() {
    return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
  }

  function setConn(stateName, text) {
    const el = $("conn");
    el.dataset.state = stateName;
    setText(el, text);
  }

  function connect() {
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
      // order:status-change has no replay: read the order again after a gap.
      if (state.order) refreshOrder();
      if (state.view.name === "sales") requestSales();
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
    setConn("down", delay >= 1000 ? `reconnecting in ${Math.round(delay / 1000)} s` : "reconnecting…");
    feed.timer = setTimeout(connect, delay);
  }

  function restartFeed() {
    const old = feed.ws;
    feed.ws = null;
    if (old) old.close(1000, "restart");
    connect();
  }

  function send(event, data) {
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

  function authenticateFeed() {
    send("auth", { token: state.auth.token });
    send("join:user", { userId: state.auth.user.id });
  }

  function watch(ids) {
    feed.watched = new Set(ids);
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

  function onFrame(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    const d = frame.data || {};
    switch (frame.event) {
      case "ticket:stock-update":
        noteId(d.eventoId, frame.id);
        onStock(d);
        break;
      case "ticket:almost-sold-out":
        noteId(d.eventoId, frame.id);
        onLowStock(d);
        break;
      case "event:update":
        noteId(d.eventoId, frame.id);
        onEventUpdate(d);
        break;
      case "order:status-change":
        onOrderStatus(d);
        break;
      case "joined":
        if (d.room === "event") noteId(d.eventId, d.id);
        break;
      case "error":
        onFeedError(d);
        break;
      default:
        break;
    }
  }

  function onStock(d) {
    state.stockFrames += 1;
    const ev = state.events.get(d.eventoId);
    if (!ev) return;
    const cat = ev.cats.get(d.categoriaId);
    if (!cat || d.nuevoStock > cat.total) refreshEventSoon(d.eventoId);
    if (!cat) return;
    cat.available = d.nuevoStock;
    cat.live = true;
    markDirty(catKey(ev.id, cat.id));
    markDirty(eventKey(ev.id));
    if (state.view.name === "sales" && state.view.eventId === ev.id) requestSales();
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
    for (const field of ["nombre", "descripcion", "fecha", "ubicacion", "enVenta"]) {
      if (field in changes) ev[field] = changes[field];
    }
    if ("capacidadTotal" in changes) refreshEventSoon(ev.id);
    markDirty(eventKey(ev.id));
  }

  function onOrderStatus(d) {
    const current = state.order;
    if (!current || current.data.id !== d.orderId) return;
    // A final state never goes back to RESERVED, whatever arrives late.
    if (FINAL_STATES.has(current.data.estado) && !FINAL_STATES.has(d.nuevoEstado)) return;
    current.data.estado = d.nuevoEstado;
    if (d.expiraEn) current.data.expiraEn = d.expiraEn;
    renderOrder();
  }

  function onFeedError(d) {
    if (d.code === "event_not_found") return; // the event is gone; REST shows it
    if (d.code === "unauthorized" || d.code === "forbidden") {
      setConn("live", "live (order updates off)");
      return;
    }
    setConn(feed.ws ? "live" : "down", `live (${d.message || d.code || "feed error"})`);
  }

  const refreshing = new Map(); // event id -> timer
  function refreshEventSoon(eventId) {
    if (refreshing.has(eventId)) return;
    refreshing.set(
      eventId,
      setTimeout(async () => {
        try {
          const { data } = await api(`/api/events/${encodeURIComponent(eventId)}`);
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

  setInterval(() => {
    const n = state.stockFrames;
    state.stockFrames = 0;
    setText($("rate"), n ? `${count.format(n)} updates/s` : "");
  }, 1000);

  window.addEventListener("online", () => {
    if (!feed.ws) {
      feed.attempt = 0;
      connect();
    }
  });

  // ---- views -------------------------------------------------------------------------

  let navSeq = 0;

  function setView(name, eventId = "") {
    state.view = { name, eventId };
    bound = new Map();
    $("view-list").hidden = name !== "list";
    $("view-event").hidden = name !== "event";
    $("view-sales").hidden = name !== "sales";
    stopCountdown();
  }

  function watchCurrent() {
    const ids = new Set(state.listIds);
    if (state.view.eventId) ids.add(state.view.eventId);
    watch(ids);
  }

  function route() {
    const hash = location.hash.replace(/^#/, "");
    let m;
    if ((m = hash.match(new RegExp(`^/events/(${ID})/sales$`)))) showSales(m[1]);
    else if ((m = hash.match(new RegExp(`^/events/(${ID})$`)))) showEvent(m[1]);
    else showList(Number((hash.match(/^\/page\/(\d{1,6})$/) || [])[1] || 1));
  }

  function rerenderView() {
    const v = state.view;
    if (v.name === "list") renderList();
    else if (v.name === "event") renderEvent(v.eventId);
    else if (v.name === "sales") requestSales();
  }

  // ---- category widget (list cards and event page) -------------------------------------

  const tplCat = $("tpl-cat");

  function catWidget(eventId, catId, qtyInput) {
    const node = tplCat.content.firstElementChild.cloneNode(true);
    const nameEl = node.querySelector(".cat-name");
    const priceEl = node.querySelector(".cat-price");
    const badge = node.querySelector(".cat-badge");
    const fill = node.querySelector(".bar-fill");
    const countEl = node.querySelector(".cat-count");
    node.dataset.cat = catId;
    if (qtyInput) node.querySelector(".cat-foot").append(qtyInput);
    let shown = "";
    const update = () => {
      const ev = state.events.get(eventId);
      const c = ev && ev.cats.get(catId);
      if (!c) return;
      const open = ev.enVenta && !ev.deleted;
      const signature = `${c.available}|${c.total}|${c.lowAt}|${c.nombre}|${c.precio}|${open}`;
      if (signature === shown) return;
      shown = signature;
      const available = Math.max(0, c.available);
      const soldOut = available === 0;
      const low =
        !soldOut && ((c.lowAt !== null && available <= c.lowAt) || available <= c.total * LOW_FRACTION);
      setText(nameEl, c.nombre);
      setText(priceEl, money.format(c.precio));
      fill.style.transform = `scaleX(${c.total > 0 ? Math.min(1, available / c.total) : 0})`;
      setText(countEl, `${count.format(available)} of ${count.format(c.total)} left`);
      setText(badge, soldOut ? "Sold out" : low ? "Almost gone" : "");
      node.classList.toggle("soldout", soldOut);
      node.classList.toggle("low", low);
      node.dataset.available = String(available);
      if (qtyInput) {
        qtyInput.disabled = soldOut || !open || !state.auth;
        qtyInput.max = String(available);
        if (soldOut && qtyInput.value !== "0") {
          qtyInput.value = "0";
          updateHoldTotal();
        }
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

  // ---- list --------------------------------------------------------------------------

  async function showList(page) {
    const nav = ++navSeq;
    setView("list");
    state.page = Math.max(1, page || 1);
    renderList();
    try {
      const { data } = await api(`/api/events?page=${state.page}&limit=${PAGE_SIZE}`);
      if (nav !== navSeq) return;
      for (const e of data.data) mergeEvent(e);
      state.listIds = data.data.map((e) => e.id);
      state.totalPages = Math.max(1, data.pagination.totalPages);
      showError($("list-error"), null);
      renderList();
      watchCurrent();
    } catch (err) {
      if (nav === navSeq) showError($("list-error"), err);
    }
  }

  function renderList() {
    if (state.view.name !== "list") return;
    bound = new Map();
    const list = $("event-list");
    const tpl = $("tpl-event-card");
    const cards = [];
    for (const id of state.listIds) {
      const ev = state.events.get(id);
      if (!ev) continue;
      const card = tpl.content.firstElementChild.cloneNode(true);
      card.dataset.event = id;
      card.querySelector(".card-link").href = `#/events/${encodeURIComponent(id)}`;
      const title = card.querySelector(".card-title");
      const meta = card.querySelector(".card-meta");
      const left = card.querySelector(".card-left");
      const closed = card.querySelector(".card-closed");
      const cats = card.querySelector(".cat-list");
      for (const catId of ev.cats.keys()) cats.append(catWidget(id, catId, null));
      bind(eventKey(id), () => {
        const e = state.events.get(id);
        setText(title, e.nombre);
        setText(meta, `${formatWhen(e.fecha)} · ${e.ubicacion}`);
        const n = totalAvailable(e);
        setText(left, n ? `${count.format(n)} tickets left` : "Sold out");
        card.classList.toggle("soldout", n === 0);
        closed.hidden = e.enVenta && !e.deleted;
        setText(closed, e.deleted ? "Cancelled" : "Not on sale");
      });
      cards.push(card);
    }
    if (!cards.length) {
      const empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "No events on sale yet.";
      cards.push(empty);
    }
    list.replaceChildren(...cards);
    setText($("page-info"), `Page ${state.page} of ${state.totalPages}`);
    $("page-prev").disabled = state.page <= 1;
    $("page-next").disabled = state.page >= state.totalPages;
  }

  $("page-prev").addEventListener("click", () => {
    location.hash = `#/page/${Math.max(1, state.page - 1)}`;
  });
  $("page-next").addEventListener("click", () => {
    location.hash = `#/page/${Math.min(state.totalPages, state.page + 1)}`;
  });

  // ---- event page --------------------------------------------------------------------

  async function showEvent(eventId) {
    const nav = ++navSeq;
    setView("event", eventId);
    showError($("event-error"), null);
    showError($("hold-error"), null);
    showError($("order-error"), null);
    if (state.order && eventIdOfOrder(state.order.data.id) !== eventId) state.order = null;
    if (state.events.has(eventId)) renderEvent(eventId);
    else {
      $("event-cats").replaceChildren();
      $("event-cats").dataset.event = "";
    }
    renderOrder();
    try {
      const { data } = await api(`/api/events/${encodeURIComponent(eventId)}`);
      if (nav !== navSeq) return;
      mergeEvent(data);
      renderEvent(eventId);
      watchCurrent();
    } catch (err) {
      if (nav === navSeq) showError($("event-error"), err);
      return;
    }
    if (state.auth) loadMyOrder(eventId, nav);
  }

  function canSeeSales(ev) {
    const user = state.auth && state.auth.user;
    return Boolean(
      user && (user.role === "ADMIN" || (user.role === "ORGANIZADOR" && user.id === ev.organizadorId)),
    );
  }

  function renderEvent(eventId) {
    if (state.view.name !== "event" || state.view.eventId !== eventId) return;
    const ev = state.events.get(eventId);
    if (!ev) return;
    bound = new Map();
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
    updateHoldTotal();
  }

  function buildEventRows(eventId, ev, catsEl, catIds) {
    // Keep what the buyer typed when the categories change under them.
    const typed = new Map();
    if (catsEl.dataset.event === eventId) {
      for (const input of catsEl.querySelectorAll("input.qty")) typed.set(input.name, input.value);
    }
    const rows = [];
    for (const cat of ev.cats.values()) {
      const qty = document.createElement("input");
      qty.type = "number";
      qty.min = "0";
      qty.step = "1";
      qty.value = typed.get(cat.id) || "0";
      qty.inputMode = "numeric";
      qty.className = "qty";
      qty.name = cat.id;
      qty.setAttribute("aria-label", `tickets of ${cat.nombre}`);
      qty.addEventListener("input", updateHoldTotal);
      rows.push(catWidget(eventId, cat.id, qty));
    }
    catsEl.replaceChildren(...rows);
    catsEl.dataset.event = eventId;
    catsEl.dataset.cats = catIds;
  }

  function bindEventHeader(eventId) {
    const salesLink = $("sales-link");
    salesLink.href = `#/events/${encodeURIComponent(eventId)}/sales`;
    let wasOpen = null;
    bind(eventKey(eventId), () => {
      const e = state.events.get(eventId);
      setText($("event-name"), e.nombre);
      setText($("event-meta"), `${formatWhen(e.fecha)} · ${e.ubicacion}`);
      const open = e.enVenta && !e.deleted;
      $("event-closed").hidden = open;
      setText($("event-closed"), e.deleted ? "Cancelled" : "Not on sale");
      salesLink.hidden = !canSeeSales(e);
      $("hold-btn").disabled = !open || !state.auth || holding;
      setText(
        $("hold-hint"),
        !state.auth ? "Sign in to hold tickets." : open ? "" : "This event is not on sale right now.",
      );
      // The per-category updaters own the inputs; re-run them when enVenta changes.
      if (wasOpen !== null && wasOpen !== open) {
        for (const catId of e.cats.keys()) markDirty(catKey(eventId, catId));
      }
      wasOpen = open;
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
    setText($("hold-total"), tickets ? `${tickets} ticket${tickets > 1 ? "s" : ""} · ${money.format(total)}` : "");
  }

  let holdAttempt = null; // {signature, key}: a retry of the same choice reuses the key
  let holding = false;

  $("hold-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const eventId = state.view.eventId;
    const errEl = $("hold-error");
    showError(errEl, null);
    if (!state.auth) return showError(errEl, "Sign in to hold tickets.");
    const tickets = chosenTickets();
    if (!tickets.length) return showError(errEl, "Choose how many tickets you want first.");
    const signature = JSON.stringify([eventId, tickets]);
    if (!holdAttempt || holdAttempt.signature !== signature) {
      holdAttempt = { signature, key: `web-${randomHex(16)}` };
    }
    const btn = $("hold-btn");
    holding = true;
    btn.disabled = true;
    setText(btn, "Holding…");
    try {
      const { data, sentAt, receivedAt } = await api("/api/orders", {
        method: "POST",
        body: { eventoId: eventId, tickets },
        headers: { "Idempotency-Key": holdAttempt.key },
      });
      holdAttempt = null;
      // creadoEn is the server's "now" (ms), so it corrects the countdown for clock skew.
      const created = Date.parse(data.creadoEn);
      if (!Number.isNaN(created)) state.clockSkew = created - (sentAt + receivedAt) / 2;
      setOrder(data);
      for (const input of $("event-cats").querySelectorAll("input.qty")) input.value = "0";
      updateHoldTotal();
    } catch (err) {
      if (err.status && err.status < 500) holdAttempt = null; // refused: nothing was held
      showError(errEl, holdError(err));
    } finally {
      holding = false;
      setText(btn, "Hold tickets");
      const ev = state.events.get(eventId);
      btn.disabled = !(ev && ev.enVenta && !ev.deleted && state.auth);
    }
  });

  function holdError(err) {
    const catId = err.body && err.body.categoriaId;
    const cat = catId && state.events.get(state.view.eventId)?.cats.get(catId);
    return cat ? `${cat.nombre}: ${err.message}` : err;
  }

  // ---- the buyer's order -------------------------------------------------------------

  async function loadMyOrder(eventId, nav) {
    try {
      const { data } = await api("/api/orders/my-orders?limit=50");
      if (nav !== navSeq) return;
      const mine = data.data.filter((o) => o.eventoId === eventId);
      const pick = mine.find((o) => o.estado === "RESERVED") || mine[0];
      if (pick && (!state.order || state.order.data.id !== pick.id)) setOrder(pick);
    } catch {
      // the hold form still works; the panel appears with the next hold
    }
  }

  function setOrder(order) {
    const txId = state.order && state.order.data.id === order.id ? state.order.txId : `web-${randomHex(12)}`;
    state.order = { data: order, txId };
    showError($("order-error"), null);
    renderOrder();
  }

  async function refreshOrder() {
    const current = state.order;
    if (!current || !state.auth) return;
    try {
      const { data } = await api(`/api/orders/${encodeURIComponent(current.data.id)}`);
      if (state.order === current) {
        current.data = data;
        renderOrder();
      }
    } catch {
      // keep what is shown; the feed or the next action corrects it
    }
  }

  function renderOrder() {
    const panel = $("order-panel");
    const current = state.order;
    if (!current || state.view.name !== "event" || eventIdOfOrder(current.data.id) !== state.view.eventId) {
      panel.hidden = true;
      stopCountdown();
      return;
    }
    const o = current.data;
    panel.hidden = false;
    panel.dataset.estado = o.estado;
    panel.dataset.order = o.id;
    const status = $("order-status");
    status.dataset.estado = o.estado;
    setText(status, STATUS_TEXT[o.estado] || o.estado);
    const lines = o.tickets.map((t) => {
      const li = document.createElement("li");
      const what = document.createElement("span");
      what.textContent = `${t.cantidad} × ${t.nombre}`;
      const price = document.createElement("span");
      price.className = "num";
      price.textContent = money.format(t.cantidad * t.precioUnitario);
      li.append(what, price);
      return li;
    });
    $("order-lines").replaceChildren(...lines);
    setText($("order-total"), money.format(o.total));
    setText($("order-id"), `Order ${o.id}`);
    const reserved = o.estado === "RESERVED";
    $("confirm-form").hidden = !reserved;
    if (reserved) startCountdown();
    else {
      stopCountdown();
      setText(
        $("order-countdown"),
        o.estado === "CONFIRMED"
          ? `Paid${o.confirmadoEn ? ` at ${clock.format(new Date(o.confirmadoEn))}` : ""}. Enjoy the show!`
          : o.estado === "EXPIRED"
            ? "The hold ran out and the tickets went back on sale."
            : "Cancelled: the tickets went back on sale.",
      );
      $("order-countdown").classList.remove("urgent");
    }
  }

  let countdownTimer = 0;

  function startCountdown() {
    tickCountdown();
    if (!countdownTimer) countdownTimer = setInterval(tickCountdown, 250);
  }

  function stopCountdown() {
    clearInterval(countdownTimer);
    countdownTimer = 0;
  }

  function tickCountdown() {
    const o = state.order && state.order.data;
    if (!o || o.estado !== "RESERVED") return stopCountdown();
    const left = Date.parse(o.expiraEn) - (Date.now() + state.clockSkew);
    const el = $("order-countdown");
    if (left <= 0) {
      setText(el, "Time is up: releasing the tickets…");
    } else {
      const s = Math.ceil(left / 1000);
      const mm = String(Math.floor(s / 60)).padStart(2, "0");
      const ss = String(s % 60).padStart(2, "0");
      setText(el, `${mm}:${ss} left to confirm`);
    }
    el.classList.toggle("urgent", left < 60000);
  }

  $("confirm-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const current = state.order;
    if (!current) return;
    const btn = $("confirm-btn");
    btn.disabled = true;
    showError($("order-error"), null);
    try {
      const { data } = await api(`/api/orders/${encodeURIComponent(current.data.id)}/confirm`, {
        method: "PUT",
        body: { metodoPago: $("pay-method").value, transactionId: current.txId },
      });
      if (state.order === current) setOrder(data);
    } catch (err) {
      showError($("order-error"), err);
      if (err.status === 409) refreshOrder();
    } finally {
      btn.disabled = false;
    }
  });

  $("cancel-btn").addEventListener("click", async () => {
    const current = state.order;
    if (!current) return;
    const btn = $("cancel-btn");
    btn.disabled = true;
    showError($("order-error"), null);
    try {
      const { data } = await api(`/api/orders/${encodeURIComponent(current.data.id)}/cancel`, {
        method: "PUT",
      });
      if (state.order === current) setOrder(data);
    } catch (err) {
      showError($("order-error"), err);
      if (err.status === 409) refreshOrder();
    } finally {
      btn.disabled = false;
    }
  });

  // ---- sales (organizer / admin) -----------------------------------------------------

  const SALES_POLL_MS = 5000;
  const sales = { inflight: false, again: false, last: -Infinity, timer: 0, rows: new Map(), eventId: "" };

  // A confirmation moves tickets from held to sold without changing availability, so no
  // room frame announces it: poll slowly besides refreshing on every stock frame.
  setInterval(() => {
    if (state.view.name === "sales" && !document.hidden) requestSales();
  }, SALES_POLL_MS);

  async function showSales(eventId) {
    navSeq += 1;
    setView("sales", eventId);
    $("sales-back").href = `#/events/${encodeURIComponent(eventId)}`;
    if (sales.eventId !== eventId) clearSales(eventId);
    watchCurrent();
    if (!state.events.has(eventId)) {
      api(`/api/events/${encodeURIComponent(eventId)}`)
        .then(({ data }) => mergeEvent(data))
        .catch(() => {});
    }
    if (!state.auth) {
      showError($("sales-error"), "Sign in as the event's organizer or an admin to see its sales.");
      return;
    }
    showError($("sales-error"), null);
    requestSales();
  }

  function clearSales(eventId) {
    sales.eventId = eventId;
    sales.rows = new Map();
    $("sales-rows").replaceChildren();
    $("sales-totals").replaceChildren();
    setText($("sales-name"), "Sales");
    setText($("sales-updated"), "");
  }

  function requestSales() {
    // At most one request in flight and one per SALES_REFRESH_MS, with a trailing refresh.
    if (state.view.name !== "sales" || !state.auth) return;
    if (sales.inflight) {
      sales.again = true;
      return;
    }
    const wait = sales.last + SALES_REFRESH_MS - performance.now();
    if (wait > 0) {
      if (!sales.timer) {
        sales.timer = setTimeout(() => {
          sales.timer = 0;
          requestSales();
        }, wait);
      }
      return;
    }
    fetchSales(state.view.eventId);
  }

  async function fetchSales(eventId) {
    sales.inflight = true;
    sales.last = performance.now();
    try {
      const { data } = await api(`/api/admin/events/${encodeURIComponent(eventId)}/sales`);
      if (state.view.name === "sales" && state.view.eventId === eventId) {
        requestAnimationFrame(() => renderSales(data));
        showError($("sales-error"), null);
      }
    } catch (err) {
      if (state.view.name === "sales") showError($("sales-error"), err);
      // Whoever is signed in now may not see what the previous user saw.
      if (err.status === 401 || err.status === 403 || err.status === 404) clearSales(eventId);
    } finally {
      sales.inflight = false;
      if (sales.again) {
        sales.again = false;
        requestSales();
      }
    }
  }

  function salesRow() {
    const tr = $("tpl-sales-row").content.firstElementChild.cloneNode(true);
    const cell = (cls) => tr.querySelector(cls);
    return {
      tr,
      name: cell(".s-name"),
      total: cell(".s-total"),
      sold: cell(".s-sold"),
      held: cell(".s-held"),
      avail: cell(".s-avail"),
      rev: cell(".s-rev"),
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
      let row = sales.rows.get(r.categoriaId);
      if (!row) {
        row = salesRow();
        row.tr.dataset.cat = r.categoriaId;
        sales.rows.set(r.categoriaId, row);
      }
      fillSalesRow(row, r, r.nombre);
      ordered.push(row.tr);
    }
    for (const id of [...sales.rows.keys()]) if (!seen.has(id)) sales.rows.delete(id);
    if (body.children.length !== ordered.length || ordered.some((tr, i) => body.children[i] !== tr)) {
      body.replaceChildren(...ordered);
    }
    let totals = sales.rows.get("__totals__");
    if (!totals) {
      totals = salesRow();
      totals.tr.className = "totals";
      sales.rows.set("__totals__", totals);
      $("sales-totals").replaceChildren(totals.tr);
    }
    seen.add("__totals__");
    fillSalesRow(totals, s, "All categories");
    setText($("sales-updated"), `Updated ${clock.format(new Date())} · refreshes as tickets move`);
  }

  // ---- account -----------------------------------------------------------------------

  function renderAccount() {
    const auth = state.auth;
    $("login-form").hidden = Boolean(auth);
    $("who").hidden = !auth;
    if (auth) {
      setText($("who-name"), auth.user.nombre || auth.user.email);
      setText($("who-role"), auth.user.role);
    }
  }

  function signOut(message) {
    state.auth = null;
    state.order = null;
    sessionStorage.removeItem(AUTH_KEY);
    clearSales("");
    renderAccount();
    showError($("login-error"), message || null);
    restartFeed(); // the old socket is still authenticated as the previous user
    route();
  }

  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const btn = $("login-btn");
    btn.disabled = true;
    showError($("login-error"), null);
    try {
      const { data } = await api("/api/auth/login", {
        method: "POST",
        body: { email: $("login-email").value.trim(), password: $("login-password").value },
      });
      state.auth = { token: data.token, user: data.user };
      sessionStorage.setItem(AUTH_KEY, JSON.stringify(state.auth));
      $("login-password").value = "";
      renderAccount();
      authenticateFeed();
      route();
    } catch (err) {
      showError($("login-error"), err);
    } finally {
      btn.disabled = false;
    }
  });

  $("logout").addEventListener("click", () => signOut(null));

  // ---- start -------------------------------------------------------------------------

  window.addEventListener("hashchange", route);
  renderAccount();
  connect();
  route();
})();
