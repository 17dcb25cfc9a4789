// The library's port checks, run by tests/integration/lib.test.ts inside a private network and
// mount namespace (under `unshare`): the default client (root, state, address and namespace from
// the BUNKER_* environment the test sets), 20 busybox httpd servers started in parallel on ports
// chosen free and waited on by port, each fetched from the host side; a port wait that times out;
// a fixed host port already held. Prints one JSON line of what it saw; removes all it made.
import { bunker, Wait } from "../../src/lib/index.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "lib-netns-"));
const archive = join(dir, "busybox.tar");
Bun.spawnSync([process.execPath, join(import.meta.dir, "../../scripts/busybox-image.ts"), archive]);
const [image] = await bunker.loadImage(archive);
rmSync(dir, { recursive: true, force: true });

const servers = await Promise.all(
  Array.from({ length: 20 }, (_, i) =>
    bunker.run(image!, { cmd: ["sh", "-c", `mkdir -p /www && echo 'server ${i}' > /www/index.html && exec httpd -f -p 80 -h /www`], ports: { 80: 0 }, waitFor: Wait.port(80) }),
  ),
);
const ports = servers.map((s) => s.port(80));
const pages = await Promise.all(servers.map(async (s) => (await (await fetch(`http://${s.host}:${s.port(80)}/`)).text()).trim()));

const timeout = await bunker
  .run(image!, { cmd: ["sh", "-c", "echo no server here; sleep 300"], ports: { 9999: 0 }, waitFor: Wait.port(9999), startupTimeout: 1_500 })
  .then(() => ({ name: "none", message: "", logs: [] as string[] }), (e: { name: string; message: string; logs: string[] }) => ({ name: e.name, message: e.message, logs: e.logs }));

const clash = await bunker.run(image!, { cmd: ["sleep", "300"], ports: { 80: ports[0]! } }).then(async (c) => {
  await c.remove();
  return "no error";
}, (e: Error) => e.message);

await Promise.all(servers.map((s) => s.remove()));
const { connect } = await import("../../src/api/client.ts");
const pino = (await import("pino")).default;
const conn = await connect({ address: process.env.BUNKER_ADDRESS!, root: process.env.BUNKER_ROOT!, state: process.env.BUNKER_STATE!, debug: false }, pino({ level: "silent" }), { daemonOnly: false });
const left = (await conn.api.list({ namespace: process.env.BUNKER_NAMESPACE! })).tasks.map((t) => t.id);
conn.close();
await bunker.close();
console.log(JSON.stringify({ ports, pages, timeout, clash, left }));
