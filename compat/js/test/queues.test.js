"use strict";
// Queue-level operations with @azure/storage-queue: create / IfNotExists / delete / list / metadata.
const assert = require("node:assert/strict");
const { test } = require("node:test");
const { useServer, rejectsWith, uniqueName } = require("../lib/common");

const ctx = useServer();

test("create: 201 new, 204 identical metadata, 409 QueueAlreadyExists on different metadata", async () => {
  const q = ctx.queueClient(uniqueName("create"));
  const created = await q.create({ metadata: { k1: "v1" } });
  assert.equal(created._response.status, 201);
  try {
    const again = await q.create({ metadata: { k1: "v1" } });
    assert.equal(again._response.status, 204);
    await rejectsWith(q.create({ metadata: { k1: "other" } }), 409, "QueueAlreadyExists");
    await rejectsWith(q.create(), 409, "QueueAlreadyExists");
    assert.deepEqual((await q.getProperties()).metadata, { k1: "v1" });
  } finally {
    await q.delete();
  }
});

test("createIfNotExists: succeeded true, then false on 204 and on 409", async () => {
  const q = ctx.queueClient(uniqueName("ifne"));
  const statuses = [];
  const onResponse = (r) => statuses.push(r.status);
  const first = await q.createIfNotExists({ metadata: { a: "1" }, onResponse });
  assert.equal(first.succeeded, true);
  try {
    const same = await q.createIfNotExists({ metadata: { a: "1" }, onResponse });
    assert.equal(same.succeeded, false);
    const differs = await q.createIfNotExists({ metadata: { a: "2" }, onResponse });
    assert.equal(differs.succeeded, false);
    assert.equal(differs.errorCode, "QueueAlreadyExists");
    assert.deepEqual(statuses, [201, 204, 409]);
    assert.equal(await q.exists(), true);
    assert.deepEqual((await q.getProperties()).metadata, { a: "1" });
  } finally {
    await q.delete();
  }
});

test("delete / deleteIfExists / exists", async () => {
  const q = await ctx.newQueue("del");
  await q.sendMessage("goes with the queue");
  const res = await q.delete();
  assert.equal(res._response.status, 204);
  assert.equal(await q.exists(), false);
  await rejectsWith(q.delete(), 404, "QueueNotFound");
  const gone = await q.deleteIfExists();
  assert.equal(gone.succeeded, false);
  assert.equal(gone.errorCode, "QueueNotFound");
  await q.create();
  const ok = await q.deleteIfExists();
  assert.equal(ok.succeeded, true);
  assert.equal(await q.exists(), false);
});

test("service client createQueue / deleteQueue", async () => {
  const name = uniqueName("svc");
  const res = await ctx.service.createQueue(name, { metadata: { origin: "service" } });
  assert.equal(res._response.status, 201);
  const q = ctx.service.getQueueClient(name);
  assert.equal(q.name, name);
  assert.deepEqual((await q.getProperties()).metadata, { origin: "service" });
  const del = await ctx.service.deleteQueue(name);
  assert.equal(del._response.status, 204);
  await rejectsWith(q.getProperties(), 404, "QueueNotFound");
});

test("operations on a missing queue fail with 404 QueueNotFound", async () => {
  const q = ctx.queueClient(uniqueName("missing"));
  await rejectsWith(q.getProperties(), 404, "QueueNotFound");
  await rejectsWith(q.setMetadata({ a: "b" }), 404, "QueueNotFound");
  await rejectsWith(q.getAccessPolicy(), 404, "QueueNotFound");
  await rejectsWith(q.sendMessage("x"), 404, "QueueNotFound");
  await rejectsWith(q.receiveMessages(), 404, "QueueNotFound");
  await rejectsWith(q.peekMessages(), 404, "QueueNotFound");
  await rejectsWith(q.clearMessages(), 404, "QueueNotFound");
});

test("invalid queue names are rejected with 400", async () => {
  await rejectsWith(ctx.queueClient("ab").create(), 400, "OutOfRangeInput");
  await rejectsWith(ctx.queueClient("Upper").create(), 400, "InvalidResourceName");
  await rejectsWith(ctx.queueClient("a--b").create(), 400, "InvalidResourceName");
});

test("listQueues().byPage({maxPageSize}) returns every queue once, in name order", async () => {
  const prefix = uniqueName("lst");
  const names = ["c", "a", "e", "b", "d"].map((s) => prefix + s); // created out of order
  for (const n of names) await ctx.service.createQueue(n);
  try {
    const pages = [];
    for await (const page of ctx.service.listQueues({ prefix }).byPage({ maxPageSize: 2 })) {
      pages.push(page.queueItems.map((q) => q.name));
      if (pages.length > 6) break; // a server that never stops paging must fail, not hang
    }
    assert.deepEqual(pages, [
      [prefix + "a", prefix + "b"],
      [prefix + "c", prefix + "d"],
      [prefix + "e"],
    ]);
    const all = [];
    for await (const item of ctx.service.listQueues({ prefix })) all.push(item.name);
    assert.deepEqual(all, [...names].sort());
  } finally {
    for (const n of names) await ctx.service.deleteQueue(n);
  }
});

test("listQueues continuation token resumes where the page ended", async () => {
  const prefix = uniqueName("tok");
  const names = [3, 1, 4, 0, 2].map((i) => `${prefix}${i}`);
  for (const n of names) await ctx.service.createQueue(n);
  try {
    const seen = [];
    let token;
    let rounds = 0;
    do {
      const iter = ctx.service.listQueues({ prefix }).byPage({ maxPageSize: 2, continuationToken: token });
      const { value } = await iter.next();
      seen.push(...value.queueItems.map((q) => q.name));
      token = value.continuationToken;
      rounds += 1;
    } while (token && rounds < 10);
    assert.deepEqual(seen, [...names].sort());
    assert.equal(rounds, 3);
  } finally {
    for (const n of names) await ctx.service.deleteQueue(n);
  }
});

test("listQueues prefix filter and includeMetadata", async () => {
  const prefix = uniqueName("md");
  const other = uniqueName("me");
  await ctx.service.createQueue(prefix + "a", { metadata: { Color: "red", camelCase: "x", UPPER: "y" } });
  await ctx.service.createQueue(prefix + "b");
  await ctx.service.createQueue(other + "a");
  try {
    const withMeta = [];
    for await (const q of ctx.service.listQueues({ prefix, includeMetadata: true })) withMeta.push(q);
    // The JS SDK lowercases metadata names itself; values and membership are the server's.
    assert.deepEqual(
      withMeta.map((q) => [q.name, q.metadata]),
      [
        [prefix + "a", { color: "red", camelcase: "x", upper: "y" }],
        [prefix + "b", undefined],
      ]
    );
    const plain = [];
    for await (const q of ctx.service.listQueues({ prefix })) plain.push([q.name, q.metadata]);
    assert.deepEqual(plain, [
      [prefix + "a", undefined],
      [prefix + "b", undefined],
    ]);
  } finally {
    for (const n of [prefix + "a", prefix + "b", other + "a"]) await ctx.service.deleteQueue(n);
  }
});

test("metadata: set replaces, empty clears, values kept exactly", async () => {
  const q = await ctx.newQueue("meta");
  try {
    const res = await q.setMetadata({ Color: "red", camelCase: "x", UPPER: "y" });
    assert.equal(res._response.status, 204);
    const props = await q.getProperties();
    // Node's HTTP stack lowercases header names, so JS users see lowercase keys.
    assert.deepEqual(props.metadata, { color: "red", camelcase: "x", upper: "y" });
    await q.setMetadata({ note: "hello world, 1+1=2; a/b?c" });
    assert.deepEqual((await q.getProperties()).metadata, { note: "hello world, 1+1=2; a/b?c" });
    await q.setMetadata();
    assert.equal((await q.getProperties()).metadata, undefined); // no x-ms-meta-* headers at all
  } finally {
    await q.delete();
  }
});

test("approximateMessagesCount counts visible and invisible messages", async () => {
  const q = await ctx.newQueue("count");
  try {
    assert.equal((await q.getProperties()).approximateMessagesCount, 0);
    await q.sendMessage("one");
    await q.sendMessage("two");
    await q.sendMessage("three", { visibilityTimeout: 60 });
    assert.equal((await q.getProperties()).approximateMessagesCount, 3);
    const [m] = (await q.receiveMessages({ visibilityTimeout: 60 })).receivedMessageItems;
    assert.equal((await q.getProperties()).approximateMessagesCount, 3);
    await q.deleteMessage(m.messageId, m.popReceipt);
    assert.equal((await q.getProperties()).approximateMessagesCount, 2);
    await q.clearMessages();
    assert.equal((await q.getProperties()).approximateMessagesCount, 0);
  } finally {
    await q.delete();
  }
});
