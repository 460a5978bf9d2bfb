"use strict";
// Starts (or locates) the server under test for the JS compatibility suite.
//
// * HEMATITE_URL set (e.g. http://127.0.0.1:10001): use it, start nothing.
// * else spawn $HEMATITE_BIN (default <repo>/target/debug/hematite) as
//   `hematite serve --listen 127.0.0.1:PORT --in-memory` on a free port, wait (10 s max)
//   until the port accepts TCP connections, and stop it with SIGTERM in stop().
//
// node --test runs every test file in its own process, so each file starts its own server.

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const crypto = require("node:crypto");

const DEV_ACCOUNT = "devstoreaccount1";
const DEV_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

// No client-side retries: a wrong answer must fail at once.
const CLIENT_OPTIONS = { retryOptions: { maxTries: 1, tryTimeoutInMs: 30_000 } };

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portAccepts(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
    sock.setTimeout(500, () => done(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function makeServer(baseUrl, proc, logPath) {
  const protocol = baseUrl.startsWith("https:") ? "https" : "http";
  const accountUrl = `${baseUrl}/${DEV_ACCOUNT}`;
  return {
    baseUrl,
    account: DEV_ACCOUNT,
    key: DEV_KEY,
    accountUrl,
    secondaryUrl: `${baseUrl}/${DEV_ACCOUNT}-secondary`,
    logPath,
    connectionString(key = DEV_KEY) {
      return (
        `DefaultEndpointsProtocol=${protocol};AccountName=${DEV_ACCOUNT};AccountKey=${key};` +
        `QueueEndpoint=${accountUrl};`
      );
    },
    logTail(limit = 4000) {
      if (!logPath) return "";
      try {
        return fs.readFileSync(logPath, "utf8").slice(-limit);
      } catch {
        return "";
      }
    },
    async stop() {
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const ok = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
      if (!ok) {
        proc.kill("SIGKILL");
        await exited;
        throw new Error(`hematite did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM and was killed`);
      }
    },
  };
}

function binary() {
  return process.env.HEMATITE_BIN || path.join(REPO_ROOT, "target", "debug", "hematite");
}

/**
 * A development CA and a server certificate for localhost/127.0.0.1, made by
 * `hematite dev-cert` in a fresh directory: { ca, cert, key } paths.
 */
function devCert() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hematite-js-tls-"));
  const { execFileSync } = require("node:child_process");
  execFileSync(binary(), ["dev-cert", "--out", dir], { stdio: "ignore" });
  return { ca: path.join(dir, "ca.pem"), cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") };
}

/**
 * Starts a server; `extraArgs` are added to `hematite serve`, and `https` says the listener
 * serves TLS (with --tls-cert/--tls-key among the arguments).
 */
async function startServer({ extraArgs = [], https = false } = {}) {
  const url = (process.env.HEMATITE_URL || "").trim();
  if (url) return makeServer(url.replace(/\/+$/, ""), null, null);

  const bin = binary();
  if (!fs.existsSync(bin)) {
    throw new Error(
      `hematite binary not found at ${bin}. Build it with \`cargo build -p hematite\`, ` +
        "or set HEMATITE_BIN to a binary, or HEMATITE_URL to a running server."
    );
  }
  const port = await freePort();
  const logPath = path.join(os.tmpdir(), `hematite-compat-js-${process.pid}-${port}.log`);
  const log = fs.openSync(logPath, "w");
  const proc = spawn(bin, ["serve", "--listen", `127.0.0.1:${port}`, "--in-memory", ...extraArgs], {
    stdio: ["ignore", log, log],
  });
  fs.closeSync(log);
  let spawnError = null;
  proc.once("error", (e) => (spawnError = e));
  const server = makeServer(`${https ? "https" : "http"}://127.0.0.1:${port}`, proc, logPath);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (spawnError) throw spawnError;
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(
        `hematite exited (${proc.exitCode ?? proc.signalCode}) before accepting connections.\n` +
          `--- server log ---\n${server.logTail()}`
      );
    }
    if (await portAccepts(port)) return server;
    await sleep(50);
  }
  await server.stop().catch(() => {});
  throw new Error(
    `hematite did not accept connections on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms.\n` +
      `--- server log ---\n${server.logTail()}`
  );
}

function uniqueName(prefix = "js") {
  return `${prefix}${crypto.randomBytes(8).toString("hex")}`;
}

module.exports = { startServer, devCert, uniqueName, sleep, CLIENT_OPTIONS, DEV_ACCOUNT, DEV_KEY };
