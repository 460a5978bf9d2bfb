"use strict";
// Message operations with @azure/storage-queue: send / receive / peek / update / delete / clear.
const assert = require("node:assert/strict");
const { test } = require("node:test");
const { useServer, rejectsWith, waitPast, assertClose } = require("../lib/common");

const ctx = useServer();
const NEVER = new Date(Date.UTC(9999, 11, 31, 23, 59, 59));
const SEVEN_DAYS_MS = 604800 * 1000;

async function withQueue(fn) {
  const q = await ctx.newQueue("msg");
  try {
    await fn(q);
  } finally {
    await q.delete();
  }
}

const peekAll = async (q) => (await q.peekMessages({ numberOfMessages: 32 })).peekedMessageItems;
async function receiveOne(q, visibilityTimeout = 30) {
  const items = (await q.receiveMessages({ numberOfMessages: 1, visibilityTimeout })).receivedMessageItems;
  assert.equal(items.length, 1);
  return items[0];
}

test("sendMessage response fields and defaults", () =>
  withQueue(async (q) => {
    const before = new Date();
    const sent = await q.sendMessage("hello");
    assert.equal(sent._response.status, 201);
    assert.equal(typeof sent.messageId, "string");
    assert.ok(sent.messageId.length > 0);
    assert.equal(typeof sent.popReceipt, "string");
    assert.ok(sent.popReceipt.length > 0);
    assertClose(sent.insertedOn, before);
    assert.equal(sent.expiresOn.getTime() - sent.insertedOn.getTime(), SEVEN_DAYS_MS);
    assert.equal(sent.nextVisibleOn.getTime(), sent.insertedOn.getTime());
    const [peeked] = await peekAll(q);
    assert.equal(peeked.messageId, sent.messageId);
    assert.equal(peeked.insertedOn.getTime(), sent.insertedOn.getTime());
    assert.equal(peeked.expiresOn.getTime(), sent.expiresOn.getTime());
  }));

test("sendMessage with visibilityTimeout and messageTimeToLive", () =>
  withQueue(async (q) => {
    const sent = await q.sendMessage("later", { visibilityTimeout: 30, messageTimeToLive: 120 });
    assert.equal(sent.expiresOn.getTime() - sent.insertedOn.getTime(), 120_000);
    assert.equal(sent.nextVisibleOn.getTime() - sent.insertedOn.getTime(), 30_000);
    assert.deepEqual(await peekAll(q), []);
    assert.equal((await q.getProperties()).approximateMessagesCount, 1);
  }));

test("messageTimeToLive -1 never expires (9999-12-31T23:59:59Z)", () =>
  withQueue(async (q) => {
    const sent = await q.sendMessage("forever", { messageTimeToLive: -1 });
    assert.equal(sent.expiresOn.getTime(), NEVER.getTime());
    const [peeked] = await peekAll(q);
    assert.equal(peeked.expiresOn.getTime(), NEVER.getTime());
  }));

test("expired message disappears; invisible message reappears", () =>
  withQueue(async (q) => {
    const shortLived = await q.sendMessage("short", { messageTimeToLive: 1 });
    const delayed = await q.sendMessage("delayed", { visibilityTimeout: 1 });
    assert.deepEqual((await peekAll(q)).map((m) => m.messageText), ["short"]);
    await waitPast(new Date(Math.max(shortLived.expiresOn.getTime(), delayed.nextVisibleOn.getTime())));
    const peeked = await peekAll(q);
    assert.deepEqual(peeked.map((m) => [m.messageText, m.dequeueCount]), [["delayed", 0]]);
  }));

test("receiveMessages fields, invisibility and dequeueCount", () =>
  withQueue(async (q) => {
    const sent = await q.sendMessage("payload");
    const before = new Date();
    const m = await receiveOne(q, 1);
    assert.equal(m.messageId, sent.messageId);
    assert.equal(m.messageText, "payload");
    assert.equal(m.dequeueCount, 1);
    assert.notEqual(m.popReceipt, sent.popReceipt);
    assert.equal(m.insertedOn.getTime(), sent.insertedOn.getTime());
    assertClose(m.nextVisibleOn, new Date(before.getTime() + 1000));
    assert.deepEqual(await peekAll(q), []);
    assert.deepEqual((await q.receiveMessages()).receivedMessageItems, []);
    await waitPast(m.nextVisibleOn);
    const again = await receiveOne(q, 30);
    assert.equal(again.messageId, m.messageId);
    assert.equal(again.dequeueCount, 2);
    assert.notEqual(again.popReceipt, m.popReceipt);
    // The receipt from the first dequeue is dead now.
    await rejectsWith(q.deleteMessage(m.messageId, m.popReceipt), 404, "MessageNotFound");
    await q.deleteMessage(again.messageId, again.popReceipt);
    assert.equal((await q.getProperties()).approximateMessagesCount, 0);
  }));

test("receiveMessages numberOfMessages up to 32; 33 is 400", () =>
  withQueue(async (q) => {
    for (let i = 0; i < 40; i++) await q.sendMessage(`m${String(i).padStart(2, "0")}`);
    const five = (await q.receiveMessages({ numberOfMessages: 5, visibilityTimeout: 60 })).receivedMessageItems;
    assert.equal(five.length, 5);
    const batch = (await q.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 60 })).receivedMessageItems;
    assert.equal(batch.length, 32);
    const rest = (await q.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 60 })).receivedMessageItems;
    assert.equal(rest.length, 3);
    const all = [...five, ...batch, ...rest];
    assert.deepEqual(all.map((m) => m.messageText).sort(), Array.from({ length: 40 }, (_, i) => `m${String(i).padStart(2, "0")}`));
    assert.equal(new Set(all.map((m) => m.messageId)).size, 40);
    await rejectsWith(q.receiveMessages({ numberOfMessages: 33 }), 400, "OutOfRangeQueryParameterValue");
  }));

test("peekMessages: no receipt, dequeueCount unchanged", () =>
  withQueue(async (q) => {
    for (const t of ["p1", "p2", "p3"]) await q.sendMessage(t);
    for (let i = 0; i < 2; i++) {
      const peeked = await peekAll(q);
      assert.deepEqual(peeked.map((m) => m.messageText).sort(), ["p1", "p2", "p3"]);
      for (const m of peeked) {
        assert.equal(m.dequeueCount, 0);
        assert.equal(m.popReceipt, undefined);
        assert.equal(m.nextVisibleOn, undefined);
      }
    }
    assert.equal((await q.peekMessages()).peekedMessageItems.length, 1);
    const got = (await q.receiveMessages({ numberOfMessages: 32 })).receivedMessageItems;
    assert.deepEqual(got.map((m) => [m.messageText, m.dequeueCount]).sort(), [["p1", 1], ["p2", 1], ["p3", 1]]);
  }));

test("updateMessage: new content and visibility, new receipt, old receipt rejected", () =>
  withQueue(async (q) => {
    await q.sendMessage("original");
    const m = await receiveOne(q, 30);
    const before = new Date();
    const upd = await q.updateMessage(m.messageId, m.popReceipt, "changed", 0);
    assert.equal(upd._response.status, 204);
    assert.equal(typeof upd.popReceipt, "string");
    assert.notEqual(upd.popReceipt, m.popReceipt);
    assertClose(upd.nextVisibleOn, before);
    const [peeked] = await peekAll(q);
    assert.deepEqual([peeked.messageId, peeked.messageText, peeked.dequeueCount], [m.messageId, "changed", 1]);
    await rejectsWith(q.updateMessage(m.messageId, m.popReceipt, "stale", 0), 404, "MessageNotFound");
    await rejectsWith(q.deleteMessage(m.messageId, m.popReceipt), 404, "MessageNotFound");
    // Visibility-only update keeps the text.
    const hidden = await q.updateMessage(m.messageId, upd.popReceipt, undefined, 60);
    assert.deepEqual(await peekAll(q), []);
    const shown = await q.updateMessage(m.messageId, hidden.popReceipt, undefined, 0);
    const [again] = await peekAll(q);
    assert.deepEqual([again.messageText, again.dequeueCount], ["changed", 1]);
    const del = await q.deleteMessage(m.messageId, shown.popReceipt);
    assert.equal(del._response.status, 204);
    await rejectsWith(q.deleteMessage(m.messageId, shown.popReceipt), 404, "MessageNotFound");
    assert.deepEqual(await peekAll(q), []);
  }));

test("receipt returned by sendMessage works for update and delete", () =>
  withQueue(async (q) => {
    const sent = await q.sendMessage("from send");
    const upd = await q.updateMessage(sent.messageId, sent.popReceipt, "updated", 0);
    const [p] = await peekAll(q);
    assert.deepEqual([p.messageText, p.dequeueCount], ["updated", 0]);
    await q.deleteMessage(sent.messageId, upd.popReceipt);
    assert.deepEqual(await peekAll(q), []);
  }));

test("clearMessages removes visible and invisible messages", () =>
  withQueue(async (q) => {
    for (let i = 0; i < 3; i++) await q.sendMessage(`v${i}`);
    await q.sendMessage("hidden", { visibilityTimeout: 120 });
    const res = await q.clearMessages();
    assert.equal(res._response.status, 204);
    assert.equal((await q.getProperties()).approximateMessagesCount, 0);
    assert.deepEqual((await q.receiveMessages()).receivedMessageItems, []);
  }));

test("64 KiB limit: a 65536-char message is accepted and returned intact", () =>
  withQueue(async (q) => {
    await q.sendMessage("a".repeat(65536));
    const m = await receiveOne(q);
    assert.equal(m.messageText, "a".repeat(65536));
  }));

test("64 KiB limit: 65537 chars is 413 RequestBodyTooLarge on send and update", () =>
  withQueue(async (q) => {
    await rejectsWith(q.sendMessage("a".repeat(65537)), 413, "RequestBodyTooLarge");
    assert.equal((await q.getProperties()).approximateMessagesCount, 0);
    await q.sendMessage("small");
    const m = await receiveOne(q);
    await rejectsWith(q.updateMessage(m.messageId, m.popReceipt, "b".repeat(65537), 0), 413, "RequestBodyTooLarge");
  }));

test("64 KiB limit: 32768 two-byte characters (65536 UTF-8 bytes) are accepted", () =>
  withQueue(async (q) => {
    await q.sendMessage("é".repeat(32768));
    const [p] = await peekAll(q);
    assert.equal(p.messageText, "é".repeat(32768));
  }));

const FIDELITY = {
  xml_specials: "<&>\"' and &amp; &lt;tag&gt; ]]> <![CDATA[x]]>",
  xml_lookalike: "<QueueMessage><MessageText>inner</MessageText></QueueMessage>",
  newlines: "line1\nline2\n\nline4\n",
  tabs: "col1\tcol2\t\tcol4",
  spaces: "  leading and trailing  ",
  non_ascii: "Grüße, ½ €, 日本語, Ελληνικά, עברית",
  emoji: "emoji 😀🚀 and astral 𝄞 \u{1F9EA}",
  json: '{"a": [1, 2, {"b": "c\\"d"}], "e": null}',
  base64: Buffer.from("binary\u0000payload\u00ff", "latin1").toString("base64"),
};

for (const [name, text] of Object.entries(FIDELITY)) {
  test(`message text round-trips exactly: ${name}`, () =>
    withQueue(async (q) => {
      await q.sendMessage(text);
      const [p] = await peekAll(q);
      assert.equal(p.messageText, text);
      const m = await receiveOne(q);
      assert.equal(m.messageText, text);
      await q.updateMessage(m.messageId, m.popReceipt, text + " (updated)", 0);
      const [p2] = await peekAll(q);
      assert.equal(p2.messageText, text + " (updated)");
    }));
}

test("CR LF in message text comes back XML-normalized to LF", () =>
  withQueue(async (q) => {
    // The SDK writes CR raw into the XML body; XML 1.0 line-end normalization turns
    // "\r\n" and "\r" into "\n" (digest 2.4 / 7.3).
    await q.sendMessage("a\r\nb\rc");
    const [p] = await peekAll(q);
    assert.equal(p.messageText, "a\nb\nc");
  }));
