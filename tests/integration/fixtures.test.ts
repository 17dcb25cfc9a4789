import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startContainerd, type TestContainerd } from "../support/containerd.ts";
import { procInfo } from "../support/procs.ts";
import { busyboxRootfs, copyRootfs } from "../support/rootfs.ts";
import { describeWith } from "../support/require.ts";

const uniq = () => `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

async function run(cmd: string[], opts: { cwd?: string } = {}) {
  const proc = Bun.spawn(cmd, { cwd: opts.cwd, stdout: "pipe", stderr: "pipe" });
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code, stdout, stderr };
}

describeWith(["root", "bin:runc"], "busybox rootfs fixture", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp("/tmp/bunker-fixtures-test-");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("is cached: the second call returns the same built tree", async () => {
    const a = await busyboxRootfs();
    const b = await busyboxRootfs();
    expect(b).toBe(a);
    expect(existsSync(join(a, "bin", "busybox"))).toBe(true);
    expect(await readFile(join(a, "etc", "passwd"), "utf8")).toStartWith("root:x:0:0:");
  });

  test("runc run of a copy prints what busybox echo says", async () => {
    const bundle = join(dir, "bundle");
    await copyRootfs(join(bundle, "rootfs"));
    expect((await run(["runc", "spec"], { cwd: bundle })).code).toBe(0);
    const spec = JSON.parse(await readFile(join(bundle, "config.json"), "utf8")) as { process: { args: string[]; terminal: boolean } };
    spec.process.args = ["echo", "hi"];
    spec.process.terminal = false;
    await writeFile(join(bundle, "config.json"), JSON.stringify(spec));
    // A private runc root: no other runc user on this machine sees (or collides with) this container.
    const r = await run(["runc", "--root", join(dir, "runc"), "run", "--bundle", bundle, `fixture-${uniq()}`]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hi\n");
    expect(r.code).toBe(0);
  });
});

describeWith(["root", "bin:runc", "bin:containerd", "bin:ctr", "bin:containerd-shim-runc-v2"], "private containerd fixture", () => {
  let ctd: TestContainerd;
  let dir: string;
  beforeAll(async () => {
    ctd = await startContainerd();
    dir = await mkdtemp("/tmp/bunker-fixtures-test-");
  });
  afterAll(async () => {
    await ctd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test("ctr run --rm --rootfs prints hello", async () => {
    const rootfs = await copyRootfs(join(dir, "rootfs1"));
    const r = await ctr(["run", "--rm", "--rootfs", rootfs, `t1-${uniq()}`, "/bin/echo", "hello"]);
    expect(r).toMatchObject({ code: 0, stdout: "hello\n" });
  });

  test("restart keeps the task's shim and the new containerd reconnects to it", async () => {
    const rootfs = await copyRootfs(join(dir, "rootfs2"));
    const id = `t2-${uniq()}`;
    expect(await ctr(["run", "-d", "--rootfs", rootfs, id, "/bin/sleep", "600"])).toMatchObject({ code: 0 });
    const oldPid = ctd.pid;
    await ctd.restart();
    expect(ctd.pid).not.toBe(oldPid);
    const tasks = await ctr(["tasks", "ls"]);
    expect(tasks.stdout).toContain(id);
    expect(tasks.stdout).toContain("RUNNING");
  });

  test("stop ends containerd, its shims and their containers, and removes the dir", async () => {
    // Its own instance, so the shared one above is not torn down mid-suite.
    const own = await startContainerd();
    let taskPid = 0;
    const containerdPid = own.pid;
    try {
      const rootfs = await copyRootfs(join(dir, "rootfs3"));
      const id = `t3-${uniq()}`;
      expect(await own.ctr(["run", "-d", "--rootfs", rootfs, id, "/bin/sleep", "600"])).toMatchObject({ code: 0 });
      taskPid = Number((await own.ctr(["tasks", "ls"])).stdout.split("\n").find((l) => l.startsWith(id))?.split(/\s+/)[1]);
      expect(taskPid).toBeGreaterThan(0);
    } finally {
      await own.stop();
    }
    for (const pid of [taskPid, containerdPid]) {
      const info = procInfo(pid);
      expect(info === undefined || info.state === "Z").toBe(true);
    }
    expect(existsSync(own.dir)).toBe(false);
  });

  function ctr(args: string[]) {
    return ctd.ctr(args, { timeoutMs: 30_000 });
  }
});
