// Organizers and admins: their events (an admin: all of them) with live stock, the admin
// stats, and the editor that creates an event with its categories or edits one.

import { api, capabilities, clearFieldErrors, enc, showProblem } from "./api.js";
import { watchCurrent } from "./feed.js";
import { catWidget, resetBindings } from "./render.js";
import { isCurrent, nextNav, registerView, setView } from "./router.js";
import { canManage, isOrganizer, mergeEvent, role, state } from "./state.js";
import { $, clone, count, el, eventHref, formatWhen, money, plural, setText, showError } from "./util.js";

const STATS_POLL_MS = 5000;
const MAX_WATCHED = 60; // rooms joined for the dashboard's live bars
const LIST_PAGES = 20; // up to 2,000 events read for the dashboard

let caps = { buyerCap: false, queue: false };
capabilities().then((c) => {
  caps = c;
});

// ---- dashboard --------------------------------------------------------------------------------

let statsTimer = 0;

async function showOrganizer() {
  const nav = nextNav();
  setView("organizer");
  document.title = "My events · onsale";
  showError($("org-error"), null);
  const admin = role() === "ADMIN";
  setText($("org-title"), admin ? "All events" : "My events");
  $("admin-stats").hidden = !admin;
  $("org-new").hidden = !isOrganizer();
  if (!isOrganizer()) {
    $("org-events").replaceChildren();
    showError($("org-error"), "Sign in as an organizer or an admin to manage events.");
    return;
  }
  if (admin) {
    loadStats(nav);
    clearInterval(statsTimer);
    statsTimer = setInterval(() => {
      if (!document.hidden) loadStats(nav);
    }, STATS_POLL_MS);
  }
  const mine = [];
  try {
    for (let page = 1; page <= LIST_PAGES; page += 1) {
      const { data } = await api(`/api/events?page=${page}&limit=100`);
      if (!isCurrent(nav)) return;
      for (const e of data.data) {
        if (admin || e.organizadorId === state.auth.user.id) mine.push(mergeEvent(e));
      }
      if (page >= data.pagination.totalPages) break;
    }
  } catch (err) {
    if (isCurrent(nav)) showError($("org-error"), err);
    return;
  }
  renderOrgEvents(mine);
  state.extraWatched = new Set(mine.slice(0, MAX_WATCHED).map((e) => e.id));
  watchCurrent();
}

function leaveOrganizer() {
  clearInterval(statsTimer);
  statsTimer = 0;
  state.extraWatched = new Set();
  watchCurrent();
}

let shownIds = []; // the dashboard's events, for a re-render from state

/** A category of a shown event came or went (event:update): rows from state again. */
function rerenderOrganizer() {
  if (state.view.name !== "organizer" || !shownIds.length) return;
  resetBindings();
  renderOrgEvents(shownIds.map((id) => state.events.get(id)).filter(Boolean));
}

function renderOrgEvents(events) {
  shownIds = events.map((ev) => ev.id);
  const rows = events.map((ev) => {
    const node = clone("tpl-org-event");
    node.dataset.event = ev.id;
    const link = node.querySelector(".oe-name");
    link.href = eventHref(ev.id);
    link.textContent = ev.nombre;
    node.querySelector(".oe-meta").textContent = `${formatWhen(ev.fecha)} · ${ev.ubicacion}`;
    const pill = node.querySelector(".oe-state");
    pill.textContent = ev.enVenta ? "On sale" : "Not on sale";
    pill.classList.toggle("pill-muted", !ev.enVenta);
    node.querySelector(".oe-edit").href = `${eventHref(ev.id)}/edit`;
    node.querySelector(".oe-sales").href = `${eventHref(ev.id)}/sales`;
    const cats = node.querySelector(".cat-list");
    for (const catId of ev.cats.keys()) cats.append(catWidget(ev.id, catId));
    if (!ev.cats.size) cats.append(el("p", "hint", "No ticket categories yet: edit the event to add some."));
    return node;
  });
  if (!rows.length) rows.push(el("p", "empty", "No events yet: create your first one."));
  $("org-events").replaceChildren(...rows);
}

const STAT_LABELS = [
  ["eventos", "Events", (s) => count.format(s.eventos)],
  ["ticketsVendidos", "Tickets sold", (s) => count.format(s.ticketsVendidos)],
  ["ingresos", "Revenue", (s) => money.format(s.ingresos)],
  ["reservasActivas", "Live holds", (s) => count.format(s.reservasActivas)],
  ["ticketsRetenidos", "Tickets held", (s) => count.format(s.ticketsRetenidos ?? 0)],
  ["usuariosPorRol", "Users", (s) => byKey(s.usuariosPorRol, { ADMIN: "admin", ORGANIZADOR: "organizer", COMPRADOR: "buyer" })],
  ["ordenesPorEstado", "Orders", (s) => byKey(s.ordenesPorEstado, { RESERVED: "held", CONFIRMED: "confirmed", EXPIRED: "expired", CANCELLED: "cancelled" })],
];

function byKey(obj, names) {
  const parts = Object.entries(obj || {}).map(([k, n]) => `${count.format(n)} ${names[k] || k}`);
  return parts.length ? parts.join(" · ") : "none";
}

async function loadStats(nav) {
  try {
    const { data } = await api("/api/admin/stats");
    if (!isCurrent(nav) || state.view.name !== "organizer") return;
    const items = [];
    for (const [key, label, fmt] of STAT_LABELS) {
      if (!(key in data)) continue;
      const box = el("div", "stat");
      box.dataset.stat = key;
      box.append(el("dt", "", label), el("dd", "", fmt(data)));
      items.push(box);
    }
    $("stats-list").replaceChildren(...items);
    setText($("stats-updated"), `Updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (isCurrent(nav)) showError($("org-error"), err);
  }
}

// ---- editor ----------------------------------------------------------------------------------------

const editor = { eventId: "", base: null, seq: 0, queue: null };

function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

const num = (input) => (input.value.trim() === "" ? null : Number(input.value));
const lines = (text) =>
  text
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);

async function showEditor(eventId) {
  const nav = nextNav();
  setView("editor", eventId);
  editor.eventId = eventId;
  editor.base = null;
  const form = $("event-form");
  form.reset();
  clearFieldErrors(form);
  showError($("event-form-error"), null);
  setText($("event-saved"), "");
  const c = await capabilities();
  if (!isCurrent(nav)) return;
  $("ev-max-field").hidden = !c.buyerCap;
  $("ev-onsale-field").hidden = !eventId;
  $("new-cats").hidden = Boolean(eventId);
  $("edit-cats").hidden = !eventId;
  $("editor-links").hidden = !eventId;
  $("queue-form").hidden = true;
  setText($("event-save"), eventId ? "Save event" : "Create event");
  const tz = -new Date().getTimezoneOffset() / 60;
  setText($("ev-fecha-hint"), `Your local time (UTC${tz >= 0 ? "+" : "−"}${Math.abs(tz)}).`);
  if (!isOrganizer()) {
    document.title = "Events · onsale";
    setText($("editor-title"), eventId ? "Edit event" : "New event");
    showError($("event-form-error"), "Sign in as an organizer or an admin to create and edit events.");
    return;
  }
  if (!eventId) {
    document.title = "New event · onsale";
    setText($("editor-title"), "New event");
    $("new-cat-rows").replaceChildren();
    addNewCatRow({ nombre: "General", precio: "", cantidadTotal: "" });
    return;
  }
  setText($("editor-title"), "Edit event");
  $("editor-page").href = eventHref(eventId);
  $("editor-sales").href = `${eventHref(eventId)}/sales`;
  try {
    const { data } = await api(`/api/events/${enc(eventId)}`);
    if (!isCurrent(nav)) return;
    fillEditor(data);
  } catch (err) {
    if (isCurrent(nav)) showError($("event-form-error"), err);
    return;
  }
  if (c.queue && canManage(state.events.get(eventId))) loadQueueForm(eventId, nav);
}

// ---- the admission queue (PUT / DELETE /api/events/{id}/queue) -------------------------------

const QUEUE_DEFAULTS = { preColaMinutos: 30, admisionesPorMinuto: null, minutosAdmision: 10, entradasPorAdmision: 2, latidoSegundos: 30 };
const QUEUE_INPUTS = [
  ["preColaMinutos", "qf-pre"],
  ["admisionesPorMinuto", "qf-rate"],
  ["minutosAdmision", "qf-mins"],
  ["entradasPorAdmision", "qf-per"],
  ["latidoSegundos", "qf-hb"],
];
const QUEUE_STATE = { PRE: "not open yet", ABIERTA: "open", AGOTADA: "sold out", CERRADA: "closed (the event is not on sale)" };

function toLocalSeconds(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return `${toLocalInput(iso)}:${String(d.getSeconds()).padStart(2, "0")}`;
}

async function loadQueueForm(eventId, nav) {
  const form = $("queue-form");
  clearFieldErrors(form);
  showError($("queue-form-error"), null);
  setText($("queue-saved"), "");
  let info = null;
  try {
    ({ data: info } = await api(`/api/events/${enc(eventId)}/queue`));
  } catch (err) {
    if (err.status !== 404) {
      if (isCurrent(nav)) showError($("queue-form-error"), err);
    }
  }
  if (!isCurrent(nav)) return;
  const tz = -new Date().getTimezoneOffset() / 60;
  setText($("qf-abre-hint"), `Your local time (UTC${tz >= 0 ? "+" : "−"}${Math.abs(tz)}), to the second.`);
  fillQueueForm(info);
  form.hidden = false;
}

function fillQueueForm(info) {
  editor.queue = info;
  const values = info || QUEUE_DEFAULTS;
  $("qf-abre").value = info ? toLocalSeconds(info.abreEn) : "";
  for (const [key, id] of QUEUE_INPUTS) {
    const v = values[key] ?? QUEUE_DEFAULTS[key];
    $(id).value = v === null || v === undefined ? "" : String(v);
  }
  $("queue-remove").hidden = !info;
  setText($("queue-save"), info ? "Save queue" : "Add a queue");
  setText(
    $("queue-form-now"),
    info
      ? `The queue is ${QUEUE_STATE[info.estado] || info.estado}: opens at ${formatWhen(info.abreEn)}; ${plural(info.enCola, "buyer")} waiting, ${count.format(info.admitidos)} admitted.`
      : "No queue: everyone can hold tickets as soon as the event is on sale.",
  );
}

async function onSaveQueue(e) {
  e.preventDefault();
  const form = $("queue-form");
  const errEl = $("queue-form-error");
  const btn = $("queue-save");
  showError(errEl, null);
  clearFieldErrors(form);
  setText($("queue-saved"), "");
  const body = { abreEn: fromLocalInput($("qf-abre").value) };
  for (const [key, id] of QUEUE_INPUTS) {
    const v = num($(id));
    if (v !== null) body[key] = v;
    else if (key === "admisionesPorMinuto") body[key] = null; // empty: no rate limit
  }
  if (!body.abreEn) {
    showProblem(form, errEl, { message: "Choose when the queue opens." });
    $("qf-abre").focus();
    return;
  }
  btn.disabled = true;
  try {
    const { data } = await api(`/api/events/${enc(editor.eventId)}/queue`, { method: "PUT", body });
    fillQueueForm(data);
    setText($("queue-saved"), "Queue saved.");
  } catch (err) {
    showProblem(form, errEl, err);
  } finally {
    btn.disabled = false;
  }
}

let queueRemoveArmed = 0;

async function onRemoveQueue() {
  const btn = $("queue-remove");
  if (!queueRemoveArmed) {
    // A second click confirms (no blocking confirm() dialog).
    setText(btn, "Click again to remove the queue");
    queueRemoveArmed = setTimeout(() => {
      queueRemoveArmed = 0;
      setText(btn, "Remove queue");
    }, 4000);
    return;
  }
  clearTimeout(queueRemoveArmed);
  queueRemoveArmed = 0;
  setText(btn, "Remove queue");
  showError($("queue-form-error"), null);
  try {
    await api(`/api/events/${enc(editor.eventId)}/queue`, { method: "DELETE" });
    fillQueueForm(null);
    $("qf-abre").focus();
    setText($("queue-saved"), "Queue removed: the event is open to all.");
  } catch (err) {
    showProblem($("queue-form"), $("queue-form-error"), err);
  }
}

function fillEditor(data) {
  const ev = mergeEvent(data);
  editor.base = data;
  document.title = `Edit ${data.nombre} · onsale`;
  setText($("editor-title"), `Edit · ${data.nombre}`);
  $("ev-nombre").value = data.nombre;
  $("ev-desc").value = data.descripcion || "";
  $("ev-fecha").value = toLocalInput(data.fecha);
  $("ev-lugar").value = data.ubicacion;
  $("ev-cap").value = String(data.capacidadTotal);
  $("ev-precio").value = String(data.precioBase);
  $("ev-onsale").checked = Boolean(data.enVenta);
  $("ev-max").value = data.maxPorComprador == null ? "" : String(data.maxPorComprador);
  if (!canManage(ev)) showError($("event-form-error"), "Only the event's organizer or an admin may change it.");
  $("edit-cat-rows").replaceChildren(...data.categorias.map((c) => editCatForm(c)));
}

function eventBody() {
  const body = {
    nombre: $("ev-nombre").value.trim(),
    descripcion: $("ev-desc").value,
    fecha: fromLocalInput($("ev-fecha").value),
    ubicacion: $("ev-lugar").value.trim(),
    capacidadTotal: num($("ev-cap")),
    precioBase: num($("ev-precio")),
  };
  if (caps.buyerCap) body.maxPorComprador = num($("ev-max"));
  return body;
}

async function onSaveEvent(e) {
  e.preventDefault();
  const form = $("event-form");
  const errEl = $("event-form-error");
  const btn = $("event-save");
  showError(errEl, null);
  clearFieldErrors(form);
  setText($("event-saved"), "");
  const body = eventBody();
  btn.disabled = true;
  try {
    if (!editor.eventId) {
      body.categorias = [...$("new-cat-rows").children].map((row) => catBody(row));
      const { data } = await api("/api/events", { method: "POST", body });
      mergeEvent(data);
      state.flash = `Created “${data.nombre}” with ${plural(data.categorias.length, "category", "categories")}.`;
      location.hash = `${eventHref(data.id)}/edit`;
      return;
    }
    const base = editor.base || {};
    const changes = {};
    for (const [k, v] of Object.entries(body)) {
      const old = k === "fecha" ? fromLocalInput(toLocalInput(base.fecha)) : base[k];
      if (v !== old && !(v === null && old === undefined)) changes[k] = v;
    }
    if ($("ev-onsale").checked !== Boolean(base.enVenta)) changes.enVenta = $("ev-onsale").checked;
    if (!Object.keys(changes).length) {
      setText($("event-saved"), "Nothing changed.");
      return;
    }
    const { data } = await api(`/api/events/${enc(editor.eventId)}`, { method: "PUT", body: changes });
    editor.base = data;
    mergeEvent(data);
    setText($("event-saved"), "Saved.");
  } catch (err) {
    // A field of the new event's categories comes back as "categorias[1].precio".
    showProblem(form, errEl, err);
  } finally {
    btn.disabled = false;
  }
}

// ---- category rows -----------------------------------------------------------------------------------

let rowSeq = 0;

function catFields(values) {
  const node = clone("tpl-cat-edit");
  const n = (rowSeq += 1);
  for (const input of node.querySelectorAll("input, textarea")) {
    input.id = `cat-${n}-${input.dataset.part}`;
    const label = node.querySelector(`label[data-for="${input.dataset.part}"]`);
    if (label) label.htmlFor = input.id;
    input.dataset.field = input.dataset.part;
  }
  const q = (part) => node.querySelector(`[data-part="${part}"]`);
  q("nombre").value = values.nombre ?? "";
  q("precio").value = values.precio === "" || values.precio == null ? "" : String(values.precio);
  q("cantidadTotal").value = values.cantidadTotal === "" || values.cantidadTotal == null ? "" : String(values.cantidadTotal);
  q("beneficios").value = (values.beneficios || []).join("\n");
  return node;
}

function catBody(node) {
  const q = (part) => node.querySelector(`[data-part="${part}"]`);
  return {
    nombre: q("nombre").value.trim(),
    precio: num(q("precio")),
    cantidadTotal: num(q("cantidadTotal")),
    beneficios: lines(q("beneficios").value),
  };
}

function addNewCatRow(values) {
  const node = catFields(values);
  node.querySelector(".c-save").hidden = true;
  node.querySelector(".c-remove").addEventListener("click", () => {
    node.remove();
    renumberNewRows();
  });
  $("new-cat-rows").append(node);
  renumberNewRows();
  return node;
}

function renumberNewRows() {
  // The API names a nested field "categorias[i].precio": the rows carry those names.
  [...$("new-cat-rows").children].forEach((row, i) => {
    setText(row.querySelector(".c-legend"), `Category ${i + 1}`);
    for (const input of row.querySelectorAll("[data-part]")) input.dataset.field = `categorias[${i}].${input.dataset.part}`;
  });
}

function editCatForm(cat) {
  const form = document.createElement("form");
  form.className = "cat-edit-form";
  form.noValidate = true;
  const fields = catFields(cat || { nombre: "", precio: "", cantidadTotal: "" });
  form.append(fields);
  const status = fields.querySelector(".c-status");
  const errEl = fields.querySelector(".c-error");
  const save = fields.querySelector(".c-save");
  const remove = fields.querySelector(".c-remove");
  let current = cat; // null until created
  const label = () => setText(fields.querySelector(".c-legend"), current ? current.nombre : "New category");
  label();
  if (current) form.dataset.cat = current.id;
  setText(save, current ? "Save category" : "Add category");
  let armed = false;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(errEl, null);
    clearFieldErrors(form);
    setText(status, "");
    const body = catBody(fields);
    save.disabled = true;
    try {
      let data;
      if (!current) {
        ({ data } = await api(`/api/events/${enc(editor.eventId)}/categories`, { method: "POST", body }));
      } else {
        const changes = {};
        for (const [k, v] of Object.entries(body)) {
          if (JSON.stringify(v) !== JSON.stringify(current[k])) changes[k] = v;
        }
        if (!Object.keys(changes).length) {
          setText(status, "Nothing changed.");
          return;
        }
        ({ data } = await api(`/api/events/${enc(editor.eventId)}/categories/${enc(current.id)}`, {
          method: "PUT",
          body: changes,
        }));
      }
      current = data;
      form.dataset.cat = data.id;
      setText(save, "Save category");
      label();
      setText(status, "Saved.");
      refreshEditedEvent();
    } catch (err) {
      showProblem(form, errEl, err);
    } finally {
      save.disabled = false;
    }
  });
  remove.addEventListener("click", async () => {
    if (!current) return form.remove();
    if (!armed) {
      // A second click confirms (no blocking confirm() dialog).
      armed = true;
      setText(remove, "Click again to remove");
      setTimeout(() => {
        armed = false;
        setText(remove, "Remove");
      }, 4000);
      return;
    }
    showError(errEl, null);
    try {
      await api(`/api/events/${enc(editor.eventId)}/categories/${enc(current.id)}`, { method: "DELETE" });
      form.remove();
      refreshEditedEvent();
    } catch (err) {
      showProblem(form, errEl, err);
    }
  });
  return form;
}

async function refreshEditedEvent() {
  try {
    const { data } = await api(`/api/events/${enc(editor.eventId)}`);
    editor.base = data;
    mergeEvent(data);
  } catch {
    // the form keeps what it shows
  }
}

export function startOrganizer() {
  registerView("organizer", { show: showOrganizer, leave: leaveOrganizer, rerender: rerenderOrganizer });
  registerView("editor", {
    show: async (id) => {
      await showEditor(id);
      if (state.flash) {
        setText($("event-saved"), state.flash);
        state.flash = "";
      }
    },
  });
  $("event-form").addEventListener("submit", onSaveEvent);
  $("queue-form").addEventListener("submit", onSaveQueue);
  $("queue-remove").addEventListener("click", onRemoveQueue);
  $("add-new-cat").addEventListener("click", () => addNewCatRow({}).querySelector("input").focus());
  $("add-edit-cat").addEventListener("click", () => {
    const form = editCatForm(null);
    $("edit-cat-rows").append(form);
    form.querySelector("input").focus();
  });
}
