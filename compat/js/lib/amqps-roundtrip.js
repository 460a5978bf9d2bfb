"use strict";
// Sends three messages to a queue over AMQPS and receives and completes them, printing their
// bodies as JSON. Run as a child process by the administration tests with
// NODE_EXTRA_CA_CERTS naming the development CA: rhea (under @azure/service-bus) has no option
// of its own for a CA, and Node 20 reads that variable only at start.
// Usage: node amqps-roundtrip.js <connection string> <port> <queue>

const { ServiceBusClient } = require("@azure/service-bus");

async function main() {
  const [connStr, port, queue] = process.argv.slice(2);
  const client = new ServiceBusClient(connStr, {
    customEndpointAddress: `sb://localhost:${port}`,
    retryOptions: { maxRetries: 0, timeoutInMs: 10_000 },
  });
  try {
    await client.createSender(queue).sendMessages([0, 1, 2].map((i) => ({ body: `tls-${i}` })));
    const receiver = client.createReceiver(queue);
    const got = [];
    const deadline = Date.now() + 10_000;
    while (got.length < 3 && Date.now() < deadline) {
      for (const m of await receiver.receiveMessages(3 - got.length, { maxWaitTimeInMs: 2_000 })) {
        got.push(m.body);
        await receiver.completeMessage(m);
      }
    }
    console.log(JSON.stringify(got.sort()));
  } finally {
    await client.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
