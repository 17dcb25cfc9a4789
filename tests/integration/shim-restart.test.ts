// Restart and failure semantics: containerd restarted under a running task reconnects through
// `address` + Connect and still sees the task and its later exit; a SIGKILLed shim is cleaned up
// by containerd through our `delete` action, leaving no process, mount, socket or runc state.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { TestContainerd } from "../support/containerd.ts";
import { procInfo } from "../support/procs.ts";
import { describeEachContainerd } from "../support/containerd-versions.ts";
import { alive, groupSocket, mountsUnder, RUNTIME, shimServers, startEnv, stopEnv, waitFor } from "../support/shim-env.ts";


describeEachContainerd(["root", "bin:runc", "bin:containerd", "bin:ctr"], "bunker shim across containerd restarts and shim deaths", (build) => {
  const NS = `bkr${process.pid}v${build.line.replace(".", "")}`;
  let ctd: TestContainerd;
  let rootfs: string;
  const run = (args: string[], timeoutMs = 60_000) => ctd.ctr(["-n", NS, ...args], { timeoutMs });
  const tasks = async (): Promise<Map<string, { pid: number; status: string }>> => {
    const r = await run(["task", "ls"]);
    const out = new Map<string, { pid: number; status: string }>();
    for (const line of r.stdout.split("\n").slice(1)) {
      const [id, pid, status] = line.trim().split(/\s+/);
      if (id && pid && status) out.set(id, { pid: Number(pid), status });
    }
    return out;
  };
  const bundle = (id: string) => join(ctd.state, "io.containerd.runtime.v2.task", NS, id);

  beforeAll(async () => {
    ({ ctd, rootfs } = await startEnv(build));
  }, 120_000);

  afterAll(async () => {
    await stopEnv(ctd);
  }, 120_000);

  test("a running task survives a containerd restart (kill -9 + start) and its later exit is seen", async () => {
    expect((await run(["run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, "rs1", "/bin/sh", "-c", "trap 'exit 3' TERM; while :; do sleep 1; done"])).code).toBe(0);
    const before = (await tasks()).get("rs1");
    expect(before?.status).toBe("RUNNING");
    const shim = shimServers(ctd);
    expect(shim.length).toBe(1);

    await ctd.restart();

    const after = (await tasks()).get("rs1");
    expect(after).toEqual(before!);
    expect(alive(shim[0]!)).toBe(true); // the same shim, reconnected to
    expect((await run(["task", "kill", "-s", "SIGTERM", "rs1"])).code).toBe(0);
    // the exit travels shim -> (reconnected) events publisher -> the new containerd
    await waitFor("rs1 STOPPED", async () => (await tasks()).get("rs1")?.status === "STOPPED");
    const del = await run(["task", "delete", "rs1"]);
    expect(del.stderr).toContain("exit with non-zero exit code 3");
    expect((await run(["container", "rm", "rs1"])).code).toBe(0);
  }, 120_000);

  test("a SIGKILLed shim: containerd cleans up every container it served through our delete action", async () => {
    for (const id of ["sk1", "sk2"]) {
      expect((await run(["run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, id, "/bin/sleep", "300"])).code).toBe(0);
    }
    const listed = await tasks();
    const containerPids = ["sk1", "sk2"].map((id) => procInfo(listed.get(id)!.pid)!);
    const servers = shimServers(ctd);
    expect(servers.length).toBe(1);
    const socket = readFileSync(join(bundle("sk1"), "address"), "utf8").replace("unix://", "");
    expect(socket).toBe(groupSocket(ctd, NS));
    expect(existsSync(socket)).toBe(true);

    process.kill(servers[0]!.pid, "SIGKILL");

    await waitFor("containerd to drop both tasks", async () => {
      const t = await tasks();
      return !t.has("sk1") && !t.has("sk2");
    });
    for (const p of containerPids) await waitFor(`container process ${p.pid} gone`, () => !alive(p));
    for (const id of ["sk1", "sk2"]) {
      await waitFor(`bundle of ${id} removed`, () => !existsSync(bundle(id)), 5000).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${readFileSync(ctd.logPath, "utf8").split("\n").filter((l) => /sk[12]|dead shim|cleanup/.test(l)).slice(-20).join("\n")}`);
      });
      expect(existsSync(`/run/containerd/runc/${NS}/${id}`)).toBe(false);
      expect((await run(["container", "rm", id])).code).toBe(0);
    }
    expect(existsSync(socket)).toBe(false);
    expect(mountsUnder(ctd.dir)).toEqual([]);
    // a new container in the namespace gets a fresh shim on the same address
    const again = await run(["run", "--rm", "--runtime", RUNTIME, "--rootfs", rootfs, "sk3", "/bin/echo", "again"]);
    expect(again).toEqual({ code: 0, stdout: "again\n", stderr: "" });
    const stateDir = join(ctd.state, "io.containerd.runtime.v2.task", NS);
    expect(existsSync(stateDir) ? readdirSync(stateDir) : []).toEqual([]);
  }, 120_000);
});
