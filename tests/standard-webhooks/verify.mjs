// Standard Webhooks: real deliveries of the real amibridge binary, checked
// by the official verifier (npm standardwebhooks, the reference library of
// github.com/standard-webhooks/standard-webhooks) and in Python by the
// official library of the same project (vendor/python) and by a verifier
// written from the specification (verify.py); all must also refuse what is
// forged.
//
//   node tests/standard-webhooks/verify.mjs BUILD_DIR
//
// Starts BUILD_DIR/ami-sim and BUILD_DIR/amibridge on loopback ports the
// kernel picks, with a state directory that already holds a subscription
// stored before the `signature` setting existed and a config file with a
// static one, and an HTTP receiver that keeps every request as received.
// Subscriptions of every scheme get a UserEvent; then a retried delivery,
// secret rotations (with a grace period, with none, the default one, and
// across a restart), the settings refused by the API. Prints one line per
// check and "stdwebhooks: N passed, N failed"; exit status 0 only
// when every check passed.

import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Webhook, WebhookVerificationError } from 'standardwebhooks';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BUILD = path.resolve(process.argv[2] || 'build');
const SIM_BIN = path.join(BUILD, 'ami-sim');
const BRIDGE_BIN = path.join(BUILD, 'amibridge');
const START_TIMEOUT_MS = 15000;
const WAIT_MS = 8000;
const WATCHDOG_MS = 120000;
const GRACE_DEFAULT_S = 3600; // AMIBRIDGE_WEBHOOK_SECRET_GRACE_S of the bridge
const GRACE_SHORT_S = 2; // secret_grace_s of one rotation, waited out

const whsec = () => `whsec_${randomBytes(32).toString('base64')}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* --- checks ---------------------------------------------------------------------- */

let passed = 0;
let failed = 0;
function report(ok, name, detail) {
  console.log(`${ok ? 'ok' : 'NOT OK'} - ${name}`);
  if (!ok && detail) console.log(`    ${String(detail).split('\n').join('\n    ')}`);
  if (ok) passed++;
  else failed++;
}
const eq = (name, got, want) =>
  report(JSON.stringify(got) === JSON.stringify(want), name, `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);

// The official verifier: the parsed body, or the error it threw.
function official(secret, q, { raw = false } = {}) {
  try {
    const wh = raw ? new Webhook(Buffer.from(secret), { format: 'raw' }) : new Webhook(secret);
    return { ok: true, value: wh.verify(q.body, q.headers) };
  } catch (e) {
    return { ok: false, error: e };
  }
}
function accepts(name, secret, q, opts) {
  const r = official(secret, q, opts);
  report(r.ok && r.value && typeof r.value.event === 'string', name, r.ok ? `returned ${JSON.stringify(r.value)}` : r.error.message);
}
function refuses(name, secret, q, opts) {
  const r = official(secret, q, opts);
  report(!r.ok && r.error instanceof WebhookVerificationError, name, r.ok ? 'verified' : `threw ${r.error}`);
}

// What a forger could change: the body, the id, the timestamp.
function tampered(q, what) {
  const t = { ...q, headers: { ...q.headers }, body: Buffer.from(q.body) };
  if (what === 'body') t.body[t.body.length >> 1] ^= 1;
  if (what === 'id') t.headers['webhook-id'] = q.headers['webhook-id'].replace(/.$/, (c) => (c === '0' ? '1' : '0'));
  if (what === 'timestamp') t.headers['webhook-timestamp'] = String(Number(q.headers['webhook-timestamp']) - 3600);
  return t;
}

/* --- processes ------------------------------------------------------------------- */

const children = new Set();
let tmpDir = null;
let receiver = null;

function start(name, file, args, env) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AMIBRIDGE_')));
  const child = spawn(file, args, { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.label = name;
  child.lines = [];
  let partial = '';
  const keep = (d) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop();
    child.lines.push(...lines.filter(Boolean));
    child.lines.splice(0, Math.max(0, child.lines.length - 60));
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  children.add(child);
  child.exit.then(() => children.delete(child));
  return child;
}

async function stop(child) {
  if (!children.has(child)) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 3000);
  await child.exit;
  clearTimeout(t);
}

const logOf = (c) => c.lines.map((l) => `  | ${l}`).join('\n') || '  | (no output)';

async function startSim() {
  const ready = path.join(tmpDir, 'sim.port');
  const sim = start('ami-sim', SIM_BIN, ['--listen', '127.0.0.1:0', '--ready-file', ready], {});
  for (const until = Date.now() + START_TIMEOUT_MS; Date.now() < until; await sleep(20)) {
    const m = existsSync(ready) && /^(\d+)\s/.exec(readFileSync(ready, 'utf8'));
    if (m) {
      sim.port = Number(m[1]);
      return sim;
    }
    if (!children.has(sim)) break;
  }
  throw new Error(`ami-sim did not start:\n${logOf(sim)}`);
}

// amibridge on a port the kernel picks, learnt from its "amibridge
// listening" log line; ready once /readyz answers 200.
async function startBridge(env) {
  const b = start('amibridge', BRIDGE_BIN, [], { AMIBRIDGE_LISTEN: '127.0.0.1:0', AMIBRIDGE_LOG_LEVEL: 'info', ...env });
  for (const until = Date.now() + START_TIMEOUT_MS; Date.now() < until && children.has(b); await sleep(20)) {
    if (!b.port)
      for (const line of b.lines)
        if (line.includes('"amibridge listening"')) b.port = JSON.parse(line).port;
    if (!b.port) continue;
    try {
      if ((await fetch(`http://127.0.0.1:${b.port}/readyz`)).status === 200) return b;
    } catch {
      /* not yet */
    }
  }
  await stop(b);
  throw new Error(`amibridge did not become ready:\n${logOf(b)}`);
}

async function api(b, method, p, body) {
  const r = await fetch(`http://127.0.0.1:${b.port}${p}`, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* 204 */
  }
  return { status: r.status, json, text };
}

// Every request as received: path, headers (lower-case names), body bytes.
// /flaky answers 500 to its first two requests, everything else 204.
function startReceiver() {
  return new Promise((resolve) => {
    const requests = [];
    let flaky = 0;
    const srv = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (d) => chunks.push(d));
      req.on('end', () => {
        requests.push({ path: req.url, headers: { ...req.headers }, body: Buffer.concat(chunks) });
        const fail = req.url === '/flaky' && flaky++ < 2;
        res.writeHead(fail ? 500 : 204).end();
      });
    });
    srv.listen(0, '127.0.0.1', () =>
      resolve({
        port: srv.address().port,
        requests,
        close: () => {
          srv.close();
          srv.closeAllConnections();
        },
      }),
    );
  });
}

// The requests to `p` for which `pred` holds, once there are `n` of them.
async function received(p, n = 1, pred = () => true) {
  const pick = () => receiver.requests.filter((q) => q.path === p && pred(q));
  for (const until = Date.now() + WAIT_MS; pick().length < n && Date.now() < until; ) await sleep(20);
  return pick();
}
const ofEvent = (name) => (q) => {
  try {
    return JSON.parse(q.body).fields?.UserEvent === name;
  } catch {
    return false;
  }
};

async function userEvent(b, name) {
  const r = await api(b, 'POST', '/v1/actions/UserEvent', { UserEvent: name });
  if (r.status !== 200) throw new Error(`UserEvent ${name}: ${r.status} ${r.text}`);
}

/* --- the run ------------------------------------------------------------------- */

// Python: each case through verify.py, once with the official library
// (vendor/python) and once with the verifier written from the
// specification; the verdicts of both must be the expected ones.
function python(cases) {
  python1(cases, path.join(HERE, 'vendor', 'python'), 'official');
  python1(cases, null, 'spec');
}

function python1(cases, libdir, want) {
  const file = path.join(tmpDir, 'cases.json');
  writeFileSync(
    file,
    JSON.stringify(
      cases.map((c) => ({ name: c.name, secret: c.secret, raw: !!c.raw, headers: c.q.headers, body_b64: c.q.body.toString('base64') })),
    ),
  );
  const env = { ...process.env };
  delete env.STANDARDWEBHOOKS_PYTHONPATH;
  if (libdir) env.STANDARDWEBHOOKS_PYTHONPATH = libdir;
  const r = spawnSync('python3', [path.join(HERE, 'verify.py'), file], { encoding: 'utf8', env });
  if (r.status !== 0) {
    report(false, `python3 verify.py (${want}) ran`, `${r.status} ${r.stderr}`);
    return;
  }
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const verifier = lines.pop().verifier;
  report(verifier === want, `python: the ${want} verifier ran`, `it was ${verifier}`);
  for (const c of cases) {
    const got = lines.find((l) => l.name === c.name);
    report(
      !!got && got.ok === c.expect,
      `python (${verifier}): ${c.name} is ${c.expect ? 'accepted' : 'refused'}`,
      got ? `ok=${got.ok} ${got.error ?? ''}` : 'no verdict',
    );
  }
}

async function run() {
  for (const bin of [SIM_BIN, BRIDGE_BIN])
    if (!existsSync(bin)) throw new Error(`${bin} does not exist: build it first (make test-build)`);
  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'amibridge-stdwh-'));
  const sim = await startSim();
  receiver = await startReceiver();
  const url = (p) => `http://127.0.0.1:${receiver.port}${p}`;

  // a subscription stored by an older amibridge: no signature, no previous_secrets
  const stateDir = path.join(tmpDir, 'state');
  const oldSecret = 'stored-before-standard-webhooks-0123';
  mkdirSync(stateDir);
  writeFileSync(
    path.join(stateDir, 'webhooks.json'),
    JSON.stringify({
      version: 1,
      webhooks: [
        {
          id: 'wh_00000000000000aa',
          url: url('/old'),
          events: ['UserEvent'],
          filter: {},
          description: null,
          enabled: true,
          reason: null,
          created: 1700000000,
          static: false,
          secret: oldSecret,
        },
      ],
    }),
  );
  // a static subscription in the middle of a rotation
  const staticSecret = whsec();
  const staticPrev = whsec();
  const config = path.join(tmpDir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      webhooks: [
        {
          id: 'static-std',
          url: url('/static'),
          events: ['UserEvent'],
          signature: 'standard',
          secret: staticSecret,
          previous_secrets: [{ secret: staticPrev, expires: Math.floor(Date.now() / 1000) + 600 }],
        },
      ],
    }),
  );
  const env = {
    AMIBRIDGE_AMI_HOST: '127.0.0.1',
    AMIBRIDGE_AMI_PORT: String(sim.port),
    AMIBRIDGE_AMI_USERNAME: 'bridge',
    AMIBRIDGE_AMI_SECRET: 'bridgesecret',
    AMIBRIDGE_WEBHOOK_ALLOW_NETS: '127.0.0.0/8',
    AMIBRIDGE_WEBHOOK_RETRY_BASE_MS: '200',
    AMIBRIDGE_WEBHOOK_SECRET_GRACE_S: String(GRACE_DEFAULT_S),
    AMIBRIDGE_STATE_DIR: stateDir,
    AMIBRIDGE_CONFIG: config,
  };
  let b = await startBridge(env);

  /* subscriptions of each scheme */
  const create = async (name, p, more) => {
    const r = await api(b, 'POST', '/v1/webhooks', { url: url(p), events: ['UserEvent'], ...more });
    if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.text}`);
    return r.json;
  };
  const std = await create('standard', '/std', { signature: 'standard' });
  const both = await create('default', '/both');
  const ami = await create('amibridge', '/ami', { signature: 'amibridge' });
  const legacySecret = 'legacy-secret-of-a-receiver-0123';
  const legacy = await create('legacy secret', '/legacy', { secret: legacySecret });
  const flaky = await create('flaky', '/flaky', { signature: 'standard' });
  report(/^whsec_[A-Za-z0-9+/]{43}=$/.test(std.secret), 'a generated secret is whsec_ and the base64 of 32 bytes', std.secret);
  eq('signature of a subscription made with "standard"', std.signature, 'standard');
  eq('signature by default', both.signature, 'both');
  eq('signature of a subscription made with "amibridge"', ami.signature, 'amibridge');
  const listed = await api(b, 'GET', '/v1/webhooks');
  const byId = Object.fromEntries(listed.json.webhooks.map((w) => [w.id, w]));
  eq('the old stored subscription loads, as "both"', byId.wh_00000000000000aa?.signature, 'both');
  eq('the static subscription loads, as "standard"', byId['static-std']?.signature, 'standard');
  eq('the static rotation shows when it ends, not the secret', Object.keys(byId['static-std']?.previous_secrets?.[0] ?? {}), ['expires']);
  report(!listed.text.includes('whsec_'), 'no secret in the listing');

  /* one event to each */
  await userEvent(b, 'first');
  const [qStd] = await received('/std', 1, ofEvent('first'));
  const [qBoth] = await received('/both', 1, ofEvent('first'));
  const [qAmi] = await received('/ami', 1, ofEvent('first'));
  const [qLegacy] = await received('/legacy', 1, ofEvent('first'));
  const [qOld] = await received('/old', 1, ofEvent('first'));
  const [qStatic] = await received('/static', 1, ofEvent('first'));
  if (!qStd || !qBoth || !qAmi || !qLegacy || !qOld || !qStatic) throw new Error('a subscription got no delivery of the first event');

  accepts('standard: the official verifier accepts a real delivery', std.secret, qStd);
  refuses('standard: ... and refuses it with another secret', whsec(), qStd);
  refuses('standard: ... and refuses a tampered body', std.secret, tampered(qStd, 'body'));
  refuses('standard: ... and refuses another webhook-id', std.secret, tampered(qStd, 'id'));
  refuses('standard: ... and refuses an hour-old webhook-timestamp', std.secret, tampered(qStd, 'timestamp'));
  report(!Object.keys(qStd.headers).some((h) => /^x-amibridge-(delivery|timestamp|signature)$/.test(h)), 'standard: no X-Amibridge signature headers');
  eq('standard: X-Amibridge-Event still names the event', qStd.headers['x-amibridge-event'], 'UserEvent');
  report(/^[0-9a-f]{32}$/.test(qStd.headers['webhook-id']), 'standard: webhook-id is the delivery id (32 hex digits)', qStd.headers['webhook-id']);
  report(Math.abs(Number(qStd.headers['webhook-timestamp']) - Date.now() / 1000) < 30, 'standard: webhook-timestamp is now (Unix seconds)');
  eq('standard: one signature', qStd.headers['webhook-signature'].split(' ').length, 1);

  accepts('both: the official verifier accepts it', both.secret, qBoth);
  refuses('both: ... and refuses a tampered body', both.secret, tampered(qBoth, 'body'));
  eq('both: webhook-id is X-Amibridge-Delivery', qBoth.headers['webhook-id'], qBoth.headers['x-amibridge-delivery']);
  eq('both: webhook-timestamp is X-Amibridge-Timestamp', qBoth.headers['webhook-timestamp'], qBoth.headers['x-amibridge-timestamp']);
  const mac = (secret, q) => `sha256=${createHmac('sha256', secret).update(`${q.headers['x-amibridge-timestamp']}.`).update(q.body).digest('hex')}`;
  eq('both: X-Amibridge-Signature keyed with the secret string as shown', qBoth.headers['x-amibridge-signature'], mac(both.secret, qBoth));

  refuses('amibridge: the official verifier finds no Standard Webhooks headers', ami.secret, qAmi);
  eq('amibridge: X-Amibridge-Signature as before', qAmi.headers['x-amibridge-signature'], mac(ami.secret, qAmi));

  accepts('a legacy secret: the official verifier with the secret as raw bytes', legacySecret, qLegacy, { raw: true });
  refuses('a legacy secret: ... refuses a tampered body', legacySecret, tampered(qLegacy, 'body'), { raw: true });
  eq('a legacy secret: X-Amibridge-Signature as before', qLegacy.headers['x-amibridge-signature'], mac(legacySecret, qLegacy));
  accepts('the old stored subscription: the official verifier (raw key)', oldSecret, qOld, { raw: true });
  eq('the old stored subscription: X-Amibridge-Signature as before', qOld.headers['x-amibridge-signature'], mac(oldSecret, qOld));

  eq('static: two signatures during its rotation', qStatic.headers['webhook-signature'].split(' ').length, 2);
  accepts('static: the official verifier with the current secret', staticSecret, qStatic);
  accepts('static: ... and with the previous one', staticPrev, qStatic);
  refuses('static: ... and not with another', whsec(), qStatic);

  /* a retried delivery: the same webhook-id, a timestamp per attempt, each signed */
  const tries = await received('/flaky', 3, ofEvent('first'));
  eq('retried: three attempts (500, 500, 204)', tries.length, 3);
  eq('retried: one webhook-id on every attempt', new Set(tries.map((q) => q.headers['webhook-id'])).size, 1);
  eq('retried: X-Amibridge-Attempt counts them', tries.map((q) => q.headers['x-amibridge-attempt']), ['1', '2', '3']);
  tries.forEach((q, i) => accepts(`retried: attempt ${i + 1} verifies`, flaky.secret, q));

  /* rotation with a short grace period */
  const stdNew = whsec();
  let r = await api(b, 'PATCH', `/v1/webhooks/${std.id}`, { secret: stdNew, secret_grace_s: GRACE_SHORT_S });
  eq('rotate: PATCH with a new secret and secret_grace_s', r.status, 200);
  report(!r.text.includes('whsec_'), 'rotate: the reply shows no secret');
  const until = r.json?.previous_secrets?.[0]?.expires;
  report(Math.abs(until - (Date.now() / 1000 + GRACE_SHORT_S)) < 3, 'rotate: previous_secrets says when the old one ends', JSON.stringify(r.json?.previous_secrets));
  await userEvent(b, 'rotating');
  const [qRot] = await received('/std', 1, ofEvent('rotating'));
  eq('rotate: two signatures during the grace period', qRot?.headers['webhook-signature'].split(' ').length, 2);
  accepts('rotate: the official verifier with the new secret', stdNew, qRot);
  accepts('rotate: ... and with the old one, during the grace period', std.secret, qRot);
  await sleep((GRACE_SHORT_S + 1.2) * 1000);
  await userEvent(b, 'rotated');
  const [qDone] = await received('/std', 1, ofEvent('rotated'));
  eq('rotate: one signature after the grace period', qDone?.headers['webhook-signature'].split(' ').length, 1);
  accepts('rotate: the new secret verifies', stdNew, qDone);
  refuses('rotate: the old secret no longer does', std.secret, qDone);
  eq('rotate: previous_secrets is empty again', (await api(b, 'GET', `/v1/webhooks/${std.id}`)).json.previous_secrets, []);

  /* the default grace, kept across a restart; then an immediate rotation */
  const bothNew = whsec();
  r = await api(b, 'PATCH', `/v1/webhooks/${both.id}`, { secret: bothNew });
  const exp = r.json?.previous_secrets?.[0]?.expires;
  report(Math.abs(exp - (Date.now() / 1000 + GRACE_DEFAULT_S)) < 5, 'default grace: AMIBRIDGE_WEBHOOK_SECRET_GRACE_S', JSON.stringify(r.json?.previous_secrets));
  await stop(b);
  b = await startBridge(env);
  const after = await api(b, 'GET', `/v1/webhooks/${both.id}`);
  eq('restart: the rotation is still there (state file)', after.json?.previous_secrets, [{ expires: exp }]);
  await userEvent(b, 'restarted');
  const [qRe] = await received('/both', 1, ofEvent('restarted'));
  accepts('restart: the new secret verifies', bothNew, qRe);
  accepts('restart: the old one still does', both.secret, qRe);
  eq('restart: X-Amibridge-Signature uses the new secret only', qRe?.headers['x-amibridge-signature'], qRe && mac(bothNew, qRe));
  const bothNow = whsec();
  r = await api(b, 'PATCH', `/v1/webhooks/${both.id}`, { secret: bothNow, secret_grace_s: 0 });
  eq('secret_grace_s 0: no previous secret left', r.json?.previous_secrets, []);
  await userEvent(b, 'compromised');
  const [qNow] = await received('/both', 1, ofEvent('compromised'));
  accepts('secret_grace_s 0: the new secret verifies', bothNow, qNow);
  refuses('secret_grace_s 0: the one before it does not', bothNew, qNow);
  refuses('secret_grace_s 0: nor the first one', both.secret, qNow);

  /* a scheme changed by PATCH */
  r = await api(b, 'PATCH', `/v1/webhooks/${ami.id}`, { signature: 'standard' });
  eq('PATCH signature: amibridge -> standard', r.json?.signature, 'standard');
  await userEvent(b, 'switched');
  const [qSw] = await received('/ami', 1, ofEvent('switched'));
  accepts('PATCH signature: the official verifier accepts the next delivery', ami.secret, qSw);
  eq('PATCH signature: no X-Amibridge-Signature now', qSw?.headers['x-amibridge-signature'], undefined);

  /* what the API refuses */
  const bad = async (name, body, field) => {
    const x = await api(b, 'PATCH', `/v1/webhooks/${std.id}`, body);
    report(x.status === 400 && x.json?.field === field, `refused: ${name} (400 naming ${field})`, `${x.status} ${x.text}`);
  };
  await bad('an unknown scheme', { signature: 'v2' }, 'signature');
  await bad('a whsec_ secret that is not base64', { secret: 'whsec_not-base64-at-all!!' }, 'secret');
  await bad('a whsec_ secret of 16 bytes', { secret: `whsec_${randomBytes(16).toString('base64')}` }, 'secret');
  await bad('secret_grace_s without a secret', { secret_grace_s: 60 }, 'secret_grace_s');
  await bad('secret_grace_s past 30 days', { secret: whsec(), secret_grace_s: 31 * 86400 }, 'secret_grace_s');
  await bad('previous_secrets from the API', { previous_secrets: [] }, 'previous_secrets');

  /* the same deliveries, in Python */
  python([
    { name: 'standard delivery', secret: std.secret, q: qStd, expect: true },
    { name: 'standard delivery, another secret', secret: whsec(), q: qStd, expect: false },
    { name: 'standard delivery, tampered body', secret: std.secret, q: tampered(qStd, 'body'), expect: false },
    { name: 'standard delivery, another webhook-id', secret: std.secret, q: tampered(qStd, 'id'), expect: false },
    { name: 'standard delivery, an hour-old timestamp', secret: std.secret, q: tampered(qStd, 'timestamp'), expect: false },
    { name: 'both', secret: both.secret, q: qBoth, expect: true },
    { name: 'amibridge only', secret: ami.secret, q: qAmi, expect: false },
    { name: 'legacy secret, raw key', secret: legacySecret, raw: true, q: qLegacy, expect: true },
    { name: 'legacy secret, tampered body', secret: legacySecret, raw: true, q: tampered(qLegacy, 'body'), expect: false },
    { name: 'old stored subscription, raw key', secret: oldSecret, raw: true, q: qOld, expect: true },
    { name: 'static, current secret', secret: staticSecret, q: qStatic, expect: true },
    { name: 'static, previous secret', secret: staticPrev, q: qStatic, expect: true },
    { name: 'rotation, new secret', secret: stdNew, q: qRot, expect: true },
    { name: 'rotation, old secret in the grace period', secret: std.secret, q: qRot, expect: true },
    { name: 'rotation over, old secret', secret: std.secret, q: qDone, expect: false },
    { name: 'retry, attempt 3', secret: flaky.secret, q: tries[2], expect: true },
  ]);

  await stop(b);
  await stop(sim);
}

const watchdog = setTimeout(() => {
  console.log(`standard-webhooks: gave up after ${WATCHDOG_MS / 1000} s`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
}, WATCHDOG_MS);

let aborted = null;
try {
  await run();
} catch (e) {
  aborted = e;
  console.log(`standard-webhooks: ${e.message}`);
  for (const c of children) console.log(`  ${c.label}:\n${logOf(c)}`);
}
for (const c of children) c.kill('SIGKILL');
receiver?.close();
if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
clearTimeout(watchdog);
console.log(`stdwebhooks: ${passed} passed, ${failed} failed`);
process.exit(aborted || failed || !passed ? 1 : 0);
