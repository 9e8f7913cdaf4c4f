// The amibridge live dashboard: REST for the state, the SSE stream for
// changes. Nothing protected is asked for before an API key is given. Plain
// JS, no dependencies; every text from the PBX goes through textContent,
// never innerHTML.
"use strict";

const KEY_STORE = "amibridge.key";
const LOG_MAX = 300; // event log lines kept
const CHANNELS_EVERY_MS = 300; // at most one channel reload per this
const QUEUES_EVERY_MS = 500;
const STATUS_EVERY_MS = 2000; // /readyz and /metrics
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;
const CHANNEL_EVENTS = /^(Newchannel|Hangup|Newstate|NewCallerid|NewConnectedLine|Rename|Bridge(Enter|Leave|Create|Destroy)|Dial(Begin|End)|OriginateResponse|Hold|Unhold)$/;
const QUEUE_EVENTS = /^(Queue|Agent)/;

const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem(KEY_STORE) || "",
  channels: [],
  channelsAt: 0,
  queues: [],
  queuesAt: 0,
  lastEventId: "",
  log: [],
  pendingLog: [],
  received: null, // events counter from /metrics, for events/s
};

// One key, one session: nothing protected is asked for before a key is given
// and accepted. Ending a session (a new key, Forget, a refused key) makes
// every answer still on its way of no effect (`gen`), aborts the stream and
// wakes its back-off, so a new key starts at once.
const session = { gen: 0, on: false, ctrl: null, wake: null, retry: null, delay: RETRY_MIN_MS };

// --- HTTP ---------------------------------------------------------------------------------

function headers(extra) {
  const h = Object.assign({}, extra);
  if (state.key) h.Authorization = "Bearer " + state.key;
  return h;
}

// A problem+json answer as one line a person can act on.
function problemText(status, p, text) {
  if (p && p.title) {
    let s = `${status} ${p.title}`;
    if (p.detail) s += `: ${p.detail}`;
    if (p.field) s += ` (field "${p.field}")`;
    return s;
  }
  return `${status} ${(text || "").slice(0, 200)}`;
}

function httpError(res, text) {
  let p = null;
  try { p = JSON.parse(text); } catch (e) { p = null; }
  const err = new Error(problemText(res.status, p, text));
  err.status = res.status;
  err.retryAfter = Number(res.headers.get("Retry-After")) || 0;
  return err;
}

async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }), cache: "no-store" };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  const text = await res.text();
  if (!res.ok) throw httpError(res, text);
  try { return text ? JSON.parse(text) : null; } catch (e) { return null; }
}

// One notice line; `from` says who set it, so a later success clears only
// its own message (a refused hang-up stays until the next action).
let noticeFrom = "";
function notice(text, from) {
  const n = $("notice");
  n.textContent = text || "";
  n.hidden = !text;
  noticeFrom = text ? from || "" : "";
}
function clearNotice(from) {
  if (noticeFrom === from) notice("");
}

function askForKey(text) {
  notice(text || "This page needs an API key: type one above (scope read to watch; call to dial; control to hang up and pause). It is kept only in this tab.", "key");
  pill("st-stream", "Events", "needs a key", "off");
}

// A failed request of the dashboard's own reading: a 401 or 403 ends the
// session (the key is wrong or cannot read); anything else is shown, except
// network failures, which the Events pill already tells (reconnecting).
function loadFailed(err, what) {
  if (err.status === 401 || err.status === 403) keyRefused(err);
  else if (err.status) notice(`${what}: ${err.message}`, "load");
}

// A failed action: a wrong key ends the session, the rest is shown as is.
function actionFailed(err, what) {
  if (err.status === 401) keyRefused(err);
  else if (err.status === 403) notice(`${what}: the key lacks a scope for this: ${err.message}`, "action");
  else notice(`${what}: ${err.message}`, "action");
}

// At most one run per `ms`; a call in between runs once more at the end.
function throttle(fn, ms) {
  let timer = null, again = false;
  return function run() {
    if (timer) { again = true; return; }
    fn();
    timer = setTimeout(() => { timer = null; if (again) { again = false; run(); } }, ms);
  };
}

// --- formatting ---------------------------------------------------------------------------

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  if (props) for (const [k, v] of Object.entries(props)) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

function hms(s) {
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), x = s % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(x).padStart(2, "0");
}

function callerText(c) {
  if (!c) return "";
  const name = c.name || "", num = c.number || "";
  return name && num && name !== num ? `${name} <${num}>` : name || num;
}

// --- channels -----------------------------------------------------------------------------

let channelsSeq = 0;
async function loadChannels() {
  if (!session.on) return;
  const seq = ++channelsSeq, gen = session.gen;
  try {
    const data = await api("GET", "/v1/channels");
    if (seq !== channelsSeq || gen !== session.gen) return; // a newer answer is on its way
    state.channels = data.channels || [];
    state.channelsAt = performance.now();
    renderChannels();
    clearNotice("load");
  } catch (e) { if (gen === session.gen) loadFailed(e, "Channels"); }
}
const refreshChannels = throttle(loadChannels, CHANNELS_EVERY_MS);

function hangup(ch) {
  api("DELETE", "/v1/channels/" + encodeURIComponent(ch.channel))
    .then(refreshChannels, (e) => actionFailed(e, `Hang up ${ch.channel}`));
}

function channelRow(ch) {
  const tr = el("tr", { "data-channel": ch.channel || "" },
    el("td", { class: "mono", text: ch.channel || "" }),
    el("td", { text: callerText(ch.caller_id) }),
    el("td", null, el("span", { class: "state s-" + (ch.state || "unknown"), text: (ch.state || "unknown").replace(/_/g, " ") })),
    el("td", { class: "num dur", "data-base": ch.duration_s == null ? "" : String(ch.duration_s), text: ch.duration_s == null ? "" : hms(ch.duration_s) }),
    el("td", { class: "act" }, el("button", { type: "button", class: "danger", "aria-label": `Hang up ${ch.channel}`, text: "Hang up", onclick: () => hangup(ch) })));
  return tr;
}

// Bridged channels are grouped (one tbody per bridge), the rest after them.
function renderChannels() {
  const table = $("channels");
  for (const b of [...table.tBodies]) b.remove();
  const groups = new Map();
  for (const ch of state.channels) {
    const k = ch.bridge_id || "";
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(ch);
  }
  const keys = [...groups.keys()].sort((a, b) => (a === "") - (b === "") || a.localeCompare(b));
  for (const k of keys) {
    const tb = el("tbody", { class: k ? "bridge" : "alone" });
    if (k) tb.append(el("tr", { class: "group" }, el("th", { colspan: "5", scope: "rowgroup", text: `Call (bridge ${k.slice(0, 8)}) · ${groups.get(k).length} channels` })));
    for (const ch of groups.get(k)) tb.append(channelRow(ch));
    table.append(tb);
  }
  $("channels-empty").hidden = state.channels.length > 0;
  $("c-channels").textContent = session.on ? String(state.channels.length) : "–";
}

// --- queues -------------------------------------------------------------------------------

let queuesSeq = 0;
async function loadQueues() {
  if (!session.on) return;
  const seq = ++queuesSeq, gen = session.gen;
  try {
    const data = await api("GET", "/v1/queues");
    if (seq !== queuesSeq || gen !== session.gen) return;
    state.queues = data.queues || [];
    state.queuesAt = performance.now();
    renderQueues();
  } catch (e) { if (gen === session.gen) loadFailed(e, "Queues"); }
}
const refreshQueues = throttle(loadQueues, QUEUES_EVERY_MS);

function pause(q, m) {
  api("POST", `/v1/queues/${encodeURIComponent(q.name)}/members/${encodeURIComponent(m.interface)}/pause`, { paused: !m.paused })
    .then(refreshQueues, (e) => actionFailed(e, `${m.paused ? "Unpause" : "Pause"} ${m.interface}`));
}

function renderQueues() {
  const box = $("queues");
  box.replaceChildren();
  let waiting = 0;
  for (const q of state.queues) {
    const callers = q.callers || [], members = q.members || [];
    waiting += callers.length;
    const card = el("article", { class: "queue", "data-queue": q.name || "" },
      el("h3", null, el("span", { text: q.name || "" }), el("span", { class: "meta", text: `${callers.length} waiting · ${q.completed ?? 0} done · ${q.abandoned ?? 0} abandoned` })));
    if (callers.length) {
      const ol = el("ol", { class: "callers", "aria-label": `Callers waiting in ${q.name}` });
      for (const c of callers)
        ol.append(el("li", null, el("span", { text: callerText(c.caller_id) || c.channel || "" }),
          el("span", { class: "num dur", "data-base": String(c.wait_s ?? 0), text: hms(c.wait_s ?? 0) })));
      card.append(ol);
    }
    const tbl = el("table", { class: "members" },
      el("thead", null, el("tr", null, el("th", { scope: "col", text: "Member" }), el("th", { scope: "col", text: "State" }),
        el("th", { scope: "col", text: "Paused" }), el("th", { scope: "col" }, el("span", { class: "sr", text: "Actions" })))));
    const tb = el("tbody");
    for (const m of members)
      tb.append(el("tr", { "data-member": m.interface || "" },
        el("td", { text: m.name || m.interface || "" }),
        el("td", null, el("span", { class: "state m-" + (m.state || "unknown"), text: (m.state || "unknown").replace(/_/g, " ") })),
        el("td", { class: "paused", text: m.paused ? "paused" + (m.paused_reason ? ` (${m.paused_reason})` : "") : "no" }),
        el("td", { class: "act" }, el("button", { type: "button", "aria-label": `${m.paused ? "Unpause" : "Pause"} ${m.interface} in ${q.name}`, text: m.paused ? "Unpause" : "Pause", onclick: () => pause(q, m) }))));
    tbl.append(tb);
    if (members.length) card.append(tbl);
    box.append(card);
  }
  $("queues-empty").hidden = state.queues.length > 0;
  $("c-waiting").textContent = session.on ? String(waiting) : "–";
}

// Running durations, without re-rendering anything else.
function tick() {
  const now = performance.now();
  for (const [sel, at] of [["#channels .dur", state.channelsAt], ["#queues .dur", state.queuesAt]])
    for (const td of document.querySelectorAll(sel)) {
      if (td.dataset.base === "") continue;
      td.textContent = hms(Number(td.dataset.base) + (now - at) / 1000);
    }
}

// --- status and counters ------------------------------------------------------------------

function pill(id, label, text, st) {
  const p = $(id);
  p.textContent = `${label}: ${text}`;
  p.dataset.state = st;
}

async function loadStatus() {
  try {
    const res = await fetch("/readyz", { cache: "no-store" });
    const r = await res.json();
    const servers = r.servers || [];
    const up = servers.filter((s) => s.ready).length;
    pill("st-ami", "AMI", servers.length === 1 ? (up ? "up" : "down") : `${up}/${servers.length} up`, up === servers.length ? "ok" : "bad");
    if (r.redis) pill("st-redis", "Redis", r.redis.state, r.redis.state === "up" ? "ok" : "bad");
    else pill("st-redis", "Redis", "not used", "off");
  } catch (e) {
    pill("st-ami", "AMI", "no answer", "bad");
  }
  if (!session.on) return; // /metrics may need a key (AMIBRIDGE_METRICS_AUTH)
  try {
    const res = await fetch("/metrics", { headers: headers(), cache: "no-store" });
    if (!res.ok) return;
    const text = await res.text();
    let inflight = 0, received = 0;
    for (const line of text.split("\n")) {
      if (line.startsWith("amibridge_originates_in_flight")) inflight += Number(line.split(" ").pop()) || 0;
      else if (line.startsWith("amibridge_events_received_total")) received += Number(line.split(" ").pop()) || 0;
    }
    $("c-inflight").textContent = String(inflight);
    const now = performance.now();
    if (state.received && received >= state.received.n)
      $("c-rate").textContent = ((received - state.received.n) / ((now - state.received.t) / 1000)).toFixed(1);
    state.received = { n: received, t: now };
  } catch (e) { /* counters are a nicety */ }
}

// --- the event stream ---------------------------------------------------------------------

function logEvent(ev) {
  state.pendingLog.push(ev);
  if (state.pendingLog.length === 1) requestAnimationFrame(flushLog);
}

function summary(ev) {
  const f = ev.fields || {};
  const parts = [f.Channel, f.Queue, f.Interface || f.MemberName, f.CallerIDNum, f["Cause-txt"] || f.ChannelStateDesc, f.Response];
  return parts.filter((x) => typeof x === "string" && x && x !== "<unknown>").join(" · ");
}

function matches(name) {
  const f = $("filter").value.trim().toLowerCase();
  return !f || name.toLowerCase().includes(f);
}

function logLine(ev) {
  const t = (ev.time || "").slice(11, 23);
  return el("li", { "data-event": ev.event },
    el("time", { datetime: ev.time || "", text: t }),
    el("span", { class: "ev", text: ev.event }),
    el("span", { class: "sum", text: summary(ev) }));
}

// Batched per animation frame: 50 events/s cost one DOM update per frame.
function flushLog() {
  const batch = state.pendingLog.splice(0);
  state.log.push(...batch);
  if (state.log.length > LOG_MAX) state.log.splice(0, state.log.length - LOG_MAX);
  const list = $("log");
  const frag = document.createDocumentFragment();
  for (const ev of batch.reverse()) if (matches(ev.event)) frag.append(logLine(ev));
  list.prepend(frag);
  while (list.childElementCount > LOG_MAX) list.lastElementChild.remove();
}

function refilter() {
  const list = $("log");
  const frag = document.createDocumentFragment();
  for (let i = state.log.length - 1; i >= 0; i--) if (matches(state.log[i].event)) frag.append(logLine(state.log[i]));
  list.replaceChildren(frag);
}

function onEvent(name, data, id) {
  if (id) state.lastEventId = id;
  let ev;
  try { ev = JSON.parse(data); } catch (e) { return; }
  logEvent(ev);
  if (CHANNEL_EVENTS.test(name)) refreshChannels();
  if (QUEUE_EVENTS.test(name)) refreshQueues();
}

// One SSE block ("id: …\nevent: …\ndata: …").
function onBlock(block) {
  let name = "message", id = "", data = [];
  for (const line of block.split("\n")) {
    if (!line || line[0] === ":") continue;
    const i = line.indexOf(":");
    const k = i < 0 ? line : line.slice(0, i);
    const v = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (k === "event") name = v;
    else if (k === "id") id = v;
    else if (k === "data") data.push(v);
  }
  if (data.length) onEvent(name, data.join("\n"), id);
}

// A pause the session's end cuts short.
function backoff(ms) {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() { clearTimeout(t); if (session.wake === done) session.wake = null; resolve(); }
    session.wake = done;
  });
}

// fetch() rather than EventSource: it can send the Authorization header.
// Reconnects by itself with Last-Event-ID and reloads the state each time;
// ends with its session, and on a 401 or 403 (retrying a refused key would
// only count towards the address's lock-out).
async function stream(gen) {
  let delay = RETRY_MIN_MS;
  while (gen === session.gen) {
    const ctrl = new AbortController();
    session.ctrl = ctrl;
    let wait = delay;
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (state.lastEventId) h["Last-Event-ID"] = state.lastEventId;
      const res = await fetch("/v1/events", { headers: h, signal: ctrl.signal, cache: "no-store" });
      if (!res.ok) throw httpError(res, await res.text());
      if (gen !== session.gen) { ctrl.abort(); break; }
      pill("st-stream", "Events", "live", "ok");
      delay = RETRY_MIN_MS;
      refreshChannels();
      refreshQueues();
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          onBlock(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
      pill("st-stream", "Events", "reconnecting", "bad");
    } catch (e) {
      if (gen !== session.gen) break; // a new key, or none
      if (e.status === 401 || e.status === 403) { keyRefused(e); break; }
      pill("st-stream", "Events", "reconnecting", "bad");
      if (e.status) notice(`Events: ${e.message}`, "load");
      if (e.retryAfter) wait = Math.max(wait, e.retryAfter * 1000);
    }
    await backoff(wait);
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
}

// --- the key and the session --------------------------------------------------------------

function endSession() {
  session.gen++;
  session.on = false;
  if (session.ctrl) session.ctrl.abort();
  session.ctrl = null;
  if (session.wake) session.wake();
  clearTimeout(session.retry);
}

// What the key showed goes with it.
function clearView() {
  state.channels = [];
  state.queues = [];
  state.received = null;
  state.log = [];
  state.pendingLog = [];
  state.lastEventId = ""; // a new key starts a new stream, no replay
  $("log").replaceChildren();
  renderChannels();
  renderQueues();
  for (const id of ["c-inflight", "c-rate"]) $(id).textContent = "–";
}

// The key is tried with one request first (the channels): a wrong key costs
// one 401, not one per part of the page. Accepted, the rest starts; an
// amibridge that does not answer is tried again.
function beginSession() {
  endSession();
  const gen = session.gen;
  pill("st-stream", "Events", "connecting", "unknown");
  api("GET", "/v1/channels").then((data) => {
    if (gen !== session.gen) return;
    session.on = true;
    session.delay = RETRY_MIN_MS;
    clearNotice("key");
    clearNotice("load");
    state.channels = (data && data.channels) || [];
    state.channelsAt = performance.now();
    renderChannels();
    loadQueues();
    loadStatus();
    stream(gen);
  }, (e) => {
    if (gen !== session.gen) return;
    if (e.status === 401 || e.status === 403) return keyRefused(e);
    pill("st-stream", "Events", "reconnecting", "bad");
    if (e.status) notice(`amibridge: ${e.message}`, "load");
    session.retry = setTimeout(() => { if (gen === session.gen) beginSession(); }, Math.max(session.delay, e.retryAfter * 1000 || 0));
    session.delay = Math.min(session.delay * 2, RETRY_MAX_MS);
  });
}

// A 401 (the key is wrong, or no longer configured) or 403 (it cannot read):
// everything stops and the key is dropped, so a reload asks again instead
// of sending it.
function keyRefused(err) {
  endSession();
  clearView();
  state.key = "";
  sessionStorage.removeItem(KEY_STORE);
  askForKey(err.status === 401
    ? `amibridge refused this API key (${err.message}). Type a valid one above.`
    : `This API key cannot read the PBX (${err.message}). The page needs a key with scope read.`);
  $("key").focus();
}

function useKey(key) {
  state.key = key;
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
  notice("");
  if (key) beginSession();
  else {
    endSession();
    clearView();
    askForKey();
  }
}

function init() {
  $("keyform").addEventListener("submit", (e) => {
    e.preventDefault();
    useKey($("key").value.trim());
    $("key").value = "";
  });
  $("forget").addEventListener("click", () => useKey(""));
  $("filter").addEventListener("input", refilter);
  $("dial").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const body = { channel: f.get("channel"), context: f.get("context"), exten: f.get("exten"), wait: false };
    if (f.get("caller_id")) body.caller_id = f.get("caller_id");
    const out = $("dial-result");
    out.className = "result";
    if (!state.key) {
      out.textContent = "Type an API key first (scope call).";
      out.classList.add("bad");
      return;
    }
    out.textContent = "Calling…";
    try {
      const r = await api("POST", "/v1/calls", body);
      out.textContent = `Call placed (${r.status}), id ${r.id}`;
      out.classList.add("ok");
    } catch (err) {
      out.textContent = err.message;
      out.classList.add("bad");
      if (err.status === 401) keyRefused(err);
    }
  });
  renderChannels();
  renderQueues();
  loadStatus();
  setInterval(loadStatus, STATUS_EVERY_MS);
  setInterval(tick, 1000);
  if (state.key) beginSession();
  else {
    askForKey();
    $("key").focus();
  }
}

document.addEventListener("DOMContentLoaded", init);
