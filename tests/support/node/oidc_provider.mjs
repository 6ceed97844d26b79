// A real OpenID provider (the certified oidc-provider package) on loopback for the console's sign-in tests.
//
//   node oidc_provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
//
// Everything a relying party sees is the real thing: discovery, the authorization endpoint with PKCE,
// the token endpoint, signed ID tokens, the JWKS. Only the login page is replaced: instead of a form,
// the interaction signs in the account the test named last with GET /test/login-as?email=…, and
// grants the "openid email" scopes. Prints "ready <issuer>" once listening.
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
let loginAs = null;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id, email: id, email_verified: true }; } };
  },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['letterbox-test-provider-cookie-key'] },
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/login-as') {
    loginAs = ctx.query.email;
    ctx.body = 'ok';
    return;
  }
  const match = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (!match) {
    await next();
    return;
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (details.prompt.name === 'login') {
    result = { login: { accountId: loginAs } };
  } else {
    const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    grant.addOIDCScope('openid email');
    result = { consent: { grantId: await grant.save() } };
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
  ctx.redirect(to);
});

const server = provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
