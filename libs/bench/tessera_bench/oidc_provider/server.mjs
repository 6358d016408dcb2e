// make bench's baseline: panva's oidc-provider 9 (the engine inside Logto), bare, in memory,
// one Node process, configured to answer exactly the request of our client-credentials row:
//   POST /oidc/token, client_secret_basic, grant_type=client_credentials, resource, scope
//   → a JWT access token (RFC 9068, typ at+jwt) signed ES384, aud = the resource.
//
//   node server.mjs PORT          (reads BARE_CLIENT_ID, BARE_CLIENT_SECRET, BARE_RESOURCE,
//                                  BARE_SCOPE from the environment: secrets stay out of argv)
// Prints one line "listening <issuer>" once it accepts connections.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const port = Number(process.argv[2]);
const need = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const clientId = need('BARE_CLIENT_ID');
const clientSecret = need('BARE_CLIENT_SECRET');
const resource = need('BARE_RESOURCE');
const scope = need('BARE_SCOPE');
if (!Number.isInteger(port) || port <= 0) throw new Error(`usage: node server.mjs PORT (got ${process.argv[2]})`);

// A fresh ES384 key per start, as Logto's default signing key (EC P-384).
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'ES384', use: 'sig', kid: randomBytes(12).toString('base64url') };

const mount = '/oidc';
const issuer = `http://127.0.0.1:${port}${mount}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  enabledJWA: { idTokenSigningAlgValues: ['ES384'] },
  clientDefaults: { id_token_signed_response_alg: 'ES384' },
  // What the default does, said explicitly (the default prints a notice): the resource's TTL.
  ttl: { ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || 600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // As Logto: one known resource; its scopes are what the client may get (the grant keeps
      // requested ∩ these, dropping the rest silently, as our row does).
      async getResourceServerInfo(ctx, indicator) {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return {
          scope,
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 3600,
          jwt: { sign: { alg: 'ES384' } },
        };
      },
    },
  },
});

// Mounted under /oidc like ours (oidc-provider reads the mount path from req.originalUrl).
const callback = provider.callback();
const server = createServer((req, res) => {
  if (req.url === mount || req.url.startsWith(`${mount}/`)) {
    req.originalUrl = req.url;
    req.url = req.url.slice(mount.length) || '/';
    callback(req, res);
  } else {
    res.statusCode = 404;
    res.end();
  }
});
server.keepAliveTimeout = 65_000; // wrk keeps its connections for the whole run
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${issuer}\n`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
