// containerd 1.6 drives bunker's shim end to end: `ctr run --runtime io.containerd.bunker.v1`.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { TestContainerd } from "../support/containerd.ts";
import { describeEachContainerd } from "../support/containerd-versions.ts";
import { groupSocket, mountsUnder, RUNTIME, SHIM_BINARY, shimBinDir, shimServers, startEnv, stopEnv, waitFor, zombieChildren } from "../support/shim-env.ts";


describeEachContainerd(["root", "bin:runc", "bin:containerd", "bin:ctr"], "bunker shim under containerd", (build) => {
  const NS = `bk${process.pid}v${build.line.replace(".", "")}`;
  let ctd: TestContainerd;
  let rootfs: string;
  const run = (args: string[], timeoutMs = 60_000) => ctd.ctr(["-n", NS, ...args], { timeoutMs });
  const runRm = (id: string, cmd: string[], flags: string[] = []) => run(["run", "--rm", "--runtime", RUNTIME, ...flags, "--rootfs", rootfs, id, ...cmd]);
  const taskStatus = async (id: string): Promise<string | undefined> => {
    const r = await run(["task", "ls"]);
    return r.stdout.split("\n").map((l) => l.trim().split(/\s+/)).find((f) => f[0] === id)?.[2];
  };

  beforeAll(async () => {
    ({ ctd, rootfs } = await startEnv(build));
  }, 120_000);

  afterAll(async () => {
    await stopEnv(ctd);
  }, 120_000);

  test("ctr run --rm prints stdout and stderr and returns the exit code", async () => {
    const ok = await runRm("out0", ["/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2"]);
    expect(ok).toEqual({ code: 0, stdout: "to-stdout\n", stderr: "to-stderr\n" });
    const seven = await runRm("out7", ["/bin/sh", "-c", "echo bye; exit 7"]);
    expect(seven.code).toBe(7);
    expect(seven.stdout).toBe("bye\n");
  }, 60_000);

  test("an absolute path to the shim binary works as the runtime (containerd 1.6+)", async () => {
    const abs = join(await shimBinDir(), SHIM_BINARY);
    const r = await run(["run", "--rm", "--runtime", abs, "--rootfs", rootfs, "abs1", "/bin/echo", "by-path"]);
    expect(r).toEqual({ code: 0, stdout: "by-path\n", stderr: "" });
  }, 60_000);

  test("passes the environment and gives the process real pipes", async () => {
    const r = await runRm("env1", ["/bin/sh", "-c", 'echo "$FOO"; echo via-dev-stdout > /dev/stdout'], ["--env", "FOO=bar baz"]);
    expect(r).toEqual({ code: 0, stdout: "bar baz\nvia-dev-stdout\n", stderr: "" });
  }, 60_000);

  test("delivers 3 MB of output whole and in order", async () => {
    const r = await runRm("big1", ["/bin/seq", "1", "460000"]);
    const expected = Array.from({ length: 460000 }, (_, i) => `${i + 1}\n`).join("");
    expect(expected.length).toBeGreaterThan(3_000_000);
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(expected.length);
    expect(r.stdout === expected).toBe(true);
  }, 60_000);

  test("run -d is RUNNING; SIGKILL then task delete reports 137", async () => {
    const d = await run(["run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, "det1", "/bin/sleep", "300"]);
    expect(d.code).toBe(0);
    expect(await taskStatus("det1")).toBe("RUNNING");
    expect((await run(["task", "kill", "-s", "SIGKILL", "det1"])).code).toBe(0);
    await waitFor("det1 STOPPED", async () => (await taskStatus("det1")) === "STOPPED");
    // ctr task delete reports a non-zero exit as a warning and exits 0
    const del = await run(["task", "delete", "det1"]);
    expect(del.code).toBe(0);
    expect(del.stderr).toContain("task det1 exit with non-zero exit code 137");
    expect((await run(["container", "rm", "det1"])).code).toBe(0);
  }, 60_000);

  test("20 concurrent ctr run --rm all succeed", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `par${i}`);
    const results = await Promise.all(ids.map((id) => runRm(id, ["/bin/sh", "-c", `echo ${id}`])));
    for (const [i, r] of results.entries()) expect(r).toEqual({ code: 0, stdout: `${ids[i]}\n`, stderr: "" });
  }, 180_000);

  test("default grouping: 20 containers of a namespace share ONE shim process, which reaps them all", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `grp${i}`);
    const started = await Promise.all(ids.map((id) => run(["run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, id, "/bin/sleep", "300"])));
    for (const r of started) expect(r.code).toBe(0);
    const bundles = ids.map((id) => join(ctd.state, "io.containerd.runtime.v2.task", NS, id));
    const addresses = new Set(bundles.map((b) => readFileSync(join(b, "address"), "utf8")));
    expect(addresses.size).toBe(1);
    expect([...addresses][0]).toBe(`unix://${groupSocket(ctd, NS)}`);
    const servers = shimServers(ctd);
    expect(servers.length).toBe(1);
    const shimPid = servers[0]!.pid;
    // like Go's AdjustOOMScore: the shim goes before containerd under memory pressure
    const score = (pid: number) => Number(readFileSync(`/proc/${pid}/oom_score_adj`, "utf8"));
    expect(score(shimPid)).toBe(Math.min(score(ctd.pid) + 1, 1000));
    for (const id of ids) expect(await taskStatus(id)).toBe("RUNNING");
    await Promise.all(ids.map((id) => run(["task", "kill", "-s", "SIGKILL", id])));
    for (const id of ids) await waitFor(`${id} STOPPED`, async () => (await taskStatus(id)) === "STOPPED");
    expect(zombieChildren(shimPid)).toEqual([]);
    for (const id of ids) {
      expect((await run(["task", "delete", id])).stderr).toContain(`task ${id} exit with non-zero exit code 137`);
      expect((await run(["container", "rm", id])).code).toBe(0);
    }
  }, 240_000);

  test("one container's failure or flood does not disturb its neighbour in the same shim", async () => {
    expect((await run(["run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, "calm", "/bin/sh", "-c", "while :; do sleep 1; done"])).code).toBe(0);
    const bad = await runRm("bad1", ["/no/such/binary"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("/no/such/binary");
    // a flood of output next door (containerd reads it as fast as it can)
    const flood = await runRm("flood1", ["/bin/sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' x; echo"]);
    expect(flood.code).toBe(0);
    expect(flood.stdout.length).toBe(20_000_001);
    expect(await taskStatus("calm")).toBe("RUNNING");
    expect((await run(["task", "pause", "calm"])).code).toBe(0);
    expect(await taskStatus("calm")).toBe("PAUSED");
    expect((await run(["task", "resume", "calm"])).code).toBe(0);
    expect(await taskStatus("calm")).toBe("RUNNING");
    expect((await run(["task", "kill", "-s", "SIGKILL", "calm"])).code).toBe(0);
    await waitFor("calm STOPPED", async () => (await taskStatus("calm")) === "STOPPED");
    await run(["task", "delete", "calm"]);
    expect((await run(["container", "rm", "calm"])).code).toBe(0);
  }, 120_000);

  test("the io.containerd.bunker.v1.group annotation: 'container' gives each container its own shim", async () => {
    const ids = ["own1", "own2"];
    for (const id of ids) {
      const r = await run(["run", "-d", "--runtime", RUNTIME, "--annotation", "io.containerd.bunker.v1.group=container", "--rootfs", rootfs, id, "/bin/sleep", "300"]);
      expect(r.code).toBe(0);
    }
    const addresses = ids.map((id) => readFileSync(join(ctd.state, "io.containerd.runtime.v2.task", NS, id, "address"), "utf8"));
    expect(new Set(addresses).size).toBe(2);
    expect(addresses).not.toContain(`unix://${groupSocket(ctd, NS)}`);
    expect(shimServers(ctd).length).toBe(2);
    for (const id of ids) {
      await run(["task", "kill", "-s", "SIGKILL", id]);
      await waitFor(`${id} STOPPED`, async () => (await taskStatus(id)) === "STOPPED");
      await run(["task", "delete", id]);
      expect((await run(["container", "rm", id])).code).toBe(0);
    }
    for (const a of addresses) await waitFor(`${a} removed`, () => !existsSync(a.replace("unix://", "")));
  }, 120_000);

  test("leaves no shim, socket, bundle or mount behind", async () => {
    // with no containers left, the group's shim has gone (Shutdown, no linger in this suite)
    await waitFor("the shim to exit", () => shimServers(ctd).length === 0);
    expect(existsSync(groupSocket(ctd, NS))).toBe(false);
    expect(existsSync(`${groupSocket(ctd, NS)}.lock`)).toBe(false);
    const stateDir = join(ctd.state, "io.containerd.runtime.v2.task", NS);
    expect(existsSync(stateDir) ? readdirSync(stateDir) : []).toEqual([]);
    expect(mountsUnder(ctd.dir)).toEqual([]);
    // runc's state, removed after Delete answered, is gone too
    const runcRoot = `/run/containerd/runc/${NS}`;
    expect(existsSync(runcRoot) ? readdirSync(runcRoot) : []).toEqual([]);
  }, 60_000);
});
