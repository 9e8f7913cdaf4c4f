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

// example name -> [check name in contract.mjs, summary]
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
for (const [name, [check, summary]] of Object.entries(EXAMPLES)) {
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
    value: e.response.body,
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
