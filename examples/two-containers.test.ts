// Two containers on a network of their own, as an app and its database in an integration test:
// the server is waited on (a log line, then its port), the client reaches it by name (and by
// address), and the network goes after its containers when the test's scope ends.
import { beforeAll, expect, test } from "bun:test";
import { bunker, Wait } from "../src/lib/index.ts";
import { ensureBusybox } from "./busybox.ts";

let image: string;
beforeAll(async () => {
  image = await ensureBusybox();
}, 60_000);

test("a client reaches a server on the same bunker.network()", async () => {
  await using net = await bunker.network();
  await using server = await bunker.run(image, {
    name: `api-${process.pid}`,
    network: net,
    cmd: ["sh", "-c", "mkdir -p /www && echo hello-from-api > /www/index.html && echo listening && exec httpd -f -p 8080 -h /www"],
    waitFor: [Wait.log("listening"), Wait.port(8080)],
  });
  await using client = await bunker.run(image, { network: net, cmd: ["sleep", "300"] });

  const byName = await client.exec(["wget", "-q", "-O", "-", `http://${server.name}:8080/`]);
  expect(byName).toMatchObject({ exitCode: 0, stdout: "hello-from-api\n" });
  const byIp = await client.exec(["wget", "-q", "-O", "-", `http://${server.ip}:8080/`]);
  expect(byIp.stdout).toBe("hello-from-api\n");
}, 60_000);
