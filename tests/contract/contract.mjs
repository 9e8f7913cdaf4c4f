// Contract test: real replies of the amibridge binary, checked against
// openapi/openapi.yaml.
//
//   node tests/contract/contract.mjs BUILD_DIR
//
// Starts BUILD_DIR/ami-sim and three BUILD_DIR/amibridge processes on
// loopback ports the kernel picks, drives every operation of the spec and
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
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
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

const START_TIMEOUT_MS = 15000;
const SLOW_TIMEOUT_MS = 300; // AMI timeout of amibridge-b's server 'slow'
const SIM_DELAY_MS = 3000; // the simulator's delay before each action, for 502/503/504
const REQUEST_TIMEOUT_MS = 15000;
const WATCHDOG_MS = 90000;
const LOG_LINES_KEPT = 60;

/* --- processes ----------------------------------------------------------------- */

const children = new Set();
let tmpDir = null;

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
  const others = METHODS.filter((m) => match.item[m]).map((m) => match.item[m]);
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
  }
  res.json = value;
  if (schema) out.push(...schemaErrors(schema, value));
  if (ctype === 'application/problem+json' && value && typeof value === 'object') {
    if (value.status !== undefined && value.status !== res.status)
      out.push(`problem status ${value.status} differs from the HTTP status ${res.status}`);
    if (value.request_id !== undefined && value.request_id !== res.headers['x-request-id'])
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
    for (const e of schemaErrors(p.schema, v)) out.push(`${p.in} parameter ${p.name}: ${e.replace(/^body /, '')}`);
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
  const n = String(results.length).padStart(2);
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
  const title = `${name}: ${show(req)} -> ${want.status}${want.type ? ` ${want.type}` : ''}`;
  let res;
  try {
    res = await request(bridge, req);
  } catch (e) {
    report(false, title, [`request failed: ${e.message}`]);
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
  // a: API keys, defaults
  const a = await startBridge('amibridge-a', { ...ami, AMIBRIDGE_API_KEYS: API_KEYS });
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
    { status: 200, more: (r) => expectEq('response', r.json.response, 'Success') },
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
    more: (r) => expectEq('rule', r.json.rule, 'SHELL('),
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
  // an action still waiting when Asterisk goes away
  const lost = check('AMI connection dropped mid-action', a, post('Ping'), {
    status: 502,
    type: 'ami-connection-lost',
  });
  if (!(await waitReadyz(a, inFlight('default')))) report(false, 'the Ping to server default never was in flight');
  await stop(sim);
  await lost;
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

  /* coverage */
  const missing = [...operations.keys()].filter((id) => !exercised.has(id));
  report(
    !missing.length,
    `every operation of the spec was exercised (${operations.size})`,
    missing.map((id) => `not exercised: ${id}`),
  );

  for (const child of [a, b, c]) {
    if (!running(child)) report(false, `${child.label} stayed up`, [`it exited:\n${logOf(child)}`]);
    await stop(child);
  }
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
