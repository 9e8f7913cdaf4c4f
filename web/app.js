// The amibridge live dashboard: REST for the state, the SSE stream for
// changes (the live calls are polled until call events reach SSE). Nothing
// protected is asked for before an API key is given. Plain JS, no
// dependencies; every text from the PBX goes through textContent, never
// innerHTML.
"use strict";

const KEY_STORE = "amibridge.key";
const LOG_MAX = 300; // event log lines kept
const CHANNELS_EVERY_MS = 300; // at most one channel reload per this
const QUEUES_EVERY_MS = 500;
const CALLS_POLL_MS = 1000; // GET /v1/calls/live this often
const CALLS_EVERY_MS = 300; // and at most this often after call events
const STATS_EVERY_MS = 1000; // the chart's counts, at most this often
const CALL_LOOKUPS_MAX = 4; // GET /v1/calls/{id} at once
const CALL_LOOKUP_TRIES = 3;
const ENDED_MAX = 200; // ended calls listed
const CHART_MINUTES = 60;
const STATUS_EVERY_MS = 2000; // /readyz and /metrics
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;
const CHANNEL_EVENTS = /^(Newchannel|Hangup|Newstate|NewCallerid|NewConnectedLine|Rename|Bridge(Enter|Leave|Create|Destroy)|Dial(Begin|End)|OriginateResponse|Hold|Unhold)$/;
const QUEUE_EVENTS = /^(Queue|Agent)/;
// the AMI events the call model reads (docs/api.md "Calls"): a call changed
const CALL_EVENTS = /^(Newchannel|Newstate|Hangup|Dial(Begin|End)|Queue(CallerJoin|CallerLeave|CallerAbandon)|AgentConnect|Hold|Unhold|BlindTransfer|AttendedTransfer|OriginateResponse)$/;

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

// `meta`, when given, learns when the request left and its answer came, and
// the answer's Date (the server's clock, for the running talk times).
async function api(method, path, body, meta) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }), cache: "no-store" };
  if (body !== undefined) init.body = JSON.stringify(body);
  const sent = Date.now();
  const res = await fetch(path, init);
  if (meta) Object.assign(meta, { sent, got: Date.now(), date: res.headers.get("Date") });
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

// Once, at the next frame, however often asked before it (a hundred calls
// ending at once cost one render).
const soonFns = new Set();
function soon(fn) {
  if (soonFns.has(fn)) return;
  soonFns.add(fn);
  requestAnimationFrame(() => { soonFns.delete(fn); fn(); });
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

// --- the server's clock -------------------------------------------------------------------

// Live calls carry `answered_at` in the server's clock; the page's clock may
// be off. Each answer's Date (whole seconds) bounds the offset: the server
// read [date, date+1 s) somewhere between sending and receiving. The bounds
// of all answers are intersected (and start over if the clocks jump).
const clock = { lo: -Infinity, hi: Infinity };

function clockSample(meta) {
  const d = Date.parse(meta.date || "");
  if (Number.isNaN(d)) return;
  const lo = d - meta.got, hi = d + 1000 - meta.sent;
  if (Math.max(lo, clock.lo) > Math.min(hi, clock.hi)) { clock.lo = lo; clock.hi = hi; return; }
  clock.lo = Math.max(lo, clock.lo);
  clock.hi = Math.min(hi, clock.hi);
}

function serverNow() {
  return Date.now() + (Number.isFinite(clock.lo) && Number.isFinite(clock.hi) ? (clock.lo + clock.hi) / 2 : 0);
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
  $("n-channels").textContent = session.on ? String(state.channels.length) : "";
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

// --- calls --------------------------------------------------------------------------------
//
// The calls of GET /v1/calls/live, and those that ended while the page was
// open. Today the source is a poll (pollCalls): the whole live list every
// CALLS_POLL_MS and soon after a call's AMI events; a call that leaves the
// list is looked up once with GET /v1/calls/{id} for its outcome. A stream
// of call events would call callLive() for call.created/ringing/answered/...
// and callEnded() for call.ended, and the poll would go.

const calls = {
  live: new Map(), // id -> call, as last seen live
  gone: new Map(), // id -> {last: call or null, tries}: left the list, to look up
  watch: new Set(), // ids of calls announced by a Newchannel, not yet seen
  done: new Map(), // id -> ended_at (ms): recorded once
  ended: [], // newest first, at most ENDED_MAX
  minutes: new Map(), // minute (ms / 60000) -> {answered, missed, other}: GET /v1/calls/stats
  since: 0, // the server's ms when amibridge began counting (0: not known yet)
  lookups: [], // ids waiting for GET /v1/calls/{id}
  looking: new Set(),
  chartMinute: 0,
};

function resetCalls() {
  calls.live.clear();
  calls.gone.clear();
  calls.watch.clear();
  calls.done.clear();
  calls.ended = [];
  calls.minutes.clear();
  calls.since = 0;
  for (const id of calls.lookups) calls.looking.delete(id); // not started: never will
  calls.lookups = [];
  renderCalls();
  renderEnded();
  renderChart();
}

const outcomeKind = (o) => (o === "answered" || o === "missed" ? o : "other");

function partyText(p) {
  return callerText(p) || "–";
}

function agentText(a) {
  if (!a) return "";
  const who = a.number || a.name || a.channel || "";
  return a.queue_member && a.queue_member !== who ? `${who} (${a.queue_member})` : who;
}

function clockText(iso, withSeconds) {
  const t = Date.parse(iso || "");
  if (Number.isNaN(t)) return "";
  return new Date(t).toLocaleTimeString([], withSeconds ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
}

let callsSeq = 0;
async function pollCalls() {
  if (!session.on) return;
  const seq = ++callsSeq, gen = session.gen, meta = {};
  try {
    const data = await api("GET", "/v1/calls/live", undefined, meta);
    if (seq !== callsSeq || gen !== session.gen) return;
    clockSample(meta);
    onLiveList((data && data.calls) || []);
    clearNotice("load");
  } catch (e) { if (gen === session.gen) loadFailed(e, "Calls"); }
}
const refreshCalls = throttle(pollCalls, CALLS_EVERY_MS);

// The poll's answer: calls no longer in it have ended (or will say so).
function onLiveList(list) {
  const now = new Map(list.map((c) => [c.id, c]));
  // a call listed as ended only because amibridge did not know it (a 404:
  // say just after it restarted, before it settled its calls with the PBX)
  // is live again when amibridge lists it
  let revived = false;
  for (const id of now.keys()) {
    if (!calls.done.has(id)) continue;
    const i = calls.ended.findIndex((c) => c.id === id);
    if (i >= 0 && !calls.ended[i].outcome) {
      calls.ended.splice(i, 1);
      calls.done.delete(id);
      revived = true;
    }
  }
  if (revived) soon(renderEnded);
  for (const [id, c] of calls.live) if (!now.has(id) && !calls.done.has(id)) calls.gone.set(id, { last: c, tries: 0 });
  for (const id of calls.watch) if (!now.has(id) && !calls.done.has(id) && !calls.gone.has(id)) calls.gone.set(id, { last: null, tries: 0 });
  calls.watch.clear();
  for (const id of now.keys()) calls.gone.delete(id);
  calls.live = now;
  for (const id of calls.gone.keys()) lookUp(id);
  renderCalls();
}

function callAnnounced(id) {
  if (!calls.live.has(id) && !calls.done.has(id)) calls.watch.add(id);
}

// A live call (from a look-up, or a call event some day).
function callLive(c) {
  if (calls.done.has(c.id)) return;
  calls.live.set(c.id, c);
  soon(renderCalls);
}

// An ended call, counted once; `c.outcome` null when the server no longer
// knows it (restarted, or past AMIBRIDGE_CALL_HISTORY_S).
function callEnded(c) {
  if (calls.done.has(c.id)) return;
  const at = Date.parse(c.ended_at || "") || serverNow();
  calls.done.set(c.id, at);
  calls.live.delete(c.id);
  calls.gone.delete(c.id);
  calls.ended.unshift(c);
  if (calls.ended.length > ENDED_MAX) calls.ended.length = ENDED_MAX;
  soon(renderCalls);
  soon(renderEnded);
  refreshStats();
}

// The chart is amibridge's own count (GET /v1/calls/stats), asked again
// when a call ends here and when a new minute begins.
let statsSeq = 0;
async function loadStats() {
  if (!session.on) return;
  const seq = ++statsSeq, gen = session.gen;
  try {
    const data = await api("GET", "/v1/calls/stats");
    if (seq !== statsSeq || gen !== session.gen) return;
    calls.minutes.clear();
    for (const m of data.minutes || []) {
      const b = { answered: 0, missed: 0, other: 0 };
      for (const [k, n] of Object.entries(m.outcomes || {})) b[outcomeKind(k)] += n;
      if (b.answered + b.missed + b.other) calls.minutes.set(Math.floor(Date.parse(m.start) / 60000), b);
    }
    calls.since = Date.parse(data.since) || 0;
    renderChart();
  } catch (e) { if (gen === session.gen && e.status === 401) keyRefused(e); }
}
const refreshStats = throttle(loadStats, STATS_EVERY_MS);

function lookUp(id) {
  if (calls.looking.has(id)) return;
  calls.looking.add(id);
  calls.lookups.push(id);
  pumpLookUps();
}

function pumpLookUps() {
  while (calls.looking.size - calls.lookups.length < CALL_LOOKUPS_MAX && calls.lookups.length) {
    const id = calls.lookups.shift();
    lookUpOne(id, session.gen).finally(() => { calls.looking.delete(id); pumpLookUps(); });
  }
}

async function lookUpOne(id, gen) {
  const g = calls.gone.get(id);
  if (!g || gen !== session.gen) return;
  try {
    const c = await api("GET", "/v1/calls/" + encodeURIComponent(id));
    if (gen !== session.gen) return;
    calls.gone.delete(id);
    if (c.state === "ended") callEnded(c);
    else callLive(c); // not ended yet: the next poll has it
  } catch (e) {
    if (gen !== session.gen) return;
    if (e.status === 401) return keyRefused(e);
    // gone from the server too: recorded as ended, outcome unknown (a call
    // only announced by an event and never seen is dropped)
    if (e.status === 404 || ++g.tries >= CALL_LOOKUP_TRIES) {
      calls.gone.delete(id);
      if (g.last) callEnded(Object.assign({}, g.last, { state: "ended", outcome: null, ended_at: null }));
    } // else tried again after the next poll
  }
}

function callRow(c) {
  const answered = c.state === "answered" ? Date.parse(c.answered_at || "") : NaN;
  return el("tr", { "data-call": c.id, "data-state": c.state },
    el("td", { text: partyText(c.from) }),
    el("td", { text: c.to && (c.to.number || c.to.name) ? partyText(c.to) : c.dialed || "–" }),
    el("td", null, el("span", { class: "state c-" + c.state, text: c.state + (c.on_hold ? " · on hold" : "") })),
    el("td", { class: "agent", text: agentText(c.answered_by) }),
    el("td", { class: "num talk", "data-since": Number.isNaN(answered) ? "" : String(answered) }),
    el("td", { text: c.direction || "" }),
    el("td", { text: c.queue || "" }));
}

function renderCalls() {
  const tb = $("calls").tBodies[0];
  const rows = [...calls.live.values()].map(callRow);
  tb.replaceChildren(...rows);
  $("calls-empty").hidden = rows.length > 0;
  $("c-calls").textContent = session.on ? String(rows.length) : "–";
  $("n-calls").textContent = session.on ? String(rows.length) : "";
  tickTalk();
}

function endedRow(c) {
  const o = c.outcome || "unknown";
  return el("tr", { "data-call": c.id, "data-outcome": o },
    el("td", { class: "num", text: clockText(c.ended_at, true) || "–" }),
    el("td", { text: partyText(c.from) }),
    el("td", { text: c.to && (c.to.number || c.to.name) ? partyText(c.to) : c.dialed || "–" }),
    el("td", { class: "agent", text: agentText(c.answered_by) }),
    el("td", null, el("span", { class: "outcome o-" + o, text: c.outcome ? o.replace(/_/g, " ") : "unknown (no longer kept)" })),
    el("td", { class: "num", text: c.talk_s == null ? "" : hms(c.talk_s) }),
    el("td", { class: "num", text: c.duration_s == null ? "" : hms(c.duration_s) }));
}

function renderEnded() {
  $("ended").tBodies[0].replaceChildren(...calls.ended.map(endedRow));
  $("ended-empty").hidden = calls.ended.length > 0;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

// Calls per minute over the last hour, stacked: answered, missed, other.
// Minutes before amibridge began counting are shaded: it did not see them.
function renderChart() {
  const now = Math.floor(serverNow() / 60000), first = now - CHART_MINUTES + 1;
  calls.chartMinute = now;
  for (const m of calls.minutes.keys()) if (m < first) calls.minutes.delete(m);
  for (const [id, at] of calls.done) if (at < (first - CHART_MINUTES) * 60000) calls.done.delete(id);
  const W = 600 / CHART_MINUTES, H = 100;
  const sum = { answered: 0, missed: 0, other: 0 };
  let max = 1;
  for (const b of calls.minutes.values()) {
    max = Math.max(max, b.answered + b.missed + b.other);
    for (const k of Object.keys(sum)) sum[k] += b[k];
  }
  const kids = [];
  if (calls.since) {
    const unseen = Math.min(CHART_MINUTES, Math.max(0, Math.floor(calls.since / 60000) - first));
    if (unseen) kids.push(svg("rect", { class: "unseen", x: 0, y: 0, width: unseen * W, height: H }));
  }
  for (let m = first; m <= now; m++) {
    const b = calls.minutes.get(m);
    if (!b) continue;
    const x = (m - first) * W;
    const g = svg("g", { "data-minute": m },
      svg("title", null, `${clockText(new Date(m * 60000).toISOString())}: ${b.answered} answered, ${b.missed} missed, ${b.other} other`));
    let y = H;
    for (const k of ["answered", "missed", "other"]) {
      if (!b[k]) continue;
      const h = (b[k] / max) * (H - 4);
      y -= h;
      g.append(svg("rect", { class: "bar b-" + k, x: x + W * 0.1, y, width: W * 0.8, height: h }));
    }
    kids.push(g);
  }
  $("chart").replaceChildren(...kids);
  const total = sum.answered + sum.missed + sum.other;
  $("chart").dataset.total = String(total);
  $("chart-summary").textContent = calls.since
    ? `Last hour: ${sum.answered} answered, ${sum.missed} missed, ${sum.other} other (at most ${total ? max : 0} a minute). ` +
      `Counted by amibridge since ${clockText(new Date(calls.since).toISOString())}` +
      (calls.since > (first * 60000) ? " (its start; the shaded minutes are before it)." : ".")
    : "Counted by amibridge, shown once the page has a key.";
}

// Running durations, without re-rendering anything else.
function tickTalk() {
  const now = serverNow();
  for (const td of document.querySelectorAll("#calls td.talk")) {
    if (td.dataset.since === "") continue;
    td.textContent = hms((now - Number(td.dataset.since)) / 1000);
  }
}

function tick() {
  const now = performance.now();
  for (const [sel, at] of [["#channels .dur", state.channelsAt], ["#queues .dur", state.queuesAt]])
    for (const td of document.querySelectorAll(sel)) {
      if (td.dataset.base === "") continue;
      td.textContent = hms(Number(td.dataset.base) + (now - at) / 1000);
    }
  tickTalk();
  if (Math.floor(serverNow() / 60000) !== calls.chartMinute) {
    renderChart();
    refreshStats();
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
  if (CALL_EVENTS.test(name)) {
    // a call's first channel (Uniqueid = Linkedid = the call's id): watched,
    // so a call that ends before the next poll is still looked up
    const f = ev.fields || {};
    if (name === "Newchannel" && f.Uniqueid && f.Uniqueid === f.Linkedid) callAnnounced(f.Uniqueid);
    refreshCalls();
  }
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
      refreshCalls();
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
  resetCalls();
  for (const id of ["c-inflight", "c-rate"]) $(id).textContent = "–";
}

// The key is tried with one request first (the calls, shown by default):
// a wrong key costs one 401, not one per part of the page. Accepted, the
// rest starts; an amibridge that does not answer is tried again.
function beginSession() {
  endSession();
  const gen = session.gen, meta = {};
  pill("st-stream", "Events", "connecting", "unknown");
  api("GET", "/v1/calls/live", undefined, meta).then((data) => {
    if (gen !== session.gen) return;
    session.on = true;
    session.delay = RETRY_MIN_MS;
    clearNotice("key");
    clearNotice("load");
    clockSample(meta);
    onLiveList((data && data.calls) || []);
    renderChart();
    loadStats();
    loadChannels();
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

// --- views --------------------------------------------------------------------------------

const VIEWS = ["calls", "channels"];

function showView(name, focus) {
  for (const v of VIEWS) {
    const tab = $("tab-" + v), on = v === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $("panel-" + v).hidden = !on;
    if (on && focus) tab.focus();
  }
}

// Tabs as ARIA describes them: one tab stop, arrows move between them.
function onTabKey(e) {
  const i = VIEWS.indexOf(e.currentTarget.id.slice(4));
  const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: VIEWS.length - 1 }[e.key];
  if (to === undefined) return;
  e.preventDefault();
  showView(VIEWS[(to + VIEWS.length) % VIEWS.length], true);
}

function init() {
  $("keyform").addEventListener("submit", (e) => {
    e.preventDefault();
    useKey($("key").value.trim());
    $("key").value = "";
  });
  $("forget").addEventListener("click", () => useKey(""));
  $("filter").addEventListener("input", refilter);
  for (const v of VIEWS) {
    $("tab-" + v).addEventListener("click", () => showView(v));
    $("tab-" + v).addEventListener("keydown", onTabKey);
  }
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
      out.textContent = `Call placed (${r.status}), call ${r.call_id || r.id}`;
      out.classList.add("ok");
      refreshCalls();
    } catch (err) {
      out.textContent = err.message;
      out.classList.add("bad");
      if (err.status === 401) keyRefused(err);
    }
  });
  renderChannels();
  renderQueues();
  renderCalls();
  renderEnded();
  renderChart();
  loadStatus();
  setInterval(loadStatus, STATUS_EVERY_MS);
  setInterval(pollCalls, CALLS_POLL_MS);
  setInterval(tick, 1000);
  if (state.key) beginSession();
  else {
    askForKey();
    $("key").focus();
  }
}

document.addEventListener("DOMContentLoaded", init);
