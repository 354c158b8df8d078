// Test harness: runs the npm package http-message-signatures (RFC 9421) as
// an independent resource server on https://127.0.0.1:PORT for the Go tests
// (see StartHTTPSig in ../httpsig.go). It verifies the signature of every
// request as a FAPI 2.0 resource server does, and signs every response.
//
// Usage: node server.mjs CONFIG.json
//
// The configuration is a JSON object:
//
//   port          TCP port to listen on, on 127.0.0.1 only (required)
//   certFile      PEM server certificate chain, leaf first (required)
//   keyFile       PEM private key of the leaf (required)
//   clientKey     { pem, alg, keyid }: the SPKI PEM public key that verifies
//                 requests, its RFC 9421 algorithm and keyid (required)
//   serverKey     { pem, alg, keyid }: the PKCS #8 PEM private key that signs
//                 responses, its algorithm and keyid (required)
//   requestTag    the tag a request signature must carry ("" for none)
//   responseTag   the tag of response signatures ("" for none)
//   maxAge        seconds a request signature's created may lie in the past
//
// A request is refused with 401 and {"error": "..."} when its signature is
// missing or does not verify, when it does not cover @method, @target-uri,
// and authorization, dpop and content-digest when the request has them,
// lacks created or keyid, or has another tag; and when its Content-Digest
// does not match its content. Otherwise the answer is 200 with
// {"verified": true, "label": ..., "covered": [...], "digest": ...}.
//
// Every response is signed (label "sig1") over @status, content-type,
// content-digest, "@method";req and "@target-uri";req, with created, keyid
// and responseTag. A request's X-Peer-Tamper header makes the peer break
// that on purpose, after signing: "header" (content-type changed), "status"
// (201 sent), "body" (other content), "replay" (signed for another request),
// "stale" (created two minutes ago), "tag" (another tag), "unsigned".
//
// Once it listens it prints exactly one line "READY <port>" to stdout.
// SIGTERM and SIGINT close the server and exit with status 0.

import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import process from 'node:process';
import { httpbis, createSigner, createVerifier } from 'http-message-signatures';
import { parseDictionary } from 'structured-headers';

function fail(msg) {
  process.stderr.write(`httpsig-peer: ${msg}\n`);
  process.exit(2);
}

if (process.argv.length !== 3) {
  fail('usage: node server.mjs CONFIG.json');
}
let cfg;
try {
  cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
} catch (err) {
  fail(`read configuration ${process.argv[2]}: ${err.message}`);
}
if (!Number.isInteger(cfg.port) || cfg.port <= 0 || cfg.port > 65535) {
  fail(`configuration: port must be an integer in 1..65535, got ${JSON.stringify(cfg.port)}`);
}
for (const field of ['certFile', 'keyFile', 'clientKey', 'serverKey']) {
  if (!cfg[field]) {
    fail(`configuration: ${field} is required`);
  }
}

const clientPublic = crypto.createPublicKey(cfg.clientKey.pem);
const serverPrivate = crypto.createPrivateKey(cfg.serverKey.pem);
const maxAge = cfg.maxAge ?? 60;
const maxBody = 1 << 20;

function keyLookup(params) {
  if (params.keyid !== cfg.clientKey.keyid) {
    return null;
  }
  return { id: cfg.clientKey.keyid, algs: [cfg.clientKey.alg], verify: createVerifier(clientPublic, cfg.clientKey.alg) };
}

function sha256(b) {
  return crypto.createHash('sha256').update(b).digest();
}

// checkDigest compares the Content-Digest field with the content.
function checkDigest(header, body) {
  if (!header) {
    return 'no Content-Digest';
  }
  const dict = parseDictionary(Array.isArray(header) ? header.join(', ') : header);
  let checked = 0;
  for (const [alg, [value]] of dict) {
    const name = { 'sha-256': 'sha256', 'sha-512': 'sha512' }[alg];
    if (!name) {
      continue;
    }
    const want = Buffer.from(value);
    if (!crypto.createHash(name).update(body).digest().equals(want)) {
      return `Content-Digest ${alg} does not match the content`;
    }
    checked++;
  }
  return checked ? null : 'no sha-256 or sha-512 in Content-Digest';
}

// verifyRequest returns null, or why the request is refused.
async function verifyRequest(msg, body) {
  let verified;
  try {
    verified = await httpbis.verifyMessage({
      keyLookup,
      requiredFields: ['@method', '@target-uri'],
      requiredParams: ['created', 'keyid'],
      maxAge,
      tolerance: 5,
    }, msg);
  } catch (err) {
    return `signature refused: ${err.message}`;
  }
  if (verified === null) {
    return 'no signature, or a key the peer does not know';
  }
  if (verified !== true) {
    return 'the signature does not verify';
  }
  const inputs = parseDictionary(msg.headers['signature-input']);
  const [label, [items, params]] = inputs.entries().next().value;
  const covered = items.map(([name, p]) => (p.has('req') ? `${name};req` : name));
  if ((cfg.requestTag ?? '') !== '' && params.get('tag') !== cfg.requestTag) {
    return `tag ${JSON.stringify(params.get('tag'))}, want ${JSON.stringify(cfg.requestTag)}`;
  }
  for (const [field, name] of [['authorization', 'authorization'], ['dpop', 'dpop']]) {
    if (msg.headers[field] !== undefined && !covered.includes(name)) {
      return `${name} is not covered`;
    }
  }
  if (body.length > 0) {
    if (!covered.includes('content-digest')) {
      return 'content-digest is not covered';
    }
    const why = checkDigest(msg.headers['content-digest'], body);
    if (why) {
      return why;
    }
  }
  return { label, covered, tag: params.get('tag') ?? null };
}

async function signResponse(res, status, headers, reqMsg, tamper) {
  const created = tamper === 'stale' ? new Date(Date.now() - 120000) : new Date();
  let bound = reqMsg;
  if (tamper === 'replay') {
    const other = new URL(reqMsg.url);
    other.pathname = '/another/request';
    bound = { ...reqMsg, url: other.toString() };
  }
  const tag = tamper === 'tag' ? 'another-tag' : (cfg.responseTag ?? '');
  const signed = await httpbis.signMessage({
    key: createSigner(serverPrivate, cfg.serverKey.alg, cfg.serverKey.keyid),
    name: 'sig1',
    fields: ['@status', 'content-type', 'content-digest', '"@method";req', '"@target-uri";req'],
    params: tag ? ['created', 'keyid', 'tag'] : ['created', 'keyid'],
    paramValues: { created, tag },
  }, { status, headers }, bound);
  return signed.headers;
}

async function handle(req, res) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > maxBody) {
      res.writeHead(413).end();
      return;
    }
    chunks.push(c);
  }
  const body = Buffer.concat(chunks);
  const msg = { method: req.method, url: `https://${req.headers.host}${req.url}`, headers: req.headers };
  const tamper = req.headers['x-peer-tamper'] ?? '';

  const result = await verifyRequest(msg, body);
  let status = 200;
  let out;
  if (typeof result === 'string') {
    status = 401;
    out = { error: result };
  } else {
    out = { verified: true, ...result, digest: body.length > 0 ? 'sha-256' : null };
  }
  let content = Buffer.from(JSON.stringify(out));
  let headers = {
    'content-type': 'application/json',
    'content-digest': `sha-256=:${sha256(content).toString('base64')}:`,
  };
  if (tamper !== 'unsigned') {
    headers = await signResponse(res, status, headers, msg, tamper);
  }
  switch (tamper) {
    case 'header':
      headers['content-type'] = 'text/plain';
      break;
    case 'status':
      status = 201;
      break;
    case 'body':
      content = Buffer.from(JSON.stringify({ ...out, tampered: true }));
      break;
  }
  headers['content-length'] = String(content.length);
  res.writeHead(status, headers);
  res.end(content);
}

const srv = https.createServer({
  cert: readFileSync(cfg.certFile),
  key: readFileSync(cfg.keyFile),
}, (req, res) => {
  handle(req, res).catch((err) => {
    process.stderr.write(`httpsig-peer: ${err.stack}\n`);
    if (!res.headersSent) {
      res.writeHead(500).end();
    }
  });
});

function stop(signal) {
  srv.close(() => process.exit(0));
  srv.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
  process.stderr.write(`httpsig-peer: ${signal}\n`);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

srv.listen(cfg.port, '127.0.0.1', () => {
  process.stdout.write(`READY ${cfg.port}\n`);
});
