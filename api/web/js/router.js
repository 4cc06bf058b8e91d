// Hash routes: the server only serves `/`. Each view registers {show, rerender, leave}.

import { resetBindings } from "./render.js";
import { state } from "./state.js";
import { ID } from "./util.js";

const views = new Map();
let navSeq = 0;

export function registerView(name, view) {
  views.set(name, view);
}

/** A new navigation: answers of older ones are ignored (compare with isCurrent). */
export function nextNav() {
  navSeq += 1;
  return navSeq;
}

export const isCurrent = (nav) => nav === navSeq;

export function setView(name, eventId = "") {
  const previous = views.get(state.view.name);
  if (previous && previous.leave && (state.view.name !== name || state.view.eventId !== eventId)) previous.leave();
  state.view = { name, eventId };
  resetBindings();
  for (const section of document.querySelectorAll("main > section.view")) {
    section.hidden = section.dataset.view !== name;
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

const ROUTES = [
  [new RegExp(`^/events/(${ID})/sales$`), "sales"],
  [new RegExp(`^/events/(${ID})/edit$`), "editor"],
  [new RegExp(`^/events/(${ID})$`), "event"],
  [/^\/orders$/, "orders"],
  [/^\/signup$/, "signup"],
  [/^\/organizer$/, "organizer"],
  [/^\/organizer\/new$/, "editor", ""],
];

export function route() {
  const hash = location.hash.replace(/^#/, "");
  for (const [re, name, fixed] of ROUTES) {
    const m = hash.match(re);
    if (m) return views.get(name).show(fixed !== undefined ? fixed : m[1]);
  }
  views.get("list").show(Number((hash.match(/^\/page\/(\d{1,6})$/) || [])[1] || 1));
}

export function rerenderView() {
  const view = views.get(state.view.name);
  if (view && view.rerender) view.rerender();
}
