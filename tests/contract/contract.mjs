// Contract test: real replies of the amibridge binary, checked against
// openapi/openapi.yaml.
//
//   node tests/contract/contract.mjs BUILD_DIR
//
// Starts BUILD_DIR/ami-sim, five BUILD_DIR/amibridge processes and an HTTP
// receiver for webhook deliveries on loopback ports the kernel picks,
// drives every operation of the spec and
// every error the binary can be made to give, and checks each reply: the
// status is documented for the operation, the Content-Type is a documented
// media type, the documented headers are there, and the body validates
// against the documented schema (ajv, JSON Schema 2020-12, strict). The
// request side too: what the binary accepted must fit the parameters and
// the request body schema, and what it refused as malformed should not.
// Prints one line per check and exits non-zero when any check fails.
//
// CONTRACT_DUMP=FILE writes every exchange (request and reply) as JSON, to
// refresh the examples of the spec from real replies.

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import YAML from 'yaml';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const SPEC_PATH = path.join(ROOT, 'openapi', 'openapi.yaml');
const BUILD = path.resolve(process.argv[2] || 'build');
const SIM_BIN = path.join(BUILD, 'ami-sim');
const BRIDGE_BIN = path.join(BUILD, 'amibridge');

const OPS_TOKEN = 'ops-token-0123456789';
const CRM_TOKEN = 'crm-token-0123456789';
const API_KEYS = `ops:${OPS_TOKEN}:read,call,control,actions,admin crm:${CRM_TOKEN}:call,read`;
const OPS = { Authorization: `Bearer ${OPS_TOKEN}` };
const CRM = { Authorization: `Bearer ${CRM_TOKEN}` };
const JSON_CT = { 'Content-Type': 'application/json' };
// amibridge-d's keys (its config file): a dialer with a dial policy and a
// call rate of one, and a read-only key
const DIALER = { Authorization: 'Bearer dialer-token-0123456789' };
const READER = { Authorization: 'Bearer reader-token-0123456789' };
const CORS_ORIGIN = 'https://crm.example';
// the secret of amibridge-d's static webhook subscription
const STATIC_SECRET = 'static-crm-secret-0123456789';

const START_TIMEOUT_MS = 15000;
const STREAM_WAIT_MS = 8000; // how long to wait for something on an event stream
const SLOW_TIMEOUT_MS = 300; // AMI timeout of amibridge-b's server 'slow'
const SIM_DELAY_MS = 3000; // the simulator's delay before each action, for 502/503/504
const REQUEST_TIMEOUT_MS = 15000;
const WATCHDOG_MS = 90000;
const LOG_LINES_KEPT = 60;

/* --- processes ----------------------------------------------------------------- */

const children = new Set();
let tmpDir = null;
let receiver = null;

// The environment of a child: ours, without any AMIBRIDGE_* setting of the
// caller's shell, which would change what is tested.
function childEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AMIBRIDGE_')) env[k] = v;
  return { ...env, ...extra };
}

function start(name, file, args, env) {
  const child = spawn(file, args, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  child.label = name;
  child.lines = [];
  const keeper = () => {
    let partial = '';
    return (d) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        if (!line) continue;
        child.lines.push(line);
        if (child.lines.length > LOG_LINES_KEPT) child.lines.shift();
      }
    };
  };
  child.stdout.on('data', keeper());
  child.stderr.on('data', keeper());
  child.exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', (err) => {
      child.lines.push(String(err));
      resolve({ code: -1, signal: null });
    });
  });
  children.add(child);
  child.exit.then(() => children.delete(child));
  return child;
}

function running(child) {
  return children.has(child);
}

async function stop(child) {
  if (!running(child)) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 3000);
  await child.exit;
  clearTimeout(t);
}

function killAll() {
  receiver?.close();
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
}

function logOf(child) {
  return child.lines.length ? child.lines.map((l) => `    | ${l}`).join('\n') : '    | (no output)';
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A loopback port nothing listens on (the kernel picked it; we closed it).
function closedPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function startSim() {
  const ready = path.join(tmpDir, 'sim.port');
  const sim = start('ami-sim', SIM_BIN, ['--listen', '127.0.0.1:0', '--ready-file', ready], {});
  const until = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < until) {
    if (!running(sim)) throw new Error(`ami-sim exited before it was ready:\n${logOf(sim)}`);
    if (existsSync(ready)) {
      const m = /^(\d+)\s/.exec(readFileSync(ready, 'utf8'));
      if (m) {
        sim.port = Number(m[1]);
        return sim;
      }
    }
    await sleep(20);
  }
  throw new Error(`ami-sim did not write ${ready} within ${START_TIMEOUT_MS} ms:\n${logOf(sim)}`);
}

// Start amibridge on a port the kernel picks (amibridge binds with
// SO_REUSEPORT, so a port picked beforehand could end up shared with some
// other process without an error) and learn it from its log line
// "amibridge listening"; then wait until `ready(readyz reply)` says it is
// usable.
async function startBridge(name, env, ready = (r) => r.status === 200) {
  const bridge = start(name, BRIDGE_BIN, [], {
    AMIBRIDGE_LISTEN: '127.0.0.1:0',
    AMIBRIDGE_LOG_LEVEL: 'info',
    ...env,
  });
  const until = Date.now() + START_TIMEOUT_MS;
  while (!bridge.port && Date.now() < until && running(bridge)) {
    for (const line of bridge.lines) {
      if (!line.includes('"amibridge listening"')) continue;
      try {
        bridge.port = JSON.parse(line).port;
      } catch {
        /* not JSON */
      }
    }
    if (!bridge.port) await sleep(10);
  }
  if (!running(bridge)) throw new Error(`${name} exited at start:\n${logOf(bridge)}`);
  if (!bridge.port) {
    await stop(bridge);
    throw new Error(`${name} logged no "amibridge listening" line with its port:\n${logOf(bridge)}`);
  }
  let last = 'no answer';
  while (Date.now() < until && running(bridge)) {
    try {
      const r = await request(bridge, { method: 'GET', path: '/readyz' });
      last = `${r.status} ${r.text}`;
      if (ready(r)) return bridge;
    } catch (e) {
      last = e.message;
    }
    await sleep(50);
  }
  if (!running(bridge)) throw new Error(`${name} exited at start:\n${logOf(bridge)}`);
  await stop(bridge);
  throw new Error(`${name} not ready within ${START_TIMEOUT_MS} ms (last /readyz: ${last}):\n${logOf(bridge)}`);
}

// Poll GET /readyz until `cond(body)` holds; false after `ms`.
async function waitReadyz(bridge, cond, ms = 5000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      const r = await request(bridge, { method: 'GET', path: '/readyz' });
      if (cond(JSON.parse(r.text))) return true;
    } catch {
      /* not yet */
    }
    await sleep(20);
  }
  return false;
}

// The webhook receiver: an HTTP server on a loopback port the kernel picks
// that keeps every request it gets ({ method, path, headers, body }) and
// answers 410 Gone under /gone, 200 elsewhere.
function startReceiver() {
  return new Promise((resolve, reject) => {
    const requests = [];
    const srv = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (d) => chunks.push(d));
      req.on('end', () => {
        requests.push({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        const gone = req.url.startsWith('/gone');
        res.writeHead(gone ? 410 : 200, { 'Content-Type': 'text/plain' });
        res.end(gone ? 'gone' : 'ok');
      });
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      let open = true;
      resolve({
        port: srv.address().port,
        requests,
        close() {
          if (!open) return;
          open = false;
          srv.close();
          srv.closeAllConnections();
        },
      });
    });
  });
}

const inFlight = (name) => (body) => (body.servers.find((s) => s.name === name)?.in_flight ?? 0) >= 1;

/* --- HTTP ---------------------------------------------------------------------------- */

// One request on a fresh connection, written byte for byte as given (the
// path is sent as is, even when it is not valid UTF-8 or percent-encoding).
function request(bridge, { method, path: p, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(bridge.port, '127.0.0.1');
    const chunks = [];
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err && !chunks.length) return reject(err);
      try {
        resolve(parseReply(Buffer.concat(chunks)));
      } catch (e) {
        reject(err || e);
      }
    };
    const timer = setTimeout(() => finish(new Error(`no reply within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => finish());
    // the server may answer (413) and close before it read the whole body
    sock.on('error', (e) => finish(e));
    sock.on('connect', () => {
      const buf = body === undefined ? null : Buffer.from(body);
      const h = { Host: `127.0.0.1:${bridge.port}`, Connection: 'close', ...headers };
      if (buf && !Object.keys(h).some((k) => /^(content-length|transfer-encoding)$/i.test(k)))
        h['Content-Length'] = String(buf.length);
      let head = `${method} ${p} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(h)) head += `${k}: ${v}\r\n`;
      sock.write(Buffer.from(`${head}\r\n`, 'latin1'));
      if (buf) sock.write(buf);
    });
  });
}

// A request whose reply does not end (an event stream): the reply so far
// can be awaited with `wait(pred)` (the reply parsed so far when `pred`
// holds for it, or after `ms`) and is returned by `close()`, which hangs up.
function openStream(bridge, { method, path: p, headers = {} }) {
  const sock = net.connect(bridge.port, '127.0.0.1');
  const chunks = [];
  let ended = false;
  let waiters = [];
  const sofar = () => {
    try {
      return parseReply(Buffer.concat(chunks));
    } catch {
      return null;
    }
  };
  const poke = () => {
    const r = sofar();
    waiters = waiters.filter((w) => {
      if (!ended && !(r && w.pred(r))) return true;
      clearTimeout(w.timer);
      w.resolve(r);
      return false;
    });
  };
  sock.on('data', (d) => {
    chunks.push(d);
    poke();
  });
  sock.on('close', () => {
    ended = true;
    poke();
  });
  sock.on('error', () => {
    /* 'close' follows */
  });
  sock.on('connect', () => {
    const h = { Host: `127.0.0.1:${bridge.port}`, ...headers };
    let head = `${method} ${p} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(h)) head += `${k}: ${v}\r\n`;
    sock.write(Buffer.from(`${head}\r\n`, 'latin1'));
  });
  return {
    wait(pred, ms = STREAM_WAIT_MS) {
      return new Promise((resolve) => {
        const w = { pred, resolve };
        w.timer = setTimeout(() => {
          waiters = waiters.filter((x) => x !== w);
          resolve(sofar());
        }, ms);
        waiters.push(w);
        poke();
      });
    },
    close() {
      const r = sofar();
      sock.destroy();
      return r;
    },
  };
}

function parseReply(raw) {
  const sep = raw.indexOf('\r\n\r\n');
  if (sep < 0) throw new Error(`incomplete HTTP reply (${raw.length} bytes)`);
  const lines = raw.subarray(0, sep).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) throw new Error(`bad status line: ${lines[0]}`);
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  let body = raw.subarray(sep + 4);
  if (/chunked/i.test(headers['transfer-encoding'] || '')) body = dechunk(body);
  else if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']));
  return { status: Number(m[1]), headers, text: body.toString('utf8'), bytes: body };
}

function dechunk(buf) {
  const out = [];
  let i = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', i);
    if (eol < 0) break;
    const n = parseInt(buf.subarray(i, eol).toString('latin1'), 16);
    if (!n) break;
    out.push(buf.subarray(eol + 2, eol + 2 + n));
    i = eol + 2 + n + 2;
  }
  return Buffer.concat(out);
}

/* --- the spec ---------------------------------------------------------------------- */

const SCHEMAS_ID = 'urn:amibridge:openapi:schemas';
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
let SPEC_TEXT = '';
let spec = null;
let ajv = null;
let pathMatchers = [];
const operations = new Map(); // operationId -> { method, template }

function pointer(doc, ref) {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported: ${ref}`);
  return ref
    .slice(2)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((o, k) => {
      if (o === undefined || o === null || !(k in o)) throw new Error(`unresolved $ref ${ref}`);
      return o[k];
    }, doc);
}

// A Reference Object resolved (responses, headers, parameters, examples).
function deref(o) {
  while (o && typeof o === 'object' && typeof o.$ref === 'string') o = pointer(spec, o.$ref);
  return o;
}

// Schemas point at '#/components/schemas/X'; in ajv they live in one schema
// document whose $defs are the components.
function toAjv(schema) {
  if (Array.isArray(schema)) return schema.map(toAjv);
  if (!schema || typeof schema !== 'object') return schema;
  const out = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/'))
      out[k] = `${SCHEMAS_ID}#/$defs/${v.slice('#/components/schemas/'.length)}`;
    else out[k] = toAjv(v);
  }
  return out;
}

// Parse the spec and compile its schemas (strict: an unknown keyword or a
// keyword that does not fit the declared type is an error).
function loadSpec() {
  SPEC_TEXT = readFileSync(SPEC_PATH, 'utf8');
  spec = YAML.parse(SPEC_TEXT);
  ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
  addFormats(ajv);
  ajv.addSchema({ $id: SCHEMAS_ID, $defs: toAjv(spec.components?.schemas ?? {}) });
  ajv.getSchema(SCHEMAS_ID);
  pathMatchers = Object.entries(spec.paths ?? {}).map(([template, item]) => {
    for (const m of METHODS)
      if (item[m]) operations.set(item[m].operationId, { method: m.toUpperCase(), template });
    const re = template
      .split('/')
      .map((seg) => (/^\{[^}]+\}$/.test(seg) ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/');
    return { template, item, re: new RegExp(`^${re}$`) };
  });
}

const compiled = new Map();
function validatorFor(schema) {
  if (!compiled.has(schema)) compiled.set(schema, ajv.compile(toAjv(schema)));
  return compiled.get(schema);
}

function schemaErrors(schema, value) {
  const v = validatorFor(schema);
  if (v(value)) return [];
  return v.errors.slice(0, 8).map((e) => {
    const at = e.instancePath || '(root)';
    const extra = e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : '';
    return `body ${at} ${e.message}${extra}`;
  });
}

// What the spec says of a path that no route matches (info.description):
// 404 not-found.
const NO_ROUTE = {
  description: 'no route has this path',
  headers: {
    'X-Request-Id': { $ref: '#/components/headers/X-Request-Id' },
    'Cache-Control': { $ref: '#/components/headers/Cache-Control' },
  },
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/ProblemNotFound' } } },
};

const exercised = new Set();

// Which documented responses apply to this request: the operation's; for a
// method the path does not take, the 405 every operation of the path
// documents; for a path outside the spec, 404 with ProblemNotFound.
function documentedResponses(method, rawPath) {
  const p = rawPath.split('?')[0];
  const match = pathMatchers.find((m) => m.re.test(p));
  if (!match) {
    return { label: 'no route: 404 ProblemNotFound', responses: { 404: NO_ROUTE } };
  }
  // HEAD is GET without the body (RFC 9110 9.3.2); the spec documents GET
  const op = match.item[method.toLowerCase()] ?? (method === 'HEAD' ? match.item.get : undefined);
  if (op) {
    exercised.add(op.operationId);
    return { label: op.operationId, responses: op.responses ?? {} };
  }
  // OPTIONS is answered on every path: it has no 405 to document
  const others = METHODS.filter((m) => m !== 'options' && match.item[m]).map((m) => match.item[m]);
  const r405 = others.map((o) => o.responses?.['405']).filter(Boolean);
  return {
    label: `${match.template} without ${method}`,
    responses: r405.length === others.length && r405.length ? { 405: r405[0] } : {},
  };
}

function headerValue(schema, text) {
  if (schema?.type === 'integer' || schema?.type === 'number')
    return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
  return text;
}

// Every way the reply departs from the spec.
function specProblems(req, res) {
  const out = [];
  const { label, responses } = documentedResponses(req.method, req.path);
  const st = String(res.status);
  const doc = deref(responses[st] ?? responses[`${st[0]}XX`] ?? responses.default);
  if (!doc) {
    out.push(`status ${st} is not documented for ${label}`);
    return { label, problems: out };
  }
  for (const [name, h] of Object.entries(doc.headers ?? {})) {
    const hd = deref(h);
    const v = res.headers[name.toLowerCase()];
    if (v === undefined) {
      if (hd.required) out.push(`header ${name} is missing`);
      continue;
    }
    if (hd.schema) {
      for (const e of schemaErrors(hd.schema, headerValue(deref(hd.schema), v)))
        out.push(`header ${name} ${JSON.stringify(v)}: ${e.replace(/^body \(root\) /, '')}`);
    }
  }
  const media = Object.keys(doc.content ?? {});
  const ctype = (res.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (!media.length) {
    if (res.bytes.length) out.push(`a body was sent (${ctype}) where none is documented`);
    return { label, problems: out };
  }
  if (!media.includes(ctype)) {
    out.push(`Content-Type ${JSON.stringify(ctype)} is not one of ${media.join(', ')}`);
    return { label, problems: out };
  }
  if (req.method === 'HEAD') {
    if (res.bytes.length) out.push('a HEAD reply carries a body');
    return { label, problems: out };
  }
  const schema = doc.content[ctype].schema;
  let value = res.text;
  if (/^application\/(.+\+)?json$/.test(ctype)) {
    try {
      value = JSON.parse(res.text);
    } catch (e) {
      out.push(`body is not JSON: ${e.message}`);
      return { label, problems: out };
    }
  } else if (ctype === 'application/yaml') {
    try {
      value = YAML.parse(res.text);
    } catch (e) {
      out.push(`body is not YAML: ${e.message}`);
      return { label, problems: out };
    }
  }
  res.json = value;
  if (schema) out.push(...schemaErrors(schema, value));
  if (ctype === 'application/problem+json' && value && typeof value === 'object') {
    if (value.status !== undefined && value.status !== res.status)
      out.push(`problem status ${value.status} differs from the HTTP status ${res.status}`);
    // a replayed reply (Idempotency-Key) is the first one byte for byte
    const replayed = res.headers['idempotent-replayed'] === 'true';
    if (!replayed && value.request_id !== undefined && value.request_id !== res.headers['x-request-id'])
      out.push(`problem request_id ${value.request_id} differs from X-Request-Id ${res.headers['x-request-id']}`);
    // the path as sent; bytes that are not UTF-8 show as U+FFFD
    const sentPath = Buffer.from(req.path.split('?')[0], 'latin1').toString('utf8');
    if (value.instance !== undefined && value.instance !== sentPath)
      out.push(`problem instance ${JSON.stringify(value.instance)} is not the request path`);
  }
  return { label, problems: out };
}

// How the request departs from the operation's parameters and request body
// schemas (path and query parameters, JSON body). A request the binary
// accepts must fit them; one it refuses as invalid should not.
function requestViolations(req) {
  const [rawPath, query = ''] = req.path.split('?');
  const match = pathMatchers.find((m) => m.re.test(rawPath));
  const op = match?.item[req.method.toLowerCase()];
  if (!op) return null;
  const out = [];
  const params = [...(match.item.parameters ?? []), ...(op.parameters ?? [])].map(deref);
  const tpl = match.template.split('/');
  const segs = rawPath.split('/');
  const queryValues = new URLSearchParams(query);
  for (const p of params) {
    let v;
    if (p.in === 'path') {
      const i = tpl.indexOf(`{${p.name}}`);
      try {
        v = decodeURIComponent(segs[i]);
      } catch {
        out.push(`path parameter ${p.name} is not valid percent-encoding`);
        continue;
      }
    } else if (p.in === 'query') {
      v = queryValues.get(p.name) ?? undefined;
    } else if (p.in === 'header') {
      const k = Object.keys(req.headers ?? {}).find((h) => h.toLowerCase() === p.name.toLowerCase());
      v = k ? req.headers[k] : undefined;
    } else continue;
    if (v === undefined) {
      if (p.required) out.push(`${p.in} parameter ${p.name} is missing`);
      continue;
    }
    // path and query values are text: an integer parameter is checked as the number it spells
    const value = p.in === 'header' ? v : headerValue(deref(p.schema), v);
    for (const e of schemaErrors(p.schema, value)) out.push(`${p.in} parameter ${p.name}: ${e.replace(/^body /, '')}`);
  }
  const rb = deref(op.requestBody);
  if (req.body !== undefined && req.body.length) {
    const media = rb?.content?.['application/json'];
    if (!media) out.push('a body where none is documented');
    else {
      let value;
      try {
        value = JSON.parse(req.body);
      } catch {
        out.push('the body is not JSON');
      }
      if (value !== undefined && media.schema)
        for (const e of schemaErrors(media.schema, value)) out.push(`request ${e}`);
    }
  } else if (rb?.required) out.push('the request body is missing');
  return out;
}

/* --- checks ------------------------------------------------------------------------- */

const results = [];
const dump = [];

function report(ok, title, problems = []) {
  results.push(ok);
  const n = String(results.length).padStart(3);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${n}  ${title}`);
  for (const p of problems) console.log(`         - ${p}`);
}

function show(req) {
  let p = req.path;
  if (/[^\x20-\x7e]/.test(p)) p = p.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
  return `${req.method} ${p}`;
}

// Send one request, check the reply against the spec and against what this
// request must get (`want.status`, `want.type` slug, and `want.more(res)`,
// which returns a list of problems). Returns the reply.
async function check(name, bridge, req, want) {
  let res;
  try {
    res = await request(bridge, req);
  } catch (e) {
    report(false, checkTitle(name, req, want), [`request failed: ${e.message}`]);
    return null;
  }
  return verify(name, req, res, want);
}

function checkTitle(name, req, want) {
  return `${name}: ${show(req)} -> ${want.status}${want.type ? ` ${want.type}` : ''}`;
}

// Check a reply as check() does; `res` may be null (nothing came).
function verify(name, req, res, want) {
  const title = checkTitle(name, req, want);
  if (!res) {
    report(false, title, ['no reply']);
    return null;
  }
  const { label, problems } = specProblems(req, res);
  if (res.json === undefined && /json/.test(res.headers['content-type'] ?? '')) {
    try {
      res.json = JSON.parse(res.text);
    } catch {
      /* reported by specProblems */
    }
  }
  if (res.status !== want.status) problems.unshift(`got status ${res.status}, want ${want.status}`);
  if (!res.headers['x-request-id']) problems.push('no X-Request-Id header');
  // the request side of the spec: what was accepted fits it, what was
  // refused as invalid does not
  const violations = requestViolations(req);
  if (violations && res.status < 300 && violations.length)
    problems.push(...violations.map((v) => `accepted request does not fit the spec: ${v}`));
  if (violations && want.invalidRequest && !violations.length)
    problems.push('refused request fits the spec: the parameters or the request body schema should exclude it');
  if (want.type) {
    const t = res.json?.type;
    if (t !== `urn:amibridge:problem:${want.type}`) problems.push(`problem type is ${t}, want ${want.type}`);
  }
  if (want.more && !problems.length) {
    try {
      problems.push(...(want.more(res) || []));
    } catch (e) {
      problems.push(`check threw: ${e.message}`);
    }
  }
  if (problems.length) problems.push(`reply: ${res.status} ${res.headers['content-type'] ?? ''} ${res.text.slice(0, 400)}`);
  report(!problems.length, `${title} [${label}]`, problems);
  dump.push({
    name,
    request: { method: req.method, path: req.path, headers: req.headers ?? {}, body: req.body ?? null },
    response: { status: res.status, headers: res.headers, body: res.json ?? res.text },
  });
  return res;
}

const post = (action, body, headers = OPS, query = '') => ({
  method: 'POST',
  path: `/v1/actions/${action}${query}`,
  headers: body === undefined ? headers : { ...headers, ...JSON_CT },
  body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
});

const postTo = (p, body, headers = OPS) => ({
  method: 'POST',
  path: p,
  headers: { ...headers, ...JSON_CT },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const get = (p, headers = OPS) => ({ method: 'GET', path: p, headers });
const options = (p, headers = {}) => ({ method: 'OPTIONS', path: p, headers });

// A streamed request: `until(pred, ms)` waits for the reply so far to
// satisfy `pred`; `done(want)` hangs up and checks what came as check() does.
function stream(name, bridge, req) {
  const st = openStream(bridge, req);
  return {
    until: (pred, ms) => st.wait(pred, ms),
    done: (want) => verify(name, req, st.close(), want),
  };
}

// The blocks of an event stream: { id, event, data (parsed), retry, comments }.
function sseBlocks(text) {
  return text
    .split('\n\n')
    .filter((b) => b.length)
    .map((b) => {
      const out = { comments: [] };
      for (const line of b.split('\n')) {
        if (line.startsWith(':')) out.comments.push(line.slice(1).trim());
        else if (line.startsWith('id: ')) out.id = line.slice(4);
        else if (line.startsWith('event: ')) out.event = line.slice(7);
        else if (line.startsWith('retry: ')) out.retry = Number(line.slice(7));
        else if (line.startsWith('data: ')) {
          out.raw = line.slice(6);
          try {
            out.data = JSON.parse(out.raw);
          } catch {
            out.data = null;
          }
        } else out.other = line;
      }
      return out;
    });
}

// Every way an event stream departs from the spec: the opening, each event's
// lines, and its data against the Event schema. `idRe` is the form of `id`.
const EVENT_SCHEMA = { $ref: '#/components/schemas/Event' };
function streamProblems(text, idRe) {
  const out = [];
  const blocks = sseBlocks(text);
  if (blocks[0]?.retry !== 2000 || !blocks[0]?.comments.includes('connected to amibridge'))
    out.push(`the stream does not open with retry: 2000 and ': connected to amibridge': ${JSON.stringify(text.slice(0, 80))}`);
  // the last block may be cut short by the hang-up
  for (const b of (text.endsWith('\n\n') ? blocks : blocks.slice(0, -1)).slice(1)) {
    if (b.other !== undefined) out.push(`a line that is not SSE: ${JSON.stringify(b.other)}`);
    if (b.raw === undefined) continue;
    if (!b.data) {
      out.push(`data is not JSON: ${b.raw.slice(0, 80)}`);
      continue;
    }
    out.push(...schemaErrors(EVENT_SCHEMA, b.data).map((e) => `event ${b.id}: ${e}`));
    if (b.event !== b.data.event) out.push(`event: ${b.event} but data.event ${b.data.event}`);
    if (!idRe.test(b.id ?? '')) {
      out.push(`id ${JSON.stringify(b.id)} does not match ${idRe}`);
      continue;
    }
    const [server, seq] = b.id.includes(':') ? b.id.split(':') : [b.data.server, b.id];
    if (Number(seq) !== b.data.seq || server !== b.data.server)
      out.push(`id ${b.id} is not the server and seq of its data (${b.data.server}, ${b.data.seq})`);
  }
  return out;
}
const del = (p, headers = OPS) => ({ method: 'DELETE', path: p, headers });
const patch = (p, body, headers = OPS) => ({
  method: 'PATCH',
  path: p,
  headers: { ...headers, ...JSON_CT },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

// Every way a request the receiver got departs from a webhook delivery of
// `event` to subscription `id` signed with `secret` (see the webhooks tag);
// and its body, parsed.
function deliveryProblems(q, secret, id, event) {
  const h = q.headers;
  const out = [
    ...expectEq('method', q.method, 'POST'),
    ...expectEq('Content-Type', h['content-type'], 'application/json'),
    ...expectMatch('User-Agent', h['user-agent'], /^amibridge\/[^ ]+$/),
    ...expectEq('X-Amibridge-Event', h['x-amibridge-event'], event),
    ...expectEq('X-Amibridge-Webhook', h['x-amibridge-webhook'], id),
    ...expectMatch('X-Amibridge-Delivery', h['x-amibridge-delivery'], /^[0-9a-f]{32}$/),
    ...expectMatch('X-Amibridge-Attempt', h['x-amibridge-attempt'], /^[1-9][0-9]*$/),
  ];
  const ts = h['x-amibridge-timestamp'] ?? '';
  if (!/^[0-9]+$/.test(ts) || Math.abs(Number(ts) - Date.now() / 1000) > 300)
    out.push(`X-Amibridge-Timestamp ${JSON.stringify(ts)} is not the Unix time now`);
  const mac = createHmac('sha256', secret).update(`${ts}.${q.body}`).digest('hex');
  out.push(...expectEq('X-Amibridge-Signature', h['x-amibridge-signature'], `sha256=${mac}`));
  // Standard Webhooks (the default scheme is both): the same id and time,
  // keyed with the bytes of a whsec_ secret (else the secret's own bytes)
  out.push(...expectEq('webhook-id', h['webhook-id'], h['x-amibridge-delivery']));
  out.push(...expectEq('webhook-timestamp', h['webhook-timestamp'], ts));
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret);
  const v1 = createHmac('sha256', key).update(`${h['webhook-id']}.${ts}.${q.body}`).digest('base64');
  out.push(...expectEq('webhook-signature', h['webhook-signature'], `v1,${v1}`));
  let body = null;
  try {
    body = JSON.parse(q.body);
  } catch {
    out.push('the body is not JSON');
  }
  if (body) out.push(...expectEq('body.event', body.event, event));
  return { out, body };
}

// Poll until `cond()` is true (it may be async); false after `ms`.
async function waitFor(cond, ms = 8000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await cond()) return true;
    await sleep(50);
  }
  return false;
}

// Poll GET /v1/channels until `pick(channels)` returns something; that, or null.
async function waitChannels(bridge, pick, ms = 8000) {
  let found = null;
  await waitFor(async () => {
    const r = await request(bridge, get('/v1/channels'));
    found = r.status === 200 ? pick(JSON.parse(r.text).channels) : null;
    return found !== null;
  }, ms);
  return found;
}

// Every way a Prometheus text (0.0.4) departs from the format, and the
// families of `want` that it lacks.
function metricsProblems(text, want) {
  const out = [];
  const typed = new Map();
  for (const line of text.split('\n')) {
    if (!line) continue;
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line))) continue;
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      typed.set(m[1], m[2]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9.e+-]+|[+-]Inf|NaN)$/.exec(line);
    if (!m) {
      out.push(`not a metrics line: ${JSON.stringify(line.slice(0, 80))}`);
      continue;
    }
    const family = typed.has(m[1]) ? m[1] : m[1].replace(/_(bucket|sum|count)$/, '');
    if (!typed.has(family)) out.push(`sample ${m[1]} before its # TYPE`);
  }
  if (!text.endsWith('\n')) out.push('the text does not end with a newline');
  for (const f of want) if (!typed.has(f)) out.push(`no family ${f}`);
  return out.slice(0, 8);
}

const expectEq = (what, got, want) =>
  got === want ? [] : [`${what} is ${JSON.stringify(got)}, want ${JSON.stringify(want)}`];

function expectMatch(what, got, re) {
  return typeof got === 'string' && re.test(got) ? [] : [`${what} is ${JSON.stringify(got)}, want ${re}`];
}

/* --- the run ------------------------------------------------------------------------- */

async function run() {
  loadSpec();
  for (const [bin, what] of [
    [SIM_BIN, 'the AMI simulator (tests/sim)'],
    [BRIDGE_BIN, 'amibridge'],
  ]) {
    if (!existsSync(bin)) {
      const rel = path.relative(ROOT, bin);
      const hint = rel.startsWith('..') ? '' : ` (make ${rel})`;
      console.log(`contract: ${bin} does not exist: build ${what} first${hint}`);
      return false;
    }
  }
  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'amibridge-contract-'));
  const sim = await startSim();
  const ami = {
    AMIBRIDGE_AMI_HOST: '127.0.0.1',
    AMIBRIDGE_AMI_PORT: String(sim.port),
    AMIBRIDGE_AMI_USERNAME: 'bridge',
    AMIBRIDGE_AMI_SECRET: 'bridgesecret',
  };
  // the receiver of webhook deliveries, on loopback: the bridges that
  // deliver to it allow 127.0.0.0/8 past the SSRF guard
  receiver = await startReceiver();
  const rx = receiver;
  const rxUrl = (p) => `http://127.0.0.1:${rx.port}${p}`;
  const WEBHOOK_NETS = '127.0.0.0/8';
  // a: API keys, defaults; webhooks may reach loopback
  const a = await startBridge('amibridge-a', { ...ami, AMIBRIDGE_API_KEYS: API_KEYS, AMIBRIDGE_WEBHOOK_ALLOW_NETS: WEBHOOK_NETS });
  // b: no API keys (loopback only, no token), Command allowed, small bodies,
  // a server that logs in as the read-only AMI user and one with a short
  // timeout and room for one action in flight
  const bConfig = path.join(tmpDir, 'b.json');
  const server = { host: '127.0.0.1', port: sim.port, username: 'bridge', secret: 'bridgesecret' };
  writeFileSync(
    bConfig,
    JSON.stringify({
      servers: [
        { name: 'pbx1', ...server },
        { name: 'viewer', ...server, username: 'viewer', secret: 'viewersecret' },
        { name: 'slow', ...server, timeout_ms: SLOW_TIMEOUT_MS, max_inflight: 1 },
      ],
    }),
  );
  const b = await startBridge('amibridge-b', {
    AMIBRIDGE_CONFIG: bConfig,
    AMIBRIDGE_ALLOW_ACTIONS: 'Command',
    AMIBRIDGE_MAX_BODY: '1024',
  });
  // c: a wrong AMI secret; ready when it knows the login is rejected
  const c = await startBridge(
    'amibridge-c',
    { ...ami, AMIBRIDGE_AMI_SECRET: 'wrong-secret', AMIBRIDGE_API_KEYS: API_KEYS },
    (r) => r.status === 503 && /"auth_failed":true/.test(r.text),
  );
  // d: keys with a dial policy and a call rate of one, one call in flight
  // per server, a browser origin, two event streams at once, one per key (its
  // heartbeat notices a client gone within seconds), /metrics behind a key;
  // a second server that logs in as the AMI user without write classes;
  // a static webhook subscription (the config file's) to the receiver, and
  // room for no other
  const dConfig = path.join(tmpDir, 'd.json');
  writeFileSync(
    dConfig,
    JSON.stringify({
      servers: [
        { name: 'pbx1', ...server },
        { name: 'viewer', ...server, username: 'viewer', secret: 'viewersecret' },
      ],
      api_keys: [
        { name: 'ops', token: OPS_TOKEN, scopes: ['read', 'call', 'control', 'actions', 'admin'] },
        {
          name: 'dialer',
          token: DIALER.Authorization.slice(7),
          scopes: ['call', 'control', 'actions'],
          allow_channels: ['Local/*'],
          allow_contexts: ['demo'],
          deny_extens: ['9*'],
          calls_burst: 1,
          calls_per_second: 0.01,
        },
        { name: 'reader', token: READER.Authorization.slice(7), scopes: ['read'] },
      ],
      calls_max_inflight: 1,
      cors_origins: [CORS_ORIGIN],
      webhooks: [
        {
          id: 'static-crm',
          url: rxUrl('/static-crm'),
          events: ['OriginateResponse'],
          secret: STATIC_SECRET,
          description: 'CRM (config file)',
        },
      ],
    }),
  );
  const d = await startBridge('amibridge-d', {
    AMIBRIDGE_CONFIG: dConfig,
    AMIBRIDGE_SSE_MAX_CLIENTS: '2',
    AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY: '1',
    AMIBRIDGE_SSE_HEARTBEAT_S: '1',
    AMIBRIDGE_METRICS_AUTH: '1',
    AMIBRIDGE_WEBHOOK_ALLOW_NETS: WEBHOOK_NETS,
    AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS: '1',
  });
  // e: no API keys, Redis for the Idempotency-Key and webhook stores, but
  // no Redis there
  const e = await startBridge('amibridge-e', { ...ami, AMIBRIDGE_REDIS_URL: `redis://127.0.0.1:${await closedPort()}` });

  /* public routes */
  await check('liveness', a, { method: 'GET', path: '/healthz' }, {
    status: 200,
    more: (r) => expectEq('status', r.json.status, 'ok'),
  });
  await check('readiness, AMI up', a, { method: 'GET', path: '/readyz' }, {
    status: 200,
    more: (r) => [
      ...expectEq('ready', r.json.ready, true),
      ...expectEq('servers[0].event_connection', r.json.servers[0]?.event_connection, 'up'),
    ],
  });
  await check('the served contract is this file', a, { method: 'GET', path: '/openapi.yaml' }, {
    status: 200,
    more: (r) =>
      r.text === SPEC_TEXT
        ? []
        : [`${BRIDGE_BIN} serves a different openapi.yaml than ${SPEC_PATH}: rebuild it (make)`],
  });
  /* the dashboard: the embedded files, byte for byte, with their own types */
  const WEB = (f) => readFileSync(path.join(ROOT, 'web', f), 'utf8');
  for (const [p, file] of [['/', 'index.html'], ['/dashboard', 'index.html'], ['/dashboard/app.js', 'app.js'], ['/dashboard/style.css', 'style.css']]) {
    await check(`the dashboard: ${p}`, a, { method: 'GET', path: p }, {
      status: 200,
      more: (r) => (r.text === WEB(file) ? [] : [`${p} is not web/${file}: rebuild (make)`]),
    });
  }
  await check('wrong method on the dashboard', a, { method: 'POST', path: '/dashboard', headers: JSON_CT, body: '{}' }, {
    status: 405,
    type: 'method-not-allowed',
  });
  await check('readiness with several AMI servers', b, { method: 'GET', path: '/readyz' }, {
    status: 200,
    more: (r) => expectEq('servers', r.json.servers.map((s) => s.name).join(','), 'pbx1,viewer,slow'),
  });
  await check('readiness, AMI login rejected', c, { method: 'GET', path: '/readyz' }, {
    status: 503,
    more: (r) => [
      ...expectEq('ready', r.json.ready, false),
      ...expectEq('servers[0].auth_failed', r.json.servers[0]?.auth_failed, true),
      ...(r.json.servers[0]?.last_error ? [] : ['servers[0].last_error is missing']),
    ],
  });
  await check('wrong method on a public route', a, { method: 'DELETE', path: '/healthz' }, {
    status: 405,
    type: 'method-not-allowed',
    more: (r) => expectEq('Allow', r.headers.allow, 'GET, HEAD'),
  });
  await check('wrong method on /readyz', a, { method: 'POST', path: '/readyz' }, {
    status: 405,
    type: 'method-not-allowed',
  });
  await check('wrong method on /openapi.yaml', a, { method: 'PUT', path: '/openapi.yaml' }, {
    status: 405,
    type: 'method-not-allowed',
  });
  await check('HEAD on a GET route', a, { method: 'HEAD', path: '/healthz' }, { status: 200 });
  await check(
    'a body that is not JSON where a JSON body is taken',
    a,
    { method: 'POST', path: '/v1/actions/Ping', headers: { ...OPS, 'Content-Type': 'text/plain' }, body: 'hello' },
    { status: 415, type: 'unsupported-media-type' },
  );

  /* POST /v1/actions/{action}: 200 */
  await check('Ping, no body', a, post('Ping'), {
    status: 200,
    more: (r) => [
      ...expectEq('response', r.json.response, 'Success'),
      ...expectEq('fields.Ping', r.json.fields.Ping, 'Pong'),
      ...expectEq('fields.ActionID', r.json.fields.ActionID, r.json.action_id),
      ...('events' in r.json ? ['a Ping reply has no events'] : []),
    ],
  });
  await check(
    'Ping, {} body, own X-Request-Id, ?server=',
    a,
    post('Ping', {}, { ...OPS, 'X-Request-Id': 'contract-ping.1' }, '?server=default'),
    { status: 200, more: (r) => expectEq('X-Request-Id', r.headers['x-request-id'], 'contract-ping.1') },
  );
  await check(
    'Originate, async, repeated Variable',
    a,
    post('Originate', {
      Channel: 'Local/200@demo',
      Context: 'demo',
      Exten: '200',
      Priority: 1,
      Async: true,
      CallerID: 'Contract <5550100>',
      Variable: ['CONTRACT_A=1', 'CONTRACT_B=2'],
    }),
    {
      status: 200,
      more: (r) => [
        ...expectEq('response', r.json.response, 'Success'),
        ...expectMatch('RateLimit-Remaining', r.headers['ratelimit-remaining'], /^[0-9]+$/),
      ],
    },
  );
  // the call shows up in Status once the simulator has set it up
  let channel = null;
  for (let i = 0; i < 40 && !channel; i++) {
    const r = await request(a, post('Status'));
    const ev = (r.status === 200 && JSON.parse(r.text).events) || [];
    channel = ev.map((e) => e.Channel).find((ch) => typeof ch === 'string' && ch.startsWith('Local/200@demo-'));
    if (!channel) await sleep(50);
  }
  await check('Status, a list with events', a, post('Status'), {
    status: 200,
    more: (r) => [
      ...(r.json.events?.length ? [] : ['no events']),
      ...expectEq('complete.EventList', r.json.complete?.EventList, 'Complete'),
      ...(channel ? [] : ['the originated channel never showed up in Status']),
    ],
  });
  await check('CoreShowChannels, a list', a, post('CoreShowChannels', {}), {
    status: 200,
    more: (r) => (Array.isArray(r.json.events) && r.json.complete ? [] : ['no events/complete']),
  });
  await check('Getvar, global variable', a, post('Getvar', { Variable: 'DEMO_GLOBAL' }), {
    status: 200,
    more: (r) => expectEq('fields.Value', r.json.fields.Value, 'hello'),
  });
  if (channel) {
    await check('Getvar on a channel', a, post('Getvar', { Channel: channel, Variable: 'CALLERID(num)' }), {
      status: 200,
    });
  }
  await check('QueueStatus, a list', a, post('QueueStatus', {}), {
    status: 200,
    more: (r) => [
      ...(r.json.events?.some((e) => e.Event === 'QueueParams') ? [] : ['no QueueParams event']),
      ...expectEq('complete.Event', r.json.complete?.Event, 'QueueStatusComplete'),
    ],
  });
  await check('QueueStatus of one queue', a, post('QueueStatus', { Queue: 'sales' }), { status: 200 });
  if (channel) {
    await check('Hangup', a, post('Hangup', { Channel: channel }), { status: 200 });
  }
  await check('Command, allowed, without a token (no keys: loopback)', b, post('Command', { Command: 'core show version' }, {}), {
    status: 200,
    more: (r) => [
      ...(r.json.output?.length ? [] : ['no output lines']),
      ...('Output' in r.json.fields ? ['fields still holds Output'] : []),
    ],
  });

  /* channels and queues: a call, then every route and its documented errors */
  await request(
    a,
    post('Originate', {
      Channel: 'Local/200@demo',
      Context: 'demo',
      Exten: '200',
      Priority: 1,
      Async: true,
      CallerID: 'Contract <5550100>',
    }),
  );
  const legs = await waitChannels(a, (chs) => {
    const l1 = chs.find((c) => /^Local\/200@demo-.*;1$/.test(c.channel) && c.application === 'Wait');
    const l2 = chs.find((c) => /^Local\/200@demo-.*;2$/.test(c.channel));
    return l1 && l2 ? [l1.channel, l2.channel] : null;
  });
  if (!legs) report(false, 'the call for the channel routes never showed up in GET /v1/channels');
  const [leg1, leg2] = legs ?? ['Local/200@demo-00000001;1', 'Local/200@demo-00000001;2'];
  const chPath = (name, rest = '') => `/v1/channels/${encodeURIComponent(name)}${rest}`;
  await check('GET /v1/channels with a call up', a, get('/v1/channels', CRM), {
    status: 200,
    more: (r) => (r.json.channels.length >= 2 ? [] : ['fewer than two channels']),
  });
  let callId = null;
  await check('GET /v1/calls/live with a call up', a, get('/v1/calls/live', CRM), {
    status: 200,
    more: (r) => {
      const call = r.json.calls.find((c) => c.legs.some((l) => l.channel === leg1));
      callId = call?.id ?? null;
      return call ? expectEq('state', call.state === 'ended' ? 'ended' : 'live', 'live') : ['the call is not listed'];
    },
  });
  await check('GET one call', a, get(`/v1/calls/${encodeURIComponent(callId ?? 'none')}`, CRM), {
    status: 200,
    more: (r) => expectEq('id', r.json.id, callId),
  });
  {
    // the call event stream opens (its events are checked by tests/integration/test_calls)
    const cev = stream('the call event stream', a, get('/v1/calls/events?type=call.*', CRM));
    await cev.until((r) => r.text.includes(': connected to amibridge'));
    await cev.done({ status: 200, more: (r) => streamProblems(r.text, /^[0-9]+$/) });
  }
  await check('a call event stream with an unknown server', a, get('/v1/calls/events?server=nope', CRM), {
    status: 400,
    type: 'invalid-field',
    more: (r) => expectEq('field', r.json.field, 'server'),
  });
  await check('GET /v1/calls/stats', a, get('/v1/calls/stats', CRM), {
    status: 200,
    more: (r) => {
      const p = [];
      const ms = r.json.minutes ?? [];
      for (const m of ms) {
        const sum = Object.values(m.outcomes).reduce((x, y) => x + y, 0);
        if (sum !== m.ended) p.push(`${m.start}: ended ${m.ended}, outcomes sum to ${sum}`);
      }
      for (let i = 1; i < ms.length; i++)
        if (Date.parse(ms[i].start) - Date.parse(ms[i - 1].start) !== 60000) p.push(`minute ${i} is not the next one`);
      const last = Date.parse(ms[ms.length - 1]?.start);
      if (!(Math.abs(Date.now() - 30000 - last) <= 90000)) p.push(`the last minute ${ms[ms.length - 1]?.start} is not now`);
      return p;
    },
  });
  await check('GET a call that never was', a, get('/v1/calls/1796399999.999'), {
    status: 404,
    type: 'no-such-call',
  });
  await check('GET one channel', a, get(chPath(leg1), CRM), {
    status: 200,
    more: (r) => [...expectEq('channel', r.json.channel, leg1), ...expectEq('state', r.json.state, 'up')],
  });
  await check('GET a channel that is gone', a, get(chPath('Local/200@demo-0000ffff;1')), {
    status: 404,
    type: 'no-such-channel',
  });
  await check(
    'POST a channel variable',
    a,
    postTo(chPath(leg1, '/variables'), { name: 'DEMO_VAR', value: 'hello world' }),
    { status: 200, more: (r) => expectEq('message', r.json.message, 'Variable Set') },
  );
  await check('GET a channel variable', a, get(chPath(leg1, '/variables/DEMO_VAR'), CRM), {
    status: 200,
    more: (r) => expectEq('value', r.json.value, 'hello world'),
  });
  await check('GET a function of a channel', a, get(chPath(leg1, '/variables/CHANNEL%28state%29')), {
    status: 400,
    type: 'invalid-field',
    more: (r) => expectEq('field', r.json.field, 'name'),
  });
  await check(
    'a channel variable that calls SHELL(',
    a,
    postTo(chPath(leg1, '/variables'), { name: 'SHELL(id)', value: '1' }),
    { status: 403, type: 'action-denied', more: (r) => expectEq('field', r.json.field, 'name') },
  );
  await check(
    'blind transfer of a channel in no bridge',
    a,
    postTo(chPath(leg1, '/blind-transfer'), { context: 'demo', exten: '250' }),
    { status: 409, type: 'channel-not-bridged' },
  );
  await check(
    'redirect a channel',
    a,
    postTo(chPath(leg1, '/redirect'), { context: 'demo', exten: '250', priority: 1 }),
    { status: 200, more: (r) => expectEq('message', r.json.message, 'Redirect successful') },
  );
  await check(
    'redirect, priority 0',
    a,
    postTo(chPath(leg1, '/redirect'), { context: 'demo', exten: '250', priority: 0 }),
    { status: 400, type: 'invalid-field', invalidRequest: true, more: (r) => expectEq('field', r.json.field, 'priority') },
  );
  await check(
    'redirect, priority past 99999',
    a,
    postTo(chPath(leg1, '/redirect'), { context: 'demo', exten: '250', priority: 100000 }),
    { status: 400, type: 'invalid-field', invalidRequest: true, more: (r) => expectEq('field', r.json.field, 'priority') },
  );
  await check(
    'redirect, an unknown member',
    a,
    postTo(chPath(leg1, '/redirect'), { context: 'demo', exten: '250', priority: 1, Channel: 'x' }),
    { status: 400, type: 'invalid-field', invalidRequest: true, more: (r) => expectEq('field', r.json.field, 'Channel') },
  );
  await check(
    'redirect of a channel that is gone',
    a,
    postTo(chPath('Local/nonexistent-0000;1', '/redirect'), { context: 'demo', exten: '250', priority: 1 }),
    { status: 404, type: 'no-such-channel' },
  );
  await check('a channel name that is a regular expression', a, del(chPath('/.*/')), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'channel'),
  });
  await check('hangup, bad cause', a, del(chPath(leg2, '?cause=abc')), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'cause'),
  });
  await check('hangup with a read-only key', a, del(chPath(leg2), CRM), {
    status: 403,
    type: 'forbidden',
    more: (r) => expectEq('required_scope', r.json.required_scope, 'control'),
  });
  await check('hangup with a cause', a, del(chPath(leg2, '?cause=16')), { status: 204 });
  await check('hangup of a channel that is gone', a, del(chPath(leg2)), { status: 404, type: 'no-such-channel' });
  await check('POST on the channel route', a, postTo(chPath(leg2), {}), {
    status: 405,
    type: 'method-not-allowed',
    more: (r) => expectEq('Allow', r.headers.allow, 'GET, HEAD, DELETE'),
  });

  await check('GET /v1/queues', a, get('/v1/queues', CRM), {
    status: 200,
    more: (r) => expectEq('queues', r.json.queues.map((q) => q.name).join(','), 'support,sales'),
  });
  await check('GET a queue that does not exist', a, get('/v1/queues/nope'), { status: 404, type: 'no-such-queue' });
  // the client's bytes are not UTF-8: the problem keeps its detail (repaired)
  await check('GET a queue named by a byte that is not UTF-8', a, get('/v1/queues/%FF'), {
    status: 404,
    type: 'no-such-queue',
    more: (r) => (typeof r.json.detail === 'string' && r.json.detail ? [] : ['no detail']),
  });
  await check('GET a channel named by bytes that are not UTF-8', a, get('/v1/channels/%C3%28'), {
    status: 404,
    type: 'no-such-channel',
    more: (r) => (typeof r.json.detail === 'string' && r.json.detail ? [] : ['no detail']),
  });
  const member = '/v1/queues/sales/members/Local%2F202%40demo';
  await check(
    'add a queue member',
    a,
    postTo('/v1/queues/sales/members', { interface: 'Local/202@demo', name: 'Agent202', penalty: 2 }),
    { status: 201, more: (r) => expectEq('message', r.json.message, 'Added interface to queue') },
  );
  await check('add a member twice', a, postTo('/v1/queues/sales/members', { interface: 'Local/202@demo' }), {
    status: 409,
    type: 'member-exists',
  });
  await check('add a member to a queue that does not exist', a, postTo('/v1/queues/nope/members', { interface: 'Local/202@demo' }), {
    status: 404,
    type: 'no-such-queue',
  });
  await check('add a member with a negative penalty', a, postTo('/v1/queues/sales/members', { interface: 'Local/203@demo', penalty: -1 }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'penalty'),
  });
  await check('add a member with a penalty past an int', a, postTo('/v1/queues/sales/members', { interface: 'Local/203@demo', penalty: 2147483648 }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'penalty'),
  });
  await check('add a member with a reason but not paused', a, postTo('/v1/queues/sales/members', { interface: 'Local/203@demo', reason: 'lunch' }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'reason'),
  });
  await check('GET on the members route', a, get('/v1/queues/sales/members'), {
    status: 405,
    type: 'method-not-allowed',
    more: (r) => expectEq('Allow', r.headers.allow, 'POST'),
  });
  await check('pause a queue member', a, postTo(`${member}/pause`, { paused: true, reason: 'lunch' }), {
    status: 200,
    more: (r) => expectEq('message', r.json.message, 'Interface paused successfully'),
  });
  await check('pause, paused is not a boolean', a, postTo(`${member}/pause`, { paused: 'yes' }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'paused'),
  });
  await check(
    'pause a member that is not there',
    a,
    postTo('/v1/queues/sales/members/Local%2F999%40demo/pause', { paused: true }),
    { status: 404, type: 'no-such-member' },
  );
  await check('pause in a queue that does not exist', a, postTo('/v1/queues/nope/members/Local%2F202%40demo/pause', { paused: true }), {
    status: 404,
    type: 'no-such-queue',
  });
  await check('remove a queue member', a, del(member), { status: 204 });
  await check('remove a member that is not there', a, del(member), { status: 404, type: 'no-such-member' });
  await check('remove a member from queues.conf', a, del('/v1/queues/sales/members/Local%2F200%40demo'), {
    status: 409,
    type: 'member-not-dynamic',
  });

  // a caller waits in sales while both members are paused; one comes back,
  // takes the call and blind-transfers the caller
  for (const m of ['Local%2F200%40demo', 'Local%2F201%40demo'])
    await request(a, postTo(`/v1/queues/sales/members/${m}/pause`, { paused: true }));
  await request(a, post('Originate', { Channel: 'Local/400@demo', Application: 'Wait', Data: '30', Async: true }));
  const waiting = await waitFor(async () => {
    const r = await request(a, get('/v1/queues/sales'));
    return r.status === 200 && JSON.parse(r.text).callers.length === 1;
  });
  if (!waiting) report(false, 'no caller ever waited in the queue sales');
  await check('GET one queue with a caller waiting', a, get('/v1/queues/sales', CRM), {
    status: 200,
    more: (r) => expectEq('callers', r.json.callers.length, 1),
  });
  await request(a, postTo('/v1/queues/sales/members/Local%2F201%40demo/pause', { paused: false }));
  const agentLeg = await waitChannels(a, (chs) =>
    chs.find((c) => /^Local\/201@demo-.*;1$/.test(c.channel) && c.bridge_id)?.channel ?? null,
  );
  if (!agentLeg) report(false, 'the queue call was never answered');
  await check(
    'blind transfer of a bridged channel',
    a,
    postTo(chPath(agentLeg ?? 'Local/201@demo-00000003;1', '/blind-transfer'), { context: 'demo', exten: '250' }),
    { status: 200, more: (r) => expectEq('message', r.json.message, 'Transfer succeeded') },
  );
  await request(a, postTo('/v1/queues/sales/members/Local%2F200%40demo/pause', { paused: false }));

  /* 400 */
  await check('invalid JSON', a, post('Ping', '{"Variable":'), {
    status: 400,
    type: 'invalid-json',
    invalidRequest: true,
  });
  await check('JSON that is not an object', a, post('Ping', '["Ping"]'), {
    status: 400,
    type: 'invalid-json',
    invalidRequest: true,
  });
  await check('duplicate JSON member', a, post('Getvar', '{"Variable":"A","Variable":"B"}'), {
    status: 400,
    type: 'invalid-json',
  });
  await check('ActionID in the body', a, post('Ping', { ActionID: 'mine-1' }), {
    status: 400,
    invalidRequest: true,
    type: 'invalid-field',
    more: (r) => expectEq('field', r.json.field, 'ActionID'),
  });
  await check('Action in the body', a, post('Ping', { action: 'Logoff' }), {
    status: 400,
    invalidRequest: true,
    type: 'invalid-field',
    more: (r) => expectEq('field', r.json.field, 'action'),
  });
  await check('CR LF in a value', a, post('Getvar', { Variable: 'X\r\nAction: Logoff' }), {
    status: 400,
    invalidRequest: true,
    type: 'invalid-field',
    more: (r) => expectEq('field', r.json.field, 'Variable'),
  });
  await check('an object as a value', a, post('Getvar', { Variable: { name: 'X' } }), {
    status: 400,
    invalidRequest: true,
    type: 'invalid-field',
  });
  await check('a header name with a space', a, post('Getvar', { 'Var iable': 'X' }), {
    status: 400,
    invalidRequest: true,
    type: 'invalid-field',
  });
  await check('a header line over 1024 bytes', a, post('Getvar', { Variable: 'x'.repeat(1100) }), {
    status: 400,
    type: 'invalid-field',
  });
  await check('an action name with a dot', a, post('Core.Show'), {
    status: 400,
    invalidRequest: true,
    type: 'invalid-field',
    more: (r) => expectEq('field', r.json.field, 'Action'),
  });
  await check('an action name of 65 characters', a, post('A'.repeat(65)), {
    status: 400,
    invalidRequest: true,
    type: 'invalid-field',
  });
  await check('bad percent-encoding in the path', a, post('Ping%zz'), {
    status: 400,
    type: 'invalid-path',
    invalidRequest: true,
  });
  await check('unknown server', a, post('Ping', undefined, OPS, '?server=nope'), {
    status: 400,
    type: 'invalid-field',
    more: (r) => expectEq('field', r.json.field, 'server'),
  });

  /* 401, 403 */
  await check('no token', a, post('Ping', undefined, {}), {
    status: 401,
    type: 'unauthorized',
    more: (r) => expectEq('WWW-Authenticate', r.headers['www-authenticate'], 'Bearer realm="amibridge"'),
  });
  await check('unknown token', a, post('Ping', undefined, { Authorization: 'Bearer not-a-key' }), {
    status: 401,
    type: 'unauthorized',
    more: (r) => expectMatch('WWW-Authenticate', r.headers['www-authenticate'], /invalid_token/),
  });
  await check('a key without the actions scope', a, post('Ping', undefined, CRM), {
    status: 403,
    type: 'forbidden',
    more: (r) => expectEq('required_scope', r.json.required_scope, 'actions'),
  });
  await check('Command, on the deny list', a, post('Command', { Command: 'core show version' }), {
    status: 403,
    type: 'action-denied',
    more: (r) => expectEq('action', r.json.action, 'Command'),
  });
  await check('Login, reserved', a, post('Login', { Username: 'admin', Secret: 'x' }), {
    status: 403,
    type: 'action-reserved',
  });
  await check(
    'Originate of Application System',
    a,
    post('Originate', { Channel: 'Local/100@demo', Application: 'System', Data: 'id' }),
    { status: 403, type: 'action-denied', more: (r) => expectEq('field', r.json.field, 'Application') },
  );
  await check('a value that calls SHELL(', a, post('Getvar', { Variable: 'X', Value: '${SHELL(id)}' }), {
    status: 403,
    type: 'action-denied',
    more: (r) => expectEq('rule', r.json.rule, 'SHELL'),
  });
  await check('Status as a read-only AMI user', b, post('Status', undefined, {}, '?server=viewer'), {
    status: 403,
    type: 'ami-permission-denied',
    more: (r) => expectEq('ami_message', r.json.ami_message, 'Permission denied'),
  });

  /* 404, 405, 413, 415, 422 */
  await check('unknown route', a, { method: 'POST', path: '/v1/nope', headers: OPS }, { status: 404, type: 'not-found' });
  await check('trailing slash', a, { method: 'POST', path: '/v1/actions/Ping/', headers: OPS }, {
    status: 404,
    type: 'not-found',
  });
  await check('a path that is not UTF-8', a, { method: 'GET', path: '/v1/\xff', headers: OPS }, {
    status: 404,
    type: 'not-found',
    more: (r) => expectEq('instance', r.json.instance, '/v1/\ufffd'),
  });
  await check('unknown AMI action', a, post('NoSuchAction'), { status: 404, type: 'ami-unknown-action' });
  await check(
    'Getvar on a channel that does not exist',
    a,
    post('Getvar', { Channel: 'Local/999@demo-0000ffff;1', Variable: 'X' }),
    { status: 404, type: 'ami-no-such-channel' },
  );
  await check('GET on the actions route', a, { method: 'GET', path: '/v1/actions/Ping', headers: OPS }, {
    status: 405,
    type: 'method-not-allowed',
    more: (r) => expectEq('Allow', r.headers.allow, 'POST'),
  });
  await check('a body over AMIBRIDGE_MAX_BODY', b, post('Getvar', { Variable: 'x'.repeat(2000) }, {}), {
    status: 413,
    type: 'payload-too-large',
    more: (r) => expectEq('max_body', r.json.max_body, 1024),
  });
  await check(
    'a text/plain body',
    a,
    { method: 'POST', path: '/v1/actions/Ping', headers: { ...OPS, 'Content-Type': 'text/plain' }, body: 'Ping' },
    { status: 415, type: 'unsupported-media-type' },
  );
  await check('Getvar without Variable', a, post('Getvar', {}), {
    status: 422,
    type: 'ami-error',
    more: (r) => expectEq('ami_message', r.json.ami_message, 'No variable specified'),
  });
  await check('Command that Asterisk does not know', b, post('Command', { Command: 'no such cli command' }, {}), {
    status: 422,
    type: 'ami-error',
    more: (r) => (r.json.output?.length ? [] : ['no output lines']),
  });

  /* POST /v1/calls */
  const call = (body, headers = OPS, query = '') => postTo(`/v1/calls${query}`, body, headers);
  const demo100 = { channel: 'Local/100@demo', context: 'demo', exten: '100' };
  const rateHeaders = (r) =>
    ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset'].filter((h) => r.headers[h] === undefined).map((h) => `no ${h} header`);
  await check('call answered', a, call(demo100), {
    status: 200,
    more: (r) => [
      ...expectEq('status', r.json.status, 'answered'),
      ...expectEq('answered', r.json.answered, true),
      ...expectEq('reason_code', r.json.reason_code, 4),
      ...expectMatch('channel', r.json.channel, /^Local\/100@demo-[0-9a-f]+;1$/),
      ...expectEq('linkedid', r.json.linkedid, r.json.uniqueid),
      ...rateHeaders(r),
    ],
  });
  await check('call to a busy line', a, call({ channel: 'Local/300@demo', context: 'demo', exten: '100' }), {
    status: 200,
    more: (r) => [
      ...expectEq('status', r.json.status, 'busy'),
      ...expectEq('reason_code', r.json.reason_code, 5),
      ...expectEq('uniqueid', r.json.uniqueid, null),
    ],
  });
  await check('call nobody answers', a, call({ channel: 'Local/302@demo', context: 'demo', exten: '100', timeout: 1 }), {
    status: 200,
    more: (r) => [...expectEq('status', r.json.status, 'no_answer'), ...expectEq('answered', r.json.answered, false)],
  });
  await check(
    'call connected to an application',
    a,
    call({ channel: 'Local/100@demo', application: 'Wait', data: '1', caller_id: 'Contract <5550100>', variables: { CONTRACT_VAR: 'x' } }),
    { status: 200, more: (r) => expectEq('status', r.json.status, 'answered') },
  );
  // wait:false: the outcome is the OriginateResponse with the call's id on the event stream
  const events = stream('the event stream', a, get('/v1/events?events=OriginateResponse,Hangup', CRM));
  await events.until((r) => r.text.includes(': connected to amibridge'));
  const queued = await check('call, wait:false', a, call({ ...demo100, wait: false, reference: 'crm-contract-1' }, CRM), {
    status: 202,
    more: (r) => [...expectEq('status', r.json.status, 'queued'), ...expectEq('channel', r.json.channel, 'Local/100@demo'), ...rateHeaders(r)],
  });
  // a call hung up as a whole, then again (ended), and one that never was
  {
    const long = await check('a long call to hang up', a, call({ channel: 'Local/200@demo', context: 'demo', exten: '200', wait: false }, CRM), { status: 202 });
    const cid = long?.json?.call_id ?? 'none';
    for (let i = 0; i < 50; i++) {
      const r = await request(a, get(`/v1/calls/${cid}`, CRM));
      const j = r.status === 200 ? JSON.parse(r.text) : null;
      if ((j?.legs?.length ?? 0) >= 2) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    await check('hang up a call', a, { method: 'DELETE', path: `/v1/calls/${cid}`, headers: OPS }, {
      status: 200,
      more: (r) => (r.json.hung_up.length + r.json.gone.length >= 2 ? [] : ['fewer than two legs hung up']),
    });
    for (let i = 0; i < 50; i++) {
      const r = await request(a, get(`/v1/calls/${cid}`, CRM));
      const j = r.status === 200 ? JSON.parse(r.text) : null;
      if (j?.state === 'ended') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    await check('hang up a call that ended', a, { method: 'DELETE', path: `/v1/calls/${cid}`, headers: OPS }, { status: 409, type: 'call-ended' });
    await check('hang up a call that never was', a, { method: 'DELETE', path: '/v1/calls/1796399999.999', headers: OPS }, { status: 404, type: 'no-such-call' });
  }
  // the call is known by its call_id at once, and echoes its reference
  await check('the placed call by its call_id', a, get(`/v1/calls/${queued?.json?.call_id ?? 'none'}`, CRM), {
    status: 200,
    more: (r) => [
      ...expectEq('direction', r.json.direction, 'originated'),
      ...expectEq('reference', r.json.origination?.reference, 'crm-contract-1'),
      ...expectEq('origination.id', r.json.origination?.id, queued?.json?.id),
    ],
  });
  const outcomeOf = (text) => sseBlocks(text).find((b) => b.event === 'OriginateResponse' && b.data?.fields?.ActionID === queued?.json?.id);
  await events.until((r) => outcomeOf(r.text));
  await events.done({
    status: 200,
    more: (r) => {
      const o = outcomeOf(r.text);
      return [
        ...streamProblems(r.text, /^[0-9]+$/),
        ...expectEq('X-Accel-Buffering', r.headers['x-accel-buffering'], 'no'),
        ...(o ? [] : [`no OriginateResponse with ActionID ${queued?.json?.id}`]),
        ...(o ? [...expectEq('Response', o.data.fields.Response, 'Success'), ...expectEq('Reason', o.data.fields.Reason, '4')] : []),
      ];
    },
  });

  // Idempotency-Key: the first reply again, once; another body is refused
  const keyed = { ...CRM, 'Idempotency-Key': 'contract-call-1' };
  const first = await check('call with an Idempotency-Key', a, call(demo100, keyed), {
    status: 200,
    more: (r) => expectEq('Idempotent-Replayed', r.headers['idempotent-replayed'], undefined),
  });
  await check(
    'the same call again, members in another order',
    a,
    call({ exten: '100', context: 'demo', channel: 'Local/100@demo' }, keyed),
    {
      status: 200,
      more: (r) => [
        ...expectEq('Idempotent-Replayed', r.headers['idempotent-replayed'], 'true'),
        ...expectEq('body', r.text, first?.text),
        ...expectEq('RateLimit-Limit', r.headers['ratelimit-limit'], undefined),
      ],
    },
  );
  await check('the Idempotency-Key with another body', a, call({ ...demo100, exten: '150' }, keyed), {
    status: 422,
    type: 'idempotency-key-reused',
    more: (r) => expectEq('field', r.json.field, 'Idempotency-Key'),
  });

  await check('call without exten', a, call({ channel: 'Local/100@demo', context: 'demo' }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'exten'),
  });
  await check('call with an unknown member', a, call({ ...demo100, Channel: 'x' }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'Channel'),
  });
  await check('call with both a destination and an application', a, call({ ...demo100, application: 'Wait' }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'context'),
  });
  await check('call with a bad variable name', a, call({ ...demo100, variables: { 'A B': 'x' } }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'variables.A B'),
  });
  await check('call with a null member', a, call({ ...demo100, caller_id: null }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'caller_id'),
  });
  await check('call with a bad Idempotency-Key', a, call(demo100, { ...OPS, 'Idempotency-Key': 'two words' }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'Idempotency-Key'),
  });
  await check('call, invalid JSON', a, call('{"channel":'), { status: 400, type: 'invalid-json', invalidRequest: true });
  await check('call without a token', a, call(demo100, {}), { status: 401, type: 'unauthorized' });
  await check('call with a key without the call scope', d, call(demo100, READER), {
    status: 403,
    type: 'forbidden',
    more: (r) => expectEq('required_scope', r.json.required_scope, 'call'),
  });
  await check('call to Application System', a, call({ channel: 'Local/100@demo', application: 'System', data: 'id' }), {
    status: 403,
    type: 'action-denied',
    more: (r) => [...expectEq('field', r.json.field, 'application'), ...expectEq('rule', r.json.rule, '*system*')],
  });
  await check('call with a caller id that calls SHELL(', a, call({ ...demo100, caller_id: '${SHELL(id)}' }), {
    status: 403,
    type: 'action-denied',
    more: (r) => [...expectEq('field', r.json.field, 'caller_id'), ...expectEq('rule', r.json.rule, 'SHELL')],
  });
  await check('dial policy: a channel outside allow_channels', d, call({ ...demo100, channel: 'PJSIP/1001' }, DIALER), {
    status: 403,
    type: 'dial-policy',
    more: (r) => [...expectEq('field', r.json.field, 'channel'), ...expectEq('rule', r.json.rule, 'allow_channels')],
  });
  await check('dial policy: a context outside allow_contexts', d, call({ ...demo100, context: 'other' }, DIALER), {
    status: 403,
    type: 'dial-policy',
    more: (r) => [...expectEq('field', r.json.field, 'context'), ...expectEq('rule', r.json.rule, 'allow_contexts')],
  });
  await check('dial policy: a Local channel to a denied exten', d, call({ ...demo100, channel: 'Local/900@demo' }, DIALER), {
    status: 403,
    type: 'dial-policy',
    more: (r) => [...expectEq('field', r.json.field, 'channel'), ...expectEq('rule', r.json.rule, 'deny_extens: 9*')],
  });
  await check('generic Originate, dial policy', d, post('Originate', { Channel: 'Local/100@demo', Context: 'other', Exten: '100', Priority: 1 }, DIALER), {
    status: 403,
    type: 'dial-policy',
    more: (r) => [...expectEq('field', r.json.field, 'Context'), ...expectEq('rule', r.json.rule, 'allow_contexts')],
  });
  const someChannel = `/v1/channels/${encodeURIComponent('Local/200@demo-00000000;1')}`;
  await check('redirect, dial policy', d, postTo(`${someChannel}/redirect`, { context: 'other', exten: '250', priority: 1 }, DIALER), {
    status: 403,
    type: 'dial-policy',
    more: (r) => expectEq('field', r.json.field, 'context'),
  });
  await check('blind transfer, dial policy', d, postTo(`${someChannel}/blind-transfer`, { context: 'demo', exten: '999' }, DIALER), {
    status: 403,
    type: 'dial-policy',
    more: (r) => [...expectEq('field', r.json.field, 'exten'), ...expectEq('rule', r.json.rule, 'deny_extens: 9*')],
  });
  await check('call within the dial policy', d, call(demo100, DIALER), {
    status: 200,
    more: (r) => [
      ...expectEq('status', r.json.status, 'answered'),
      ...expectEq('RateLimit-Limit', r.headers['ratelimit-limit'], '1'),
      ...expectEq('RateLimit-Remaining', r.headers['ratelimit-remaining'], '0'),
    ],
  });
  await check('call over the key\'s rate', d, call(demo100, DIALER), {
    status: 429,
    type: 'rate-limited',
    more: (r) => [
      ...expectEq('RateLimit-Remaining', r.headers['ratelimit-remaining'], '0'),
      ...(Number(r.headers['retry-after']) >= 50 ? [] : [`Retry-After ${r.headers['retry-after']}, want about 100`]),
    ],
  });
  await check(
    'generic Originate over the key\'s rate',
    d,
    post('Originate', { Channel: 'Local/100@demo', Context: 'demo', Exten: '100', Priority: 1, Async: true }, DIALER),
    { status: 429, type: 'rate-limited', more: (r) => (Number(r.headers['retry-after']) >= 50 ? [] : ['Retry-After is not about 100']) },
  );
  await check('Originate refused to the AMI user', d, call(demo100, OPS, '?server=viewer'), {
    status: 403,
    type: 'ami-permission-denied',
    more: (r) => expectEq('ami_message', r.json.ami_message, 'Permission denied'),
  });
  await check('call to an extension that does not exist', a, call({ ...demo100, exten: '999' }), {
    status: 422,
    type: 'ami-error',
    more: (r) => expectEq('ami_message', r.json.ami_message, 'Extension does not exist.'),
  });
  // amibridge-d takes one call in flight per server: a ringing one fills it
  await check('call, wait:false, still ringing', d, call({ channel: 'Local/302@demo', context: 'demo', exten: '100', timeout: 2, wait: false }), {
    status: 202,
  });
  await check('call while another waits for its outcome', d, call(demo100), {
    status: 429,
    type: 'too-many-calls-in-flight',
    more: (r) => [...expectEq('server', r.json.server, 'pbx1'), ...expectEq('Retry-After', r.headers['retry-after'], '1'), ...rateHeaders(r)],
  });
  await check(
    'generic Originate while a call waits for its outcome',
    d,
    post('Originate', { Channel: 'Local/100@demo', Context: 'demo', Exten: '100', Priority: 1, Async: true }),
    { status: 429, type: 'too-many-calls-in-flight', more: (r) => expectMatch('RateLimit-Remaining', r.headers['ratelimit-remaining'], /^[0-9]+$/) },
  );
  await check('call with a body over AMIBRIDGE_MAX_BODY', b, call({ ...demo100, variables: { X: 'x'.repeat(1100) } }, {}), {
    status: 413,
    type: 'payload-too-large',
  });
  await check(
    'call with a text/plain body',
    a,
    { method: 'POST', path: '/v1/calls', headers: { ...OPS, 'Content-Type': 'text/plain' }, body: 'call 100' },
    { status: 415, type: 'unsupported-media-type' },
  );
  await check('call, AMI login rejected', c, call(demo100), {
    status: 503,
    type: 'ami-unavailable',
    more: (r) => expectEq('Retry-After', r.headers['retry-after'], '2'),
  });
  await check('call with an Idempotency-Key, Redis unreachable', e, call(demo100, { 'Idempotency-Key': 'contract-call-2' }), {
    status: 503,
    type: 'idempotency-unavailable',
    more: (r) => expectEq('Retry-After', r.headers['retry-after'], '2'),
  });
  await check('call without a key, Redis unreachable', e, call(demo100, {}), { status: 200 });

  /* GET /v1/events */
  await check('event stream, a filter without a key', a, get('/v1/events?filter=Channel', CRM), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'filter'),
  });
  await check('event stream of an unknown server', a, get('/v1/events?server=nope', CRM), {
    status: 400,
    type: 'invalid-field',
    more: (r) => expectEq('field', r.json.field, 'server'),
  });
  await check('event stream without a token', d, get('/v1/events', {}), { status: 401, type: 'unauthorized' });
  await check('event stream with a key without read', d, get('/v1/events', DIALER), {
    status: 403,
    type: 'forbidden',
    more: (r) => expectEq('required_scope', r.json.required_scope, 'read'),
  });
  // several servers: ids are SERVER:SEQ; Last-Event-ID replays what is kept
  const dEvents = stream(
    'the event stream, several servers, Last-Event-ID',
    d,
    get('/v1/events?events=OriginateResponse&server=pbx1', { ...READER, 'Last-Event-ID': 'pbx1:0' }),
  );
  await dEvents.until((r) => sseBlocks(r.text).some((bl) => bl.event === 'OriginateResponse'));
  await check('a second event stream of one key over AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY', d, get('/v1/events', READER), {
    status: 429,
    type: 'too-many-streams-per-key',
    more: (r) => [...expectEq('Retry-After', r.headers['retry-after'], '5'), ...expectEq('limit', r.json.limit, 1)],
  });
  const dOps = stream('an event stream of another key', d, get('/v1/events?server=pbx1', OPS));
  await dOps.until((r) => r.text.includes('connected to amibridge'));
  await check('a third event stream over AMIBRIDGE_SSE_MAX_CLIENTS', d, get('/v1/events', READER), {
    status: 503,
    type: 'too-many-stream-clients',
    more: (r) => expectEq('Retry-After', r.headers['retry-after'], '5'),
  });
  await dOps.done({ status: 200, more: (r) => streamProblems(r.text, /^pbx1:[0-9]+$/) });
  await dEvents.done({
    status: 200,
    more: (r) => [
      ...streamProblems(r.text, /^pbx1:[0-9]+$/),
      ...(sseBlocks(r.text).some((bl) => bl.event === 'OriginateResponse') ? [] : ['no OriginateResponse replayed']),
    ],
  });

  /* GET /metrics */
  await check('metrics, no key needed', a, get('/metrics', {}), {
    status: 200,
    more: (r) => [
      ...expectEq('Content-Type', r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8'),
      ...metricsProblems(r.text, ['amibridge_build_info', 'amibridge_http_requests_total', 'amibridge_sse_clients']),
      ...(/^amibridge_http_requests_total\{route="calls",status="200"\} [1-9]/m.test(r.text) ? [] : ['no 200 of /v1/calls counted']),
    ],
  });
  await check('metrics with AMIBRIDGE_METRICS_AUTH=1, no token', d, get('/metrics', {}), { status: 401, type: 'unauthorized' });
  await check('metrics with AMIBRIDGE_METRICS_AUTH=1, a key without read', d, get('/metrics', DIALER), {
    status: 403,
    type: 'forbidden',
    more: (r) => expectEq('required_scope', r.json.required_scope, 'read'),
  });
  await check('metrics with AMIBRIDGE_METRICS_AUTH=1', d, get('/metrics', READER), {
    status: 200,
    more: (r) => [
      ...metricsProblems(r.text, ['amibridge_originate_rejected_total']),
      // three calls and one generic Originate; moving a call is no originate
      ...(/^amibridge_originate_rejected_total\{reason="policy"\} 4$/m.test(r.text) ? [] : ['not 4 dial policy refusals counted']),
    ],
  });

  /* /v1/webhooks: subscriptions on amibridge-a delivering to the receiver */
  const whPath = (id, rest = '') => `/v1/webhooks/${id}${rest}`;
  const created = await check(
    'create a webhook subscription',
    a,
    postTo('/v1/webhooks', {
      url: rxUrl('/crm'),
      events: ['OriginateResponse', 'Hangup'],
      filter: { Context: 'demo' },
      description: 'CRM: call outcomes',
    }),
    {
      status: 201,
      more: (r) => [
        ...expectMatch('id', r.json.id, /^wh_[0-9a-f]{16}$/),
        ...expectEq('Location', r.headers.location, whPath(r.json.id)),
        ...expectMatch('secret', r.json.secret, /^whsec_[A-Za-z0-9+/]{43}=$/),
        ...expectEq('signature', r.json.signature, 'both'),
        ...expectEq('previous_secrets', JSON.stringify(r.json.previous_secrets), '[]'),
        ...expectEq('enabled', r.json.enabled, true),
        ...expectEq('static', r.json.static, false),
        ...expectEq('reason', r.json.reason, null),
        ...(Math.abs(r.json.created - Date.now() / 1000) < 300 ? [] : [`created ${r.json.created} is not now`]),
      ],
    },
  );
  const crm = created?.json ?? { id: 'wh_0000000000000001', secret: 'x' };
  // a receiver that answers 410 Gone: the first event disables it
  const goneSecret = 'contract-gone-secret-0123';
  const goneCreated = await check(
    'create a webhook subscription with its own secret',
    a,
    postTo('/v1/webhooks', { url: rxUrl('/gone'), events: ['OriginateResponse'], secret: goneSecret }),
    { status: 201, more: (r) => [...expectEq('secret', r.json.secret, goneSecret), ...expectEq('description', r.json.description, null)] },
  );
  const gone = goneCreated?.json ?? { id: 'wh_0000000000000002' };
  await check('create a webhook, ftp URL', a, postTo('/v1/webhooks', { url: 'ftp://x', events: ['*'] }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'url'),
  });
  await check('create a webhook, private address', a, postTo('/v1/webhooks', { url: 'http://10.1.2.3/hook', events: ['*'] }), {
    status: 400,
    type: 'invalid-field',
    more: (r) => [...expectEq('field', r.json.field, 'url'), ...expectMatch('detail', r.json.detail, /AMIBRIDGE_WEBHOOK_ALLOW_NETS/)],
  });
  await check('create a webhook, a glob with a blank', a, postTo('/v1/webhooks', { url: rxUrl('/x'), events: ['Hangup', 'Queue Member*'] }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'events[1]'),
  });
  await check('create a webhook, unknown member', a, postTo('/v1/webhooks', { url: rxUrl('/x'), events: ['*'], headers: { 'X-Token': 'abc' } }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'headers'),
  });
  await check('create a webhook, short secret', a, postTo('/v1/webhooks', { url: rxUrl('/x'), events: ['*'], secret: 'short' }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'secret'),
  });
  await check('create a webhook, invalid JSON', a, postTo('/v1/webhooks', '{"url":'), { status: 400, type: 'invalid-json', invalidRequest: true });
  await check('list webhook subscriptions', a, get('/v1/webhooks'), {
    status: 200,
    more: (r) => [
      ...expectEq('ids', r.json.webhooks.map((w) => w.id).join(','), `${crm.id},${gone.id}`),
      ...r.json.webhooks.filter((w) => 'secret' in w).map((w) => `${w.id} shows its secret`),
    ],
  });
  await check(
    'PATCH a webhook subscription',
    a,
    patch(whPath(crm.id), { description: 'CRM: answered calls', filter: { Context: 'demo', Response: 'Success' } }),
    {
      status: 200,
      more: (r) => [
        ...expectEq('description', r.json.description, 'CRM: answered calls'),
        ...expectEq('filter', JSON.stringify(r.json.filter), '{"Context":"demo","Response":"Success"}'),
        ...expectEq('events', r.json.events.join(','), 'OriginateResponse,Hangup'),
        ...('secret' in r.json ? ['the reply shows the secret'] : []),
      ],
    },
  );
  await check('PATCH a webhook subscription, enabled is not a boolean', a, patch(whPath(crm.id), { enabled: 'yes' }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'enabled'),
  });
  // a test delivery: the receiver gets a signed ping
  await check('test delivery', a, { method: 'POST', path: whPath(crm.id, '/test'), headers: OPS }, {
    status: 200,
    more: (r) => {
      const q = rx.requests.find((x) => x.headers['x-amibridge-delivery'] === r.json.delivery_id);
      if (!q) return [`the receiver got no request with X-Amibridge-Delivery ${r.json.delivery_id}`];
      const { out, body } = deliveryProblems(q, crm.secret, crm.id, 'ping');
      return [
        ...expectEq('result', r.json.result, 'delivered'),
        ...expectEq('status', r.json.status, 200),
        ...expectEq('error', r.json.error, null),
        ...expectEq('path', q.path, '/crm'),
        ...expectEq('X-Amibridge-Attempt', q.headers['x-amibridge-attempt'], '1'),
        ...out,
        ...expectEq('body.webhook', body?.webhook, crm.id),
      ];
    },
  });
  // an event: a call's OriginateResponse goes to both subscriptions; /gone
  // answers 410, which disables its subscription
  await request(a, call(demo100));
  const delivered = (id, event) => async () => {
    const r = await request(a, get(whPath(id, '/deliveries')));
    return r.status === 200 && JSON.parse(r.text).deliveries.some((x) => x.event === event);
  };
  if (!(await waitFor(delivered(crm.id, 'OriginateResponse'))))
    report(false, 'the OriginateResponse of a call was never delivered to the webhook receiver');
  await waitFor(async () => {
    const r = await request(a, get(whPath(gone.id)));
    return r.status === 200 && JSON.parse(r.text).enabled === false;
  });
  {
    const q = rx.requests.find((x) => x.path === '/crm' && x.headers['x-amibridge-event'] === 'OriginateResponse');
    const problems = [];
    if (!q) problems.push('the receiver got no OriginateResponse at /crm');
    else {
      const { out, body } = deliveryProblems(q, crm.secret, crm.id, 'OriginateResponse');
      problems.push(...out, ...(body ? schemaErrors(EVENT_SCHEMA, body) : []), ...expectEq('fields.Response', body?.fields?.Response, 'Success'));
    }
    report(!problems.length, 'an event delivered by a webhook: signed, the body an Event', problems);
  }
  await check('GET a webhook subscription', a, get(whPath(crm.id)), {
    status: 200,
    more: (r) => [
      ...expectEq('stats.delivered', r.json.stats.delivered, 1),
      ...expectEq('stats.queued', r.json.stats.queued, 0),
      ...expectEq('enabled', r.json.enabled, true),
      ...('secret' in r.json ? ['the reply shows the secret'] : []),
    ],
  });
  await check('GET a webhook subscription disabled by a 410', a, get(whPath(gone.id)), {
    status: 200,
    more: (r) => [...expectEq('enabled', r.json.enabled, false), ...expectMatch('reason', r.json.reason, /410 Gone/)],
  });
  await check('GET the deliveries of a subscription', a, get(whPath(crm.id, '/deliveries')), {
    status: 200,
    more: (r) => {
      const d = r.json.deliveries;
      const times = d.map((x) => x.time);
      return [
        ...expectEq('webhook', r.json.webhook, crm.id),
        ...expectEq('events', d.map((x) => `${x.event} ${x.result}`).join(', '), 'OriginateResponse delivered, ping delivered'),
        ...(times.every((t, i) => i === 0 || times[i - 1] >= t) ? [] : ['not newest first']),
      ];
    },
  });
  await check('GET the deliveries of a subscription disabled by a 410', a, get(whPath(gone.id, '/deliveries')), {
    status: 200,
    more: (r) => [
      ...expectEq('deliveries[0].result', r.json.deliveries[0]?.result, 'disabled'),
      ...expectEq('deliveries[0].status', r.json.deliveries[0]?.status, 410),
    ],
  });
  // resume it, at a URL where nobody listens: the test fails
  const nobody = `http://127.0.0.1:${await closedPort()}/hook`;
  await check('PATCH a webhook subscription: resume, new URL', a, patch(whPath(gone.id), { url: nobody, enabled: true }), {
    status: 200,
    more: (r) => [...expectEq('enabled', r.json.enabled, true), ...expectEq('reason', r.json.reason, null)],
  });
  // a new secret: the old one keeps signing webhook-signature for the grace period
  await check(
    'PATCH a webhook subscription: a new secret, with a grace period',
    a,
    patch(whPath(gone.id), { secret: 'whsec_yFcAJsOAnJJZmgrgAqdH2Z7lEbfjAJ5GszPPMbvh7V0=', secret_grace_s: 3600, signature: 'standard' }),
    {
      status: 200,
      more: (r) => [
        ...expectEq('signature', r.json.signature, 'standard'),
        ...expectEq('previous_secrets.length', r.json.previous_secrets.length, 1),
        ...(Math.abs(r.json.previous_secrets[0]?.expires - (Date.now() / 1000 + 3600)) < 60 ? [] : ['previous_secrets[0].expires is not in an hour']),
        ...(JSON.stringify(r.json).includes('whsec_') || r.text.includes(goneSecret) ? ['the reply shows a secret'] : []),
      ],
    },
  );
  await check('PATCH a webhook subscription, an unknown signature scheme', a, patch(whPath(gone.id), { signature: 'v2' }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'signature'),
  });
  await check('PATCH a webhook subscription, secret_grace_s without a secret', a, patch(whPath(gone.id), { secret_grace_s: 60 }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => expectEq('field', r.json.field, 'secret_grace_s'),
  });
  await check('PATCH a webhook subscription, a whsec_ secret that is not base64', a, patch(whPath(gone.id), { secret: 'whsec_not-base64-at-all!' }), {
    status: 400,
    type: 'invalid-field',
    more: (r) => expectEq('field', r.json.field, 'secret'),
  });
  await check('test delivery to a closed port', a, { method: 'POST', path: whPath(gone.id, '/test'), headers: OPS }, {
    status: 200,
    more: (r) => [
      ...expectEq('result', r.json.result, 'failed'),
      ...expectEq('status', r.json.status, null),
      ...(typeof r.json.error === 'string' && r.json.error ? [] : ['no error']),
    ],
  });
  await check('DELETE a webhook subscription', a, del(whPath(gone.id)), { status: 204 });
  await check('DELETE a webhook subscription twice', a, del(whPath(gone.id)), {
    status: 404,
    type: 'webhook-not-found',
    more: (r) => expectEq('field', r.json.field, 'id'),
  });
  const nope = whPath('wh_0000000000000000');
  await check('GET a webhook subscription named by a byte that is not UTF-8', a, get('/v1/webhooks/%FF'), {
    status: 404,
    type: 'webhook-not-found',
    more: (r) => (typeof r.json.detail === 'string' && r.json.detail ? [] : ['no detail']),
  });
  await check('GET a webhook subscription that does not exist', a, get(nope), {
    status: 404,
    type: 'webhook-not-found',
    more: (r) => expectEq('field', r.json.field, 'id'),
  });
  await check('PATCH a webhook subscription that does not exist', a, patch(nope, { enabled: false }), { status: 404, type: 'webhook-not-found' });
  await check('test delivery of a subscription that does not exist', a, { method: 'POST', path: `${nope}/test`, headers: OPS }, {
    status: 404,
    type: 'webhook-not-found',
  });
  await check('GET the deliveries of a subscription that does not exist', a, get(`${nope}/deliveries`), { status: 404, type: 'webhook-not-found' });
  await check('webhooks without a token', a, get('/v1/webhooks', {}), { status: 401, type: 'unauthorized' });
  await check('webhooks with a key without admin', a, get('/v1/webhooks', CRM), {
    status: 403,
    type: 'forbidden',
    more: (r) => expectEq('required_scope', r.json.required_scope, 'admin'),
  });
  await check('PUT on a webhook subscription', a, { method: 'PUT', path: whPath(crm.id), headers: OPS }, {
    status: 405,
    type: 'method-not-allowed',
    more: (r) => expectEq('Allow', r.headers.allow, 'GET, HEAD, PATCH, DELETE'),
  });
  // amibridge-d: a static subscription (read-only), and room for no other
  await check('GET a static webhook subscription', d, get(whPath('static-crm')), {
    status: 200,
    more: (r) => [...expectEq('static', r.json.static, true), ...expectEq('url', r.json.url, rxUrl('/static-crm'))],
  });
  await check('PATCH a static webhook subscription', d, patch(whPath('static-crm'), { enabled: false }), {
    status: 409,
    type: 'webhook-static',
    more: (r) => expectEq('field', r.json.field, 'id'),
  });
  await check('DELETE a static webhook subscription', d, del(whPath('static-crm')), { status: 409, type: 'webhook-static' });
  await check(
    'create a webhook over AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS',
    d,
    postTo('/v1/webhooks', { url: rxUrl('/more'), events: ['*'] }),
    { status: 409, type: 'webhook-limit' },
  );
  await check('test delivery of a static subscription', d, { method: 'POST', path: whPath('static-crm', '/test'), headers: OPS }, {
    status: 200,
    more: (r) => expectEq('result', r.json.result, 'delivered'),
  });
  {
    // amibridge-d placed calls earlier: their outcomes went to the static subscription
    const q = rx.requests.find((x) => x.path === '/static-crm' && x.headers['x-amibridge-event'] === 'OriginateResponse');
    const problems = q ? deliveryProblems(q, STATIC_SECRET, 'static-crm', 'OriginateResponse').out : ['the receiver got no OriginateResponse at /static-crm'];
    report(!problems.length, 'a static webhook subscription delivers, signed with the config file\'s secret', problems);
  }
  await check('create a webhook, Redis unreachable', e, postTo('/v1/webhooks', { url: 'https://crm.example/hooks/asterisk', events: ['Hangup'] }, {}), {
    status: 503,
    type: 'store-unavailable',
    more: (r) => expectEq('Retry-After', r.headers['retry-after'], '2'),
  });

  /* OPTIONS: every path, as a CORS preflight from an allowed origin */
  for (const template of Object.keys(spec.paths)) {
    const p = template
      .replace('{action}', 'Ping')
      .replace('{channel}', encodeURIComponent('Local/200@demo-00000000;1'))
      .replace('{name}', 'DEMO_VAR')
      .replace('{queue}', 'sales')
      .replace('{interface}', encodeURIComponent('Local/202@demo'))
      .replace('{id}', 'static-crm');
    const methods = METHODS.filter((m) => m !== 'options' && spec.paths[template][m]).map((m) => m.toUpperCase());
    if (methods.includes('GET')) methods.push('HEAD');
    const want = methods.sort().join(', ');
    await check(
      `preflight of ${template}`,
      d,
      options(p, { Origin: CORS_ORIGIN, 'Access-Control-Request-Method': methods[0], 'Access-Control-Request-Headers': 'authorization' }),
      {
        status: 204,
        more: (r) => [
          ...expectEq('Allow (sorted) against the spec', (r.headers.allow ?? '').split(', ').sort().join(', '), want),
          ...expectEq('Access-Control-Allow-Origin', r.headers['access-control-allow-origin'], CORS_ORIGIN),
          ...expectEq('Access-Control-Allow-Methods', r.headers['access-control-allow-methods'], r.headers.allow),
          ...expectEq('Vary', r.headers.vary, 'Origin'),
        ],
      },
    );
  }
  await check('OPTIONS without an Origin', a, options('/v1/calls'), {
    status: 204,
    more: (r) => [...expectEq('Allow', r.headers.allow, 'POST'), ...expectEq('Access-Control-Allow-Origin', r.headers['access-control-allow-origin'], undefined)],
  });
  await check('preflight from an origin not on AMIBRIDGE_CORS_ORIGINS', d, options('/v1/calls', { Origin: 'https://elsewhere.example', 'Access-Control-Request-Method': 'POST' }), {
    status: 403,
    type: 'cors-origin-not-allowed',
  });
  await check('preflight from an origin that is not UTF-8 (a Latin-1 byte)', d, options('/v1/calls', { Origin: 'https://cr\u00e9m.example', 'Access-Control-Request-Method': 'POST' }), {
    status: 403,
    type: 'cors-origin-not-allowed',
    more: (r) => (typeof r.json.detail === 'string' && r.json.detail ? [] : ['no detail']),
  });
  await check('a refusal for an allowed origin carries CORS headers', d, call({}, { ...OPS, Origin: CORS_ORIGIN }), {
    status: 400,
    type: 'invalid-field',
    invalidRequest: true,
    more: (r) => [
      ...expectEq('Access-Control-Allow-Origin', r.headers['access-control-allow-origin'], CORS_ORIGIN),
      ...expectMatch('Access-Control-Expose-Headers', r.headers['access-control-expose-headers'], /RateLimit-Remaining/),
    ],
  });

  /* 503 */
  await check('AMI login rejected', c, post('Ping'), {
    status: 503,
    type: 'ami-unavailable',
    more: (r) => [
      ...expectEq('Retry-After', r.headers['retry-after'], '2'),
      ...expectMatch('detail', r.json.detail, /login is being rejected/),
    ],
  });
  // the simulator now waits before each action: one action fills the
  // in-flight room of 'slow', whose timeout is shorter than the wait
  await check('SimControl (the simulator\'s own action)', b, post('SimControl', { DelayMs: SIM_DELAY_MS }, {}), {
    status: 200,
  });
  const timedOut = check('no AMI reply in time', b, post('Ping', undefined, {}, '?server=slow'), {
    status: 504,
    type: 'ami-timeout',
  });
  if (!(await waitReadyz(b, inFlight('slow')))) report(false, 'the Ping to server slow never was in flight');
  await check('too many actions in flight', b, post('Ping', undefined, {}, '?server=slow'), {
    status: 503,
    type: 'overloaded',
    more: (r) => expectEq('Retry-After', r.headers['retry-after'], '1'),
  });
  await timedOut;
  // an action and a call still waiting when Asterisk goes away
  const lost = check('AMI connection dropped mid-action', a, post('Ping'), {
    status: 502,
    type: 'ami-connection-lost',
  });
  const lostCall = { channel: 'Local/100@demo', context: 'demo', exten: '100', timeout: 5 };
  const lostKey = { ...OPS, 'Idempotency-Key': 'contract-call-lost' };
  const lostCallReply = check('call, AMI connection dropped before the outcome', a, postTo('/v1/calls', lostCall, lostKey), {
    status: 502,
    type: 'ami-connection-lost',
    more: (r) => expectMatch('id', r.json.id, /-[0-9]+$/),
  });
  const twoInFlight = (body) => (body.servers.find((sv) => sv.name === 'default')?.in_flight ?? 0) >= 2;
  if (!(await waitReadyz(a, twoInFlight))) report(false, 'the Ping and the call to server default never were in flight');
  await stop(sim);
  await lost;
  const dropped = await lostCallReply;
  await check('the dropped call again, same Idempotency-Key', a, postTo('/v1/calls', lostCall, lostKey), {
    status: 502,
    type: 'ami-connection-lost',
    more: (r) => [
      ...expectEq('Idempotent-Replayed', r.headers['idempotent-replayed'], 'true'),
      // the first outcome, told to this request: only request_id differs
      ...expectEq('body', JSON.stringify({ ...JSON.parse(r.text), request_id: undefined }),
        JSON.stringify({ ...JSON.parse(dropped?.text ?? '{}'), request_id: undefined })),
      ...expectEq('request_id', r.json?.request_id, r.headers['x-request-id']),
    ],
  });
  // Asterisk is gone: once amibridge has noticed, it fails fast
  await waitReadyz(a, (body) => body.servers[0].action_connections.up === 0 && body.servers[0].event_connection === 'down');
  await check('readiness, AMI down', a, { method: 'GET', path: '/readyz' }, {
    status: 503,
    more: (r) => [
      ...expectEq('ready', r.json.ready, false),
      ...expectEq('servers[0].event_connection', r.json.servers[0]?.event_connection, 'down'),
    ],
  });
  await check('AMI down', a, post('Ping'), {
    status: 503,
    type: 'ami-unavailable',
    more: (r) => [
      ...expectEq('server', r.json.server, 'default'),
      ...expectEq('Retry-After', r.headers['retry-after'], '2'),
    ],
  });

  await check('call, AMI down', a, postTo('/v1/calls', { channel: 'Local/100@demo', context: 'demo', exten: '100' }), {
    status: 503,
    type: 'ami-unavailable',
    more: (r) => expectEq('server', r.json.server, 'default'),
  });

  /* every problem type the code can send is in the spec's ProblemType */
  {
    const types = new Set(spec.components.schemas.ProblemType.enum.map((t) => t.replace(/^urn:amibridge:problem:/, '')));
    const sent = new Map(); // slug -> a file that sends it
    const walk = (dir) => {
      for (const f of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, f.name);
        if (f.isDirectory()) walk(p);
        else if (/\.c$/.test(f.name))
          for (const m of readFileSync(p, 'utf8').matchAll(/\b[1-5][0-9]{2},\s*"([a-z][a-z0-9-]*)"/g))
            if (!sent.has(m[1])) sent.set(m[1], path.relative(ROOT, p));
      }
    };
    walk(path.join(ROOT, 'src'));
    const absent = [...sent].filter(([slug]) => !types.has(slug)).map(([slug, f]) => `${slug} (sent in ${f})`);
    report(sent.size > 30 && !absent.length, `every problem type the code sends is in ProblemType (${sent.size} found in src/)`, absent);
  }

  /* coverage */
  const missing = [...operations.keys()].filter((id) => !exercised.has(id));
  report(
    !missing.length,
    `every operation of the spec was exercised (${operations.size})`,
    missing.map((id) => `not exercised: ${id}`),
  );

  for (const child of [a, b, c, d, e]) {
    if (!running(child)) report(false, `${child.label} stayed up`, [`it exited:\n${logOf(child)}`]);
    await stop(child);
  }
  rx.close();
  return true;
}

const watchdog = setTimeout(() => {
  console.log(`contract: gave up after ${WATCHDOG_MS / 1000} s`);
  killAll();
  process.exit(1);
}, WATCHDOG_MS);

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

let finished = false;
try {
  finished = await run();
} catch (e) {
  console.log(`contract: ${e.message}`);
  for (const c of children) if (c.lines.length) console.log(`  ${c.label}:\n${logOf(c)}`);
}
killAll();
clearTimeout(watchdog);
if (process.env.CONTRACT_DUMP) writeFileSync(process.env.CONTRACT_DUMP, `${JSON.stringify(dump, null, 2)}\n`);
const failed = results.filter((ok) => !ok).length;
if (!finished) {
  console.log(`contract: aborted after ${results.length} checks (${failed} failed)`);
  process.exit(1);
}
if (failed) {
  console.log(`contract: ${failed} of ${results.length} checks FAILED`);
  process.exit(1);
}
console.log(`contract: ${results.length} checks passed`);
