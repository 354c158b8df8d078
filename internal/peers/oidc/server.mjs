// Test harness: runs panva's oidc-provider as a real OAuth 2.0 authorization
// server on https://127.0.0.1:PORT for the Go tests in internal/peers (see
// StartOIDC in ../oidc.go).
//
// Usage: node server.mjs CONFIG.json
//
// The configuration is a JSON object:
//
//   port             TCP port to listen on, on 127.0.0.1 only (required)
//   issuer           issuer identifier, https://127.0.0.1:PORT (required)
//   certFile         PEM server certificate chain, leaf first (required)
//   keyFile          PEM private key of the leaf (required)
//   clients          array of oidc-provider client metadata, passed as is
//   accessTokenTTL   lifetime of client_credentials access tokens, seconds
//   resource         the one resource indicator served (e.g. https://api.test/);
//                    tokens for it are JWTs with aud = resource
//   accessTokenAlg   JWS alg of those JWTs: RS256 (default), PS256, ES256, EdDSA
//   scopes           scopes of the resource server (default ["read", "write"])
//   dpop             enable DPoP (RFC 9449)
//   dpopNonceSecret  64 hex characters (32 bytes): when set, every DPoP proof
//                    must carry a server nonce (use_dpop_nonce otherwise)
//   mtls             enable RFC 8705: tls_client_auth,
//                    self_signed_tls_client_auth and certificate-bound tokens
//   clientCAFile     PEM CA certificates that issue tls_client_auth client
//                    certificates (the TLS layer verifies against them)
//   mtlsAliasPort    a second TCP port, on 127.0.0.1: the provider is served
//                    there too, asking for client certificates, and
//                    https://127.0.0.1:PORT2/token is advertised as
//                    mtls_endpoint_aliases.token_endpoint (RFC 8705
//                    section 5); the main port then asks for none. Needs mtls.
//   clockTolerance   seconds of leeway on the exp, nbf and iat of JWTs the
//                    provider receives (default 15, its own default)
//   federatedClients client_ids whose client assertions are tokens made
//                    elsewhere, such as a projected service account token:
//                    one may be presented again while it lives, as Entra ID
//                    and Google's STS accept (RFC 7523 section 3 makes the
//                    replay check a MAY). DPoP proofs stay single-use. Each
//                    assertion accepted is logged to stderr as
//                    "federated assertion client=ID jti=HASH exp=EXP now=NOW".
//
// Once it listens (on both ports) it prints exactly one line "READY <port>"
// to stdout.
// Errors go to stderr; nothing secret (secrets, assertions, tokens) is
// logged. SIGTERM and SIGINT close the server and exit with status 0.
//
// The signing keys are generated at start (RSA 2048, P-256, Ed25519) and the
// store is oidc-provider's in-memory adapter: nothing survives a restart.

import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import process from 'node:process';

// oidc-provider logs through the debug module, whose oidc-provider:*
// namespaces print tokens and request details; a DEBUG variable inherited
// from the developer's shell must not switch that on. Static imports are
// evaluated first, hence the dynamic import.
delete process.env.DEBUG;
const { default: Provider, errors } = await import('oidc-provider');

function fail(msg) {
  process.stderr.write(`oidc-peer: ${msg}\n`);
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

const port = cfg.port;
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  fail(`configuration: port must be an integer in 1..65535, got ${JSON.stringify(port)}`);
}
const issuer = cfg.issuer ?? `https://127.0.0.1:${port}`;
if (issuer !== `https://127.0.0.1:${port}`) {
  fail(`configuration: issuer must be https://127.0.0.1:${port}, got ${JSON.stringify(issuer)}`);
}
for (const field of ['certFile', 'keyFile']) {
  if (typeof cfg[field] !== 'string' || cfg[field] === '') {
    fail(`configuration: ${field} is required`);
  }
}
const clients = cfg.clients ?? [];
if (!Array.isArray(clients)) {
  fail('configuration: clients must be an array');
}
const accessTokenTTL = cfg.accessTokenTTL ?? 600;
if (!Number.isInteger(accessTokenTTL) || accessTokenTTL <= 0) {
  fail(`configuration: accessTokenTTL must be a positive integer (seconds), got ${JSON.stringify(accessTokenTTL)}`);
}
const resource = cfg.resource || undefined;
if (resource !== undefined && URL.parse(resource) === null) {
  fail(`configuration: resource is not an absolute URL: ${JSON.stringify(resource)}`);
}
const scopes = cfg.scopes?.length ? cfg.scopes : ['read', 'write'];
if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string' && /^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s))) {
  fail('configuration: scopes must be an array of scope tokens');
}
const accessTokenAlg = cfg.accessTokenAlg || 'RS256';
if (!['RS256', 'PS256', 'ES256', 'EdDSA'].includes(accessTokenAlg)) {
  fail(`configuration: accessTokenAlg must be RS256, PS256, ES256 or EdDSA, got ${JSON.stringify(accessTokenAlg)}`);
}
let nonceSecret;
if (cfg.dpopNonceSecret) {
  if (!cfg.dpop) {
    fail('configuration: dpopNonceSecret needs dpop');
  }
  if (typeof cfg.dpopNonceSecret !== 'string' || !/^[0-9a-fA-F]{64}$/.test(cfg.dpopNonceSecret)) {
    fail('configuration: dpopNonceSecret must be 64 hexadecimal characters (32 bytes)');
  }
  nonceSecret = Buffer.from(cfg.dpopNonceSecret, 'hex');
}
const mtls = Boolean(cfg.mtls);
let clientCA;
if (cfg.clientCAFile) {
  if (!mtls) {
    fail('configuration: clientCAFile needs mtls');
  }
  clientCA = readFileSync(cfg.clientCAFile);
}
const aliasPort = cfg.mtlsAliasPort ?? undefined;
if (aliasPort !== undefined) {
  if (!Number.isInteger(aliasPort) || aliasPort <= 0 || aliasPort > 65535 || aliasPort === port) {
    fail(`configuration: mtlsAliasPort must be an integer in 1..65535 other than port, got ${JSON.stringify(aliasPort)}`);
  }
  if (!mtls) {
    fail('configuration: mtlsAliasPort needs mtls');
  }
}

const clockTolerance = cfg.clockTolerance ?? 15;
if (!Number.isInteger(clockTolerance) || clockTolerance < 0) {
  fail(`configuration: clockTolerance must be a non-negative integer (seconds), got ${JSON.stringify(clockTolerance)}`);
}
const federatedClients = new Set(cfg.federatedClients ?? []);

// ------------------------------------------------------------ signing keys

function signingKey(type, options) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, use: 'sig', kid: crypto.randomBytes(12).toString('base64url') };
}

const jwks = {
  keys: [
    // RS256/PS256 (RS256 is also the default ID token algorithm, which
    // oidc-provider insists on having a key for).
    signingKey('rsa', { modulusLength: 2048 }),
    signingKey('ec', { namedCurve: 'P-256' }),
    signingKey('ed25519'),
  ],
};

// ------------------------------------------------------------------- mTLS

// peerCertificate returns the client certificate presented on this request's
// TLS connection as a crypto.X509Certificate, or undefined when there is none.
// oidc-provider's getCertificate must return an X509Certificate or a PEM
// string (or a falsy value for "no certificate").
function peerCertificate(ctx) {
  const socket = ctx.req.socket;
  if (typeof socket.getPeerCertificate !== 'function') {
    return undefined;
  }
  // Without a client certificate Node returns an empty object (or null once
  // the socket is gone).
  const peer = socket.getPeerCertificate(false);
  if (!peer?.raw) {
    return undefined;
  }
  return new crypto.X509Certificate(peer.raw);
}

// RFC 4514 distinguished names -------------------------------------------

const dnTypeNames = new Map([
  ['2.5.4.3', 'CN'], ['2.5.4.6', 'C'], ['2.5.4.7', 'L'], ['2.5.4.8', 'ST'], ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'], ['2.5.4.9', 'STREET'], ['0.9.2342.19200300.100.1.25', 'DC'],
  ['0.9.2342.19200300.100.1.1', 'UID'], ['2.5.4.5', 'SERIALNUMBER'],
]);

function normalizeType(type) {
  const t = type.trim();
  if (/^oid\./i.test(t)) {
    return normalizeType(t.slice(4));
  }
  return dnTypeNames.get(t) ?? t.toUpperCase();
}

// parseRFC4514 returns a canonical form of an RFC 4514 string, for equality
// tests: the RDNs as written (most significant last), each a sorted list of
// "TYPE=value" with the type upper-cased (or named, for a known OID) and the
// escapes in the value resolved. Values compare exactly, case included.
function parseRFC4514(dn) {
  const rdns = [];
  let attrs = [];
  let type = '';
  let value = [];
  let inValue = false;
  const flush = () => {
    attrs.push(`${normalizeType(type)}=${Buffer.from(value).toString('utf8')}`);
    type = '';
    value = [];
    inValue = false;
  };
  for (let i = 0; i < dn.length; i++) {
    const c = dn[i];
    if (!inValue) {
      if (c === '=') {
        inValue = true;
      } else {
        type += c;
      }
      continue;
    }
    if (c === '\\' && i + 1 < dn.length) {
      const hex = dn.slice(i + 1, i + 3);
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        value.push(parseInt(hex, 16));
        i += 2;
      } else {
        value.push(...Buffer.from(dn[i + 1], 'utf8'));
        i += 1;
      }
    } else if (c === ',' || c === '+') {
      flush();
      if (c === ',') {
        rdns.push(attrs.sort());
        attrs = [];
      }
    } else {
      value.push(...Buffer.from(c, 'utf8'));
    }
  }
  if (inValue || type.trim() !== '') {
    flush();
  }
  if (attrs.length) {
    rdns.push(attrs.sort());
  }
  // JSON keeps "CN=a\,O=b" (one attribute) apart from "CN=a,O=b" (two).
  return JSON.stringify(rdns);
}

// certSubjectRFC4514 returns the subject of cert in the form parseRFC4514
// produces. X509Certificate.subject has one RDN a line, most significant
// first, values escaped as in RFC 2253, multi-valued RDNs joined by " + ".
function certSubjectRFC4514(cert) {
  const lines = cert.subject.split('\n').filter((l) => l !== '');
  return parseRFC4514(lines.reverse().map((l) => l.split(' + ').join('+')).join(','));
}

// subjectAltNames parses X509Certificate.subjectAltName ("DNS:a, IP
// Address:127.0.0.1, email:x@y, URI:https://..."); Node writes entries that
// contain special characters as JSON strings.
function subjectAltNames(cert) {
  const out = [];
  const s = cert.subjectAltName ?? '';
  let i = 0;
  while (i < s.length) {
    let entry;
    if (s[i] === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') {
        j += s[j] === '\\' ? 2 : 1;
      }
      entry = JSON.parse(s.slice(i, j + 1));
      i = j + 1;
    } else {
      const j = s.indexOf(', ', i);
      entry = s.slice(i, j === -1 ? s.length : j);
      i = j === -1 ? s.length : j;
    }
    const colon = entry.indexOf(':');
    if (colon > 0) {
      out.push([entry.slice(0, colon), entry.slice(colon + 1)]);
    }
    while (s[i] === ',' || s[i] === ' ') i++;
  }
  return out;
}

function certificateSubjectMatches(ctx, property, expected) {
  const cert = peerCertificate(ctx);
  if (!cert) {
    return false;
  }
  const want = (kind) => subjectAltNames(cert).some(([k, v]) => k === kind && v === expected);
  switch (property) {
    case 'tls_client_auth_subject_dn': {
      return certSubjectRFC4514(cert) === parseRFC4514(expected);
    }
    case 'tls_client_auth_san_dns':
      return want('DNS');
    case 'tls_client_auth_san_uri':
      return want('URI');
    case 'tls_client_auth_san_email':
      return want('email');
    case 'tls_client_auth_san_ip':
      return subjectAltNames(cert).some(([k, v]) => k === 'IP Address' && sameIP(v, expected));
    default:
      return false;
  }
}

function sameIP(a, b) {
  const norm = (ip) => {
    try {
      return new URL(`http://${ip.includes(':') ? `[${ip}]` : ip}/`).hostname;
    } catch {
      return undefined;
    }
  };
  const x = norm(a);
  return x !== undefined && x === norm(b);
}

// ----------------------------------------------------------- the provider

const clientAuthMethods = ['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt'];
if (mtls) {
  clientAuthMethods.push('tls_client_auth', 'self_signed_tls_client_auth');
}

// Client assertions of federated clients that passed every other check,
// by `${iss}${jti}`, each allowed past the replay check once more.
const reusable = new Set();

const configuration = {
  clients,
  jwks,
  clockTolerance,
  async assertJwtClientAuthClaimsAndHeader(ctx, claims) {
    if (!federatedClients.has(ctx.oidc.client.clientId)) {
      return;
    }
    reusable.add(`${claims.iss}${claims.jti}`);
    const jti = crypto.hash('sha256', String(claims.jti), 'base64url').slice(0, 12);
    process.stderr.write(`oidc-peer: federated assertion client=${ctx.oidc.client.clientId} jti=${jti} exp=${claims.exp} now=${Date.now() / 1000}\n`);
  },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  routes: {
    token: '/token',
    jwks: '/jwks',
    introspection: '/token/introspection',
    revocation: '/token/revocation',
  },
  scopes: ['openid', 'offline_access', ...scopes],
  clientAuthMethods,
  enabledJWA: {
    clientAuthSigningAlgValues: ['HS256', 'RS256', 'PS256', 'ES256', 'ES384', 'Ed25519', 'EdDSA'],
    dPoPSigningAlgValues: ['ES256', 'ES384', 'PS256', 'RS256', 'Ed25519', 'EdDSA'],
  },
  ttl: {
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTokenTTL,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A request without a resource parameter gets an opaque token.
      defaultResource: (ctx, client, oneOf) => oneOf,
      useGrantedResource: () => false,
      getResourceServerInfo(ctx, indicator) {
        if (resource === undefined || indicator !== resource) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: scopes.join(' '),
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL,
          jwt: { sign: { alg: accessTokenAlg } },
        };
      },
    },
    dPoP: {
      enabled: Boolean(cfg.dpop),
      nonceSecret,
      requireNonce: () => nonceSecret !== undefined,
    },
    mTLS: {
      enabled: mtls,
      tlsClientAuth: mtls,
      selfSignedTlsClientAuth: mtls,
      certificateBoundAccessTokens: mtls,
      getCertificate: peerCertificate,
      // The TLS layer verified the chain against clientCAFile (requestCert
      // with rejectUnauthorized: false, so requests without a certificate
      // or with an unverified one still reach the provider).
      certificateAuthorized: (ctx) => clientCA !== undefined && ctx.req.socket.authorized === true,
      certificateSubjectMatches,
    },
  },
};

if (aliasPort !== undefined) {
  // Extra metadata, published as it is (in place of the default extras).
  configuration.discovery = {
    mtls_endpoint_aliases: { token_endpoint: `https://127.0.0.1:${aliasPort}/token` },
  };
}

let provider;
try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  fail(`configure oidc-provider: ${err.message}`);
}

if (federatedClients.size > 0) {
  const { ReplayDetection } = provider;
  const unique = ReplayDetection.unique.bind(ReplayDetection);
  ReplayDetection.unique = async (iss, jti, exp) => {
    if (reusable.delete(`${iss}${jti}`)) {
      return true;
    }
    return unique(iss, jti, exp);
  };
}

// Log failures, never request parameters, credentials or tokens.
for (const event of ['grant.error', 'introspection.error', 'revocation.error', 'jwks.error', 'discovery.error']) {
  provider.on(event, (ctx, err) => {
    // error_detail is the provider's reason behind a generic
    // error_description such as "client authentication failed".
    const detail = [err.error_description, err.error_detail, err.cause?.message]
      .filter((v, i, a) => v && a.indexOf(v) === i).join('; ');
    process.stderr.write(`oidc-peer: ${event}: ${err.message}${detail ? ` (${detail})` : ''}\n`);
  });
}
provider.on('server_error', (ctx, err) => {
  process.stderr.write(`oidc-peer: server_error: ${err.stack ?? err}\n`);
});

// ------------------------------------------------------------------ serve

let cert;
let key;
try {
  cert = readFileSync(cfg.certFile);
  key = readFileSync(cfg.keyFile);
} catch (err) {
  fail(`read TLS files: ${err.message}`);
}

// serve creates an HTTPS server for the provider. Asking for a client
// certificate, it lets the request through without one: oidc-provider
// decides per client.
function serve(requestCert) {
  const srv = https.createServer({
    cert,
    key,
    ca: clientCA,
    minVersion: 'TLSv1.2',
    requestCert,
    rejectUnauthorized: false,
  }, provider.callback());
  srv.on('tlsClientError', (err) => {
    // A connection closed before the handshake (StartOIDC's readiness
    // probe does that) is not worth a line.
    if (err.code === 'ECONNRESET') return;
    process.stderr.write(`oidc-peer: TLS: ${err.message}\n`);
  });
  srv.on('error', (err) => {
    process.stderr.write(`oidc-peer: server: ${err.message}\n`);
    process.exit(1);
  });
  return srv;
}

// Client certificates are asked for with mTLS enabled: on the main port, or
// on the alias's only when there is one.
const server = serve(mtls && aliasPort === undefined);
const aliasServer = aliasPort === undefined ? undefined : serve(true);
const servers = [server, aliasServer].filter(Boolean);

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`oidc-peer: ${signal}: stopping\n`);
  let open = servers.length;
  for (const srv of servers) {
    srv.close(() => {
      open -= 1;
      if (open === 0) process.exit(0);
    });
    srv.closeAllConnections?.();
  }
  // Do not hang on a stuck connection.
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

const listening = (srv, p) => new Promise((resolve) => {
  srv.listen(p, '127.0.0.1', resolve);
});
await Promise.all([listening(server, port), aliasServer && listening(aliasServer, aliasPort)]);
process.stdout.write(`READY ${server.address().port}\n`);
