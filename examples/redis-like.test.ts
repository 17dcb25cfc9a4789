// A database-like server from an image, as a suite would use Redis or Postgres: started with a
// free host port, waited on until the port answers, queried over TCP from the test, checked from
// inside with exec, and removed by `await using` when the test ends. The "server" is busybox's
// httpd (the examples work offline); with a registry it would be bunker.run("redis:7", ...).
import { beforeAll, expect, test } from "bun:test";
import { bunker, Wait } from "../src/lib/index.ts";
import { ensureBusybox } from "./busybox.ts";

let image: string;
beforeAll(async () => {
  image = await ensureBusybox();
}, 60_000);

test("a server on a free port answers, and exec reports exit codes", async () => {
  await using db = await bunker.run(image, {
    cmd: ["sh", "-c", "mkdir -p /www && echo PONG > /www/ping && echo 'server starting' && exec httpd -f -v -p 6379 -h /www"],
    ports: { 6379: 0 },
    waitFor: Wait.port(6379),
  });
  const reply = await fetch(`http://${db.host}:${db.port(6379)}/ping`);
  expect(await reply.text()).toBe("PONG\n");

  const ok = await db.exec(["cat", "/www/ping"]);
  expect(ok).toMatchObject({ exitCode: 0, stdout: "PONG\n" });
  const missing = await db.exec(["cat", "/www/nothing"]);
  expect(missing.exitCode).toBe(1);
  expect(missing.stderr).toContain("No such file");

  const lines = [];
  for await (const line of db.logs()) lines.push(line);
  expect(lines).toContain("server starting");
}, 60_000);
