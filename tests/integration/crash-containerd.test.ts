// Crash at every step with real containerd driving our shim: kill -9 containerd, or the shim,
// while one namespace holds a task during start, running, exited and during delete; restart what
// was killed and check convergence (listed with the right status, or gone; delete works) and that
// no runc state, bundle, mount, shim socket, zombie or container process is left.
// ctr passes runc options (--runc-binary, our slow wrapper) only to io.containerd.runc.v2, so that
// runtime name resolves to OUR shim here: a PATH dir links containerd-shim-runc-v2 to it.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { describeWith } from "../support/require.ts";
import { startContainerd, type TestContainerd } from "../support/containerd.ts";
import { copyRootfs } from "../support/rootfs.ts";
import { killSame, type ProcInfo, procInfo, waitGone } from "../support/procs.ts";
import { socketAddress, socketPath } from "../../src/contract/address.ts";
import { NAMESPACE_GROUP_KEY } from "../../src/contract/grouping.ts";
import { until } from "../support/cli-harness.ts";
import { mountsUnder, runcList, SlowRunc, zombiesOf } from "../support/crash-harness.ts";
import { SHIM_BINARY, shimBinDir, shimServers } from "../support/shim-env.ts";
import { removeAtEnd } from "../support/cleanup.ts";

const SLOW_S = 2;
const IDS = ["starting", "running", "exited", "deleting"];

describeWith(["root", "bin:runc", "bin:containerd", "bin:ctr"], "crash at every step, containerd driven (our shim)", () => {
  let ctd: TestContainerd;
  let rootfs: string;
  let slow: SlowRunc;
  let nsN = 0;
  beforeAll(async () => {
    const bin = join(await mkdtempDir(), "bin");
    mkdirSync(bin);
    symlinkSync(join(await shimBinDir(), SHIM_BINARY), join(bin, "containerd-shim-runc-v2"));
    ctd = await startContainerd({ path: `${bin}:${process.env.PATH ?? ""}:/usr/sbin:/sbin`, env: { BUNKER_SHIM_LINGER_MS: "0" } });
    rootfs = await copyRootfs(join(ctd.dir, "rootfs"));
    slow = new SlowRunc(ctd.dir);
  }, 60_000);
  afterAll(async () => {
    await ctd?.stop();
  }, 60_000);

  const ns = () => `crash${process.pid}x${nsN}`;

  async function status(n: string): Promise<Map<string, string>> {
    const ls = await ctd.ctr(["-n", n, "task", "ls"], { timeoutMs: 20_000 });
    return new Map(ls.stdout.split("\n").slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 3).map((f) => [f[0]!, f[2]!]));
  }

  /** One task per stage; returns the container processes and the ctr calls left in flight. */
  async function stage(n: string): Promise<{ containers: ProcInfo[]; inflight: Promise<unknown>[] }> {
    const run = (id: string, ...cmd: string[]) =>
      ctd.ctr(["-n", n, "run", "-d", "--runtime", "io.containerd.runc.v2", "--runc-binary", slow.path, "--rootfs", rootfs, id, ...cmd], { timeoutMs: 30_000 });
    expect(await run("running", "/bin/sleep", "1000")).toMatchObject({ code: 0, stderr: "" });
    for (const [id, code] of [["exited", 3], ["deleting", 4]] as const) expect((await run(id, "/bin/sh", "-c", `exit ${code}`)).code).toBe(0);
    await until(async () => {
      const s = await status(n);
      return s.get("exited") === "STOPPED" && s.get("deleting") === "STOPPED";
    }, 20_000, "exited and deleting to stop");
    slow.slow("start", "starting", SLOW_S);
    slow.slow("delete", "deleting", SLOW_S);
    const inflight = [run("starting", "/bin/sleep", "1000"), ctd.ctr(["-n", n, "task", "delete", "deleting"], { timeoutMs: 30_000 })];
    await until(() => slow.entered("start", "starting") && slow.entered("delete", "deleting"), 20_000, "start and delete under way");
    const pids = (await ctd.ctr(["-n", n, "task", "ls"])).stdout.split("\n").slice(1).map((l) => Number(l.trim().split(/\s+/)[1]));
    return { containers: pids.map((p) => (p > 0 ? procInfo(p) : undefined)).filter((p): p is ProcInfo => p !== undefined), inflight };
  }

  /** Waits until every task is in an allowed state, deletes them all, then checks what is left. */
  async function converge(n: string, allowed: Record<string, string[]>, containers: ProcInfo[]): Promise<Record<string, string>> {
    let seen: Record<string, string> = {};
    await until(async () => {
      const s = await status(n);
      seen = Object.fromEntries(IDS.map((id) => [id, s.get(id) ?? "gone"]));
      return IDS.every((id) => allowed[id]!.includes(seen[id]!));
    }, 20_000, "convergence").catch(() => undefined);
    expect(seen).toEqual(Object.fromEntries(IDS.map((id) => [id, allowed[id]!.includes(seen[id]!) ? seen[id]! : allowed[id]!.join("|")])));
    for (const id of IDS) {
      if (seen[id] !== "gone") expect((await ctd.ctr(["-n", n, "task", "delete", "-f", id], { timeoutMs: 20_000 })).stderr).not.toContain("not found");
      await ctd.ctr(["-n", n, "container", "rm", id], { timeoutMs: 20_000 });
    }
    expect(await status(n)).toEqual(new Map());
    const bundles = join(ctd.state, "io.containerd.runtime.v2.task", n);
    const sockets = [NAMESPACE_GROUP_KEY, ...IDS].map((g) => socketPath(socketAddress(ctd.address, n, g)));
    const check = async () => ({
      runc: await runcList(n),
      bundles: IDS.map((id) => join(bundles, id)).filter((d) => existsSync(d)),
      mounts: mountsUnder(bundles),
      sockets: sockets.filter((s) => existsSync(s)),
      zombies: zombiesOf([ctd.pid, ...shimServers(ctd).map((s) => s.pid)]).map((p) => p.pid),
      alive: containers.filter((p) => procInfo(p.pid)?.start === p.start && procInfo(p.pid)?.state !== "Z").map((p) => p.pid),
    });
    const none = { runc: [], bundles: [], mounts: [], sockets: [], zombies: [], alive: [] };
    let last = await check();
    await until(async () => slow.running().length === 0 && JSON.stringify((last = await check())) === JSON.stringify(none), 15_000, "nothing left").catch(() => undefined);
    expect(last).toEqual(none);
    return seen;
  }

  test("kill -9 containerd: tasks come back with their status; delete cleans all", async () => {
    nsN++;
    const n = ns();
    const { containers, inflight } = await stage(n);
    await ctd.restart();
    await Promise.all(inflight);
    const seen = await converge(n, { starting: ["CREATED", "RUNNING", "gone"], running: ["RUNNING"], exited: ["STOPPED"], deleting: ["gone", "STOPPED"] }, containers);
    console.log(`crash containerd (bunker shim): ${JSON.stringify(seen)}`);
  }, 120_000);

  test("kill -9 the shim: every task is reported stopped or gone; delete cleans all", async () => {
    nsN++;
    const n = ns();
    const { containers, inflight } = await stage(n);
    const shims = shimServers(ctd).filter((s) => s.state !== "Z");
    expect(shims.length).toBe(1);
    for (const s of shims) killSame(s, "SIGKILL");
    expect(await waitGone(shims, 5_000)).toEqual([]);
    await Promise.all(inflight);
    const dead = ["gone", "STOPPED"];
    const seen = await converge(n, Object.fromEntries(IDS.map((id) => [id, dead])), containers);
    console.log(`crash shim under containerd: ${JSON.stringify(seen)}`);
  }, 120_000);
});

async function mkdtempDir(): Promise<string> {
  const { mkdtemp } = await import("node:fs/promises");
  const dir = await mkdtemp("/tmp/bunker-crash-ctd-");
  removeAtEnd(dir);
  return dir;
}
