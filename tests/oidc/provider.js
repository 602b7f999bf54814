// A real OpenID provider for cta-data's tests: npm `oidc-provider` (9.x) on 127.0.0.1, set up
// like the CTAO Keycloak as far as the client can tell (device authorization grant, a
// confidential client, JWT access tokens, rotating refresh tokens, revocation).
//
// Usage:  node provider.js [PORT]        (started by ctadata_testsupport::oidc::OidcProvider)
//
// Prints one JSON line on stdout once it listens, then keeps running until it is killed or its
// standard input closes (so a crashed test leaves no orphan; run it by hand from a terminal and
// Ctrl-D stops it):
//   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// Library warnings go to stderr.
//
// Configuration, from the environment (durations in whole seconds):
//   PORT           listening port on 127.0.0.1; 0 (default) = any free port; argv[2] wins
//   CLIENT_ID      the one confidential client (default cta-test-client)
//   CLIENT_SECRET  its secret, sent with client_secret_basic (default cta-test-secret)
//   ACCESS_TTL     access token lifetime (default 60)
//   REFRESH_TTL    refresh token lifetime, renewed on each rotation (default 86400)
//   DEVICE_TTL     device code lifetime (default 600)
//   INTERVAL       polling interval advertised in the device authorization response and
//                  enforced with slow_down, as Keycloak does (default 1; 0 = not enforced)
//   AUDIENCE       `aud` of the access tokens (default dcache)
//   DEFAULT_SCOPE  the scope of a device authorization request that asks for none, like
//                  Keycloak's default client scopes (default "profile email"; empty = the
//                  library's own rule: such a request is denied once the user has signed in)
//
// What the client sees:
//   - discovery at /.well-known/openid-configuration with device_authorization_endpoint
//     (/device/auth), token_endpoint (/token), revocation_endpoint (/token/revocation),
//     introspection_endpoint (/token/introspection) and jwks_uri (/jwks); RS256 keys made at
//     start-up.
//   - access tokens are JWTs (`typ: at+jwt`, claims iss sub aud exp iat jti client_id scope
//     preferred_username) for the one resource `urn:ctadata:dcache`, whatever the client asks;
//     refresh tokens are opaque and issued on every device-code grant (scope or not), with
//     strict rotation: each refresh returns a new one, and reusing a rotated one is
//     `invalid_grant` and revokes the whole grant (the newest refresh token too).
//   - the token response also carries `refresh_expires_in` (as Keycloak's does).
//   - polling one device code again less than INTERVAL seconds after its last accepted poll
//     is answered 400 {"error":"slow_down"} (Keycloak's rule: the window runs from the last
//     accepted poll and a slow_down does not reset it; an expired code is `expired_token` first).
//
// Test-only endpoints (not OpenID):
//   POST /test/approve {"user_code": "...", "user": "alice"}  the user opens /device, enters the
//        code, confirms, signs in as `user` and consents: done here with real HTTP requests
//        against this provider's own pages (cookie jar and all). 200 {"ok":true} or 400 with
//        {"error": ...}.
//   POST /test/deny {"user_code": "..."}  the user enters the code and clicks [ Abort ] on
//        the confirmation page; polling then gives `access_denied`.
//   GET  /test/stats  {"token_requests":N,"device_grants":N,"refresh_grants":N,
//        "slow_downs":N,"revocations":N}: requests that reached the token endpoint (all, then
//        by grant_type; slow_down answers included) and the revocation endpoint.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

// stdout carries the ready line only: the library's notices (console.info) go to stderr too.
console.log = console.error;
console.info = console.error;

const env = (name, fallback) => process.env[name] ?? fallback;
const seconds = (name, fallback) => {
  const v = Number(env(name, fallback));
  if (!Number.isInteger(v) || v < 0) {
    throw new Error(`${name} must be a whole number of seconds, got ${process.env[name]}`);
  }
  return v;
};

const PORT = Number(process.argv[2] ?? env('PORT', '0'));
const CLIENT_ID = env('CLIENT_ID', 'cta-test-client');
const CLIENT_SECRET = env('CLIENT_SECRET', 'cta-test-secret');
const ACCESS_TTL = Math.max(1, seconds('ACCESS_TTL', '60'));
const REFRESH_TTL = Math.max(1, seconds('REFRESH_TTL', '86400'));
const DEVICE_TTL = Math.max(1, seconds('DEVICE_TTL', '600'));
const INTERVAL = seconds('INTERVAL', '1');
const AUDIENCE = env('AUDIENCE', 'dcache');
const DEFAULT_SCOPE = env('DEFAULT_SCOPE', 'profile email');
const RESOURCE = 'urn:ctadata:dcache';
const SCOPES = [...new Set(['openid', 'offline_access', ...DEFAULT_SCOPE.split(' ').filter(Boolean)])];
// How long an expired device code stays known, so that polling it answers `expired_token`
// (the library's in-memory store would forget it at once: `invalid_grant`, code not found).
const EXPIRED_CODE_GRACE = 3600;

const stats = {
  token_requests: 0,
  device_grants: 0,
  refresh_grants: 0,
  slow_downs: 0,
  revocations: 0,
};

// An in-memory adapter (the library's own is an LRU of 1000 entries that drops expired
// entries at once).
const store = new Map(); // key -> { value, until }
const grants = new Map(); // grantId -> Set of keys
function storeGet(key) {
  const e = store.get(key);
  if (!e) return undefined;
  if (e.until <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return e.value;
}
class TestAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const keep = this.model === 'DeviceCode' ? EXPIRED_CODE_GRACE : 0;
    const until = typeof expiresIn === 'number' ? Date.now() + (expiresIn + keep) * 1000 : Infinity;
    store.set(key, { value: payload, until });
    if (payload.grantId) {
      if (!grants.has(payload.grantId)) grants.set(payload.grantId, new Set());
      grants.get(payload.grantId).add(key);
    }
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, { value: id, until });
    if (this.model === 'Session' && payload.uid) {
      store.set(`sessionUid:${payload.uid}`, { value: id, until });
    }
  }

  async find(id) {
    return storeGet(this.key(id));
  }

  async findByUserCode(userCode) {
    const id = storeGet(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUid(uid) {
    const id = storeGet(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) ?? []) store.delete(key);
    grants.delete(grantId);
  }
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: randomUUID(),
  alg: 'RS256',
  use: 'sig',
};

function configuration() {
  return {
    adapter: TestAdapter,
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      scope: SCOPES.join(' '),
    }],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: SCOPES,
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub }),
    }),
    features: {
      deviceFlow: { enabled: true }, // "devicecode" in older versions
      revocation: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Every request is for the dCache resource, so that access tokens are JWTs...
        defaultResource: async () => RESOURCE,
        // ...also at the token endpoint, where a grant with `openid` would otherwise get an
        // opaque token for the userinfo endpoint.
        useGrantedResource: async () => true,
        getResourceServerInfo: async () => ({
          scope: SCOPES.join(' '),
          audience: AUDIENCE,
          accessTokenTTL: ACCESS_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    // The library issues a refresh token only when `offline_access` was granted; Keycloak
    // issues one with every device-code grant, so this does too.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Refresh tokens outlive the (in-memory) browser session that approved the code.
    expiresWithSession: async () => false,
    rotateRefreshToken: true,
    extraTokenClaims: async (_ctx, token) => (token.kind === 'AccessToken'
      ? { preferred_username: token.accountId }
      : undefined),
    ttl: {
      AccessToken: ACCESS_TTL,
      RefreshToken: REFRESH_TTL,
      DeviceCode: DEVICE_TTL,
      IdToken: 3600,
      Grant: Math.max(REFRESH_TTL, 14 * 24 * 3600),
      Session: Math.max(REFRESH_TTL, 14 * 24 * 3600),
      Interaction: 3600,
    },
  };
}

// Reads a request body to the end (as text).
async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

// `Authorization: Basic` holds this provider's client (RFC 6749 2.3.1 encoding).
function isOurClient(header) {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m) return false;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return false;
  const unform = (s) => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  return unform(decoded.slice(0, i)) === CLIENT_ID && unform(decoded.slice(i + 1)) === CLIENT_SECRET;
}

// device_code -> { expiresAt, lastPoll } for the slow_down rule.
const devices = new Map();

// Counters, slow_down, and Keycloak's extra response members, around the library's routes.
async function keycloakRules(ctx, next) {
  const form = !ctx.get('content-type') || ctx.is('application/x-www-form-urlencoded');
  if (ctx.method === 'POST' && ctx.path === '/device/auth' && form) {
    // Read the form here; the library then parses it from `req.body` (it warns once that an
    // upstream parser read the body).
    const params = new URLSearchParams(await readBody(ctx.req));
    if (!params.get('scope')?.trim()) params.set('scope', DEFAULT_SCOPE);
    ctx.req.body = params.toString();
    ctx.req.headers['content-type'] = 'application/x-www-form-urlencoded';
    ctx.req.headers['content-length'] = String(Buffer.byteLength(ctx.req.body));
  } else if (ctx.method === 'POST' && ctx.path === '/token') {
    const raw = await readBody(ctx.req);
    ctx.req.body = raw;
    const params = new URLSearchParams(raw);
    const grantType = params.get('grant_type');
    stats.token_requests += 1;
    if (grantType === 'urn:ietf:params:oauth:grant-type:device_code') {
      stats.device_grants += 1;
      const device = devices.get(params.get('device_code'));
      const now = Date.now();
      if (device && now < device.expiresAt && isOurClient(ctx.get('authorization'))) {
        if (INTERVAL > 0 && device.lastPoll !== undefined && now - device.lastPoll < INTERVAL * 1000) {
          stats.slow_downs += 1;
          ctx.status = 400;
          ctx.set('cache-control', 'no-store');
          ctx.body = { error: 'slow_down', error_description: 'too early to access' };
          return;
        }
        device.lastPoll = now;
      }
    } else if (grantType === 'refresh_token') {
      stats.refresh_grants += 1;
    }
  } else if (ctx.method === 'POST' && ctx.path === '/token/revocation') {
    stats.revocations += 1;
  }

  await next();

  if (ctx.method === 'POST' && ctx.path === '/device/auth' && ctx.status === 200 && ctx.body?.device_code) {
    ctx.body.interval = INTERVAL;
    devices.set(ctx.body.device_code, {
      expiresAt: Date.now() + ctx.body.expires_in * 1000,
      lastPoll: undefined,
    });
  }
  if (ctx.method === 'POST' && ctx.path === '/token' && ctx.status === 200 && ctx.body?.refresh_token) {
    const rt = ctx.oidc?.entities?.RefreshToken;
    if (rt) ctx.body.refresh_expires_in = rt.remainingTTL;
  }
}

// --- headless browser for /test/approve and /test/deny -------------------------------------

const entities = (s) => s
  .replace(/&quot;/g, '"')
  .replace(/&#39;|&#x27;/g, "'")
  .replace(/&lt;/g, '<')
  .replace(/&gt;/g, '>')
  .replace(/&amp;/g, '&');

function attr(tag, name) {
  const m = new RegExp(`\\s${name}\\s*=\\s*"([^"]*)"`, 'i').exec(tag);
  return m ? entities(m[1]) : undefined;
}

// The first form of a page: its action and its inputs (name -> value, '' when none).
function firstForm(html) {
  const m = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!m) return undefined;
  const inputs = new Map();
  for (const input of m[2].matchAll(/<input\b([^>]*)>/gi)) {
    const name = attr(input[1], 'name');
    if (name) inputs.set(name, attr(input[1], 'value') ?? '');
  }
  return { action: attr(m[1], 'action'), inputs };
}

class Browser {
  constructor(base) {
    this.base = base;
    this.jar = new Map();
  }

  async request(url, form) {
    const headers = { accept: 'text/html' };
    if (this.jar.size) {
      headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    }
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams([...form]).toString();
    }
    const res = await fetch(url, {
      method: form ? 'POST' : 'GET', headers, body, redirect: 'manual',
    });
    for (const cookie of res.headers.getSetCookie()) {
      const [pair, ...attrs] = cookie.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const gone = value === ''
        || attrs.some((a) => /^max-age=0$/i.test(a))
        || attrs.some((a) => /^expires=/i.test(a) && Date.parse(a.slice(8)) <= Date.now());
      if (gone) this.jar.delete(name);
      else this.jar.set(name, value);
    }
    return { url, status: res.status, location: res.headers.get('location'), text: await res.text() };
  }
}

const pageError = (page, what) => {
  const red = /<p class="red">([^<]*)<\/p>/.exec(page.text);
  const title = /<title>([^<]*)<\/title>/.exec(page.text);
  return new Error(`${what}: HTTP ${page.status} at ${page.url}: ${red?.[1] ?? title?.[1] ?? page.text.slice(0, 300)}`);
};

// What a user does in a browser: open /device, type the code, confirm (or abort), sign in
// as `user` (any password), consent; following redirects and keeping cookies.
async function userFlow(userCode, user, deny) {
  const browser = new Browser(issuer);
  let page = await browser.request(`${issuer}/device`);
  for (let step = 0; step < 20; step += 1) {
    if (page.status >= 300 && page.status < 400 && page.location) {
      page = await browser.request(new URL(page.location, page.url).href);
      continue;
    }
    if (deny && /The Sign-in request was interrupted/.test(page.text)) return;
    if (page.status === 200 && /<title>Sign-in Success<\/title>/.test(page.text)) {
      if (deny) throw new Error('the code was approved, not denied');
      return;
    }
    if (/<p class="red">/.test(page.text)) throw pageError(page, 'device flow failed');
    const form = page.status === 200 ? firstForm(page.text) : undefined;
    if (!form?.action) throw pageError(page, 'unexpected page');
    const { inputs } = form;
    if (inputs.has('user_code') && !inputs.get('user_code')) inputs.set('user_code', userCode);
    if (inputs.has('login')) inputs.set('login', user);
    if (inputs.has('password')) inputs.set('password', 'test');
    if (deny && inputs.get('confirm') === 'yes') {
      // The [ Abort ] button of the confirmation page.
      inputs.delete('confirm');
      inputs.set('abort', 'yes');
    }
    page = await browser.request(new URL(form.action, page.url).href, inputs);
  }
  throw pageError(page, 'device flow did not finish in 20 steps');
}

async function testEndpoint(req, res) {
  const send = (status, obj) => {
    const body = JSON.stringify(obj);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(body);
  };
  try {
    const path = new URL(req.url, issuer).pathname;
    if (req.method === 'GET' && path === '/test/stats') {
      send(200, stats);
      return;
    }
    if (req.method === 'POST' && (path === '/test/approve' || path === '/test/deny')) {
      const raw = await readBody(req);
      const { user_code: userCode, user = 'alice' } = JSON.parse(raw || '{}');
      if (typeof userCode !== 'string' || !userCode) {
        send(400, { error: 'user_code (a string) is required' });
        return;
      }
      try {
        await userFlow(userCode, String(user), path === '/test/deny');
      } catch (e) {
        // The pages only say "interrupted": the reason is kept with the device code.
        const normalized = userCode.toUpperCase().replace(/\W/g, '');
        const code = await provider.DeviceCode.findByUserCode(normalized, { ignoreExpiration: true });
        const why = code?.error
          ? ` (device code: ${[code.error, code.errorDescription].filter(Boolean).join(': ')})`
          : '';
        throw new Error(`${e.message}${why}`);
      }
      send(200, { ok: true });
      return;
    }
    send(404, { error: `no test endpoint ${req.method} ${path}` });
  } catch (e) {
    send(400, { error: String(e?.message ?? e) });
  }
}

// --- start ----------------------------------------------------------------------------------

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, configuration());
provider.use(keycloakRules);
// Errors the client does not see in full (the user side of the device flow, server errors)
// go to stderr, with the library's detail.
for (const event of [
  'device_authorization.error', 'code_verification.error', 'device_resume.error', 'server_error',
]) {
  provider.on(event, (_ctx, err) => {
    const detail = [err?.error, err?.error_description, err?.error_detail].filter(Boolean);
    console.error(`oidc-provider ${event}: ${detail.length ? detail.join(': ') : err}`);
  });
}
const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/test/')) {
    testEndpoint(req, res);
  } else {
    callback(req, res);
  }
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
