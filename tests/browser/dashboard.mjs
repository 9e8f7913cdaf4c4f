// The live dashboard in a real browser: Debian's Chromium, headless, driven
// by playwright-core, against the real amibridge and ami-sim on free ports.
//
//   node tests/browser/dashboard.mjs BUILD_DIR [SCREENSHOT_DIR]
//
// One line per check; exit status 0 only when every check passed.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const build = resolve(process.argv[2] || "build");
const shots = resolve(process.argv[3] || join(build, "screenshots"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TOKEN = "dash-token-0123456789";
const tmp = mkdtempSync(join(tmpdir(), "amibridge-browser."));
const children = new Set();
let failures = 0, checks = 0;

function check(name, ok, detail) {
  checks++;
  if (!ok) failures++;
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? ` (${detail})` : ""}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
  });
}

function start(cmd, args, env, log) {
  const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  c.stderr.on("data", (d) => { if (process.env.VERBOSE) process.stderr.write(`[${log}] ${d}`); });
  children.add(c);
  c.on("exit", () => children.delete(c));
  return c;
}

async function stop(c, sig = "SIGTERM") {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const done = new Promise((r) => c.once("exit", r));
  c.kill(sig);
  const t = setTimeout(() => c.kill("SIGKILL"), 5000);
  await done;
  clearTimeout(t);
}

async function until(what, fn, ms = 10000, every = 50) {
  const t0 = Date.now();
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch (e) { /* not yet */ }
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}

let simPort, httpPort, bridge;
const base = () => `http://127.0.0.1:${httpPort}`;

async function api(method, path, body) {
  const res = await fetch(base() + path, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { json = null; }
  return { status: res.status, json, text };
}

async function startBridge() {
  bridge = start(join(build, "amibridge"), [], {
    AMIBRIDGE_LISTEN: `127.0.0.1:${httpPort}`,
    AMIBRIDGE_AMI_HOST: "127.0.0.1",
    AMIBRIDGE_AMI_PORT: String(simPort),
    AMIBRIDGE_AMI_USERNAME: "bridge",
    AMIBRIDGE_AMI_SECRET: "bridgesecret",
    AMIBRIDGE_API_KEYS: `dash:${TOKEN}:read,call,control,actions`,
    AMIBRIDGE_CALLS_PER_SECOND: "1000",
    AMIBRIDGE_CALLS_BURST: "1000",
    AMIBRIDGE_CALLS_MAX_INFLIGHT: "1000",
    AMIBRIDGE_LOG_LEVEL: "warn",
  }, "amibridge");
  await until("amibridge ready", async () => (await fetch(base() + "/readyz")).status === 200);
}

// Answers of 400 and above amibridge counted (amibridge_http_requests_total),
// favicon 404s included: what the browser does not report, the server does.
async function httpFailures() {
  const text = await (await fetch(base() + "/metrics")).text();
  let n = 0;
  for (const m of text.matchAll(/^amibridge_http_requests_total\{[^}]*status="(\d+)"\} (\d+)/gm))
    if (Number(m[1]) >= 400) n += Number(m[2]);
  return n;
}

// A call's first channel (its caller leg), to hang it up.
async function callerChannel(id) {
  const c = await api("GET", `/v1/calls/${id}`);
  const leg = c.json && (c.json.legs || []).find((l) => l.role === "caller");
  return leg ? leg.channel : "";
}

const PROTECTED = /^\/(v1\/|metrics)/;

async function simStat(key) {
  const r = await api("POST", "/v1/actions/SimStats", {});
  const v = r.json && r.json.fields && r.json.fields[key];
  return v === undefined ? 0 : Number(v);
}

async function main() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (Debian package chromium)`);
  mkdirSync(shots, { recursive: true });
  const ready = join(tmp, "sim.port");
  start(join(build, "ami-sim"), ["--listen", "127.0.0.1:0", "--ready-file", ready, "--quiet"], {}, "ami-sim");
  simPort = Number(await until("ami-sim", () => existsSync(ready) && readFileSync(ready, "utf8").trim()));
  httpPort = await freePort();
  await startBridge();

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push(`${m.text()} [${m.location().url}]`); });
  page.on("pageerror", (e) => problems.push(String(e)));
  // every request the page makes, and every one that failed (4xx/5xx or no answer)
  let requests = [], failed = [];
  page.on("request", (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
  page.on("requestfailed", (r) => failed.push(`${r.url()} ${r.failure() && r.failure().errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
  const protectedSince = (i) => requests.slice(i).filter((r) => PROTECTED.test(r.split(" ")[1]));
  const stream = () => page.locator("#st-stream").textContent();

  // 1. a fresh load without a key asks for one first: nothing protected is
  // called, nothing fails (no 401, no favicon 404), nothing in the console
  const failures0 = await httpFailures();
  await page.goto(base() + "/");
  await until("the key notice", () => page.locator("#notice").isVisible(), 5000);
  // a round of /readyz and polls; and long enough that a page which only
  // retried its stream on a back-off timer (the old bug) would be seconds late below
  await page.waitForTimeout(4500);
  const notice = await page.locator("#notice").textContent();
  check("without a key the page says it needs one", /API key/.test(notice), notice.slice(0, 60));
  check("without a key the Events state says so", /needs a key/.test(await stream()), await stream());
  check("a fresh load without a key calls no protected route", protectedSince(0).length === 0, protectedSince(0).join(", "));
  check("a fresh load without a key has no failed request", failed.length === 0, failed.slice(0, 3).join(" | "));
  const failures1 = await httpFailures();
  check("amibridge answered that load with no error (favicon included)", failures1 === failures0, `${failures1 - failures0} answers >= 400`);
  check("a fresh load without a key logs no console error", problems.length === 0, problems.slice(0, 3).join(" | "));
  check("the key field has the focus", await page.evaluate(() => document.activeElement && document.activeElement.id === "key"));
  check("the calls view is shown by default",
    (await page.locator("#panel-calls").isVisible()) && !(await page.locator("#panel-channels").isVisible()) &&
    (await page.locator("#tab-calls").getAttribute("aria-selected")) === "true");

  // 2. the key typed and Enter pressed: everything starts at once
  await page.fill("#key", TOKEN);
  let t = Date.now();
  await page.press("#key", "Enter");
  await until("stream live", async () => (await stream()).includes("live"), 5000, 20);
  let ms = Date.now() - t;
  check("key by Enter: the event stream is live at once", ms <= 1000, `${ms} ms`);
  check("key by Enter: the notice is gone", !(await page.locator("#notice").isVisible()));
  let call = await api("POST", "/v1/calls", { channel: "Local/100@demo", context: "demo", exten: "100", wait: false, caller_id: '"Enter" <5550100>' });
  await until("events in the log", () => page.locator('#log li[data-event="Newchannel"]').count(), 3000, 20);
  check("key by Enter: the event log receives events", true);
  check("key by Enter: the Events state is live, not 'needs a key'", (await stream()) === "Events: live", await stream());
  await until("channels", async () => (await page.locator("#c-channels").textContent()) !== "–", 3000, 20);
  check("key by Enter: channels and calls load", /^\d+$/.test(await page.locator("#c-calls").textContent()));

  // 3. the calls view: a call placed while it is up, then its outcome
  call = await api("POST", "/v1/calls", { channel: "Local/400@demo", context: "demo", exten: "400", wait: false, caller_id: '"Customer 400" <555400>' });
  const id = call.json && call.json.call_id;
  check("a call placed through the API (queue sales)", call.status === 202 && !!id, `${call.status}`);
  const crow = page.locator(`#calls tr[data-call="${id}"]`);
  t = Date.now();
  await until("the call in the calls view", () => crow.count(), 3000, 20);
  check("the calls view shows a call placed while it is up", true, `${Date.now() - t} ms`);
  await until("the call answered", async () => (await crow.getAttribute("data-state")) === "answered", 5000, 50);
  const cells = await crow.locator("td").allTextContents();
  check("its row: from, to, state, agent, direction, queue",
    /555400/.test(cells[0]) && cells[1] === "400" && /answered/.test(cells[2]) && /Agent20[01]/.test(cells[3]) &&
    cells[5] === "originated" && cells[6] === "sales", cells.join(" | "));
  const secs = (x) => x.split(":").reduce((a, b) => a * 60 + Number(b), 0);
  const talk0 = secs(await crow.locator("td.talk").textContent());
  await page.waitForTimeout(2100);
  const talk1 = secs(await crow.locator("td.talk").textContent());
  check("its talk time runs", talk1 >= talk0 + 1, `${talk0} s -> ${talk1} s`);
  await api("DELETE", `/v1/channels/${encodeURIComponent(await callerChannel(id))}`);
  const erow = page.locator(`#ended tr[data-call="${id}"]`);
  await until("the call ended", () => erow.count(), 3000, 20);
  check("once ended it leaves the live calls", (await crow.count()) === 0);
  const ecells = await erow.locator("td").allTextContents();
  check("and is listed as ended with its outcome and duration", ecells[4] === "answered" && /^\d+:\d\d$/.test(ecells[6]) && secs(ecells[6]) >= 2,
    ecells.join(" | "));
  // a busy call lasts about 0.1 s, less than a poll: the Newchannel event announced it
  const busy = await api("POST", "/v1/calls", { channel: "Local/300@demo", context: "demo", exten: "300", wait: false });
  const brow = page.locator(`#ended tr[data-call="${busy.json.call_id}"]`);
  await until("the busy call listed", () => brow.count(), 3000, 20);
  check("a call shorter than a poll is listed with its outcome", (await brow.getAttribute("data-outcome")) === "busy",
    await brow.getAttribute("data-outcome"));
  // nobody free in the queue: the caller hangs up, missed
  const sales = (await api("GET", "/v1/queues/sales")).json.members.map((x) => x.interface);
  const pauseAll = (paused) => Promise.all(sales.map((i) =>
    api("POST", `/v1/queues/sales/members/${encodeURIComponent(i)}/pause`, { paused })));
  await pauseAll(true);
  const miss = await api("POST", "/v1/calls", { channel: "Local/400@demo", context: "demo", exten: "400", wait: false, caller_id: '"Impatient" <555999>' });
  await until("the queued call", () => page.locator(`#calls tr[data-call="${miss.json.call_id}"]`).count(), 3000, 20);
  await api("DELETE", `/v1/channels/${encodeURIComponent(await callerChannel(miss.json.call_id))}`);
  const mrow = page.locator(`#ended tr[data-call="${miss.json.call_id}"]`);
  await until("the missed call listed", () => mrow.count(), 3000, 20);
  check("a caller who hangs up in the queue is listed as missed", (await mrow.getAttribute("data-outcome")) === "missed",
    await mrow.getAttribute("data-outcome"));
  await pauseAll(false);
  await until("the chart", async () => (await page.locator("#chart rect.b-missed").count()) > 0, 3000, 20);
  const bars = {};
  for (const k of ["answered", "missed", "other"]) bars[k] = await page.locator(`#chart rect.b-${k}`).count();
  check("the chart counts them per minute: answered, missed, other", bars.answered > 0 && bars.missed > 0 && bars.other > 0, JSON.stringify(bars));
  const summary = await page.locator("#chart-summary").textContent();
  check("the chart says amibridge counts them", /Counted by amibridge since/.test(summary) && /1 missed/.test(summary),
    summary.slice(0, 120));
  // the counts are amibridge's: a reload draws the same chart at once
  await page.reload();
  await until("the chart after a reload", async () => (await page.locator("#chart rect.b-missed").count()) > 0, 5000, 20);
  const reloaded = {};
  for (const k of ["answered", "missed", "other"]) reloaded[k] = await page.locator(`#chart rect.b-${k}`).count();
  const summary2 = await page.locator("#chart-summary").textContent();
  check("a reload draws the same chart (the counts are amibridge's)",
    JSON.stringify(reloaded) === JSON.stringify(bars) && /1 missed/.test(summary2), `${JSON.stringify(reloaded)} ${summary2.slice(0, 60)}`);

  // 4. Forget, then the key by the button
  await page.click("#forget");
  await until("no key", async () => /needs a key/.test(await stream()), 3000, 20);
  await page.waitForTimeout(300); // requests sent before the click may still be reported
  let n = requests.length;
  await page.waitForTimeout(2000);
  check("Forget stops every protected request", protectedSince(n).length === 0, protectedSince(n).join(", "));
  check("Forget clears what the key showed", (await page.locator("#calls tbody tr").count()) === 0 &&
    (await page.locator("#log li").count()) === 0 && (await page.locator("#c-channels").textContent()) === "–");
  await page.fill("#key", TOKEN);
  t = Date.now();
  await page.click("#keyform button[type=submit]");
  await until("stream live again", async () => (await stream()).includes("live"), 5000, 20);
  ms = Date.now() - t;
  check("key by the button: the event stream is live at once", ms <= 1000, `${ms} ms`);
  call = await api("POST", "/v1/calls", { channel: "Local/100@demo", context: "demo", exten: "100", wait: false });
  await until("events in the log", () => page.locator('#log li[data-event="Newchannel"]').count(), 3000, 20);
  check("key by the button: the event log receives events", true);
  await until("the call", () => page.locator(`#calls tr[data-call="${call.json.call_id}"]`).count(), 3000, 20);
  check("key by the button: the calls view shows calls", true);

  // 5. a wrong key: one request refused, then nothing until a key is typed
  await page.click("#forget");
  await page.waitForTimeout(300);
  n = requests.length;
  await page.fill("#key", "not-the-key-0123456789");
  await page.press("#key", "Enter");
  await until("refused", async () => /refused/.test(await page.locator("#notice").textContent()), 5000, 20);
  await page.waitForTimeout(2500);
  check("a wrong key is tried once and not again", protectedSince(n).length === 1, protectedSince(n).join(", "));
  check("a wrong key is not kept and the page asks again", /needs a key/.test(await stream()) &&
    (await page.evaluate(() => sessionStorage.getItem("amibridge.key"))) === null);
  await page.fill("#key", TOKEN);
  await page.press("#key", "Enter");
  await until("stream live", async () => (await stream()).includes("live"), 5000);
  check("with the key the event stream is live", true);
  // with the key in the tab, a fresh load must log nothing at all
  problems.length = 0;
  failed = [];
  await page.reload();
  await until("stream live after a reload", async () => (await stream()).includes("live"), 5000);
  await page.waitForTimeout(2500); // a round of /readyz and /metrics
  check("the page loads with no console errors", problems.length === 0, problems.slice(0, 3).join(" | "));
  // (the old page's requests, its stream above all, aborted by the reload, are no failure)
  failed = failed.filter((x) => !/ net::ERR_ABORTED$/.test(x));
  check("and no failed request", failed.length === 0, failed.slice(0, 3).join(" | "));
  await until("AMI up", async () => (await page.locator("#st-ami").textContent()).includes("up"), 5000);
  check("AMI state from /readyz shows up", true);
  check("the key is kept in session storage only",
    (await page.evaluate(() => [sessionStorage.getItem("amibridge.key"), localStorage.length])).join() === `${TOKEN},0`);

  // the channels, on demand
  await page.getByRole("tab", { name: /Channels/ }).click();
  check("the Channels tab shows the channels instead of the calls",
    (await page.locator("#panel-channels").isVisible()) && !(await page.locator("#panel-calls").isVisible()));
  await page.keyboard.press("ArrowLeft");
  const byArrow = await page.locator("#panel-calls").isVisible() && await page.evaluate(() => document.activeElement.id === "tab-calls");
  await page.keyboard.press("ArrowRight");
  check("the tabs follow the arrow keys", byArrow && (await page.locator("#panel-channels").isVisible()));

  // 6. an originated call appears within 1 s and goes away after hangup
  const t0 = Date.now();
  call = await api("POST", "/v1/calls", { channel: "Local/200@demo", context: "demo", exten: "200", wait: false });
  check("call placed through the API", call.status === 202, `${call.status}`);
  // the channel name is Local/200@demo-<n>;1: find the row by its prefix
  const row0 = page.locator('tr[data-channel^="Local/200@demo-"][data-channel$=";1"]').first();
  await until("the call on the page", () => row0.count(), 3000, 20);
  const appeared = Date.now() - t0;
  const chan = await row0.getAttribute("data-channel");
  check("an originated call appears within 1 s", appeared <= 1000, `${appeared} ms`);
  await page.screenshot({ path: join(shots, "dashboard-call.png") });
  const hang = await api("DELETE", `/v1/channels/${encodeURIComponent(chan)}`);
  check("hung up through the API", hang.status === 204, `${hang.status}`);
  await until("the call gone", async () => (await page.locator(`tr[data-channel="${chan}"]`).count()) === 0, 3000, 20);
  check("and disappears after the hangup", true);

  // 7. a queue member pause shows
  const queues = await api("GET", "/v1/queues");
  const q = queues.json.queues.find((x) => (x.members || []).length);
  const m = q.members[0];
  const p = await api("POST", `/v1/queues/${encodeURIComponent(q.name)}/members/${encodeURIComponent(m.interface)}/pause`, { paused: true, reason: "lunch" });
  check("member paused through the API", p.status < 300, `${p.status}`);
  const row = page.locator(`[data-queue="${q.name}"] tr[data-member="${m.interface}"]`);
  await until("the pause on the page", async () => /paused/.test(await row.locator("td.paused").textContent()), 3000, 20);
  check("a queue member pause shows", true);
  // and the page's own button unpauses it
  await row.getByRole("button", { name: /Unpause/ }).click();
  await until("unpaused", async () => {
    const r = await api("GET", `/v1/queues/${encodeURIComponent(q.name)}`);
    const mm = (r.json.members || []).find((x) => x.interface === m.interface);
    return mm && mm.paused === false;
  }, 3000);
  check("the Unpause button unpauses the member (seen through the API)", true);

  // 8. click-to-dial from the form places a call that ami-sim sees
  const before = await simStat("OriginatesTotal");
  await page.fill("#dial input[name=exten]", "200");
  await page.fill("#dial input[name=channel]", "Local/200@demo");
  await page.click("#dial button[type=submit]");
  await until("dial result", async () => /Call placed/.test(await page.locator("#dial-result").textContent()), 5000);
  const after = await until("ami-sim counted it", async () => { const n = await simStat("OriginatesTotal"); return n > before ? n : 0; }, 3000);
  check("click-to-dial from the form places a call (ami-sim counts the Originate)", after === before + 1, `${before} -> ${after}`);
  check("no console errors while watching and acting", problems.length === 0, problems.slice(0, 3).join(" | "));
  // an error of the API is shown as it is (the browser logs the 400 itself)
  await page.fill("#dial input[name=exten]", "");
  await page.evaluate(() => document.querySelector("#dial input[name=exten]").removeAttribute("required"));
  await page.click("#dial button[type=submit]");
  await until("dial error", async () => /400/.test(await page.locator("#dial-result").textContent()), 5000);
  const dialErr = await page.locator("#dial-result").textContent();
  check("a refused call shows the problem+json plainly", /exten/.test(dialErr), dialErr.slice(0, 80));

  // 9. keyboard: every control shown can be reached with Tab
  const focusable = await page.evaluate(() =>
    [...document.querySelectorAll("button, input, a[href]")].filter((e) => e.tabIndex >= 0 && !e.disabled && e.checkVisibility()).length);
  let reached = 0;
  await page.locator("body").focus();
  for (let i = 0; i < focusable + 5; i++) {
    await page.keyboard.press("Tab");
    reached += await page.evaluate(() => document.activeElement && document.activeElement !== document.body ? 1 : 0);
  }
  check("controls are reachable with the keyboard", reached >= focusable, `${reached} tab stops of ${focusable}`);

  // 10. load: 200 active channels and 50 events/s without freezing the tab
  await page.evaluate(() => {
    window.__long = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); }).observe({ type: "longtask", buffered: false });
  });
  const calls = [];
  for (let i = 0; i < 100; i++) calls.push(api("POST", "/v1/calls", { channel: "Local/200@demo", context: "demo", exten: "200", wait: false }));
  const placed = (await Promise.all(calls)).filter((r) => r.status === 202).length;
  await api("POST", "/v1/actions/SimControl", { Flood: "50", FloodCount: "500" });
  await until("200 channels on the page", async () => Number(await page.locator("#c-channels").textContent()) >= 200, 15000, 100);
  const lag = [];
  for (let i = 0; i < 20; i++) {
    const t = Date.now();
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    lag.push(Date.now() - t);
    await sleep(200);
  }
  const longTasks = await page.evaluate(() => window.__long);
  const worstLag = Math.max(...lag), worstTask = Math.max(0, ...longTasks);
  check(`${placed} calls (200 channels) and a 50/s flood: the tab keeps painting`, placed === 100 && worstLag < 500 && worstTask < 500,
    `slowest frame ${worstLag} ms, longest task ${Math.round(worstTask)} ms`);
  const rows = await page.locator("#channels tbody tr[data-channel]").count();
  check("every channel is listed", rows >= 200, `${rows} rows`);
  await page.screenshot({ path: join(shots, "dashboard-load.png") });
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const pp = await phone.newPage();
  await pp.goto(base() + "/dashboard");
  await pp.evaluate((t) => sessionStorage.setItem("amibridge.key", t), TOKEN);
  await pp.reload();
  await until("phone page live", async () => (await pp.locator("#st-stream").textContent()).includes("live"), 5000);
  const overflow = await pp.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check("readable at phone width (no sideways scrolling of the page)", overflow <= 0, `${overflow} px too wide`);
  await pp.screenshot({ path: join(shots, "dashboard-phone.png"), fullPage: false });
  await phone.close();

  // 11. the stream drops (amibridge restarted) and the page recovers by itself
  const liveBefore = await page.locator("#calls tbody tr").count();
  const idsBefore = await page.locator("#calls tbody tr[data-call]").evaluateAll((rows) => rows.map((r) => r.dataset.call));
  await stop(bridge);
  await until("stream down", async () => !(await page.locator("#st-stream").textContent()).includes("live"), 5000);
  check("a dropped stream shows as reconnecting", true);
  await startBridge();
  const t1 = Date.now();
  await until("stream back", async () => (await page.locator("#st-stream").textContent()).includes("live"), 10000);
  check("the page reconnects by itself after amibridge restarts", true, `${Date.now() - t1} ms`);
  const again = await api("POST", "/v1/calls", { channel: "Local/100@demo", context: "demo", exten: "100", wait: true });
  await until("a new call after the restart", () => page.locator(`tr[data-channel="${again.json.channel}"]`).count(), 3000, 20);
  await until("and in the calls view", () => page.locator(`tr[data-call="${again.json.call_id}"]`).count(), 3000, 20);
  check("and shows new calls again", true);
  // the new process finds the calls still up again (CoreShowChannels: the
  // same ids, still live); one that ended meanwhile it does not know: it is
  // looked up once (a 404) and listed as ended with its outcome unknown
  const notFound = () => problems.filter((x) => /status of 404 .*\/v1\/calls\/[0-9a-f.]+\]$/.test(x)).length;
  const settled = async () => {
    let live = 0, ended = 0;
    for (const id of idsBefore) {
      if (await page.locator(`#calls tr[data-call="${id}"]`).count()) live++;
      else if (await page.locator(`#ended tr[data-call="${id}"]`).count()) ended++;
    }
    return { live, ended };
  };
  await until("the calls of before the restart settled", async () => {
    const { live, ended } = await settled();
    return live + ended >= idsBefore.length;
  }, 8000);
  await page.waitForTimeout(1500);
  const settledNow = await settled();
  const unknown = await page.locator('#ended tr[data-outcome="unknown"]').count();
  // (a call looked up while the new process had not settled its calls yet
  // gets a 404 and shows as ended, outcome unknown, until it is listed live)
  check("calls of before the restart: found again when still up, else listed as ended, each looked up at most once",
    liveBefore > 0 && settledNow.live + settledNow.ended === idsBefore.length && unknown <= notFound() &&
      notFound() <= idsBefore.length && unknown <= settledNow.ended,
    `${idsBefore.length} live before; ${settledNow.live} found again, ${settledNow.ended} ended (${unknown} unknown, ${notFound()} 404s)`);

  // the picture for the README: live calls (one answered by a queue agent),
  // callers waiting in a queue, a paused agent, ended calls in the chart;
  // the load's channels (not followed by the new process) hung up first
  await api("POST", "/v1/actions/SimControl", { Flood: "0" });
  const leftover = ((await api("GET", "/v1/channels")).json.channels || []).filter((c) => /;1$/.test(c.channel));
  await Promise.all(leftover.map((c) => api("DELETE", `/v1/channels/${encodeURIComponent(c.channel)}`)));
  for (const ex of ["300", "301"]) await api("POST", "/v1/calls", { channel: `Local/${ex}@demo`, context: "demo", exten: ex, wait: false });
  for (const ex of ["700", "400", "401"]) await api("POST", "/v1/calls", { channel: `Local/${ex}@demo`, context: "demo", exten: ex, wait: false, caller_id: `"Customer ${ex}" <555${ex}>` });
  await api("POST", `/v1/queues/${encodeURIComponent(q.name)}/members/${encodeURIComponent(m.interface)}/pause`, { paused: true, reason: "lunch" });
  await page.fill("#dial input[name=exten]", "100");
  await page.fill("#dial input[name=channel]", "Local/100@demo");
  await page.click("#dial button[type=submit]");
  await sleep(3000);
  await page.screenshot({ path: join(shots, "dashboard-channels.png") });
  await page.getByRole("tab", { name: /Calls/ }).click();
  await page.locator("body").focus();
  await page.screenshot({ path: join(shots, "dashboard.png") });

  // from the refused call and the restart on, only the failures we caused may
  // show: the refused call (400), the dropped stream, the forgotten calls (404)
  const unexpected = problems.filter((t) => !/^Failed to load resource: (the server responded with a status of 400|net::ERR_)/.test(t) &&
    !/status of 404 .*\/v1\/calls\/[0-9a-f.]+\]$/.test(t));
  check("no script errors, and no console errors but the failures caused on purpose", unexpected.length === 0, unexpected.slice(0, 3).join(" | "));
  await browser.close();
}

try {
  await main();
} catch (e) {
  check("the browser test ran to the end", false, e.stack || String(e));
} finally {
  for (const c of children) await stop(c);
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`browser: ${checks - failures} of ${checks} checks passed`);
process.exit(failures ? 1 : 0);
