// The original system's client code, run with the official socket.io-client against onsale.
//
//   node tests/js/client.mjs <api url> <scenario> '<json options>'
//
// options: { transport: "websocket" | "polling" | "default", token, userId, eventId,
//            categoriaId, quantities: [n, ...], clients: n }
// ("default": the client's own transports, long-polling first, then the WebSocket upgrade)
// Prints one JSON line: {"ok": true, ...what the scenario saw} or {"ok": false, "error"}.
// Exit status 0 only when the scenario saw what it waited for; every wait is bounded.
import { io } from "socket.io-client";

const [url, scenario, rawOptions] = process.argv.slice(2);
const options = JSON.parse(rawOptions ?? "{}");
const WAIT_MS = 10_000;

function connect(withToken) {
  const socket = io(url, {
    ...(options.transport === "default" ? {} : { transports: [options.transport] }),
    auth: withToken ? { token: options.token } : {},
    reconnection: false,
    timeout: WAIT_MS,
    forceNew: true, // one Engine.IO session per socket, even to the same URL
  });
  return new Promise((resolve, reject) => {
    socket.on("connect", () => resolve(socket));
    socket.on("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
  });
}

// The next `event` whose data satisfies `test`, within WAIT_MS.
function next(socket, event, test = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, handler);
      reject(new Error(`no ${event} within ${WAIT_MS} ms`));
    }, WAIT_MS);
    function handler(data, id) {
      if (!test(data)) return;
      clearTimeout(timer);
      socket.off(event, handler);
      resolve({ data, id });
    }
    socket.on(event, handler);
  });
}

async function api(method, path, body) {
  const response = await fetch(new URL(path, url), {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${options.token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(payload)}`);
  return payload;
}

function hold(cantidad) {
  return api("POST", "/api/orders", {
    eventoId: options.eventId,
    tickets: [{ categoriaId: options.categoriaId, cantidad }],
  });
}

// Resolves once the socket's Engine.IO connection runs over the WebSocket transport.
function upgraded(socket) {
  const engine = socket.io.engine;
  if (engine.transport.name === "websocket") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no upgrade within ${WAIT_MS} ms`)), WAIT_MS);
    engine.once("upgrade", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function joinEvent(socket) {
  const joined = next(socket, "joined", (data) => data.eventId === options.eventId);
  // As in the seed's README:
  socket.emit("join:event", { eventId: options.eventId });
  return (await joined).data;
}

const scenarios = {
  // join:event, then an HTTP hold: the room hears ticket:stock-update.
  async stock(socket) {
    const snapshot = next(socket, "ticket:stock-update", (d) => d.categoriaId === options.categoriaId);
    const joined = await joinEvent(socket);
    const before = (await snapshot).data.nuevoStock;
    const update = next(
      socket,
      "ticket:stock-update",
      (data) => data.categoriaId === options.categoriaId && data.nuevoStock < before,
    );
    const order = await hold(options.quantities?.[0] ?? 1);
    const seen = await update;
    return { joined, before, update: seen.data, id: seen.id, orderId: order.id };
  },

  // Holds that take the category under the low-stock threshold: ticket:almost-sold-out.
  async "almost-sold-out"(socket) {
    await joinEvent(socket);
    const alert = next(socket, "ticket:almost-sold-out");
    for (const quantity of options.quantities) await hold(quantity);
    const seen = await alert;
    return { alert: seen.data, id: seen.id };
  },

  // join:user for oneself: order:status-change on hold, and on confirm.
  async "own-user"(socket) {
    const joined = next(socket, "joined", (data) => data.room === "user");
    socket.emit("join:user", { userId: options.userId });
    const ack = (await joined).data;
    // The hub starts tailing every armed event within a second of the first user room.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const reserved = next(socket, "order:status-change", (d) => d.nuevoEstado === "RESERVED");
    const order = await hold(1);
    const first = (await reserved).data;
    const confirmed = next(
      socket,
      "order:status-change",
      (data) => data.orderId === order.id && data.nuevoEstado === "CONFIRMED",
    );
    await api("PUT", `/api/orders/${order.id}/confirm`, {
      metodoPago: "card",
      transactionId: `js-${options.transport}-${Date.now()}`,
    });
    return { joined: ack, orderId: order.id, reserved: first, confirmed: (await confirmed).data };
  },

  // `clients` more sockets at once (besides this one), each joining the event; with the
  // default transports each waits for its WebSocket upgrade first. Then one HTTP hold:
  // every socket hears ticket:stock-update. Reports every socket's Engine.IO session id
  // and final transport (with --workers N the ids show which worker owns each session).
  async many(socket) {
    const others = await Promise.all(
      Array.from({ length: options.clients ?? 8 }, () => connect(Boolean(options.token))),
    );
    const sockets = [socket, ...others];
    try {
      if (options.transport === "default") await Promise.all(sockets.map(upgraded));
      const befores = await Promise.all(
        sockets.map(async (s) => {
          const snapshot = next(s, "ticket:stock-update", (d) => d.categoriaId === options.categoriaId);
          await joinEvent(s);
          return (await snapshot).data.nuevoStock;
        }),
      );
      const before = befores[0];
      const updates = sockets.map((s) =>
        next(s, "ticket:stock-update", (d) => d.categoriaId === options.categoriaId && d.nuevoStock < before),
      );
      await hold(options.quantities?.[0] ?? 1);
      const seen = await Promise.all(updates);
      return {
        befores,
        updates: seen.map((u) => u.data.nuevoStock),
        sids: sockets.map((s) => s.io.engine.id),
        transports: sockets.map((s) => s.io.engine.transport.name),
      };
    } finally {
      for (const s of others) s.disconnect();
    }
  },

  // join:user for somebody else: an error event, and no room.
  async "other-user"(socket) {
    const error = next(socket, "error");
    socket.emit("join:user", { userId: options.userId });
    return { error: (await error).data };
  },
};

let socket;
try {
  const run = scenarios[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario}`);
  socket = await connect(Boolean(options.token));
  const result = await run(socket);
  console.log(JSON.stringify({ ok: true, transport: socket.io.engine.transport.name, ...result }));
  socket.disconnect();
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String(err?.message ?? err) }));
  socket?.disconnect();
  process.exit(1);
}
