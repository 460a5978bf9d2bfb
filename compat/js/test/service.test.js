"use strict";
// Account-level operations: service properties + CORS (incl. raw preflight) and stats via the secondary.
const assert = require("node:assert/strict");
const http = require("node:http");
const { test, beforeEach, afterEach } = require("node:test");
const { QueueServiceClient, StorageSharedKeyCredential } = require("@azure/storage-queue");
const { useServer } = require("../lib/common");
const { CLIENT_OPTIONS } = require("../lib/harness");

const ctx = useServer();
let saved;

function plainProps(p) {
  return {
    queueAnalyticsLogging: p.queueAnalyticsLogging,
    hourMetrics: p.hourMetrics,
    minuteMetrics: p.minuteMetrics,
    cors: p.cors,
  };
}

beforeEach(async () => {
  saved = plainProps(await ctx.service.getProperties());
});
afterEach(async () => {
  await ctx.service.setProperties(saved);
});

const RULE_A = {
  allowedOrigins: "http://a.example,http://b.example",
  allowedMethods: "GET,PUT",
  allowedHeaders: "x-ms-meta-target*,x-ms-meta-customheader",
  exposedHeaders: "x-ms-meta-data*,x-ms-request-id",
  maxAgeInSeconds: 500,
};
const RULE_B = {
  allowedOrigins: "*",
  allowedMethods: "DELETE,POST,OPTIONS,HEAD,MERGE",
  allowedHeaders: "",
  exposedHeaders: "",
  maxAgeInSeconds: 0,
};
const norm = (rules) =>
  (rules || []).map((r) => ({
    allowedOrigins: r.allowedOrigins,
    allowedMethods: r.allowedMethods,
    allowedHeaders: r.allowedHeaders || "",
    exposedHeaders: r.exposedHeaders || "",
    maxAgeInSeconds: r.maxAgeInSeconds,
  }));

test("getProperties shape", async () => {
  const p = await ctx.service.getProperties();
  assert.equal(p._response.status, 200);
  assert.equal(p.queueAnalyticsLogging.version, "1.0");
  assert.equal(p.hourMetrics.version, "1.0");
  assert.equal(p.minuteMetrics.version, "1.0");
  assert.ok(Array.isArray(p.cors) || p.cors === undefined);
});

test("setProperties: full set, get back equal; partial update keeps the rest; empty cors clears", async () => {
  const res = await ctx.service.setProperties({
    queueAnalyticsLogging: {
      version: "1.0", deleteProperty: true, read: true, write: false,
      retentionPolicy: { enabled: true, days: 5 },
    },
    hourMetrics: { version: "1.0", enabled: true, includeAPIs: true, retentionPolicy: { enabled: true, days: 3 } },
    minuteMetrics: { version: "1.0", enabled: true, includeAPIs: false, retentionPolicy: { enabled: false } },
    cors: [RULE_A, RULE_B],
  });
  assert.equal(res._response.status, 202);
  const expectLogging = { version: "1.0", deleteProperty: true, read: true, write: false, retentionPolicy: { enabled: true, days: 5 } };
  const expectHour = { version: "1.0", enabled: true, includeAPIs: true, retentionPolicy: { enabled: true, days: 3 } };
  let p = await ctx.service.getProperties();
  assert.deepEqual(p.queueAnalyticsLogging, expectLogging);
  assert.deepEqual(p.hourMetrics, expectHour);
  assert.equal(p.minuteMetrics.enabled, true);
  assert.equal(p.minuteMetrics.includeAPIs, false);
  assert.equal(p.minuteMetrics.retentionPolicy.enabled, false);
  assert.deepEqual(norm(p.cors), [RULE_A, RULE_B]);

  await ctx.service.setProperties({ minuteMetrics: { version: "1.0", enabled: false, retentionPolicy: { enabled: false } } });
  p = await ctx.service.getProperties();
  assert.deepEqual(p.queueAnalyticsLogging, expectLogging);
  assert.deepEqual(p.hourMetrics, expectHour);
  assert.equal(p.minuteMetrics.enabled, false);
  assert.deepEqual(norm(p.cors), [RULE_A, RULE_B]);

  await ctx.service.setProperties({ cors: [RULE_B] });
  p = await ctx.service.getProperties();
  assert.deepEqual(norm(p.cors), [RULE_B]);
  assert.deepEqual(p.queueAnalyticsLogging, expectLogging);

  await ctx.service.setProperties({ cors: [] });
  p = await ctx.service.getProperties();
  assert.deepEqual(norm(p.cors), []);
  assert.deepEqual(p.queueAnalyticsLogging, expectLogging);
  assert.deepEqual(p.hourMetrics, expectHour);
});

test("getStatistics on the -secondary endpoint reports live", async () => {
  const secondary = new QueueServiceClient(
    ctx.server.secondaryUrl,
    new StorageSharedKeyCredential(ctx.server.account, ctx.server.key),
    CLIENT_OPTIONS
  );
  const seen = [];
  await secondary.getStatistics({ onResponse: (r) => seen.push([r.status, r.request.url, r.bodyAsText]) });
  assert.equal(seen.length, 1);
  const [status, url, body] = seen[0];
  assert.equal(status, 200);
  // JS sends (and signs) the path with the "-secondary" account segment.
  assert.ok(url.startsWith(`${ctx.server.secondaryUrl}?`) || url.startsWith(`${ctx.server.secondaryUrl}/?`), url);
  // Checked on the wire: @azure/storage-queue 12.32.0 (TypeSpec-generated) only parses a root
  // element named <QueueServiceStats>, but the service documents (and .NET requires)
  // <StorageServiceStats>, so the SDK's parsed result has no geoReplication. That is an SDK bug;
  // the server must keep the documented root.
  assert.match(body, /^<\?xml[^>]*\?>\s*<StorageServiceStats>/);
  assert.match(body, /<GeoReplication>\s*<Status>live<\/Status>\s*<LastSyncTime>[^<]*<\/LastSyncTime>\s*<\/GeoReplication>/);
});

// ---------------------------------------------------------------- CORS over raw HTTP

const PREFLIGHT_RULE = {
  allowedOrigins: "http://allowed.example",
  allowedMethods: "GET,PUT",
  allowedHeaders: "x-ms-meta-target*,x-ms-client-request-id",
  exposedHeaders: "x-ms-request-id",
  maxAgeInSeconds: 300,
};

function rawRequest(method, url, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

const preflight = (path, origin, method, reqHeaders) =>
  rawRequest("OPTIONS", `${ctx.server.accountUrl}/${path}`, {
    Origin: origin,
    "Access-Control-Request-Method": method,
    ...(reqHeaders ? { "Access-Control-Request-Headers": reqHeaders } : {}),
  });

test("CORS preflight: matching origin/method/headers is 200 with Access-Control-* headers", async () => {
  await ctx.service.setProperties({ cors: [PREFLIGHT_RULE] });
  const r = await preflight("anyqueue", "http://allowed.example", "PUT", "x-ms-meta-target1,x-ms-client-request-id");
  assert.equal(r.status, 200);
  assert.equal(r.headers["access-control-allow-origin"], "http://allowed.example");
  assert.equal(r.headers["access-control-allow-methods"], "PUT");
  assert.equal(r.headers["access-control-allow-headers"], "x-ms-meta-target1,x-ms-client-request-id");
  assert.equal(r.headers["access-control-max-age"], "300");
  assert.equal(r.headers["access-control-allow-credentials"], "true");
  assert.equal(r.body.length, 0);
});

test("CORS preflight: non-matching origin, method or header is 403", async () => {
  await ctx.service.setProperties({ cors: [PREFLIGHT_RULE] });
  const badOrigin = await preflight("anyqueue", "http://evil.example", "GET");
  assert.equal(badOrigin.status, 403);
  assert.equal(badOrigin.headers["access-control-allow-origin"], undefined);
  assert.equal((await preflight("anyqueue", "http://allowed.example", "DELETE")).status, 403);
  assert.equal((await preflight("anyqueue", "http://allowed.example", "GET", "x-ms-meta-other")).status, 403);
  await ctx.service.setProperties({ cors: [] });
  assert.equal((await preflight("anyqueue", "http://allowed.example", "GET")).status, 403);
});

test("CORS on an actual request: allowed origin gets Access-Control-Allow-Origin", async () => {
  await ctx.service.setProperties({ cors: [PREFLIGHT_RULE] });
  const seen = [];
  const onResponse = (r) => seen.push([r.request.headers.get("origin"), r.headers.get("access-control-allow-origin")]);
  await ctx.service.getProperties({ requestOptions: { headers: { Origin: "http://allowed.example" } }, onResponse });
  await ctx.service.getProperties({ requestOptions: { headers: { Origin: "http://evil.example" } }, onResponse });
  assert.deepEqual(seen, [
    ["http://allowed.example", "http://allowed.example"],
    ["http://evil.example", undefined],
  ]);
});
