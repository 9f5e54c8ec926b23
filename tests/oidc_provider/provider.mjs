// A real OpenID Connect provider (panva's oidc-provider) on loopback, for the authentication tests.
//
//   node provider.mjs [PORT] [AUDIENCE] [TOKEN_TTL_S]
//
// PORT 0 (the default) takes a free port. Once it listens, the first line on stdout is
// "READY http://127.0.0.1:PORT", the issuer. It serves discovery, JWKS (an RS256 key made at
// start, so every run has a new key) and a token endpoint for the client_credentials grant.
//
// Clients (secret: "<client id>-secret", client_secret_post or client_secret_basic):
//   clinician-client, annotator-client, admin-client, norole-client  tokens for AUDIENCE
//   wrongaud-client  (role ml_admin)                                  tokens for "other-api"
// A request may name another audience with `resource`: a URI is its own audience, and
// "urn:audience:NAME" is the audience NAME (resource indicators must be absolute URIs, audiences
// such as Keycloak's client ids need not be). Access tokens are JWTs signed with RS256, valid
// TOKEN_TTL_S seconds (default 300), with a "roles" claim.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const [portArg = '0', audience = 'braintumorlabel', ttlArg = '300'] = process.argv.slice(2);
const port = Number(portArg);
const tokenTtlS = Number(ttlArg);
if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port: ${portArg}`);
if (!Number.isSafeInteger(tokenTtlS) || tokenTtlS <= 0) throw new Error(`bad token TTL (seconds): ${ttlArg}`);

const AUDIENCE_URN = 'urn:audience:';
const ROLES = {
  'clinician-client': ['clinician'],
  'annotator-client': ['annotator'],
  'admin-client': ['ml_admin'],
  'norole-client': [],
  'wrongaud-client': ['ml_admin'],
};
const DEFAULT_AUDIENCE = { 'wrongaud-client': 'other-api' };

const resourceFor = (aud) => (URL.canParse(aud) ? aud : `${AUDIENCE_URN}${aud}`);
const audienceOf = (resource) => (resource.startsWith(AUDIENCE_URN) ? resource.slice(AUDIENCE_URN.length) : resource);

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
}

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: Object.keys(ROLES).map((clientId) => ({
      client_id: clientId,
      client_secret: `${clientId}-secret`,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    clientDefaults: { id_token_signed_response_alg: 'RS256' },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    jwks: { keys: [signingKey()] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client) => resourceFor(DEFAULT_AUDIENCE[client.clientId] ?? audience),
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          if (resource.includes('#')) throw new errors.InvalidTarget();
          return {
            scope: '',
            audience: audienceOf(resource),
            accessTokenTTL: tokenTtlS,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => ({ roles: ROLES[token.clientId] ?? [] }),
    ttl: { ClientCredentials: tokenTtlS },
  });
  server.on('request', provider.callback());
  process.stdout.write(`READY ${issuer}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
