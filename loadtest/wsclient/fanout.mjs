// Subscriber side of loadtest/bench_ws.py: N WebSocket subscribers on one event.
//
//   node fanout.mjs --url ws://127.0.0.1:8000/ws --event EVENT_ID --subscribers 5000
//
// Opens the sockets (at most --concurrency handshakes in flight), sends
// {"event":"join:event","data":{"eventId":...}} on each and waits for every "joined" ack,
// then prints {"type":"ready",...} on stdout. Commands on stdin, one per line:
//
//   start [T0 [T1]]  reset the counters and record from now on; only frames whose feed id
//                    (its ms part: the hold script's commit time) is in [T0, T1) count
//                    (default: from now on)
//   stop             print {"type":"result",...} and exit
//
// Latency = Date.now() at receipt - the ms part of the frame's "id" (both this machine's
// clock; ms resolution). The result has exact percentiles from a 1 ms histogram, frames per
// subscriber, sockets closed by the server, ids that went backwards on a socket (must be
// 0), this process's CPU use over the window (1.0 = one core) and its event-loop delay,
// which tells whether the client, not the server, was the bottleneck.
// EOF on stdin (the benchmark died) exits too.

import { createInterface } from "node:readline";
import { monitorEventLoopDelay } from "node:perf_hooks";
import WebSocket from "ws";

function parseArgs(argv) {
  const out = { url: "", event: "", subscribers: 1000, concurrency: 200, timeout: 120 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in out)) throw new Error(`unknown option ${argv[i]}`);
    out[key] = typeof out[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!out.url || !out.event) throw new Error("--url and --event are required");
  return out;
}

const args = parseArgs(process.argv.slice(2));
const N = args.subscribers;
const HIST_MS = 60_000;
const STOCK = "ticket:stock-update";

const hist = new Uint32Array(HIST_MS + 1); // latency in ms; the last bucket is ">= 60 s"
const received = new Uint32Array(N); // stock updates in the window, per subscriber
const lastMs = new Float64Array(N); // last stream id seen per socket, for the order check
const lastSeq = new Float64Array(N);
let recording = false;
let t0 = 0;
let t1 = Infinity;
let counted = 0;
let early = 0; // received in the window but committed before T0 (warm-up backlog)
let negative = 0; // receipt before commit: clocks disagree (should stay 0)
let outOfOrder = 0;
let otherFrames = 0;
let errorFrames = 0;
let joined = 0;
let opened = 0;
let failed = 0;
const closes = new Map(); // close code -> count, for sockets the server closed

const sockets = new Array(N);

function onMessage(i, raw) {
  const now = Date.now();
  const msg = JSON.parse(raw.toString());
  if (msg.event === STOCK && typeof msg.id === "string") {
    const dash = msg.id.indexOf("-");
    const ms = Number(msg.id.slice(0, dash));
    const seq = Number(msg.id.slice(dash + 1));
    if (ms < lastMs[i] || (ms === lastMs[i] && seq <= lastSeq[i])) outOfOrder += 1;
    lastMs[i] = ms;
    lastSeq[i] = seq;
    if (!recording) return;
    if (ms < t0) {
      early += 1;
      return;
    }
    if (ms >= t1) return;
    received[i] += 1;
    counted += 1;
    let lat = now - ms;
    if (lat < 0) {
      negative += 1;
      lat = 0;
    }
    hist[lat > HIST_MS ? HIST_MS : lat] += 1;
  } else if (msg.event === "joined") {
    joined += 1;
    if (joined === N) ready();
  } else if (msg.event === "error") {
    errorFrames += 1;
    if (errorFrames <= 5) process.stderr.write(`error frame on socket ${i}: ${raw}\n`);
  } else {
    otherFrames += 1;
  }
}

function open(i) {
  return new Promise((resolve) => {
    const ws = new WebSocket(args.url, { perMessageDeflate: false, handshakeTimeout: 30_000 });
    sockets[i] = ws;
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        resolve();
      }
    };
    ws.on("open", () => {
      opened += 1;
      ws.send(JSON.stringify({ event: "join:event", data: { eventId: args.event } }));
      settle();
    });
    ws.on("message", (raw) => onMessage(i, raw));
    ws.on("error", (err) => {
      if (!settled) {
        failed += 1;
        if (failed <= 5) process.stderr.write(`socket ${i}: ${err.message}\n`);
      }
      settle();
    });
    ws.on("close", (code) => {
      if (!stopping) closes.set(code, (closes.get(code) || 0) + 1);
      settle();
    });
  });
}

let stopping = false;
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
let cpuStart = process.cpuUsage();
let wallStart = performance.now();
let readyPrinted = false;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function ready() {
  if (readyPrinted) return;
  readyPrinted = true;
  emit({ type: "ready", opened, joined, failed });
}

function percentile(q) {
  if (counted === 0) return null;
  const rank = Math.min(counted - 1, Math.max(0, Math.round(q * (counted - 1))));
  let seen = 0;
  for (let ms = 0; ms <= HIST_MS; ms++) {
    seen += hist[ms];
    if (seen > rank) return ms;
  }
  return HIST_MS;
}

function maxLatency() {
  for (let ms = HIST_MS; ms >= 0; ms--) if (hist[ms] > 0) return ms;
  return null;
}

function start(from, until) {
  hist.fill(0);
  received.fill(0);
  counted = 0;
  early = 0;
  negative = 0;
  outOfOrder = 0;
  t0 = from ? Number(from) : Date.now();
  t1 = until ? Number(until) : Infinity;
  loopDelay.reset();
  loopDelay.enable();
  cpuStart = process.cpuUsage();
  wallStart = performance.now();
  recording = true;
}

function stop() {
  recording = false;
  loopDelay.disable();
  const cpu = process.cpuUsage(cpuStart);
  const wallMs = performance.now() - wallStart;
  const per = Array.from(received).sort((a, b) => a - b);
  const pick = (q) => (per.length ? per[Math.min(per.length - 1, Math.floor(q * per.length))] : 0);
  emit({
    type: "result",
    subscribers: N,
    opened,
    joined,
    failed,
    open_at_end: sockets.filter((ws) => ws && ws.readyState === WebSocket.OPEN).length,
    closed_by_server: Object.fromEntries(closes),
    frames: counted,
    frames_committed_before_window: early,
    latency_p50_ms: percentile(0.5),
    latency_p90_ms: percentile(0.9),
    latency_p99_ms: percentile(0.99),
    latency_max_ms: maxLatency(),
    frames_per_subscriber: { min: pick(0), p50: pick(0.5), max: per.length ? per[per.length - 1] : 0 },
    out_of_order: outOfOrder,
    negative_latency: negative,
    error_frames: errorFrames,
    other_frames: otherFrames,
    client_cpu: (cpu.user + cpu.system) / 1000 / wallMs,
    client_loop_delay_p99_ms: loopDelay.percentile(99) / 1e6,
    client_loop_delay_max_ms: loopDelay.max / 1e6,
  });
  stopping = true;
  for (const ws of sockets) if (ws) ws.terminate();
  setTimeout(() => process.exit(0), 100);
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const [cmd, ...rest] = line.trim().split(/\s+/);
  if (cmd === "start") start(...rest);
  else if (cmd === "stop") stop();
});
rl.on("close", () => {
  if (!stopping) process.exit(1);
});

async function main() {
  let next = 0;
  const worker = async () => {
    while (next < N) await open(next++);
  };
  await Promise.all(Array.from({ length: Math.min(args.concurrency, N) }, worker));
  if (opened < N) {
    emit({ type: "ready", opened, joined, failed });
    readyPrinted = true;
  }
  setTimeout(() => {
    if (!readyPrinted) {
      emit({ type: "ready", opened, joined, failed, timeout: true });
      readyPrinted = true;
    }
  }, args.timeout * 1000).unref();
}

main();
