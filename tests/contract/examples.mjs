// Refresh the examples of openapi/openapi.yaml from real replies.
//
//   CONTRACT_DUMP=/tmp/replies.json sh tests/contract/run.sh build
//   node tests/contract/examples.mjs /tmp/replies.json
//
// contract.mjs records every exchange it checks when CONTRACT_DUMP is set;
// this script copies the replies named below into `components.examples`,
// which must be the last section of the spec (everything from its
// `  examples:` line to the end of the file is rewritten). Run the contract
// test again afterwards: the lint checks the examples against the schemas
// and the binary must be rebuilt to serve the new file.

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import YAML from 'yaml';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SPEC_PATH = path.resolve(HERE, '..', '..', 'openapi', 'openapi.yaml');

// Prometheus text cut down for the spec: at most two samples per family,
// no histogram buckets.
function abridgeMetrics(text) {
  const seen = new Map();
  return text
    .split('\n')
    .filter((line) => {
      if (!line || line.startsWith('#')) return true;
      if (/_bucket\{/.test(line)) return false;
      const name = line.split(/[{ ]/)[0];
      seen.set(name, (seen.get(name) ?? 0) + 1);
      return seen.get(name) <= 2;
    })
    .join('\n');
}

// example name -> [check name in contract.mjs, summary, optional shaping of the body]
const EXAMPLES = {
  health: ['liveness', 'Alive'],
  'readiness-ready': ['readiness, AMI up', 'Ready'],
  'readiness-ami-down': ['readiness, AMI down', 'Asterisk is unreachable'],
  'readiness-login-rejected': ['readiness, AMI login rejected', 'Asterisk rejects the AMI login'],
  'action-ping': ['Ping, no body', 'Ping'],
  'action-status': ['Status, a list with events', 'Status: a list (one call, two Local channels)'],
  'action-getvar': ['Getvar, global variable', 'Getvar of a global variable'],
  'action-getvar-channel': ['Getvar on a channel', 'Getvar of a channel variable'],
  'action-hangup': ['Hangup', 'Hangup of a channel'],
  'action-queuestatus': ['QueueStatus of one queue', 'QueueStatus of the queue sales'],
  'action-originate': ['Originate, async, repeated Variable', 'Async Originate, queued'],
  'action-command': [
    'Command, allowed, without a token (no keys: loopback)',
    'Command core show version (with AMIBRIDGE_ALLOW_ACTIONS=Command)',
  ],
  'problem-invalid-json': ['invalid JSON', 'The body is not JSON'],
  'problem-invalid-field': ['CR LF in a value', 'A value with CR LF'],
  'problem-invalid-field-action-id': ['ActionID in the body', 'ActionID given in the body'],
  'problem-invalid-field-server': ['unknown server', 'An unknown ?server='],
  'problem-invalid-path': ['bad percent-encoding in the path', 'Bad percent-encoding in the path'],
  'problem-unauthorized': ['no token', 'No Authorization header'],
  'problem-unauthorized-invalid': ['unknown token', 'A token that is no API key'],
  'problem-forbidden': ['a key without the actions scope', 'A key without the actions scope'],
  'problem-action-reserved': ['Login, reserved', 'Login is reserved'],
  'problem-action-denied': ['Command, on the deny list', 'Command is on the default deny list'],
  'problem-action-denied-application': ['Originate of Application System', 'Originate of Application System'],
  'problem-action-denied-function': ['a value that calls SHELL(', 'A value that calls SHELL('],
  'problem-ami-permission-denied': [
    'Status as a read-only AMI user',
    'Asterisk refuses Status to a read-only AMI user',
  ],
  'problem-not-found': ['unknown route', 'No such route'],
  'problem-ami-unknown-action': ['unknown AMI action', 'Asterisk does not know the action'],
  'problem-ami-no-such-channel': ['Getvar on a channel that does not exist', 'No such channel'],
  'problem-method-not-allowed': ['GET on the actions route', 'GET on a POST route'],
  'problem-payload-too-large': ['a body over AMIBRIDGE_MAX_BODY', 'A body over AMIBRIDGE_MAX_BODY=1024'],
  'problem-unsupported-media-type': ['a text/plain body', 'A text/plain body'],
  'problem-ami-error': ['Getvar without Variable', 'Getvar without Variable'],
  'problem-ami-error-output': ['Command that Asterisk does not know', 'A CLI command Asterisk does not know'],
  'problem-ami-unavailable': ['AMI down', 'Asterisk is unreachable'],
  'problem-ami-unavailable-login': ['AMI login rejected', 'Asterisk rejects the AMI login'],
  'problem-overloaded': ['too many actions in flight', 'Too many actions in flight (max_inflight 1)'],
  'problem-ami-connection-lost': ['AMI connection dropped mid-action', 'The AMI connection dropped'],
  'problem-ami-timeout': ['no AMI reply in time', 'No reply within AMIBRIDGE_AMI_TIMEOUT_MS'],
  'channels-list': ['GET /v1/channels with a call up', 'One call: the two halves of a Local channel'],
  channel: ['GET one channel', 'A channel that is up'],
  'channel-variable': ['GET a channel variable', 'A channel variable'],
  'channel-variable-set': ['POST a channel variable', 'A channel variable set'],
  'channel-redirect': ['redirect a channel', 'Redirected to demo, 250'],
  'channel-blind-transfer': ['blind transfer of a bridged channel', 'A queue member transferred its caller'],
  'queues-list': ['GET /v1/queues', 'Two queues'],
  queue: ['GET one queue with a caller waiting', 'A caller waiting while the members are paused'],
  'queue-member-add': ['add a queue member', 'A member added'],
  'queue-member-pause': ['pause a queue member', 'A member paused for lunch'],
  'problem-invalid-field-cause': ['hangup, bad cause', 'A cause that is not a number'],
  'problem-invalid-field-member': ['redirect, priority 0', 'A body member out of range'],
  'problem-forbidden-control': ['hangup with a read-only key', 'A key without the control scope'],
  'problem-no-such-channel': ['hangup of a channel that is gone', 'No such channel'],
  'problem-channel-not-bridged': ['blind transfer of a channel in no bridge', 'A channel in no bridge'],
  'problem-no-such-queue': ['GET a queue that does not exist', 'No such queue'],
  'problem-no-such-member': ['pause a member that is not there', 'No such member'],
  'problem-member-exists': ['add a member twice', 'Already a member'],
  'problem-member-not-dynamic': ['remove a member from queues.conf', 'A member from queues.conf'],
  'call-answered': ['call answered', 'Answered'],
  'call-busy': ['call to a busy line', 'Busy'],
  'call-no-answer': ['call nobody answers', 'Not answered within the timeout'],
  'call-replayed': [
    'the same call again, members in another order',
    'The first reply again (Idempotency-Key; Idempotent-Replayed: true)',
  ],
  'call-queued': ['call, wait:false', 'Queued (wait: false)'],
  'problem-invalid-field-call': ['call without exten', 'A destination without exten'],
  'problem-invalid-field-variable': ['call with a bad variable name', 'A variable name with a blank'],
  'problem-forbidden-call': ['call with a key without the call scope', 'A key without the call scope'],
  'problem-dial-policy': ['dial policy: a channel outside allow_channels', 'A channel outside allow_channels'],
  'problem-dial-policy-context': ['dial policy: a context outside allow_contexts', 'A context outside allow_contexts'],
  'problem-action-denied-call': ['call to Application System', 'Application System'],
  'problem-ami-permission-denied-call': [
    'Originate refused to the AMI user',
    'An AMI user without the originate write class',
  ],
  'problem-idempotency-key-reused': ['the Idempotency-Key with another body', 'An Idempotency-Key reused with another body'],
  'problem-ami-error-call': ['call to an extension that does not exist', 'No such extension'],
  'problem-rate-limited': ['call over the key\'s rate', 'calls_burst 1, calls_per_second 0.01'],
  'problem-too-many-calls-in-flight': ['call while another waits for its outcome', 'AMIBRIDGE_CALLS_MAX_INFLIGHT=1'],
  'problem-call-connection-lost': ['call, AMI connection dropped before the outcome', 'The AMI connection dropped'],
  'problem-ami-unavailable-call': ['call, AMI login rejected', 'Asterisk rejects the AMI login'],
  'problem-idempotency-unavailable': ['call with an Idempotency-Key, Redis unreachable', 'Redis unreachable'],
  'event-stream': ['the event stream', 'One server: an OriginateResponse'],
  'event-stream-servers': [
    'the event stream, several servers, Last-Event-ID',
    'Two servers, ?server=pbx1, replayed after Last-Event-ID: pbx1:0',
  ],
  'problem-invalid-field-events': ['event stream, a filter without a key', 'A filter without Key:'],
  'problem-forbidden-read': ['event stream with a key without read', 'A key without the read scope'],
  'problem-too-many-stream-clients': [
    'a third event stream over AMIBRIDGE_SSE_MAX_CLIENTS',
    'AMIBRIDGE_SSE_MAX_CLIENTS=2',
  ],
  'problem-too-many-streams-per-key': [
    'a second event stream of one key over AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY',
    'AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY=1',
  ],
  metrics: ['metrics, no key needed', 'Metrics (abridged: two samples per family, no buckets)', abridgeMetrics],
  'problem-forbidden-metrics': [
    'metrics with AMIBRIDGE_METRICS_AUTH=1, a key without read',
    'AMIBRIDGE_METRICS_AUTH=1, a key without read',
  ],
  'problem-dial-policy-action': ['generic Originate, dial policy', 'A Context outside allow_contexts'],
  'problem-dial-policy-redirect': ['redirect, dial policy', 'A redirect to a context outside allow_contexts'],
  'problem-rate-limited-action': ['generic Originate over the key\'s rate', 'calls_burst 1, calls_per_second 0.01'],
  'webhooks-list': ['list webhook subscriptions', 'Two subscriptions'],
  'webhook-created': ['create a webhook subscription', 'Created; its secret is shown this once'],
  webhook: ['GET a webhook subscription', 'A subscription that delivered an event'],
  'webhook-disabled': ['GET a webhook subscription disabled by a 410', 'Disabled: the receiver answered 410 Gone'],
  'webhook-static': ['GET a static webhook subscription', 'A static subscription (from the config file)'],
  'webhook-updated': ['PATCH a webhook subscription', 'A new description and filter'],
  'webhook-rotated': ['PATCH a webhook subscription: a new secret, with a grace period', 'A new secret; the old one still signs for an hour'],
  'webhook-test': ['test delivery', 'The receiver answered 200'],
  'webhook-test-failed': ['test delivery to a closed port', 'Nobody listens at the URL'],
  'webhook-deliveries': ['GET the deliveries of a subscription', 'A test ping, then an event'],
  'webhook-deliveries-disabled': [
    'GET the deliveries of a subscription disabled by a 410',
    'The receiver answered 410 Gone',
  ],
  'problem-forbidden-admin': ['webhooks with a key without admin', 'A key without the admin scope'],
  'problem-invalid-field-webhook-url': ['create a webhook, ftp URL', 'An ftp:// URL'],
  'problem-invalid-field-webhook-ssrf': ['create a webhook, private address', 'A private address (the SSRF guard)'],
  'problem-invalid-field-webhook-events': ['create a webhook, a glob with a blank', 'An event glob with a blank'],
  'problem-invalid-field-webhook-member': ['create a webhook, unknown member', 'A member subscriptions do not have'],
  'problem-webhook-not-found': ['GET a webhook subscription that does not exist', 'No such subscription'],
  'problem-webhook-static': ['PATCH a static webhook subscription', 'A subscription from the config file'],
  'problem-webhook-limit': [
    'create a webhook over AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS',
    'AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS=1, one static subscription',
  ],
  'problem-store-unavailable': ['create a webhook, Redis unreachable', 'Redis unreachable'],
  'problem-cors-origin-not-allowed': [
    'preflight from an origin not on AMIBRIDGE_CORS_ORIGINS',
    'An origin not on AMIBRIDGE_CORS_ORIGINS',
  ],
};

const dumpFile = process.argv[2];
if (!dumpFile) {
  console.error('usage: node tests/contract/examples.mjs DUMP.json');
  process.exit(2);
}
const dump = JSON.parse(readFileSync(dumpFile, 'utf8'));
const byName = new Map(dump.map((e) => [e.name, e]));

const examples = {};
const missing = [];
for (const [name, [check, summary, shape]] of Object.entries(EXAMPLES)) {
  const e = byName.get(check);
  if (!e) {
    missing.push(`${name} (check '${check}')`);
    continue;
  }
  const { method, path: p, body } = e.request;
  let request = `${method} ${p}`;
  if (body) request += ` ${body.length > 80 ? `${body.slice(0, 77)}...` : body}`;
  examples[name] = {
    summary,
    description: `Reply ${e.response.status} to \`${request}\`.`,
    value: shape ? shape(e.response.body) : e.response.body,
  };
}
if (missing.length) {
  console.error(`examples.mjs: no reply in ${dumpFile} for: ${missing.join(', ')}`);
  process.exit(1);
}

const spec = readFileSync(SPEC_PATH, 'utf8');
const lines = spec.split('\n');
const comps = lines.indexOf('components:');
const at = lines.findIndex((l, i) => i > comps && /^  examples:( \{\})?$/.test(l));
if (comps < 0 || at < 0) {
  console.error(`examples.mjs: no '  examples:' section under components in ${SPEC_PATH}`);
  process.exit(1);
}
const text = YAML.stringify({ examples }, { lineWidth: 0, indent: 2 })
  .trimEnd()
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n');
writeFileSync(SPEC_PATH, `${lines.slice(0, at).join('\n')}\n${text}\n`);
console.log(`examples.mjs: ${Object.keys(examples).length} examples written to ${SPEC_PATH}`);
