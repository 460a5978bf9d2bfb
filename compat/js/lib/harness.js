"use strict";
// Starts (or locates) the server under test for the JS compatibility suite.
//
// * HEMATITE_URL set (e.g. http://127.0.0.1:10001): use it, start nothing.
// * else spawn $HEMATITE_BIN (default <repo>/target/debug/hematite) as
//   `hematite serve --listen 127.0.0.1:PORT --in-memory --no-servicebus` on a free port, wait
//   (10 s max) until the port accepts TCP connections, and stop it with SIGTERM in stop().
// * startServer({ servicebus: true, sbConfig }) serves Service Bus as well: AMQP and the Service
//   Bus HTTP port on free ports, the namespace from the emulator config.json at `sbConfig`, the
//   durable store in a scratch --data-dir (removed by stop()); it waits for the AMQP port too.
//   With HEMATITE_URL set, Service Bus is taken to be on 127.0.0.1:$HEMATITE_AMQP_PORT (5672).
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
// The emulator's static key; Hematite checks SAS signatures made with it.
const SB_KEY = "SAS_KEY_VALUE";
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

function makeServer(baseUrl, proc, logPath, { amqpPort = null, sbAdminPort = null, dataDir = null } = {}) {
  const protocol = baseUrl.startsWith("https:") ? "https" : "http";
  const accountUrl = `${baseUrl}/${DEV_ACCOUNT}`;
  const removeData = () => {
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  };
  return {
    baseUrl,
    account: DEV_ACCOUNT,
    key: DEV_KEY,
    accountUrl,
    secondaryUrl: `${baseUrl}/${DEV_ACCOUNT}-secondary`,
    logPath,
    amqpPort,
    sbAdminPort,
    dataDir,
    connectionString(key = DEV_KEY) {
      return (
        `DefaultEndpointsProtocol=${protocol};AccountName=${DEV_ACCOUNT};AccountKey=${key};` +
        `QueueEndpoint=${accountUrl};`
      );
    },
    /** The Service Bus emulator's connection string, pointed at this server's AMQP port. */
    sbConnectionString(key = SB_KEY) {
      if (amqpPort === null) throw new Error("this server was started without Service Bus");
      return (
        `Endpoint=sb://localhost:${amqpPort};SharedAccessKeyName=RootManageSharedAccessKey;` +
        `SharedAccessKey=${key};UseDevelopmentEmulator=true;`
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
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
        removeData();
        return;
      }
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const ok = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
      if (!ok) {
        proc.kill("SIGKILL");
        await exited;
        removeData();
        throw new Error(`hematite did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM and was killed`);
      }
      removeData();
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
 * serves TLS (with --tls-cert/--tls-key among the arguments). Service Bus is served only with
 * `servicebus: true` (`sbConfig`: the path of an emulator config.json), on the durable store.
 */
async function startServer({ extraArgs = [], https = false, servicebus = false, sbConfig = null } = {}) {
  const url = (process.env.HEMATITE_URL || "").trim();
  if (url) {
    const amqpPort = servicebus ? Number(process.env.HEMATITE_AMQP_PORT || 5672) : null;
    return makeServer(url.replace(/\/+$/, ""), null, null, { amqpPort });
  }

  const bin = binary();
  if (!fs.existsSync(bin)) {
    throw new Error(
      `hematite binary not found at ${bin}. Build it with \`cargo build -p hematite\`, ` +
        "or set HEMATITE_BIN to a binary, or HEMATITE_URL to a running server."
    );
  }
  const port = await freePort();
  let amqpPort = null;
  let sbAdminPort = null;
  let dataDir = null;
  let modeArgs;
  if (servicebus) {
    amqpPort = await freePort();
    sbAdminPort = await freePort();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "hematite-compat-js-data-"));
    modeArgs = [
      "--data-dir",
      dataDir,
      "--amqp-listen",
      `127.0.0.1:${amqpPort}`,
      "--sb-admin-listen",
      `127.0.0.1:${sbAdminPort}`,
      ...(sbConfig ? ["--sb-config", sbConfig] : []),
    ];
  } else {
    modeArgs = ["--in-memory", "--no-servicebus"];
  }
  const logPath = path.join(os.tmpdir(), `hematite-compat-js-${process.pid}-${port}.log`);
  const log = fs.openSync(logPath, "w");
  const proc = spawn(bin, ["serve", "--listen", `127.0.0.1:${port}`, ...modeArgs, ...extraArgs], {
    stdio: ["ignore", log, log],
  });
  fs.closeSync(log);
  let spawnError = null;
  proc.once("error", (e) => (spawnError = e));
  const server = makeServer(`${https ? "https" : "http"}://127.0.0.1:${port}`, proc, logPath, {
    amqpPort,
    sbAdminPort,
    dataDir,
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (spawnError) {
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
      throw spawnError;
    }
    if (proc.exitCode !== null || proc.signalCode !== null) {
      await server.stop().catch(() => {});
      throw new Error(
        `hematite exited (${proc.exitCode ?? proc.signalCode}) before accepting connections.\n` +
          `--- server log ---\n${server.logTail()}`
      );
    }
    if ((await portAccepts(port)) && (amqpPort === null || (await portAccepts(amqpPort)))) return server;
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

module.exports = { startServer, devCert, freePort, portAccepts, uniqueName, sleep, CLIENT_OPTIONS, DEV_ACCOUNT, DEV_KEY, SB_KEY };
