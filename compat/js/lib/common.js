"use strict";
const assert = require("node:assert/strict");
const { before, after } = require("node:test");
const { QueueServiceClient, QueueClient } = require("@azure/storage-queue");
const { startServer, uniqueName, sleep, CLIENT_OPTIONS } = require("./harness");

/** Registers before/after hooks that start and stop a server for this test file. */
function useServer() {
  const ctx = {};
  before(async () => {
    ctx.server = await startServer();
    ctx.service = QueueServiceClient.fromConnectionString(ctx.server.connectionString(), CLIENT_OPTIONS);
    ctx.queueClient = (name) => new QueueClient(ctx.server.connectionString(), name, CLIENT_OPTIONS);
    ctx.newQueue = async (prefix = "js", options = {}) => {
      const q = ctx.queueClient(uniqueName(prefix));
      await q.create(options);
      return q;
    };
  });
  after(async () => {
    if (ctx.server) await ctx.server.stop();
  });
  return ctx;
}

/** Asserts that `promise` rejects with a RestError of this status and error code. */
async function rejectsWith(promise, statusCode, code) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.name, "RestError", `expected RestError, got ${e}`);
    assert.equal(e.statusCode, statusCode, `status of ${e.message}`);
    if (code !== undefined) assert.equal(e.code, code, `code of ${e.message}`);
    return true;
  });
}

/** Sleep until a Date (whole-second wire precision) has certainly passed. */
async function waitPast(date, extraMs = 1100) {
  const ms = date.getTime() - Date.now() + extraMs;
  if (ms > 0) await sleep(ms);
}

function assertClose(actual, expected, slackMs = 5000) {
  assert.ok(actual instanceof Date, `not a Date: ${actual}`);
  assert.ok(
    Math.abs(actual.getTime() - expected.getTime()) <= slackMs,
    `${actual.toISOString()} not within ${slackMs} ms of ${expected.toISOString()}`
  );
}

module.exports = { useServer, rejectsWith, waitPast, assertClose, uniqueName, sleep };
