// The warm spare (src/shim/spare.ts), opt-in with BUNKER_SHIM_SPARE=1 in containerd's env, under a
// real containerd with one shim per pod (CRI's sandbox-id annotation, as kubelet's pods get): the
// first pod's shim starts a spare, the next pod is served by that very process, a spare killed
// before it is used leaves `start` to spawn a fresh serve process, and at the end the spare, ended
// by its pid, leaves no socket.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { socketAddress, socketPath } from "../../src/contract/address.ts";
import { spareAddress } from "../../src/shim/spare-wire.ts";
import { startContainerd, type TestContainerd } from "../support/containerd.ts";
import { cmdline, killSame, procInfo, type ProcInfo, waitGone } from "../support/procs.ts";
import { copyRootfs } from "../support/rootfs.ts";
import { describeWith } from "../support/require.ts";
import { alive, endShims, RUNTIME, shimPath, shimServers, spareServers, waitFor } from "../support/shim-env.ts";

const NS = `bks${process.pid}`;
const SANDBOX = "io.kubernetes.cri.sandbox-id";

describeWith(["root", "bin:runc", "bin:containerd", "bin:ctr"], "bunker shim warm spare", () => {
  let ctd: TestContainerd;
  let rootfs: string;
  const ctr = (args: string[]) => ctd.ctr(["-n", NS, ...args], { timeoutMs: 60_000 });
  const runPod = (pod: string) => ctr(["run", "-d", "--runtime", RUNTIME, "--annotation", `${SANDBOX}=${pod}`, "--rootfs", rootfs, pod, "/bin/sleep", "300"]);
  const controlPath = () => socketPath(spareAddress(ctd.address, NS, ctd.ttrpcAddress));
  const podSocket = (pod: string) => socketPath(socketAddress(ctd.address, NS, pod));
  const spares = (): ProcInfo[] => spareServers(ctd).filter((p) => cmdline(p.pid).includes(` -namespace ${NS} `));
  const waitSpare = (not: number[] = []) =>
    waitFor("a spare waiting on its control socket", () => {
      const found = spares().filter((p) => !not.includes(p.pid) && alive(p));
      return found.length === 1 && existsSync(controlPath()) ? found[0] : undefined;
    });
  const taskPid = async (id: string): Promise<number> => {
    const r = await ctr(["task", "ls"]);
    const line = r.stdout.split("\n").find((l) => l.startsWith(`${id} `));
    return Number(line?.trim().split(/\s+/)[1]);
  };
  const removePod = async (pod: string) => {
    await ctr(["task", "kill", "-s", "SIGKILL", pod]);
    await waitFor(`${pod} stopped`, async () => !(await ctr(["task", "ls"])).stdout.includes(`${pod} `) || (await ctr(["task", "ls"])).stdout.includes("STOPPED"));
    await ctr(["task", "delete", pod]);
    await ctr(["container", "rm", pod]);
  };

  beforeAll(async () => {
    ctd = await startContainerd({
      path: await shimPath(),
      env: { BUNKER_SHIM_LINGER_MS: "0", BUNKER_SHIM_SPARE: "1", BUNKER_SHIM_SPARE_DELAY_MS: "300" },
    });
    rootfs = await copyRootfs(join(ctd.dir, "rootfs"));
  }, 120_000);

  afterAll(async () => {
    await endShims(ctd).catch(() => undefined);
    await ctd.stop();
  }, 120_000);

  test("the second pod is served by the process that was the spare; a killed spare falls back; nothing is left", async () => {
    expect((await runPod("pa")).code).toBe(0);
    const [shimA] = shimServers(ctd);
    expect(shimA).toBeDefined();
    // pod A's shim starts a spare once it has served a moment
    const spare = await waitSpare();
    expect(spare.ppid).toBe(shimA!.pid);

    const b = await runPod("pb");
    expect(b).toMatchObject({ code: 0, stderr: "" });
    // the spare became pod B's shim: its socket is served, its cwd is B's bundle, B's init is its child
    expect(existsSync(podSocket("pb"))).toBe(true);
    expect(alive(spare)).toBe(true);
    expect(readlinkSync(`/proc/${spare.pid}/cwd`)).toEndWith(`/${NS}/pb`);
    expect(procInfo(await taskPid("pb"))?.ppid).toBe(spare.pid);
    expect(shimServers(ctd).map((p) => p.pid)).not.toContain(spare.pid); // no fresh serve process for B
    expect(shimServers(ctd)).toHaveLength(1); // only A's, started by `start` with -socket
    expect((await ctr(["task", "exec", "--exec-id", "e1", "pb", "/bin/echo", "served"])).stdout).toBe("served\n");

    // B's shim (the former spare) starts the next spare; kill it: its socket stays, unanswered
    const second = await waitSpare([spare.pid]);
    killSame(second, "SIGKILL");
    expect(await waitGone([second], 10_000)).toEqual([]);
    expect(existsSync(controlPath())).toBe(true);
    const c = await runPod("pc");
    expect(c).toMatchObject({ code: 0, stderr: "" });
    const cInit = procInfo(await taskPid("pc"));
    const shimC = shimServers(ctd).find((p) => p.pid === cInit?.ppid);
    expect(shimC).toBeDefined(); // a fresh serve process, as without spares
    expect((await ctr(["task", "exec", "--exec-id", "e2", "pc", "/bin/echo", "fresh"])).stdout).toBe("fresh\n");

    // C's shim replaces the dead spare's socket with a new spare
    const third = await waitSpare([spare.pid, second.pid]);
    for (const pod of ["pa", "pb", "pc"]) await removePod(pod);
    await waitFor("the pods' shims to leave", () => !alive(shimA!) && !alive(spare) && !alive(shimC!));
    for (const pod of ["pa", "pb", "pc"]) expect(existsSync(podSocket(pod))).toBe(false);
    // the spare outlives the pods (until its idle time): end it by pid
    expect(alive(third)).toBe(true);
    killSame(third, "SIGTERM");
    expect(await waitGone([third], 10_000)).toEqual([]);
    expect(existsSync(controlPath())).toBe(false);
    expect(spares()).toEqual([]);
  }, 120_000);
});
