// The list of events on sale, 12 a page, each category with its live bar.

import { api } from "./api.js";
import { watchCurrent } from "./feed.js";
import { bind, catWidget, eventKey, resetBindings } from "./render.js";
import { isCurrent, nextNav, registerView, setView } from "./router.js";
import { catStatus, mergeEvent, state, totalAvailable } from "./state.js";
import { $, clone, count, el, eventHref, formatWhen, plural, setText, showError } from "./util.js";

const PAGE_SIZE = 12;

async function showList(page) {
  const nav = nextNav();
  setView("list");
  document.title = "onsale · live";
  state.page = Math.max(1, page || 1);
  renderList();
  try {
    const { data } = await api(`/api/events?page=${state.page}&limit=${PAGE_SIZE}`);
    if (!isCurrent(nav)) return;
    for (const e of data.data) mergeEvent(e);
    state.listIds = data.data.map((e) => e.id);
    state.totalPages = Math.max(1, data.pagination.totalPages);
    showError($("list-error"), null);
    renderList();
    watchCurrent();
  } catch (err) {
    if (isCurrent(nav)) showError($("list-error"), err);
  }
}

/** The card's foot: tickets left, or why there are none. */
function leftText(ev) {
  const n = totalAvailable(ev);
  if (n) return `${plural(n, "ticket")} left`;
  const statuses = [...ev.cats.values()].map(catStatus);
  if (!statuses.length) return "No tickets yet";
  if (statuses.every((s) => s === "soldout")) return "Sold out";
  if (statuses.some((s) => s === "held")) return "All held: some may come back";
  return "None left right now";
}

function renderList() {
  if (state.view.name !== "list") return;
  resetBindings();
  const list = $("event-list");
  const cards = [];
  for (const id of state.listIds) {
    const ev = state.events.get(id);
    if (!ev) continue;
    const card = clone("tpl-event-card");
    card.dataset.event = id;
    card.querySelector(".card-link").href = eventHref(id);
    const title = card.querySelector(".card-title");
    const meta = card.querySelector(".card-meta");
    const left = card.querySelector(".card-left");
    const closed = card.querySelector(".card-closed");
    const cats = card.querySelector(".cat-list");
    for (const catId of ev.cats.keys()) cats.append(catWidget(id, catId));
    bind(eventKey(id), () => {
      const e = state.events.get(id);
      setText(title, e.nombre);
      setText(meta, `${formatWhen(e.fecha)} · ${e.ubicacion}`);
      setText(left, leftText(e));
      card.classList.toggle("soldout", totalAvailable(e) === 0);
      closed.hidden = e.enVenta && !e.deleted;
      setText(closed, e.deleted ? "Cancelled" : "Not on sale");
    });
    cards.push(card);
  }
  if (!cards.length) cards.push(el("p", "empty", "No events on sale yet."));
  list.replaceChildren(...cards);
  setText($("page-info"), `Page ${count.format(state.page)} of ${count.format(state.totalPages)}`);
  $("page-prev").disabled = state.page <= 1;
  $("page-next").disabled = state.page >= state.totalPages;
}

export function startList() {
  registerView("list", { show: showList, rerender: renderList });
  $("page-prev").addEventListener("click", () => {
    location.hash = `#/page/${Math.max(1, state.page - 1)}`;
  });
  $("page-next").addEventListener("click", () => {
    location.hash = `#/page/${Math.min(state.totalPages, state.page + 1)}`;
  });
}
