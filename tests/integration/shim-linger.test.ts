// A namespace's shim lingers briefly after its last container: the next `ctr run` reuses it (no
// new Bun process on containerd's critical path), and it leaves cleanly once the linger is over.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startContainerd, type TestContainerd } from "../support/containerd.ts";
import { copyRootfs } from "../support/rootfs.ts";
import { describeWith } from "../support/require.ts";
import { alive, endShims, groupSocket, RUNTIME, shimPath, shimServers, waitFor } from "../support/shim-env.ts";

const NS = `bkl${process.pid}`;
const LINGER_MS = 3000;

describeWith(["root", "bin:runc", "bin:containerd", "bin:ctr"], "bunker shim linger", () => {
  let ctd: TestContainerd;
  let rootfs: string;
  const runRm = (id: string) => ctd.ctr(["-n", NS, "run", "--rm", "--runtime", RUNTIME, "--rootfs", rootfs, id, "/bin/echo", id], { timeoutMs: 60_000 });

  beforeAll(async () => {
    ctd = await startContainerd({ path: await shimPath(), env: { BUNKER_SHIM_LINGER_MS: String(LINGER_MS) } });
    rootfs = await copyRootfs(join(ctd.dir, "rootfs"));
  }, 120_000);

  afterAll(async () => {
    await endShims(ctd).catch(() => undefined);
    await ctd.stop();
  }, 120_000);

  test("the next container reuses the lingering shim; it exits after the linger", async () => {
    expect(await runRm("l1")).toEqual({ code: 0, stdout: "l1\n", stderr: "" });
    const [first] = shimServers(ctd);
    expect(first).toBeDefined();
    expect(await runRm("l2")).toEqual({ code: 0, stdout: "l2\n", stderr: "" });
    expect(shimServers(ctd).map((p) => p.pid)).toEqual([first!.pid]);
    const quietSince = Date.now();
    await waitFor("the shim to leave after its linger", () => !alive(first!), LINGER_MS + 10_000);
    expect(Date.now() - quietSince).toBeGreaterThan(LINGER_MS - 500);
    expect(existsSync(groupSocket(ctd, NS))).toBe(false);
    // and a later container gets a new one
    expect(await runRm("l3")).toEqual({ code: 0, stdout: "l3\n", stderr: "" });
    expect(shimServers(ctd).map((p) => p.pid)).not.toContain(first!.pid);
  }, 60_000);
});
