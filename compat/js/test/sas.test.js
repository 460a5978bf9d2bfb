"use strict";
// Queue ACL (stored access policies), service SAS, account SAS and shared-key failures.
const assert = require("node:assert/strict");
const { test } = require("node:test");
const {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  QueueClient,
  QueueSASPermissions,
  QueueServiceClient,
  StorageSharedKeyCredential,
  generateAccountSASQueryParameters,
  generateQueueSASQueryParameters,
} = require("@azure/storage-queue");
const { useServer, rejectsWith, uniqueName } = require("../lib/common");
const { CLIENT_OPTIONS } = require("../lib/harness");

const ctx = useServer();
const cred = () => new StorageSharedKeyCredential(ctx.server.account, ctx.server.key);
const inMinutes = (m) => new Date(Math.floor(Date.now() / 1000) * 1000 + m * 60_000);

async function withQueue(fn) {
  const q = await ctx.newQueue("sas");
  try {
    await fn(q);
  } finally {
    await q.delete();
  }
}

function queueSas(queueName, values) {
  return generateQueueSASQueryParameters({ queueName, ...values }, cred()).toString();
}
const sasQueue = (name, sas) => new QueueClient(`${ctx.server.accountUrl}/${name}?${sas}`, undefined, CLIENT_OPTIONS);
const sasService = (sas) => new QueueServiceClient(`${ctx.server.accountUrl}?${sas}`, undefined, CLIENT_OPTIONS);

// ---------------------------------------------------------------- ACL

test("setAccessPolicy with 5 identifiers round-trips; 6 is 400", () =>
  withQueue(async (q) => {
    const startsOn = new Date("2030-01-02T03:04:05Z");
    const expiresOn = new Date("2031-06-07T08:09:10Z");
    const perms = { "policy-r": "r", "policy-a": "a", "policy-u": "u", "policy-p": "p", "policy-raup": "raup" };
    const res = await q.setAccessPolicy(
      Object.entries(perms).map(([id, permissions]) => ({ id, accessPolicy: { startsOn, expiresOn, permissions } }))
    );
    assert.equal(res._response.status, 204);
    const got = (await q.getAccessPolicy()).signedIdentifiers;
    assert.deepEqual(
      got.map((s) => [s.id, s.accessPolicy.permissions, new Date(s.accessPolicy.startsOn).getTime(), new Date(s.accessPolicy.expiresOn).getTime()]).sort(),
      Object.entries(perms).map(([id, p]) => [id, p, startsOn.getTime(), expiresOn.getTime()]).sort()
    );
    const six = Array.from({ length: 6 }, (_, i) => ({ id: `p${i}`, accessPolicy: { expiresOn, permissions: "r" } }));
    await rejectsWith(q.setAccessPolicy(six), 400);
    assert.equal((await q.getAccessPolicy()).signedIdentifiers.length, 5);
    await q.setAccessPolicy([]);
    assert.deepEqual((await q.getAccessPolicy()).signedIdentifiers, []);
  }));

// ---------------------------------------------------------------- service SAS

test("queue SAS raup: send, receive, update, peek, delete", () =>
  withQueue(async (q) => {
    const sas = queueSas(q.name, {
      permissions: QueueSASPermissions.parse("raup"),
      startsOn: inMinutes(-5),
      expiresOn: inMinutes(60),
    });
    const sq = sasQueue(q.name, sas);
    const sent = await sq.sendMessage("via sas");
    assert.equal((await sq.getProperties()).approximateMessagesCount, 1);
    const [m] = (await sq.receiveMessages({ visibilityTimeout: 30 })).receivedMessageItems;
    assert.equal(m.messageId, sent.messageId);
    const upd = await sq.updateMessage(m.messageId, m.popReceipt, "updated via sas", 0);
    const [p] = (await sq.peekMessages()).peekedMessageItems;
    assert.equal(p.messageText, "updated via sas");
    await sq.deleteMessage(m.messageId, upd.popReceipt);
    assert.deepEqual((await sq.peekMessages()).peekedMessageItems, []);
  }));

test("queue SAS with only r: peek works, send is 403 AuthorizationPermissionMismatch", () =>
  withQueue(async (q) => {
    await q.sendMessage("existing");
    const sq = sasQueue(q.name, queueSas(q.name, { permissions: QueueSASPermissions.parse("r"), expiresOn: inMinutes(60) }));
    assert.deepEqual((await sq.peekMessages()).peekedMessageItems.map((m) => m.messageText), ["existing"]);
    await rejectsWith(sq.sendMessage("nope"), 403, "AuthorizationPermissionMismatch");
    await rejectsWith(sq.receiveMessages(), 403, "AuthorizationPermissionMismatch");
    assert.equal((await q.getProperties()).approximateMessagesCount, 1);
  }));

test("queue SAS cannot read the ACL (403 AuthorizationFailure)", () =>
  withQueue(async (q) => {
    const sq = sasQueue(q.name, queueSas(q.name, { permissions: QueueSASPermissions.parse("raup"), expiresOn: inMinutes(60) }));
    await rejectsWith(sq.getAccessPolicy(), 403, "AuthorizationFailure");
  }));

test("expired, not-yet-valid, tampered and foreign-queue SAS are 403 AuthenticationFailed", () =>
  withQueue(async (q) => {
    const expired = queueSas(q.name, { permissions: QueueSASPermissions.parse("raup"), startsOn: inMinutes(-120), expiresOn: inMinutes(-1) });
    await rejectsWith(sasQueue(q.name, expired).sendMessage("late"), 403, "AuthenticationFailed");
    const future = queueSas(q.name, { permissions: QueueSASPermissions.parse("raup"), startsOn: inMinutes(60), expiresOn: inMinutes(120) });
    await rejectsWith(sasQueue(q.name, future).peekMessages(), 403, "AuthenticationFailed");
    const readOnly = queueSas(q.name, { permissions: QueueSASPermissions.parse("r"), expiresOn: inMinutes(60) });
    const tampered = readOnly.replace("sp=r", "sp=raup");
    assert.notEqual(tampered, readOnly);
    await rejectsWith(sasQueue(q.name, tampered).sendMessage("forged"), 403, "AuthenticationFailed");
    const other = await ctx.newQueue("other");
    try {
      const good = queueSas(q.name, { permissions: QueueSASPermissions.parse("raup"), expiresOn: inMinutes(60) });
      await rejectsWith(sasQueue(other.name, good).sendMessage("wrong queue"), 403, "AuthenticationFailed");
    } finally {
      await other.delete();
    }
  }));

test("stored access policy: SAS with identifier works, is limited by the policy, dies with it", () =>
  withQueue(async (q) => {
    await q.setAccessPolicy([
      { id: "policy1", accessPolicy: { startsOn: inMinutes(-5), expiresOn: inMinutes(60), permissions: "raup" } },
      { id: "readonly", accessPolicy: { expiresOn: inMinutes(60), permissions: "r" } },
      { id: "old", accessPolicy: { startsOn: inMinutes(-120), expiresOn: inMinutes(-1), permissions: "raup" } },
    ]);
    const sq = sasQueue(q.name, queueSas(q.name, { identifier: "policy1" }));
    await sq.sendMessage("policy message");
    const [m] = (await sq.receiveMessages({ visibilityTimeout: 30 })).receivedMessageItems;
    assert.equal(m.messageText, "policy message");
    await sq.deleteMessage(m.messageId, m.popReceipt);

    const ro = sasQueue(q.name, queueSas(q.name, { identifier: "readonly" }));
    assert.deepEqual((await ro.peekMessages()).peekedMessageItems, []);
    await rejectsWith(ro.sendMessage("no"), 403, "AuthorizationPermissionMismatch");

    await rejectsWith(sasQueue(q.name, queueSas(q.name, { identifier: "old" })).peekMessages(), 403, "AuthenticationFailed");
    await rejectsWith(sasQueue(q.name, queueSas(q.name, { identifier: "nosuch" })).peekMessages(), 403, "AuthenticationFailed");

    await q.setAccessPolicy([]);
    await rejectsWith(sq.peekMessages(), 403, "AuthenticationFailed");
  }));

// ---------------------------------------------------------------- account SAS

function accountSas(resourceTypes, permissions, expiresOn = inMinutes(60), startsOn = undefined) {
  return generateAccountSASQueryParameters(
    {
      expiresOn,
      startsOn,
      permissions: AccountSASPermissions.parse(permissions),
      resourceTypes: AccountSASResourceTypes.parse(resourceTypes).toString(),
      services: AccountSASServices.parse("q").toString(),
    },
    cred()
  ).toString();
}

test("account SAS sco/rwdlacup: create, list, metadata, messages, delete", async () => {
  const svc = sasService(accountSas("sco", "rwdlacup"));
  const prefix = uniqueName("acct");
  const names = [prefix + "b", prefix + "a"];
  for (const n of names) await svc.createQueue(n);
  try {
    const listed = [];
    for await (const item of svc.listQueues({ prefix })) listed.push(item.name);
    assert.deepEqual(listed, [...names].sort());
    const q = svc.getQueueClient(names[0]);
    await q.setMetadata({ via: "account-sas" });
    assert.deepEqual((await q.getProperties()).metadata, { via: "account-sas" });
    await q.sendMessage("account sas message");
    const [m] = (await q.receiveMessages({ visibilityTimeout: 30 })).receivedMessageItems;
    assert.equal(m.messageText, "account sas message");
    await q.deleteMessage(m.messageId, m.popReceipt);
    await q.sendMessage("to clear");
    await q.clearMessages();
    assert.deepEqual((await q.peekMessages()).peekedMessageItems, []);
    assert.equal((await svc.getProperties()).queueAnalyticsLogging.version, "1.0");
  } finally {
    for (const n of names) await svc.deleteQueue(n);
  }
});

test("account SAS with srt=s can list but cannot create a queue (AuthorizationResourceTypeMismatch)", async () => {
  const serviceOnly = sasService(accountSas("s", "rlcw"));
  await serviceOnly.listQueues().byPage({ maxPageSize: 1 }).next();
  await rejectsWith(serviceOnly.createQueue(uniqueName("denied")), 403, "AuthorizationResourceTypeMismatch");
});

test("account SAS without l cannot list (AuthorizationPermissionMismatch)", async () => {
  const noList = sasService(accountSas("sco", "rc"));
  await rejectsWith(noList.listQueues().byPage().next(), 403, "AuthorizationPermissionMismatch");
});

test("account SAS cannot read the ACL (AuthorizationFailure)", () =>
  withQueue(async (q) => {
    const full = sasService(accountSas("sco", "rwdlacup"));
    await rejectsWith(full.getQueueClient(q.name).getAccessPolicy(), 403, "AuthorizationFailure");
  }));

test("expired account SAS is 403 AuthenticationFailed", async () => {
  const expired = sasService(accountSas("sco", "rwdlacup", inMinutes(-1), inMinutes(-120)));
  await rejectsWith(expired.listQueues().byPage().next(), 403, "AuthenticationFailed");
});

test("wrong account key is 403 AuthenticationFailed", () =>
  withQueue(async (q) => {
    const wrongKey = Buffer.from("not the right key, not at all!!".repeat(2)).toString("base64");
    const bad = new QueueServiceClient(
      ctx.server.accountUrl,
      new StorageSharedKeyCredential(ctx.server.account, wrongKey),
      CLIENT_OPTIONS
    );
    await rejectsWith(bad.getQueueClient(q.name).sendMessage("rejected"), 403, "AuthenticationFailed");
    await rejectsWith(bad.listQueues().byPage().next(), 403, "AuthenticationFailed");
    assert.equal((await q.getProperties()).approximateMessagesCount, 0);
  }));
