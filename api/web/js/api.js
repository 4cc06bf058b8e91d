// REST: fetch with the bearer token, problem+json errors, the clock skew, and what the
// API offers (features other issues add: read from its OpenAPI document once).

import { state } from "./state.js";


export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body || {};
  }

  /** Per-field messages of a 422: [{field, message}]. */
  get fields() {
    return Array.isArray(this.body.errors) ? this.body.errors.filter((e) => e && e.field) : [];
  }
}

export function problemMessage(status, body) {
  let message = (body && (body.detail || body.title)) || `request failed (HTTP ${status})`;
  if (body && Array.isArray(body.errors) && body.errors.length) {
    const fields = body.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
    if (!message.includes(fields)) message = `${message} (${fields})`;
  }
  return message;
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export async function api(path, { method = "GET", body, headers = {} } = {}) {
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
      onUnauthorized("Your session has expired: sign in again.");
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

export const enc = encodeURIComponent;

// ---- what the API offers ------------------------------------------------------------

let capsPromise = null;

/**
 * Features the API has now, from its OpenAPI document: {waitlist, extend, queue,
 * buyerCap}. Features of other issues land at different times; the page offers each once
 * the API has it. A missing document means none of them.
 */
export function capabilities() {
  if (!capsPromise) {
    capsPromise = fetch("/schema/openapi.json", { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : {}))
      .catch(() => ({}))
      .then((doc) => {
        const paths = Object.keys((doc && doc.paths) || {});
        const has = (re) => paths.some((p) => re.test(p));
        const schemas = (doc && doc.components && doc.components.schemas) || {};
        const eventIn = schemas.EventIn && schemas.EventIn.properties;
        return {
          waitlist: has(/^\/api\/events\/\{[^}]+\}\/waitlist$/),
          extend: has(/^\/api\/orders\/\{[^}]+\}\/extend$/),
          queue: has(/^\/api\/events\/\{[^}]+\}\/queue$/),
          buyerCap: Boolean(eventIn && "maxPorComprador" in eventIn),
        };
      });
  }
  return capsPromise;
}

// ---- forms: the API's messages next to the fields they name ----------------------------

/** Clear a form's field errors. */
export function clearFieldErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const msg of form.querySelectorAll(".field-error")) {
    msg.textContent = "";
    msg.hidden = true;
  }
}

/**
 * Show a refusal: the problem's detail in `summaryEl`, and each field error next to the
 * input whose data-field matches (`map` renames an API field to a data-field first).
 */
export function showProblem(form, summaryEl, err, map = (f) => f) {
  clearFieldErrors(form);
  summaryEl.textContent = err instanceof ApiError && err.body.detail ? err.body.detail : err.message || String(err);
  summaryEl.hidden = false;
  if (!(err instanceof ApiError)) return;
  let first = null;
  for (const { field, message } of err.fields) {
    const input = form.querySelector(`[data-field="${CSS.escape(map(field))}"]`);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    const msg = fieldErrorFor(input);
    msg.textContent = msg.textContent ? `${msg.textContent}; ${message}` : message;
    msg.hidden = false;
    first = first || input;
  }
  if (first) first.focus();
}

function fieldErrorFor(input) {
  const id = `${input.id || input.name || "f"}-error`;
  let msg = input.parentElement.querySelector(".field-error");
  if (!msg) {
    msg = document.createElement("span");
    msg.className = "field-error";
    msg.id = id;
    input.parentElement.append(msg);
  }
  const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
  if (!described.includes(msg.id)) input.setAttribute("aria-describedby", [...described, msg.id].join(" "));
  return msg;
}

