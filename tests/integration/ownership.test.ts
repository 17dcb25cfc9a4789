// No bunker touches a container it does not own. runc keeps state per <root>/<id>; when every bunker
// and containerd shared /run/containerd/runc/<ns>, a second `victim` in the same namespace failed with
// "already exists" and its rollback's `runc delete --force` SIGKILLed the first owner's container.
// Now bunker's manager and foreground runs keep runc state under their own --state, and a failed
// create removes only what it made. Two bunkers, and a bunker beside a private containerd, each
// create a container of the same name in the same namespace, in both orders: every one keeps running.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { TestContainerd } from "../support/containerd.ts";
import { describeWith } from "../support/require.ts";
import { BunkerEnv, until } from "../support/cli-harness.ts";
import { startEnv, stopEnv } from "../support/shim-env.ts";

const running = async (env: BunkerEnv, id: string): Promise<boolean> => new RegExp(`^${id}\\s+\\d+\\s+RUNNING`, "m").test((await env.run(["ps", "-a"])).stdout);

describeWith(["root", "bin:runc", "bin:containerd", "bin:ctr", "bin:containerd-shim-runc-v2"], "containers of the same name under different owners", () => {
  let a: BunkerEnv;
  let b: BunkerEnv;
  let ctd: TestContainerd | undefined;
  let ctdRootfs = "";

  beforeAll(async () => {
    a = await BunkerEnv.create("bunker-own-a-");
    b = await BunkerEnv.create("bunker-own-b-");
    // the same namespace in both: only --root/--state/--address differ
    (b as { namespace: string }).namespace = a.namespace;
    ({ ctd, rootfs: ctdRootfs } = await startEnv());
  }, 120_000);
  afterAll(async () => {
    await a?.dispose();
    await b?.dispose();
    await stopEnv(ctd);
  }, 120_000);

  test("two bunkers with their own --root/--state: run -d victim in each; both run, rm in one leaves the other", async () => {
    expect((await a.run(["run", "-d", "--rootfs", a.rootfs, "victim", "sleep", "1000"])).code).toBe(0);
    expect(await b.run(["run", "-d", "--rootfs", b.rootfs, "victim", "sleep", "1000"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(await running(a, "victim")).toBe(true);
    expect(await running(b, "victim")).toBe(true);
    // a foreground run --rm of the same name in the second bunker runs and ends without touching the first's
    expect(await b.run(["run", "--rm", "--rootfs", b.rootfs, "victim2", "true"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await a.run(["run", "-d", "--rootfs", a.rootfs, "victim2", "sleep", "1000"])).code).toBe(0);
    expect(await b.run(["run", "--rm", "--rootfs", b.rootfs, "victim2", "sh", "-c", "exit 3"])).toEqual({ code: 3, stdout: "", stderr: "" });
    expect(await running(a, "victim2")).toBe(true);
    expect((await b.run(["rm", "-f", "victim"])).code).toBe(0);
    expect(await running(a, "victim")).toBe(true);
    expect((await a.run(["rm", "-f", "victim", "victim2"])).code).toBe(0);
  }, 120_000);

  test("bunker beside containerd, same namespace and name, both orders: each owner's container keeps running", async () => {
    const ctr = (args: string[]) => ctd!.ctr(["-n", a.namespace, ...args], { timeoutMs: 60_000 });
    const ctrRunning = async (id: string) => new RegExp(`^${id}\\s+\\d+\\s+RUNNING`, "m").test((await ctr(["task", "ls"])).stdout);

    // containerd first, then bunker
    expect((await ctr(["run", "-d", "--runtime", "io.containerd.runc.v2", "--rootfs", ctdRootfs, "shared1", "/bin/sleep", "1000"])).code).toBe(0);
    await until(() => ctrRunning("shared1"), 20_000, "ctr's shared1 to run");
    expect(await a.run(["run", "-d", "--rootfs", a.rootfs, "shared1", "sleep", "1000"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(await ctrRunning("shared1")).toBe(true);
    expect(await running(a, "shared1")).toBe(true);

    // bunker first, then containerd (a Go shim, and bunker's shim under containerd)
    expect((await a.run(["run", "-d", "--rootfs", a.rootfs, "shared2", "sleep", "1000"])).code).toBe(0);
    const r = await ctr(["run", "-d", "--runtime", "io.containerd.runc.v2", "--rootfs", ctdRootfs, "shared2", "/bin/sleep", "1000"]);
    expect(r.code).toBe(0);
    expect(await running(a, "shared2")).toBe(true);
    await until(() => ctrRunning("shared2"), 20_000, "ctr's shared2 to run");

    // removing either owner's container leaves the other's
    expect((await a.run(["rm", "-f", "shared1"])).code).toBe(0);
    expect(await ctrRunning("shared1")).toBe(true);
    for (const id of ["shared1", "shared2"]) {
      expect((await ctr(["task", "kill", "-s", "SIGKILL", id])).code).toBe(0);
      await until(async () => (await ctr(["task", "delete", id])).code === 0, 20_000, `ctr's ${id} to be deleted`);
      expect((await ctr(["container", "rm", id])).code).toBe(0);
    }
    expect(await running(a, "shared2")).toBe(true);
    expect((await a.run(["rm", "-f", "shared2"])).code).toBe(0);
  }, 120_000);
});
