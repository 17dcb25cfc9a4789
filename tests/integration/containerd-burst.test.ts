// A burst through real containerd 1.6: 100 concurrent `ctr run -d` with bunker's shim all succeed
// and share one shim process. Under containerd the shim does not choose how often `start` runs
// (containerd runs it once per task and paces its calls); this keeps that path from regressing.
// Then all are removed at once, and nothing is left: no shim, bundle, runc state or mount.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { TestContainerd } from "../support/containerd.ts";
import { describeEachContainerd } from "../support/containerd-versions.ts";
import { until } from "../support/cli-harness.ts";
import { mountsUnder, RUNTIME, shimServers, startEnv, stopEnv } from "../support/shim-env.ts";

const N = Number(process.env.BUNKER_BURST ?? "100");

describeEachContainerd(["root", "bin:runc", "bin:containerd", "bin:ctr"], `containerd burst: ${N} concurrent ctr run -d`, (build) => {
  const NS = `burst${process.pid}v${build.line.replace(".", "")}`;
  let ctd: TestContainerd;
  let rootfs: string;
  const ctr = (args: string[], timeoutMs = 180_000) => ctd.ctr(["-n", NS, ...args], { timeoutMs });

  beforeAll(async () => {
    ({ ctd, rootfs } = await startEnv(build));
  }, 120_000);
  afterAll(async () => {
    await stopEnv(ctd);
  }, 120_000);

  test(`${N} concurrent ctr run -d: all succeed, one shim; removed at once, nothing left`, async () => {
    const ids = Array.from({ length: N }, (_, i) => `b${i}`);
    const t0 = performance.now();
    const runs = await Promise.all(ids.map((id) => ctr(["run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, id, "/bin/sleep", "1000"])));
    const runMs = performance.now() - t0;
    expect(runs.filter((r) => r.code !== 0).map((r) => r.stderr.trim())).toEqual([]);
    expect(shimServers(ctd).filter((s) => s.state !== "Z").length).toBe(1);
    const ls = await ctr(["task", "ls"]);
    const running = ls.stdout.split("\n").filter((l) => /\sRUNNING\s*$/.test(l)).length;
    expect(running).toBe(N);

    const t1 = performance.now();
    const removed = await Promise.all(ids.map((id) => ctr(["task", "delete", "-f", id]).then((r) => (r.code === 0 ? ctr(["container", "rm", id]) : r))));
    const removeMs = performance.now() - t1;
    expect(removed.filter((r) => r.code !== 0).map((r) => r.stderr.trim())).toEqual([]);
    console.log(`containerd burst: ${N} concurrent ctr run -d in ${runMs.toFixed(0)} ms, removed in ${removeMs.toFixed(0)} ms, one shim`);

    // the shim exits with its last container (linger 0); then nothing of the namespace remains
    await until(() => shimServers(ctd).filter((s) => s.state !== "Z").length === 0, 30_000, "the shim to exit");
    const left = [ctd.state, ctd.root].flatMap((base) => {
      const dir = join(base, "io.containerd.runtime.v2.task", NS);
      return existsSync(dir) ? readdirSync(dir) : [];
    });
    expect(left).toEqual([]);
    const runcRoot = join("/run/containerd/runc", NS);
    expect(existsSync(runcRoot) ? readdirSync(runcRoot) : []).toEqual([]);
    expect(mountsUnder(ctd.dir)).toEqual([]);
  }, 600_000);
});
