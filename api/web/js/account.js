// Accounts: sign in (the top bar), sign up (buyer or organizer, the API's own rules and
// messages next to the fields), sign out. The token lives in sessionStorage (per tab).

import { api, clearFieldErrors, setUnauthorizedHandler, showProblem } from "./api.js";
import { forgetWaitlist } from "./event.js";
import { authenticateFeed, restartFeed } from "./feed.js";
import { forgetOrders } from "./orders.js";
import { leaveQueueView } from "./queue.js";
import { registerView, route, setView } from "./router.js";
import { clearSales } from "./sales.js";
import { isOrganizer, saveAuth, state } from "./state.js";
import { $, setText, showError } from "./util.js";

export function renderAccount() {
  const auth = state.auth;
  $("login-form").hidden = Boolean(auth);
  $("signup-link").hidden = Boolean(auth);
  $("who").hidden = !auth;
  $("nav-orders").hidden = !auth;
  $("nav-organizer").hidden = !(auth && isOrganizer());
  if (auth) {
    setText($("who-name"), auth.user.nombre || auth.user.email);
    setText($("who-role"), { ADMIN: "admin", ORGANIZADOR: "organizer", COMPRADOR: "buyer" }[auth.user.role] || auth.user.role);
    setText($("nav-organizer"), auth.user.role === "ADMIN" ? "Admin" : "My events");
  }
}

function signedIn(data) {
  saveAuth({ token: data.token, user: data.user });
  renderAccount();
  authenticateFeed();
}

export function signOut(message) {
  saveAuth(null);
  // Held and sold counts come from the sales only an event's organizer (or an admin) sees.
  for (const ev of state.events.values()) {
    for (const c of ev.cats.values()) c.held = c.sold = null;
  }
  forgetOrders();
  forgetWaitlist();
  leaveQueueView(); // the place was the previous user's
  clearSales("");
  renderAccount();
  showError($("login-error"), message || null);
  restartFeed(); // the old socket is still authenticated as the previous user
  route();
}

async function onLogin(e) {
  e.preventDefault();
  const btn = $("login-btn");
  btn.disabled = true;
  showError($("login-error"), null);
  try {
    const { data } = await api("/api/auth/login", {
      method: "POST",
      body: { email: $("login-email").value.trim(), password: $("login-password").value },
    });
    $("login-password").value = "";
    signedIn(data);
    if (state.view.name === "signup") location.hash = state.returnTo || "#/";
    else route();
  } catch (err) {
    showError($("login-error"), err);
  } finally {
    btn.disabled = false;
  }
}

// ---- sign up --------------------------------------------------------------------------------

function showSignup() {
  setView("signup");
  document.title = "Create an account · onsale";
  if (state.auth) {
    setText($("signup-done"), `You are signed in as ${state.auth.user.email}. Sign out to create another account.`);
    $("signup-done").hidden = false;
    $("signup-form").hidden = true;
    return;
  }
  $("signup-done").hidden = true;
  $("signup-form").hidden = false;
}

async function onSignup(e) {
  e.preventDefault();
  const form = $("signup-form");
  const btn = $("signup-btn");
  const errEl = $("signup-error");
  showError(errEl, null);
  clearFieldErrors(form);
  btn.disabled = true;
  setText(btn, "Creating your account…");
  const role = form.querySelector("input[name=role]:checked");
  try {
    const { data } = await api("/api/auth/register", {
      method: "POST",
      body: {
        nombre: $("su-name").value.trim(),
        email: $("su-email").value.trim(),
        password: $("su-password").value,
        role: role ? role.value : "COMPRADOR",
      },
    });
    form.reset();
    signedIn(data);
    const back = state.returnTo;
    state.returnTo = "";
    location.hash = back || (data.user.role === "ORGANIZADOR" ? "#/organizer" : "#/");
  } catch (err) {
    showProblem(form, errEl, err);
  } finally {
    btn.disabled = false;
    setText(btn, "Create account");
  }
}

export function startAccount() {
  setUnauthorizedHandler(signOut);
  registerView("signup", { show: showSignup });
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", () => signOut(null));
  $("signup-form").addEventListener("submit", onSignup);
  // Remember where the visitor was, to come back there once signed up.
  for (const link of document.querySelectorAll("a[href='#/signup']")) {
    link.addEventListener("click", () => {
      if (state.view.name !== "signup") state.returnTo = location.hash || "#/";
    });
  }
  renderAccount();
}
