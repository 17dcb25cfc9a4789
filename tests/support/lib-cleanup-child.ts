// The "test process" of tests/integration/lib-cleanup.test.ts: an embedded runtime in this process
// starts containers labelled and tracked by the library's cleanup session (as the library API
// does), prints what it made as one JSON line, and when the test closes its stdin ends the way
// the test asked:
//   return  the script ends and the event loop runs dry (its runtime closed first)
//   exit    process.exit(0)
//   throw   an uncaught error
//   reject  an unhandled rejection
//   wait    goes on (the test sends SIGINT, SIGTERM or SIGKILL instead of closing stdin)
// With daemon: true it starts them through the `bunker daemon` at `address` instead (no embedded
// runtime), as a session against a daemon does.
// Argument: JSON { root, state, address, daemon, rootfs, namespace, bin, count, mode }.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { managerApi } from "../../src/api/client.ts";
import { startEmbeddedRuntime } from "../../src/executor/index.ts";
import { cleanupSession } from "../../src/lib/cleanup.ts";
import { Bunker } from "../../src/gen/bunker/v1/api_pb.ts";
import { generateSpec } from "../../src/oci/spec.ts";
import { cgroupParent } from "../../src/runtime/paths.ts";
import { dial } from "../../src/ttrpc/index.ts";

interface ChildConfig {
  root: string;
  state: string;
  address: string;
  daemon: boolean;
  rootfs: string;
  namespace: string;
  bin: string;
  count: number;
  mode: "return" | "exit" | "throw" | "reject" | "wait";
}

const c = JSON.parse(process.argv[2] ?? "{}") as ChildConfig;
const rt = c.daemon ? undefined : await startEmbeddedRuntime({ root: c.root, state: c.state, address: c.address, selfDir: c.bin, logger: pino({ level: "silent" }) });
const client = c.daemon ? await dial(c.address) : undefined;
const api = rt ? managerApi(rt.manager, { embedded: false }) : client!.service(Bunker);
const session = cleanupSession();
const target = { daemon: c.daemon, root: c.root, state: c.state, address: c.address };

const made = await Promise.all(
  Array.from({ length: c.count }, async (_, i) => {
    const id = `c${i}`;
    session.track({ namespace: c.namespace, id, ...target });
    const spec = generateSpec({ namespace: c.namespace, id, args: ["sleep", "600"], cgroupParent: cgroupParent(c.address) });
    await api.create({ namespace: c.namespace, id, rootfs: c.rootfs, spec: new TextEncoder().encode(JSON.stringify(spec)), labels: { mine: "yes", ...session.labels } });
    const { pid } = await api.start({ namespace: c.namespace, id });
    const shimSocket = readFileSync(join(c.state, c.namespace, id, "address"), "utf8").trim().replace(/^unix:\/\//, "");
    return { id, pid, shimSocket };
  }),
);
process.stdout.write(`${JSON.stringify({ reaper: session.reaperPid, session: session.identity.session, made })}\n`);
// The test looks at what we made, then closes our stdin (or signals us).
await Bun.stdin.text();

switch (c.mode) {
  case "return":
    rt?.close();
    client?.close();
    break;
  case "exit":
    process.exit(0);
    break;
  case "throw":
    throw new Error("the test process failed");
  case "reject":
    void Promise.reject(new Error("the test process failed asynchronously"));
    break;
  case "wait":
    setInterval(() => undefined, 60_000);
    break;
}
