// node-oidc-provider 9.x set up like our provider, as the reference peer of bench/.
//
//   node provider.mjs PORT CONFIG.json
//
// CONFIG.json (written by bench/) names the client, the accounts and the
// password hash. Everything lives in memory, in MapAdapter below: the adapter
// bundled for quick starts keeps at most 1000 entries (least recently used
// ones are dropped, so minted codes vanish before use). Equivalences with
// our provider:
// - one confidential client, client_secret_basic, RS256 ID tokens, PKCE S256;
// - refresh tokens only with offline_access, rotated at every use;
// - introspection and revocation enabled; userinfo as shipped;
// - devInteractions replaced by the interactions below: an automatic sign-in
//   (no password), a password form checked with argon2id at the same
//   parameters as ours, and a password form followed by a 6-digit code;
// - first-party client: the grant is made without a consent screen.
// /bench/* routes exist for the harness only: mint codes and tokens straight
// into the adapter, and read the last one-time code sent to an account.
import { generateKeyPairSync, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import { verify as argon2Verify } from '@node-rs/argon2';
import Provider from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const bench = JSON.parse(readFileSync(configPath, 'utf8'));
const issuer = `http://127.0.0.1:${port}`;
const accounts = new Map(bench.accounts.map((account) => [account.login, account]));
const accountsById = new Map(bench.accounts.map((account) => [account.id, account]));
// Pending second factors (interaction uid -> account and code) and the "outbox".
const pendingCodes = new Map();
const outbox = new Map();

// Every model in plain Maps with expiry; grants index what they issued, to revoke it with them.
const grantMembers = new Map();
const sessionUids = new Map();

class MapAdapter {
  constructor(name) {
    this.name = name;
    this.items = new Map();
  }

  async upsert(id, payload, expiresIn) {
    this.items.set(id, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, []);
      grantMembers.get(payload.grantId).push([this, id]);
    }
    if (payload.uid) sessionUids.set(payload.uid, id);
  }

  async find(id) {
    const item = this.items.get(id);
    if (!item) return undefined;
    if (item.expiresAt <= Date.now()) {
      this.items.delete(id);
      return undefined;
    }
    return item.payload;
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id && this.find(id);
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id) {
    const item = this.items.get(id);
    if (item) item.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.items.delete(id);
  }

  async revokeByGrantId(grantId) {
    for (const [adapter, id] of grantMembers.get(grantId) || []) adapter.items.delete(id);
    grantMembers.delete(grantId);
  }
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-rs256', alg: 'RS256', use: 'sig' };

function claimsOf(account) {
  return {
    sub: account.id,
    given_name: account.given_name,
    family_name: account.family_name,
    birthdate: account.birthdate,
    email: account.email,
    email_verified: true,
    phone_number: account.phone_number,
    phone_number_verified: true,
    member_number: account.member_number,
    tenant: 'malakoff',
    role: 'principal',
  };
}

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [{
    client_id: bench.client_id,
    client_secret: bench.client_secret,
    redirect_uris: [bench.redirect_uri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [bench.cookie_key] },
  claims: {
    openid: ['sub'],
    profile: ['given_name', 'family_name', 'birthdate'],
    email: ['email', 'email_verified'],
    phone: ['phone_number', 'phone_number_verified'],
    member: ['member_number', 'tenant', 'role'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'phone', 'member'],
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const account = accountsById.get(id);
    return account && { accountId: id, claims: async () => claimsOf(account) };
  },
  // First-party client: grant what was asked, as our provider skips consent for it.
  async loadExistingGrant(ctx) {
    const known = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    const existing = known && await ctx.oidc.provider.Grant.find(known);
    if (existing) return existing;
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope);
    await grant.save();
    return grant;
  },
  rotateRefreshToken: () => true,
  ttl: {
    AccessToken: bench.ttl.access_token,
    AuthorizationCode: bench.ttl.authorization_code,
    IdToken: bench.ttl.id_token,
    RefreshToken: bench.ttl.refresh_token,
    Grant: bench.ttl.refresh_token,
    Interaction: bench.ttl.interaction,
    Session: bench.ttl.session,
  },
});

async function readForm(req) {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  return new URLSearchParams(raw);
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

const page = (action, fields) => `<!doctype html><title>Sign in</title><form method="post" action="${action}">${
  fields.map((name) => `<input name="${name}">`).join('')}<button>Continue</button></form>`;

async function signedIn(req, res, accountId) {
  await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
}

// /interaction/UID, /interaction/UID/auto, /interaction/UID/login, /interaction/UID/otp
async function interaction(req, res, uid, step) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'text/plain', 'wrong interaction');
  if (step === 'auto') return signedIn(req, res, bench.accounts[0].id);
  if (req.method === 'GET') {
    const fields = step === 'otp' ? ['code'] : ['login', 'password'];
    return send(res, 200, 'text/html', page(`/interaction/${uid}/${step || 'login'}`, fields));
  }
  const form = await readForm(req);
  if (step === 'otp') {
    const pending = pendingCodes.get(uid);
    if (!pending || form.get('code') !== pending.code) return send(res, 400, 'text/plain', 'wrong code');
    pendingCodes.delete(uid);
    return signedIn(req, res, pending.account.id);
  }
  const account = accounts.get(form.get('login'));
  if (!account || !await argon2Verify(account.password_hash, form.get('password') || '')) {
    return send(res, 401, 'text/plain', 'wrong password');
  }
  if (form.get('otp') !== '1') return signedIn(req, res, account.id);
  const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
  pendingCodes.set(uid, { account, code });
  outbox.set(account.login, code);
  res.writeHead(303, { location: `/interaction/${uid}/otp` });
  return res.end();
}

// Codes and tokens made the way the provider's own grants make them, for the
// endpoint scenarios that use each one once.
// Each one has a grant of its own, as after a sign-in.
async function mint(kind, count) {
  const client = await provider.Client.find(bench.client_id);
  const account = bench.accounts[0];
  const make = {
    code: (common) => new provider.AuthorizationCode({
      ...common, redirectUri: bench.redirect_uri, codeChallenge: bench.code_challenge, codeChallengeMethod: 'S256',
    }),
    refresh: (common) => new provider.RefreshToken({ ...common, gty: 'authorization_code', rotations: 0 }),
    access: (common) => new provider.AccessToken({ ...common, gty: 'authorization_code' }),
  }[kind];
  const values = [];
  for (let i = 0; i < count; i += 1) {
    const grant = new provider.Grant({ clientId: client.clientId, accountId: account.id });
    grant.addOIDCScope(bench.scope);
    const grantId = await grant.save();
    values.push(await make({
      accountId: account.id, client, grantId, scope: bench.scope, authTime: Math.floor(Date.now() / 1000),
      expiresWithSession: false,
    }).save());
  }
  return values;
}

async function benchRoute(req, res, url) {
  if (url.pathname === '/bench/mint') {
    const values = await mint(url.searchParams.get('kind'), Number(url.searchParams.get('count')));
    return send(res, 200, 'text/plain', values.join('\n'));
  }
  if (url.pathname === '/bench/outbox') {
    const code = outbox.get(url.searchParams.get('login'));
    return code ? send(res, 200, 'text/plain', code) : send(res, 404, 'text/plain', 'none');
  }
  if (url.pathname === '/bench/ready') return send(res, 200, 'text/plain', 'ok');
  return send(res, 404, 'text/plain', 'not found');
}

const callback = provider.callback();
createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  const parts = url.pathname.split('/');
  try {
    if (parts[1] === 'interaction') return await interaction(req, res, parts[2], parts[3]);
    if (parts[1] === 'bench') return await benchRoute(req, res, url);
    return callback(req, res);
  } catch (error) {
    return send(res, 500, 'text/plain', String(error));
  }
}).listen(Number(port), '127.0.0.1', () => console.log(`peer listening on ${issuer}`));
