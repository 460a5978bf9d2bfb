"use strict";
// @azure/service-bus 7.9.5 (rhea underneath) against Hematite's Service Bus front over AMQP:
// the tutorial's flow, message properties, batches, size limits, competing receivers, errors,
// dead-lettering, TTL, scheduling, deferral, peeking and lock renewal.
//
// The server reads an emulator-format config.json that declares a pool of queues of each kind,
// as the emulator's users do, and every test takes fresh ones (servicebus-admin.test.js creates
// its queues over the administration API instead).
// The server runs on the durable store (a scratch --data-dir). With HEMATITE_URL set the file
// is skipped: a server started elsewhere does not have this file's queues.

const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { test, before, after, beforeEach, afterEach } = require("node:test");
const { ServiceBusClient } = require("@azure/service-bus");
const { startServer, sleep } = require("../lib/harness");

const WAIT_MS = 5_000; // how long a receive waits for messages that should be there
const EMPTY_WAIT_MS = 1_000; // how long a receive waits to show that nothing is there
const TEST_TIMEOUT_MS = 60_000;
const CLOSE_TIMEOUT_MS = 5_000;
// Few retries and short timeouts: a wrong answer or a missing one must fail fast.
const CLIENT_OPTIONS = { retryOptions: { maxRetries: 0, timeoutInMs: 10_000, retryDelayInMs: 100 } };

// Each kind: how many queues, and their emulator Properties.
const KINDS = {
  plain: [40, {}],
  short_lock: [4, { LockDuration: "PT5S" }], // Azure's shortest lock
  two_deliveries: [2, { MaxDeliveryCount: 2 }],
  ttl_to_dlq: [2, { DefaultMessageTimeToLive: "PT2S", DeadLetteringOnMessageExpiration: true }],
  ttl: [2, { DefaultMessageTimeToLive: "PT2S" }],
};
const used = Object.fromEntries(Object.keys(KINDS).map((k) => [k, 0]));

/** A queue of this kind that no other test has used. */
function take(kind = "plain") {
  const [n] = KINDS[kind];
  if (used[kind] >= n) throw new Error(`the pool of ${kind} queues (${n}) is used up; raise it in KINDS`);
  return `${kind}-${used[kind]++}`;
}

function configJson() {
  const queues = [];
  for (const [kind, [n, props]] of Object.entries(KINDS)) {
    for (let i = 0; i < n; i++) queues.push({ Name: `${kind}-${i}`, Properties: props });
  }
  return JSON.stringify({
    UserConfig: { Namespaces: [{ Name: "sbemulatorns", Queues: queues }], Logging: { Type: "File" } },
  });
}

const external = Boolean(process.env.HEMATITE_URL);
const ctx = {};
before(async () => {
  if (external) return;
  ctx.configDir = fs.mkdtempSync(path.join(os.tmpdir(), "hematite-js-sb-config-"));
  const config = path.join(ctx.configDir, "config.json");
  fs.writeFileSync(config, configJson());
  ctx.server = await startServer({ servicebus: true, sbConfig: config });
});
after(async () => {
  if (ctx.server) await ctx.server.stop();
  if (ctx.configDir) fs.rmSync(ctx.configDir, { recursive: true, force: true });
});

// Each test has a client (one AMQP connection) of its own, so a connection the server drops
// fails that test only. Senders, receivers and clients a test opened are closed after it,
// pass or fail, each given a few seconds.
const opened = [];
beforeEach(() => {
  if (external) return;
  ctx.client = track(new ServiceBusClient(ctx.server.sbConnectionString(), CLIENT_OPTIONS));
});
afterEach(
  async () => {
    for (const c of opened.splice(0).reverse()) {
      await Promise.race([c.close().catch(() => {}), sleep(CLOSE_TIMEOUT_MS)]);
    }
  },
  { timeout: 60_000 }
);
const track = (c) => (opened.push(c), c);
const sender = (queue, client = ctx.client) => track(client.createSender(queue));
const receiver = (queue, options = {}, client = ctx.client) => track(client.createReceiver(queue, options));
const newClient = (connStr, options = CLIENT_OPTIONS) => track(new ServiceBusClient(connStr, options));

/** Up to `n` messages, asking again until `waitMs` has passed. */
async function receive(rcv, n, waitMs = WAIT_MS) {
  const got = [];
  const deadline = Date.now() + waitMs;
  while (got.length < n && Date.now() < deadline) {
    const batch = await rcv.receiveMessages(n - got.length, {
      maxWaitTimeInMs: Math.max(500, deadline - Date.now()),
    });
    got.push(...batch);
  }
  return got;
}

async function receiveOne(rcv, waitMs = WAIT_MS) {
  const got = await receive(rcv, 1, waitMs);
  assert.equal(got.length, 1, `expected one message within ${waitMs} ms, got ${got.length}`);
  return got[0];
}

async function assertEmpty(rcv) {
  const got = await rcv.receiveMessages(5, { maxWaitTimeInMs: EMPTY_WAIT_MS });
  assert.deepEqual(
    got.map((m) => m.body),
    [],
    "expected no message"
  );
}

/** Asserts that `promise` rejects with a ServiceBusError of this code. */
async function rejectsWithCode(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.name, "ServiceBusError", `expected a ServiceBusError, got ${e.name}: ${e.message}`);
    assert.equal(e.code, code, `code of ${e.message}`);
    return true;
  });
}

const isLong = (v) => v !== null && typeof v === "object" && typeof v.toNumber === "function" && "high" in v;

const sbTest = (name, fn) =>
  test(name, { timeout: TEST_TIMEOUT_MS, skip: external && "HEMATITE_URL: the server lacks this file's queues" }, fn);

// ---------------------------------------------------------------------------------------------
// The tutorial's flow

sbTest("tutorial: send, receive with peekLock and complete", async () => {
  const queue = take();
  await sender(queue).sendMessages({ body: "Test Message" });
  const rcv = receiver(queue, { receiveMode: "peekLock" });
  const m = await receiveOne(rcv);
  const now = Date.now();
  assert.equal(m.body, "Test Message");
  assert.equal(m.deliveryCount, 0);
  assert.equal(m.state, "active");
  assert.ok(isLong(m.sequenceNumber), `sequenceNumber is not a Long: ${m.sequenceNumber}`);
  assert.ok(m.sequenceNumber.toNumber() >= 1);
  // Stamped by the broker: the sender gave none (and the SDK's lock renewal needs one).
  assert.equal(typeof m.messageId, "string");
  assert.ok(m.messageId.length > 0);
  assert.match(m.lockToken, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.notEqual(m.lockToken, "00000000-0000-0000-0000-000000000000");
  assert.ok(m.lockedUntilUtc instanceof Date && m.lockedUntilUtc.getTime() > now);
  assert.ok(m.enqueuedTimeUtc instanceof Date && m.enqueuedTimeUtc.getTime() <= now + 1000);
  await rcv.completeMessage(m);
  await assertEmpty(rcv);
  assert.deepEqual(await rcv.peekMessages(10), []);
});

sbTest("tutorial: abandon gives the same message again with deliveryCount + 1", async () => {
  const queue = take();
  await sender(queue).sendMessages({ body: "Test Message", messageId: "tutorial-1" });
  const rcv = receiver(queue);
  const first = await receiveOne(rcv);
  assert.equal(first.deliveryCount, 0);
  await rcv.abandonMessage(first);
  const again = await receiveOne(rcv);
  assert.equal(again.body, "Test Message");
  assert.equal(again.messageId, "tutorial-1");
  assert.ok(again.sequenceNumber.equals(first.sequenceNumber));
  assert.equal(again.deliveryCount, first.deliveryCount + 1);
  assert.notEqual(again.lockToken, first.lockToken);
  await rcv.completeMessage(again);
  await assertEmpty(rcv);
});

sbTest("tutorial: a lapsed lock gives the message again and the old lock is lost", async () => {
  const queue = take("short_lock");
  await sender(queue).sendMessages({ body: "Test Message" });
  // The SDK renews locks by itself unless told not to.
  const rcv = receiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
  const first = await receiveOne(rcv);
  const lapse = first.lockedUntilUtc.getTime() - Date.now();
  assert.ok(lapse > 3000 && lapse <= 6000, `lock lasts ${lapse} ms, LockDuration is PT5S`);
  await sleep(lapse + 1000);
  const again = await receiveOne(rcv);
  assert.equal(again.messageId, first.messageId);
  assert.equal(again.body, "Test Message");
  assert.equal(again.deliveryCount, 1);
  assert.notEqual(again.lockToken, first.lockToken);
  await rejectsWithCode(rcv.completeMessage(first), "MessageLockLost");
  await rcv.completeMessage(again);
  await assertEmpty(rcv);
});

sbTest("tutorial: receiveAndDelete", async () => {
  const queue = take();
  await sender(queue).sendMessages(["m0", "m1", "m2"].map((body) => ({ body })));
  const rcv = receiver(queue, { receiveMode: "receiveAndDelete" });
  const got = await receive(rcv, 3);
  assert.deepEqual(got.map((m) => m.body).sort(), ["m0", "m1", "m2"]);
  for (const m of got) assert.equal(m.deliveryCount, 0);
  await assertEmpty(rcv);
  assert.deepEqual(await receiver(queue).peekMessages(10), []);
});

// ---------------------------------------------------------------------------------------------
// Message contents

sbTest("body, properties and system properties round trip", async () => {
  const queue = take();
  const stamp = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678));
  const body = Buffer.from([0, 1, ...Buffer.from("binary")]);
  const before = Date.now();
  await sender(queue).sendMessages({
    body,
    applicationProperties: { colour: "red", n: 7, neg: -3, half: 1.5, ok: true, big: 2 ** 40, when: stamp },
    contentType: "application/octet-stream",
    correlationId: "corr",
    subject: "label",
    to: "somewhere",
    replyTo: "back",
    messageId: "mid-1",
    timeToLive: 5 * 60 * 1000,
  });
  // By default the SDK turns Date properties into numbers; this keeps the wire's timestamps.
  const rcv = receiver(queue, { skipConvertingDate: true });
  const m = await receiveOne(rcv);
  assert.ok(Buffer.isBuffer(m.body), `body is not a Buffer: ${m.body}`);
  assert.deepEqual(m.body, body);
  assert.deepEqual(m.applicationProperties, { colour: "red", n: 7, neg: -3, half: 1.5, ok: true, big: 2 ** 40, when: stamp });
  assert.equal(m.contentType, "application/octet-stream");
  assert.equal(m.correlationId, "corr");
  assert.equal(m.subject, "label");
  assert.equal(m.to, "somewhere");
  assert.equal(m.replyTo, "back");
  assert.equal(m.messageId, "mid-1");
  assert.equal(m.timeToLive, 5 * 60 * 1000);
  // The first message of a fresh queue has sequence number 1.
  assert.ok(isLong(m.sequenceNumber), `sequenceNumber is not a Long: ${m.sequenceNumber}`);
  assert.equal(m.sequenceNumber.toString(), "1");
  assert.ok(m.enqueuedTimeUtc instanceof Date);
  assert.ok(
    m.enqueuedTimeUtc.getTime() >= before - 1000 && m.enqueuedTimeUtc.getTime() <= Date.now() + 1000,
    `enqueuedTimeUtc ${m.enqueuedTimeUtc.toISOString()}`
  );
  assert.equal(m.expiresAtUtc.getTime() - m.enqueuedTimeUtc.getTime(), 5 * 60 * 1000);
  // Default LockDuration: one minute from the lock.
  const lockLeft = m.lockedUntilUtc.getTime() - Date.now();
  assert.ok(lockLeft > 50_000 && lockLeft <= 61_000, `lock lasts ${lockLeft} ms, LockDuration is PT1M`);
  assert.equal(m.deliveryCount, 0);
  await rcv.completeMessage(m);
});

sbTest("sequence numbers count up from 1 per queue", async () => {
  const queue = take();
  const snd = sender(queue);
  await snd.sendMessages({ body: "a" });
  await snd.sendMessages([{ body: "b" }, { body: "c" }]);
  const got = await receive(receiver(queue, { receiveMode: "receiveAndDelete" }), 3);
  assert.deepEqual(
    got.map((m) => [m.body, m.sequenceNumber.toString()]),
    [
      ["a", "1"],
      ["b", "2"],
      ["c", "3"],
    ]
  );
});

sbTest("a batch of 1,000 made with createMessageBatch arrives whole and in order", async () => {
  const queue = take();
  const snd = sender(queue);
  const batch = await snd.createMessageBatch();
  assert.equal(batch.maxSizeInBytes, 256 * 1024, "max-message-size advertised on the sender link");
  const bodies = Array.from({ length: 1000 }, (_, i) => String(i).padStart(4, "0"));
  for (const body of bodies) assert.ok(batch.tryAddMessage({ body }), `message ${body} did not fit`);
  assert.equal(batch.count, 1000);
  await snd.sendMessages(batch);
  const rcv = receiver(queue, { receiveMode: "receiveAndDelete" });
  const got = await receive(rcv, 1000, 30_000);
  assert.deepEqual(
    got.map((m) => m.body),
    bodies
  );
  const seqs = got.map((m) => m.sequenceNumber.toNumber());
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `sequence numbers out of order at ${i}`);
  await assertEmpty(rcv);
});

sbTest("a 250 KB message round trips; one over 256 KB is refused", async () => {
  const queue = take();
  const snd = sender(queue);
  // The 256 KB limit covers the whole encoded message: a body a little under it fits.
  const body = Buffer.alloc(250 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = i % 256;
  await snd.sendMessages({ body });
  await rejectsWithCode(snd.sendMessages({ body: Buffer.alloc(256 * 1024 + 1, 0x78) }), "MessageSizeExceeded");
  // The sender is still usable after the refusal.
  await snd.sendMessages({ body: "after" });
  const rcv = receiver(queue);
  const [big, after] = await receive(rcv, 2);
  assert.ok(Buffer.isBuffer(big.body));
  assert.equal(big.body.length, body.length);
  assert.ok(big.body.equals(body), "the 250 KB body came back changed");
  assert.equal(after.body, "after");
  await rcv.completeMessage(big);
  await rcv.completeMessage(after);
  await assertEmpty(rcv);
});

// ---------------------------------------------------------------------------------------------
// Competing consumers

sbTest("two receivers on two connections never hold the same message", async () => {
  const queue = take();
  const n = 200;
  const snd = sender(queue);
  await snd.sendMessages(Array.from({ length: n }, (_, i) => ({ body: String(i) })));
  const clients = [newClient(ctx.server.sbConnectionString()), newClient(ctx.server.sbConnectionString())];
  const work = async (client) => {
    const rcv = receiver(queue, {}, client);
    const seen = [];
    let idle = 0;
    while (idle < 2) {
      const batch = await rcv.receiveMessages(10, { maxWaitTimeInMs: 1000 });
      idle = batch.length ? 0 : idle + 1;
      for (const m of batch) {
        seen.push(m.body);
        await rcv.completeMessage(m);
      }
    }
    return seen;
  };
  const [a, b] = await Promise.all(clients.map(work));
  const overlap = a.filter((x) => b.includes(x));
  assert.deepEqual(overlap, [], "messages delivered to both receivers");
  assert.deepEqual(
    [...a, ...b].map(Number).sort((x, y) => x - y),
    Array.from({ length: n }, (_, i) => i)
  );
  assert.ok(a.length > 0 && b.length > 0, `one receiver got everything (${a.length} / ${b.length})`);
});

sbTest("subscribe() streams messages to a handler", async () => {
  const queue = take();
  const bodies = ["s0", "s1", "s2", "s3", "s4"];
  await sender(queue).sendMessages(bodies.map((body) => ({ body })));
  const rcv = receiver(queue);
  const got = [];
  const errors = [];
  let done;
  const all = new Promise((resolve) => (done = resolve));
  const subscription = rcv.subscribe(
    {
      async processMessage(m) {
        assert.equal(m.deliveryCount, 0);
        await rcv.completeMessage(m);
        got.push(m.body);
        if (got.length === bodies.length) done();
      },
      async processError(args) {
        errors.push(args.error);
      },
    },
    { autoCompleteMessages: false, maxConcurrentCalls: 2 }
  );
  const timedOut = await Promise.race([all.then(() => false), sleep(10_000).then(() => true)]);
  await subscription.close();
  assert.deepEqual(errors, []);
  assert.equal(timedOut, false, `only ${got.length} of ${bodies.length} messages arrived`);
  assert.deepEqual(got.sort(), bodies);
  await assertEmpty(receiver(queue));
});

// ---------------------------------------------------------------------------------------------
// Errors

sbTest("a wrong key is refused with UnauthorizedAccess", async () => {
  const queue = take();
  const bad = newClient(ctx.server.sbConnectionString("not-the-key"));
  await rejectsWithCode(sender(queue, bad).sendMessages({ body: "no" }), "UnauthorizedAccess");
  await rejectsWithCode(
    receiver(queue, {}, bad).receiveMessages(1, { maxWaitTimeInMs: EMPTY_WAIT_MS }),
    "UnauthorizedAccess"
  );
  // Nothing got in.
  assert.deepEqual(await receiver(queue).peekMessages(10), []);
});

sbTest("an unknown queue is MessagingEntityNotFound", async () => {
  await rejectsWithCode(sender("no-such-queue").sendMessages({ body: "no" }), "MessagingEntityNotFound");
  await rejectsWithCode(
    receiver("no-such-queue").receiveMessages(1, { maxWaitTimeInMs: EMPTY_WAIT_MS }),
    "MessagingEntityNotFound"
  );
});

sbTest("queue names are case-insensitive", async () => {
  const queue = take();
  await sender(queue.toUpperCase()).sendMessages({ body: "upper" });
  const rcv = receiver(queue);
  const m = await receiveOne(rcv);
  assert.equal(m.body, "upper");
  await rcv.completeMessage(m);
});

// ---------------------------------------------------------------------------------------------
// Dead-lettering and expiry

sbTest("MaxDeliveryCount 2: two abandons move the message to the dead-letter queue", async () => {
  const queue = take("two_deliveries");
  await sender(queue).sendMessages({ body: "poison", messageId: "poison-1" });
  const rcv = receiver(queue);
  for (let i = 0; i < 2; i++) {
    const m = await receiveOne(rcv);
    assert.equal(m.deliveryCount, i);
    await rcv.abandonMessage(m);
  }
  await assertEmpty(rcv);
  const dlq = receiver(queue, { subQueueType: "deadLetter" });
  const d = await receiveOne(dlq);
  assert.equal(d.body, "poison");
  assert.equal(d.messageId, "poison-1");
  assert.equal(d.deadLetterReason, "MaxDeliveryCountExceeded");
  assert.equal(d.deadLetterErrorDescription, "Message could not be consumed after 2 delivery attempts.");
  await dlq.completeMessage(d);
  await assertEmpty(dlq);
});

sbTest("deadLetterMessage keeps the reason and description; the DLQ settles like a queue", async () => {
  const queue = take();
  await sender(queue).sendMessages({ body: "bad", applicationProperties: { k: "v" } });
  const rcv = receiver(queue);
  const m = await receiveOne(rcv);
  await rcv.deadLetterMessage(m, { deadLetterReason: "Validation", deadLetterErrorDescription: "field x is missing" });
  await assertEmpty(rcv);
  const dlq = receiver(queue, { subQueueType: "deadLetter" });
  const d = await receiveOne(dlq);
  assert.equal(d.body, "bad");
  assert.equal(d.deadLetterReason, "Validation");
  assert.equal(d.deadLetterErrorDescription, "field x is missing");
  assert.equal(d.applicationProperties.k, "v");
  assert.ok(d.sequenceNumber.equals(m.sequenceNumber));
  // Abandon, then complete.
  await dlq.abandonMessage(d);
  const again = await receiveOne(dlq);
  assert.ok(again.sequenceNumber.equals(d.sequenceNumber));
  assert.equal(again.deliveryCount, d.deliveryCount + 1);
  await dlq.completeMessage(again);
  await assertEmpty(dlq);
});

sbTest("expiry dead-letters with TTLExpiredException when the queue says so", async () => {
  const queue = take("ttl_to_dlq");
  const snd = sender(queue);
  await snd.sendMessages({ body: "short-lived" }); // the entity's default: 2 s
  await snd.sendMessages({ body: "own ttl", timeToLive: 1000 });
  await sleep(3500);
  await assertEmpty(receiver(queue));
  const dlq = receiver(queue, { subQueueType: "deadLetter" });
  const got = await receive(dlq, 2);
  assert.deepEqual(got.map((m) => m.body).sort(), ["own ttl", "short-lived"]);
  for (const m of got) {
    assert.equal(m.deadLetterReason, "TTLExpiredException");
    assert.equal(m.deadLetterErrorDescription, "The message expired and was dead lettered.");
    await dlq.completeMessage(m);
  }
  await assertEmpty(dlq);
});

sbTest("expiry removes the message otherwise; the entity's TTL caps a longer one", async () => {
  const queue = take("ttl");
  const snd = sender(queue);
  await snd.sendMessages({ body: "gone" });
  await snd.sendMessages({ body: "capped", timeToLive: 3600 * 1000 });
  await sleep(3500);
  const rcv = receiver(queue);
  await assertEmpty(rcv);
  assert.deepEqual(await rcv.peekMessages(5), []);
  await assertEmpty(receiver(queue, { subQueueType: "deadLetter" }));
});

// ---------------------------------------------------------------------------------------------
// Scheduling, deferral, peeking, lock renewal

sbTest("scheduleMessages appear at their time; cancelScheduledMessages removes them", async () => {
  const queue = take();
  const at = new Date(Date.now() + 3000);
  const snd = sender(queue);
  const [kept] = await snd.scheduleMessages({ body: "later" }, at);
  const [cancelled] = await snd.scheduleMessages({ body: "never" }, at);
  assert.ok(isLong(kept) && isLong(cancelled), "scheduleMessages returns Long sequence numbers");
  assert.ok(!kept.equals(cancelled));
  // A message carrying its own scheduled time is scheduled too.
  await snd.sendMessages({ body: "also later", scheduledEnqueueTimeUtc: at });
  await snd.cancelScheduledMessages(cancelled);
  const rcv = receiver(queue);
  const peeked = await rcv.peekMessages(10, { fromSequenceNumber: kept.constructor.ONE });
  assert.deepEqual(peeked.map((m) => m.body).sort(), ["also later", "later"]);
  assert.ok(peeked.find((m) => m.body === "later").sequenceNumber.equals(kept));
  for (const m of peeked) {
    assert.equal(m.state, "scheduled");
    assert.equal(m.scheduledEnqueueTimeUtc.getTime(), at.getTime());
  }
  await assertEmpty(rcv);
  const got = await receive(rcv, 2, 8000);
  assert.ok(Date.now() >= at.getTime() - 50, "a scheduled message arrived early");
  assert.deepEqual(got.map((m) => m.body).sort(), ["also later", "later"]);
  for (const m of got) {
    assert.equal(m.state, "active");
    await rcv.completeMessage(m);
  }
  await assertEmpty(rcv);
});

sbTest("deferMessage; receiveDeferredMessages by sequence number", async () => {
  const queue = take();
  await sender(queue).sendMessages({ body: "deferred" });
  const rcv = receiver(queue);
  const m = await receiveOne(rcv);
  await rcv.deferMessage(m);
  await assertEmpty(rcv);
  const [peeked] = await rcv.peekMessages(1, { fromSequenceNumber: m.sequenceNumber });
  assert.equal(peeked.body, "deferred");
  assert.equal(peeked.state, "deferred");
  const [d] = await rcv.receiveDeferredMessages([m.sequenceNumber]);
  assert.equal(d.body, "deferred");
  assert.equal(d.state, "deferred");
  assert.ok(d.sequenceNumber.equals(m.sequenceNumber));
  assert.ok(d.lockedUntilUtc.getTime() > Date.now());
  await rcv.completeMessage(d);
  await rejectsWithCode(rcv.receiveDeferredMessages([m.sequenceNumber]), "MessageNotFound");
});

sbTest("peekMessages browses by sequence number, locked messages included, without locking", async () => {
  const queue = take();
  await sender(queue).sendMessages(["p0", "p1", "p2", "p3", "p4"].map((body) => ({ body })));
  const rcv = receiver(queue);
  const locked = await receiveOne(rcv);
  assert.equal(locked.body, "p0");
  const browser = receiver(queue);
  const peeked = await browser.peekMessages(10);
  assert.deepEqual(
    peeked.map((m) => m.body),
    ["p0", "p1", "p2", "p3", "p4"]
  );
  for (const m of peeked) {
    assert.equal(m.lockToken, undefined);
    assert.equal(m.state, "active");
  }
  // Peeking takes no lock and counts no delivery.
  for (const m of peeked.slice(1)) assert.equal(m.deliveryCount, 0);
  const first = peeked[0].sequenceNumber;
  const later = await browser.peekMessages(2, { fromSequenceNumber: first.add(3) });
  assert.deepEqual(
    later.map((m) => m.body),
    ["p3", "p4"]
  );
  // Without fromSequenceNumber the SDK goes on after the last message it peeked.
  assert.deepEqual(await browser.peekMessages(10), []);
  const rest = await receive(receiver(queue), 4);
  assert.deepEqual(
    rest.map((m) => [m.body, m.deliveryCount]),
    [
      ["p1", 0],
      ["p2", 0],
      ["p3", 0],
      ["p4", 0],
    ]
  );
  await rcv.completeMessage(locked);
});

sbTest("renewMessageLock extends the lock and keeps the token", async () => {
  const queue = take("short_lock");
  await sender(queue).sendMessages({ body: "renew me" });
  const rcv = receiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
  const m = await receiveOne(rcv);
  const before = m.lockedUntilUtc.getTime();
  const token = m.lockToken;
  await sleep(3000);
  const after = await rcv.renewMessageLock(m);
  assert.ok(after instanceof Date);
  assert.ok(after.getTime() > before + 2000, `renewed to ${after.toISOString()}, was ${new Date(before).toISOString()}`);
  assert.equal(m.lockedUntilUtc.getTime(), after.getTime());
  assert.equal(m.lockToken, token);
  await sleep(3000); // past the first lock's end, inside the renewed one
  await rcv.completeMessage(m);
  await assertEmpty(rcv);
});
