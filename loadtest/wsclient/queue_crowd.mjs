// Queued buyers for loadtest/bench_queue.py: N signed-in buyers of one event's queue.
//
//   node queue_crowd.mjs --base http://127.0.0.1:8000 --event ID --category CAT \
//        --tokens FILE --mode watch|buy [--confirm 0.8] [--http 64] [--concurrency 200] \
//        [--base2 http://127.0.0.1:8001] [--probe 1]
//
// --base2: a second server (another API process on the same Redis): buyers with an odd
// index use it for all their HTTP and their socket, the others --base (half the crowd on
// each; --http connections per server).
//
// 1. every buyer (one JWT per line of --tokens) joins: POST /api/events/ID/queue/join
//    over keep-alive HTTP (at most --http connections); with --probe 1 it then tries to
//    hold without an Admission-Token and with a made-up one (counted by answer in
//    "probes": both must be refused); prints {"type":"joined",...};
// 2. every buyer opens /ws?token=..., sends join:queue and waits for its first
//    queue:position; prints {"type":"ready",...} (the socket is the buyer's heartbeat);
// 3. watch: records every queue:position frame (socket, receipt ms, delante) and prints
//    {"type":"admitted","i","token","ms"} for every queue:admitted (the benchmark holds and
//    cancels for it); buy: an admitted buyer holds 1 ticket of --category with its
//    Admission-Token, then confirms (share --confirm) or abandons (the hold expires),
//    and a sold-out buyer stops; prints {"type":"done",...} once every buyer is done and
//    no request is in flight. A repeated queue:admitted with a token already seen is
//    counted (dupAdmittedFrames) and not acted on.
//
// Commands on stdin: "stop" prints {"type":"result",...} and exits: the stats, per server
// ("perBase"), and per buyer index "admissions" [i, token, ms] (every distinct token
// received), "holds" [i, orderId] (201s), "refused" [i, "status code"], "soldOutBuyers" [i]
// (buyers told queue:sold-out, each once), "holdMs" (every hold's ms from queue:admitted to
// its 201); watch: the frames as [socket, ms, delante] triples. EOF on stdin exits too.

import http from "node:http";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import WebSocket from "ws";

function parseArgs(argv) {
  const out = {
    base: "", base2: "", event: "", category: "", tokens: "", mode: "watch",
    confirm: 0.8, http: 64, concurrency: 200, timeout: 300, probe: 0,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in out)) throw new Error(`unknown option ${argv[i]}`);
    out[key] = typeof out[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!out.base || !out.event || !out.tokens) throw new Error("--base --event --tokens");
  return out;
}

const args = parseArgs(process.argv.slice(2));
const tokens = readFileSync(args.tokens, "utf8").split("\n").filter(Boolean);
const N = tokens.length;
const bases = [args.base, ...(args.base2 ? [args.base2] : [])].map((b) => ({
  base: b,
  url: new URL(b),
  agent: new http.Agent({ keepAlive: true, maxSockets: args.http }),
}));
const baseOf = (i) => i % bases.length; // buyer i's server
const t0 = Date.now();

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

let inflight = 0; // requests sent, not answered yet ("done" waits for them)

function request(i, method, path, body, headers = {}) {
  const { url, agent } = bases[baseOf(i)];
  inflight += 1;
  return new Promise((resolve) => {
    const data = body === undefined ? "" : JSON.stringify(body);
    const settle = (value) => {
      inflight -= 1;
      resolve(value);
    };
    const req = http.request(
      {
        host: url.hostname, port: url.port, method, path, agent,
        headers: {
          Authorization: `Bearer ${tokens[i]}`,
          "Content-Type": "application/json",
          "Content-Length": Buffer.byteLength(data),
          ...headers,
        },
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          let json = null;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString() || "null");
          } catch {}
          settle({ status: res.statusCode, json });
        });
      },
    );
    req.on("error", (e) => settle({ status: 0, json: { code: e.code || String(e) } }));
    req.end(data);
  });
}

const stats = {
  joinOk: 0, joinFailed: 0, opened: 0, failed: 0, ready: 0, positions: 0,
  admitted: 0, held: 0, confirmed: 0, confirmFailed: 0, abandoned: 0, soldOut: 0,
  refusals: {}, probes: {}, errorFrames: 0, closedByServer: 0, dupAdmittedFrames: 0,
  firstAdmittedMs: null, lastHeldMs: null, lastConfirmedMs: null, lastSoldOutMs: null,
};
const perBase = bases.map((b) => ({ base: b.base, buyers: 0, joinOk: 0, ready: 0, admitted: 0,
  held: 0, soldOut: 0 }));
for (let i = 0; i < N; i++) perBase[baseOf(i)].buyers += 1;
const holdLatency = []; // ms from queue:admitted receipt to the 201
const frames = []; // watch: [socket, ms, delante]
const admissions = []; // [i, token, ms]: every distinct admission token received
const holds = []; // [i, orderId]
const refused = []; // [i, "status code"]
const soldOutBuyers = []; // [i]: told queue:sold-out (once per buyer)
const seenTokens = new Map(); // i -> Set of admission tokens received
const toldSoldOut = new Uint8Array(N);
const sockets = new Array(N);
const done = new Uint8Array(N);
let nDone = 0;
let stopping = false;
let doneSaid = false;

function maybeDone() {
  if (args.mode === "buy" && !doneSaid && nDone === N && inflight === 0) {
    doneSaid = true;
    emit({ type: "done", ...stats, ms: Date.now() });
  }
}

function finish(i) {
  if (done[i]) return;
  done[i] = 1;
  nDone += 1;
  if (sockets[i]) sockets[i].close();
  maybeDone();
}

async function buy(i, data) {
  const got = Date.now();
  const r = await request(
    i, "POST", "/api/orders",
    { eventoId: args.event, tickets: [{ categoriaId: args.category, cantidad: 1 }] },
    { "Admission-Token": data.admisionToken },
  );
  if (r.status !== 201) {
    const key = `${r.status} ${(r.json && r.json.code) || ""}`.trim();
    stats.refusals[key] = (stats.refusals[key] || 0) + 1;
    refused.push([i, key]);
    finish(i);
    return;
  }
  stats.held += 1;
  perBase[baseOf(i)].held += 1;
  stats.lastHeldMs = Date.now();
  holdLatency.push(stats.lastHeldMs - got);
  holds.push([i, r.json.id]);
  if (Math.random() < args.confirm) {
    const confirming = request(i, "PUT", `/api/orders/${r.json.id}/confirm`, {
      metodoPago: "card", transactionId: `tx-${i}-${Date.now()}`,
    });
    finish(i); // a buyer holding is done with the queue (its place is USADO)
    const c = await confirming;
    if (c.status === 200) {
      stats.confirmed += 1;
      stats.lastConfirmedMs = Date.now();
    } else stats.confirmFailed += 1;
    maybeDone();
  } else {
    stats.abandoned += 1;
    finish(i);
  }
}

function onMessage(i, raw, resolveReady) {
  const now = Date.now();
  const msg = JSON.parse(raw.toString());
  switch (msg.event) {
    case "queue:position":
      stats.positions += 1;
      if (args.mode === "watch" && msg.data.delante !== null) frames.push([i, now, msg.data.delante]);
      resolveReady();
      break;
    case "queue:admitted": {
      resolveReady();
      const token = msg.data.admisionToken;
      const seen = seenTokens.get(i) || new Set();
      seenTokens.set(i, seen);
      if (seen.has(token)) {
        stats.dupAdmittedFrames += 1; // the same admission told twice: act once
        break;
      }
      seen.add(token);
      stats.admitted += 1;
      perBase[baseOf(i)].admitted += 1;
      admissions.push([i, token, now]);
      if (stats.firstAdmittedMs === null) stats.firstAdmittedMs = now;
      if (args.mode === "watch") emit({ type: "admitted", i, token, ms: now });
      else buy(i, msg.data);
      break;
    }
    case "queue:sold-out":
      resolveReady();
      if (!toldSoldOut[i]) {
        toldSoldOut[i] = 1;
        stats.soldOut += 1;
        perBase[baseOf(i)].soldOut += 1;
        soldOutBuyers.push(i);
      }
      stats.lastSoldOutMs = now;
      finish(i);
      break;
    case "error":
      stats.errorFrames += 1;
      if (stats.errorFrames <= 5) process.stderr.write(`error frame on socket ${i}: ${raw}\n`);
      resolveReady();
      break;
    default:
      break;
  }
}

function open(i) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${bases[baseOf(i)].base.replace(/^http/, "ws")}/ws?token=${tokens[i]}`, {
      perMessageDeflate: false, handshakeTimeout: 60_000,
    });
    sockets[i] = ws;
    let isReady = false;
    const ready = () => {
      if (!isReady) {
        isReady = true;
        stats.ready += 1;
        perBase[baseOf(i)].ready += 1;
        resolve();
      }
    };
    ws.on("open", () => {
      stats.opened += 1;
      ws.send(JSON.stringify({ event: "join:queue", data: { eventId: args.event } }));
    });
    ws.on("message", (raw) => onMessage(i, raw, ready));
    ws.on("error", (err) => {
      if (!isReady) {
        stats.failed += 1;
        if (stats.failed <= 5) process.stderr.write(`socket ${i}: ${err.message}\n`);
        isReady = true;
        resolve();
      }
    });
    ws.on("close", () => {
      if (!stopping && !done[i]) stats.closedByServer += 1;
      if (!isReady) {
        isReady = true;
        resolve();
      }
    });
  });
}

async function pool(n, limit, fn) {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

function pct(values, q) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))];
}

function stop() {
  stopping = true;
  for (const ws of sockets) if (ws) ws.terminate();
  const line = JSON.stringify({
    type: "result", ...stats, hold_p50_ms: pct(holdLatency, 0.5),
    hold_p99_ms: pct(holdLatency, 0.99), holdMs: holdLatency, perBase, admissions, holds,
    refused, soldOutBuyers, frames,
  });
  // Exit only once the (large) line is flushed: a pipe write is asynchronous in Node.
  process.stdout.write(line + "\n", () => process.exit(0));
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line.trim() === "stop") stop();
});
rl.on("close", () => {
  if (!stopping) process.exit(1);
});

async function main() {
  const order = { eventoId: args.event, tickets: [{ categoriaId: args.category, cantidad: 1 }] };
  const probe = async (i, headers) => {
    const r = await request(i, "POST", "/api/orders", order, headers);
    const key = `${r.status} ${(r.json && r.json.code) || ""}`.trim();
    stats.probes[key] = (stats.probes[key] || 0) + 1;
  };
  await pool(N, args.http * 2 * bases.length, async (i) => {
    const r = await request(i, "POST", `/api/events/${args.event}/queue/join`);
    if (r.status === 200 || r.status === 201) {
      stats.joinOk += 1;
      perBase[baseOf(i)].joinOk += 1;
    } else {
      stats.joinFailed += 1;
      if (stats.joinFailed <= 5) process.stderr.write(`join ${i}: ${r.status} ${JSON.stringify(r.json)}\n`);
    }
    if (args.probe) {
      await probe(i, {}); // no Admission-Token
      await probe(i, { "Admission-Token": `made-up-${i}` });
    }
  });
  emit({ type: "joined", ok: stats.joinOk, failed: stats.joinFailed, probes: stats.probes,
         perBase, s: (Date.now() - t0) / 1000 });
  const t1 = Date.now();
  await pool(N, args.concurrency, open);
  emit({ type: "ready", ready: stats.ready, opened: stats.opened, failed: stats.failed,
         s: (Date.now() - t1) / 1000 });
}

main();
