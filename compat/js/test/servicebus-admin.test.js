"use strict";
// ServiceBusAdministrationClient from @azure/service-bus against Hematite: 7.9.5, which always
// speaks https to the endpoint (here the AMQPS port, with a certificate from `hematite dev-cert`
// trusted through the client's tlsOptions), and 7.10.0-beta.2, which speaks plain http to the
// endpoint's port when the connection string sets UseDevelopmentEmulator (here the AMQP port,
// which answers HTTP too). Queues are created, read, updated, listed page by page and deleted,
// and what they are given takes effect on the data plane. With HEMATITE_URL set the file is
// skipped: it starts a TLS server of its own.

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { execFileSync } = require("node:child_process");
const { test, before, after } = require("node:test");
const { ServiceBusAdministrationClient, ServiceBusClient } = require("@azure/service-bus");
const beta = require("@azure/service-bus-beta");
const { startServer, devCert, freePort, portAccepts, uniqueName, sleep, SB_KEY } = require("../lib/harness");

const WAIT_MS = 5_000;
const CLIENT_OPTIONS = { retryOptions: { maxRetries: 0, timeoutInMs: 10_000, retryDelayInMs: 100 } };
const external = Boolean(process.env.HEMATITE_URL);
const ctx = {};

before(async () => {
  if (external) return;
  ctx.cert = devCert();
  ctx.amqpsPort = await freePort();
  ctx.server = await startServer({
    https: true,
    servicebus: true,
    extraArgs: [
      "--tls-cert",
      ctx.cert.cert,
      "--tls-key",
      ctx.cert.key,
      "--amqps-listen",
      `127.0.0.1:${ctx.amqpsPort}`,
    ],
  });
  // The harness waits for the REST and AMQP ports; AMQPS is bound just after them.
  const deadline = Date.now() + 10_000;
  while (!(await portAccepts(ctx.amqpsPort))) {
    if (Date.now() > deadline) throw new Error(`the AMQPS port ${ctx.amqpsPort} did not open`);
    await sleep(50);
  }
  // What an application has for Azure: no emulator flag, so the clients use TLS.
  ctx.tlsConnStr = (key = SB_KEY) =>
    `Endpoint=sb://localhost:${ctx.amqpsPort};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=${key}`;
  ctx.admin = admin();
  ctx.client = new ServiceBusClient(ctx.server.sbConnectionString(), CLIENT_OPTIONS);
});

after(async () => {
  if (ctx.client) await ctx.client.close();
  if (ctx.server) await ctx.server.stop();
  if (ctx.cert) fs.rmSync(path.dirname(ctx.cert.ca), { recursive: true, force: true });
});

function admin(connStr = ctx.tlsConnStr()) {
  return new ServiceBusAdministrationClient(connStr, {
    tlsOptions: { ca: fs.readFileSync(ctx.cert.ca, "utf8") },
    retryOptions: { maxRetries: 0 },
  });
}

const name = (prefix = "q") => uniqueName(prefix + "-");

async function receive(receiver, n, waitMs = WAIT_MS) {
  const got = [];
  const deadline = Date.now() + waitMs;
  while (got.length < n && Date.now() < deadline) {
    got.push(...(await receiver.receiveMessages(n - got.length, { maxWaitTimeInMs: Math.max(500, deadline - Date.now()) })));
  }
  return got;
}

async function rejectsWithCode(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.code, code, `code of ${e.message}`);
    return true;
  });
}

test("the tutorial's queue is created with its size and TTL, which messages then carry", { skip: external }, async () => {
  const q = name("taskqueue");
  const created = await ctx.admin.createQueue(q, { maxSizeInMegabytes: 5120, defaultMessageTimeToLive: "PT1M" });
  assert.equal(created.name, q);
  assert.equal(created.maxSizeInMegabytes, 5120);
  assert.equal(created.defaultMessageTimeToLive, "PT1M");
  const got = await ctx.admin.getQueue(q);
  assert.equal(got.maxSizeInMegabytes, 5120);
  assert.equal(got.defaultMessageTimeToLive, "PT1M");
  // Azure's defaults for the rest.
  assert.equal(got.lockDuration, "PT1M");
  assert.equal(got.maxDeliveryCount, 10);
  assert.equal(got.status, "Active");
  await ctx.client.createSender(q).sendMessages({ body: "Test Message" });
  const receiver = ctx.client.createReceiver(q);
  const [m] = await receive(receiver, 1);
  assert.equal(m.body, "Test Message");
  assert.equal(m.timeToLive, 60_000);
  await receiver.completeMessage(m);
  await receiver.close();
});

test("a short TTL given at creation expires messages into the dead-letter queue", { skip: external }, async () => {
  const q = name();
  await ctx.admin.createQueue(q, { defaultMessageTimeToLive: "PT2S", deadLetteringOnMessageExpiration: true });
  await ctx.client.createSender(q).sendMessages({ body: "short-lived" });
  await sleep(3_000);
  const dlq = ctx.client.createReceiver(q, { subQueueType: "deadLetter" });
  const [m] = await receive(dlq, 1);
  assert.equal(m.body, "short-lived");
  assert.equal(m.deadLetterReason, "TTLExpiredException");
  await dlq.completeMessage(m);
  await dlq.close();
});

test("an update takes effect: a lower MaxDeliveryCount dead-letters sooner", { skip: external }, async () => {
  const q = name();
  await ctx.admin.createQueue(q);
  const props = await ctx.admin.getQueue(q);
  props.maxDeliveryCount = 2;
  props.userMetadata = "owned by billing";
  const updated = await ctx.admin.updateQueue(props);
  assert.equal(updated.maxDeliveryCount, 2);
  assert.equal((await ctx.admin.getQueue(q)).userMetadata, "owned by billing");
  await ctx.client.createSender(q).sendMessages({ body: "poison" });
  const receiver = ctx.client.createReceiver(q);
  for (let i = 0; i < 2; i++) {
    const [m] = await receive(receiver, 1);
    await receiver.abandonMessage(m);
  }
  await receiver.close();
  const rt = await ctx.admin.getQueueRuntimeProperties(q);
  assert.equal(rt.activeMessageCount, 0);
  assert.equal(rt.deadLetterMessageCount, 1);
});

test("listing pages through every queue by its next links", { skip: external }, async () => {
  const made = [];
  for (let i = 0; i < 5; i++) made.push((await ctx.admin.createQueue(name("list"))).name);
  const pages = [];
  for await (const page of ctx.admin.listQueues().byPage({ maxPageSize: 2 })) pages.push(page.map((p) => p.name));
  assert.ok(pages.length >= 3, `pages: ${JSON.stringify(pages)}`);
  assert.ok(pages.every((p) => p.length <= 2));
  const all = pages.flat();
  for (const q of made) assert.ok(all.includes(q), `${q} listed`);
  assert.equal(new Set(all).size, all.length, "no queue twice");
  const runtime = [];
  for await (const p of ctx.admin.listQueuesRuntimeProperties()) runtime.push(p.name);
  assert.deepEqual(runtime.sort(), [...all].sort());
});

test("runtime counts follow sends, schedules and dead-letters", { skip: external }, async () => {
  const q = name();
  await ctx.admin.createQueue(q);
  const sender = ctx.client.createSender(q);
  await sender.sendMessages([0, 1, 2, 3].map((i) => ({ body: `m${i}` })));
  await sender.scheduleMessages({ body: "later" }, new Date(Date.now() + 3_600_000));
  const receiver = ctx.client.createReceiver(q);
  const [m] = await receive(receiver, 1);
  await receiver.deadLetterMessage(m, { deadLetterReason: "bad" });
  await receiver.close();
  const rt = await ctx.admin.getQueueRuntimeProperties(q);
  assert.equal(rt.activeMessageCount, 3);
  assert.equal(rt.deadLetterMessageCount, 1);
  assert.equal(rt.scheduledMessageCount, 1);
  assert.equal(rt.totalMessageCount, 5);
  assert.ok(rt.sizeInBytes > 0);
});

test("existing and missing queues get Azure's answers", { skip: external }, async () => {
  const q = name();
  await ctx.admin.createQueue(q);
  await rejectsWithCode(ctx.admin.createQueue(q), "MessageEntityAlreadyExistsError");
  await rejectsWithCode(ctx.admin.getQueue(name("missing")), "MessageEntityNotFoundError");
  await rejectsWithCode(ctx.admin.deleteQueue(name("missing")), "MessageEntityNotFoundError");
  assert.equal(await ctx.admin.queueExists(q), true);
  assert.equal(await ctx.admin.queueExists(name("missing")), false);
  await ctx.admin.deleteQueue(q);
  assert.equal(await ctx.admin.queueExists(q), false);
  await rejectsWithCode(ctx.admin.createQueue(name(), { lockDuration: "PT10M" }), "ServiceError");
});

test("a wrong key is refused with 401", { skip: external }, async () => {
  await rejectsWithCode(admin(ctx.tlsConnStr("WRONG_KEY")).createQueue(name()), "UnauthorizedRequestError");
});

test("namespace properties", { skip: external }, async () => {
  const ns = await ctx.admin.getNamespaceProperties();
  assert.equal(ns.name, "sbemulatorns");
  assert.equal(ns.messagingSku, "Standard");
});

test("7.10 beta speaks http to the AMQP port with UseDevelopmentEmulator", { skip: external }, async () => {
  const a = new beta.ServiceBusAdministrationClient(ctx.server.sbConnectionString(), { retryOptions: { maxRetries: 0 } });
  const q = name("beta");
  const created = await a.createQueue(q, { lockDuration: "PT30S", maxDeliveryCount: 5 });
  assert.equal(created.lockDuration, "PT30S");
  await ctx.client.createSender(q).sendMessages({ body: "beta" });
  assert.equal((await a.getQueueRuntimeProperties(q)).activeMessageCount, 1);
  await a.deleteQueue(q);
  assert.equal(await a.queueExists(q), false);
});

test("the data plane over AMQPS with the same connection string", { skip: external }, async () => {
  const q = name("amqps");
  await ctx.admin.createQueue(q);
  const out = execFileSync(
    process.execPath,
    [path.join(__dirname, "..", "lib", "amqps-roundtrip.js"), ctx.tlsConnStr(), String(ctx.amqpsPort), q],
    { env: { ...process.env, NODE_EXTRA_CA_CERTS: ctx.cert.ca }, timeout: 60_000, encoding: "utf8" }
  );
  assert.deepEqual(JSON.parse(out.trim()), ["tls-0", "tls-1", "tls-2"]);
  assert.equal((await ctx.admin.getQueueRuntimeProperties(q)).totalMessageCount, 0);
});

test("topics, subscriptions and rules: created, read, updated, listed by page and deleted", { skip: external }, async () => {
  const t = name("topic");
  const created = await ctx.admin.createTopic(t, { maxSizeInMegabytes: 2048, defaultMessageTimeToLive: "PT1H" });
  assert.equal(created.name, t);
  assert.equal(created.maxSizeInMegabytes, 2048);
  const topic = await ctx.admin.getTopic(t);
  assert.equal(topic.defaultMessageTimeToLive, "PT1H");
  await ctx.admin.updateTopic({ ...topic, maxSizeInMegabytes: 4096 });
  assert.equal((await ctx.admin.getTopic(t)).maxSizeInMegabytes, 4096);
  assert.equal(await ctx.admin.topicExists(t), true);
  for (const s of ["a", "b", "c"]) await ctx.admin.createSubscription(t, s, { maxDeliveryCount: 3 });
  const sub = await ctx.admin.getSubscription(t, "b");
  assert.equal(sub.topicName, t);
  assert.equal(sub.subscriptionName, "b");
  assert.equal(sub.maxDeliveryCount, 3);
  await ctx.admin.updateSubscription({ ...sub, lockDuration: "PT30S" });
  assert.equal((await ctx.admin.getSubscription(t, "b")).lockDuration, "PT30S");
  const pages = [];
  for await (const page of ctx.admin.listSubscriptions(t).byPage({ maxPageSize: 2 })) {
    pages.push(page.map((s) => s.subscriptionName));
  }
  assert.deepEqual(pages, [["a", "b"], ["c"]]);
  assert.equal((await ctx.admin.getTopicRuntimeProperties(t)).subscriptionCount, 3);
  assert.equal((await ctx.admin.getSubscriptionRuntimeProperties(t, "a")).totalMessageCount, 0);

  const applicationProperties = { count: 3, ratio: 1.5, urgent: true, region: "eu" };
  await ctx.admin.createRule(t, "a", "by-correlation", { correlationId: "c-1", subject: "invoice", applicationProperties });
  await ctx.admin.createRule(t, "a", "by-sql", { sqlExpression: "color = @c", sqlParameters: { "@c": "red" } }, { sqlExpression: "SET handled = 1" });
  const corr = await ctx.admin.getRule(t, "a", "by-correlation");
  assert.equal(corr.name, "by-correlation");
  assert.equal(corr.filter.correlationId, "c-1");
  assert.equal(corr.filter.subject, "invoice");
  assert.deepEqual(corr.filter.applicationProperties, applicationProperties);
  const sql = await ctx.admin.getRule(t, "a", "by-sql");
  assert.deepEqual(sql.filter, { sqlExpression: "color = @c", sqlParameters: { "@c": "red" } });
  assert.equal(sql.action.sqlExpression, "SET handled = 1");
  const rules = [];
  for await (const r of ctx.admin.listRules(t, "a")) rules.push(r.name);
  assert.deepEqual(rules.sort(), ["$Default", "by-correlation", "by-sql"]);
  await ctx.admin.updateRule(t, "a", { ...sql, filter: { sqlExpression: "color = 'blue'" } });
  assert.equal((await ctx.admin.getRule(t, "a", "by-sql")).filter.sqlExpression, "color = 'blue'");
  await ctx.admin.deleteRule(t, "a", "by-sql");
  assert.equal(await ctx.admin.ruleExists(t, "a", "by-sql"), false);
  await rejectsWithCode(ctx.admin.createRule(t, "a", "by-correlation", { correlationId: "x" }), "MessageEntityAlreadyExistsError");

  await ctx.admin.deleteSubscription(t, "c");
  assert.equal(await ctx.admin.subscriptionExists(t, "c"), false);
  await ctx.admin.deleteTopic(t);
  assert.equal(await ctx.admin.topicExists(t), false);
  await rejectsWithCode(ctx.admin.getSubscription(t, "a"), "MessageEntityNotFoundError");
});

test("7.10 beta manages topics over http on the AMQP port", { skip: external }, async () => {
  const a = new beta.ServiceBusAdministrationClient(ctx.server.sbConnectionString(), { retryOptions: { maxRetries: 0 } });
  const t = name("beta-topic");
  await a.createTopic(t);
  await a.createSubscription(t, "s", { defaultRuleOptions: { name: "first", filter: { sqlExpression: "a = 1" } } });
  const rules = [];
  for await (const r of a.listRules(t, "s")) rules.push([r.name, r.filter.sqlExpression]);
  assert.deepEqual(rules, [["first", "a = 1"]]);
  const q = name("beta-queue");
  await a.createQueue(q);
  await rejectsWithCode(a.createTopic(q), "MessageEntityAlreadyExistsError");
  await a.deleteTopic(t);
});
