// A real OpenID provider for the OIDC end-to-end tests: the `oidc-provider`
// package (node-oidc-provider), listening on 127.0.0.1 on a free port.
//
// Environment: REDIRECT_URI (the gateway's callback), CLIENT_SECRET.
// Prints `ready <issuer>` once listening. Users sign in without a form:
// the authorization request's `login_hint` names the account (`lena`),
// `+mfa` makes the sign-in assert a second factor (amr ["pwd","mfa"]),
// and `deny` makes the provider refuse (error=access_denied).
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const accounts = {
  lena: {
    preferred_username: 'lena', email: 'lena@acme.test', email_verified: true,
    given_name: 'Lena', family_name: 'Lind', department: 'engineering',
    clearance: 'confidential', country: 'GB', groups: ['data-science'],
  },
  root: {
    preferred_username: 'root', email: 'root@acme.test', email_verified: true,
    given_name: 'Ro', family_name: 'Ot', department: 'engineering',
    clearance: 'secret', country: 'US', groups: ['kailash-admins'],
  },
  mallory: {
    preferred_username: 'mallory', email: 'mallory@acme.test', email_verified: false,
    department: 'engineering', clearance: 'secret', country: 'US', groups: ['kailash-admins'],
  },
};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const key = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rsa-1', use: 'sig', alg: 'RS256' };

const server = http.createServer();
// A client that hangs up early (each gateway request uses one connection)
// must not take the provider down.
server.on('connection', (socket) => socket.on('error', () => {}));
server.on('clientError', (err, socket) => socket.destroy());
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'kailash',
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [key] },
  scopes: ['openid', 'email', 'profile', 'kailash'],
  claims: {
    // amr and acr are only sent when requested unless a scope carries them.
    openid: ['sub', 'amr', 'acr'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'given_name', 'family_name'],
    kailash: ['groups', 'department', 'clearance', 'country'],
  },
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  cookies: { keys: ['kailash-test-cookie-key'] },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => accounts[id] && {
    accountId: id,
    claims: async () => ({ sub: id, ...accounts[id] }),
  },
});

const callback = provider.callback();
server.on('request', async (req, res) => {
  if (!req.url.startsWith('/interaction/')) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session } = details;
    if (prompt.name === 'login') {
      const [user, extra] = String(params.login_hint || '').split('+');
      if (!accounts[user]) {
        return provider.interactionFinished(req, res,
          { error: 'access_denied', error_description: 'refused by the test provider' },
          { mergeWithLastSubmission: false });
      }
      const amr = extra === 'mfa' ? ['pwd', 'mfa'] : ['pwd'];
      return provider.interactionFinished(req, res, { login: { accountId: user, amr } },
        { mergeWithLastSubmission: false });
    }
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } },
      { mergeWithLastSubmission: true });
  } catch (err) {
    res.statusCode = 500;
    res.end(String(err));
  }
});

console.log(`ready ${issuer}`);
