"use strict";
// @azure/storage-queue over HTTPS with a token credential: a certificate from
// `hematite dev-cert` that the client verifies (tlsOptions.ca), tokens minted here as Entra ID
// would (RS256, v1 issuer, storage audience) and signed by a key the server trusts through
// --oauth-keys, and user delegation keys and SAS.

const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { test, before, after } = require("node:test");
const {
  QueueServiceClient,
  QueueClient,
  QueueSASPermissions,
  generateQueueSASQueryParameters,
} = require("@azure/storage-queue");
const { startServer, devCert, uniqueName, CLIENT_OPTIONS } = require("../lib/harness");
const { rejectsWith } = require("../lib/common");

const TENANT = "dd0d0df1-06c3-436c-8034-4b9a153097ce";
const OID = "23657296-5cd5-45b0-a809-d972a7f4dfe1";
const external = Boolean(process.env.HEMATITE_URL);

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** A stand-in for Entra ID: an RSA key, its JWKS, and tokens it signs. */
function makeIdp() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = publicKey.export({ format: "jwk" });
  return {
    jwks: JSON.stringify({ keys: [{ ...jwk, kid: "k1", use: "sig", alg: "RS256" }] }),
    mint(claims = {}) {
      const now = Math.floor(Date.now() / 1000);
      const body = {
        aud: "https://storage.azure.com",
        iss: `https://sts.windows.net/${TENANT}/`,
        iat: now - 60,
        nbf: now - 60,
        exp: now + 3600,
        oid: OID,
        tid: TENANT,
        scp: "user_impersonation",
        ...claims,
      };
      const input = `${b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid: "k1" }))}.${b64url(JSON.stringify(body))}`;
      return `${input}.${b64url(crypto.sign("sha256", Buffer.from(input), privateKey))}`;
    },
  };
}

/** The smallest TokenCredential: always the same token. */
const credential = (token) => ({
  getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600_000 }),
});

const ctx = {};
before(async () => {
  if (external) return;
  ctx.certs = devCert();
  ctx.idp = makeIdp();
  const jwks = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hematite-jwks-")), "jwks.json");
  fs.writeFileSync(jwks, ctx.idp.jwks);
  ctx.server = await startServer({
    https: true,
    extraArgs: ["--tls-cert", ctx.certs.cert, "--tls-key", ctx.certs.key, "--oauth-keys", jwks],
  });
  ctx.options = { ...CLIENT_OPTIONS, tlsOptions: { ca: fs.readFileSync(ctx.certs.ca) } };
  ctx.tokenService = (token = ctx.idp.mint()) =>
    new QueueServiceClient(ctx.server.accountUrl, credential(token), ctx.options);
});
after(async () => {
  if (ctx.server) await ctx.server.stop();
});

test("every operation with a token credential over https", { skip: external }, async () => {
  const service = ctx.tokenService();
  const name = uniqueName("tok");
  const q = service.getQueueClient(name);
  await q.create({ metadata: { Owner: "token" } });
  try {
    assert.deepEqual((await q.getProperties()).metadata, { owner: "token" });
    await q.setMetadata({ Stage: "two" });
    const sent = await q.sendMessage("over tls");
    assert.equal((await q.peekMessages()).peekedMessageItems[0].messageText, "over tls");
    const got = (await q.receiveMessages({ visibilityTimeout: 30 })).receivedMessageItems[0];
    assert.equal(got.messageId, sent.messageId);
    const upd = await q.updateMessage(got.messageId, got.popReceipt, "edited", 0);
    const again = (await q.receiveMessages()).receivedMessageItems[0];
    assert.equal(again.messageText, "edited");
    await q.deleteMessage(again.messageId, again.popReceipt);
    await q.sendMessage("to clear");
    await q.clearMessages();
    assert.equal((await q.getProperties()).approximateMessagesCount, 0);
    const listed = [];
    for await (const item of service.listQueues({ prefix: name })) listed.push(item.name);
    assert.deepEqual(listed, [name]);
    await service.getProperties();
    assert.ok(upd.popReceipt);
    await rejectsWith(q.getAccessPolicy(), 403, "AuthenticationFailed");
  } finally {
    await q.delete();
  }
});

test("shared key over https", { skip: external }, async () => {
  const service = QueueServiceClient.fromConnectionString(ctx.server.connectionString(), ctx.options);
  const q = service.getQueueClient(uniqueName("sk"));
  await q.create();
  await q.sendMessage("shared key over tls");
  assert.equal((await q.receiveMessages()).receivedMessageItems[0].messageText, "shared key over tls");
  await q.delete();
});

test("expired, misaddressed and foreign tokens get 401 InvalidAuthenticationInfo", { skip: external }, async () => {
  const now = Math.floor(Date.now() / 1000);
  const cases = [
    [ctx.idp.mint({ exp: now - 3600 }), "expired"],
    [ctx.idp.mint({ nbf: now + 3600 }), "Lifetime"],
    [ctx.idp.mint({ aud: "https://invalidaccount.queue.core.windows.net" }), "audience"],
    [ctx.idp.mint({ iss: "https://invalidissuer/tenant/" }), "issuer"],
    [makeIdp().mint(), "Signature validation failed."],
  ];
  for (const [token, says] of cases) {
    await assert.rejects(ctx.tokenService(token).getQueueClient(uniqueName("bad")).create(), (e) => {
      assert.equal(e.statusCode, 401, e.message);
      assert.equal(e.code, "InvalidAuthenticationInfo");
      assert.ok(e.details.message.includes("Server failed to authenticate the request."), e.details.message);
      const detail = e.details.additionalProperties.AuthenticationErrorDetail;
      assert.ok(detail.includes(says), detail);
      return true;
    });
  }
});

test("user delegation key and SAS", { skip: external }, async () => {
  const service = ctx.tokenService();
  const name = uniqueName("ud");
  await service.getQueueClient(name).create();
  try {
    const now = new Date();
    const key = await service.getUserDelegationKey(new Date(now.getTime() - 300_000), new Date(now.getTime() + 3600_000));
    assert.equal(key.signedObjectId, OID);
    assert.equal(key.signedService, "q");
    const sas = generateQueueSASQueryParameters(
      {
        queueName: name,
        permissions: QueueSASPermissions.parse("rap"),
        expiresOn: new Date(now.getTime() + 1800_000),
      },
      key,
      ctx.server.account
    ).toString();
    const client = new QueueClient(`${ctx.server.accountUrl}/${name}?${sas}`, undefined, ctx.options);
    await client.sendMessage("delegated");
    const got = (await client.receiveMessages()).receivedMessageItems[0];
    assert.equal(got.messageText, "delegated");
    await client.deleteMessage(got.messageId, got.popReceipt);
    // Without `u`, no update.
    const m = await client.sendMessage("x");
    await rejectsWith(client.updateMessage(m.messageId, m.popReceipt, "y", 0), 403, "AuthorizationPermissionMismatch");
    // A SAS signed with a made-up key value does not verify.
    const forged = generateQueueSASQueryParameters(
      { queueName: name, permissions: QueueSASPermissions.parse("r"), expiresOn: new Date(now.getTime() + 1800_000) },
      { ...key, value: Buffer.alloc(32).toString("base64") },
      ctx.server.account
    ).toString();
    await rejectsWith(
      new QueueClient(`${ctx.server.accountUrl}/${name}?${forged}`, undefined, ctx.options).peekMessages(),
      403,
      "AuthenticationFailed"
    );
  } finally {
    await service.getQueueClient(name).delete();
  }
});
