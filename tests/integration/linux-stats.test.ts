// Stats of a real runc container, read from its cgroup files.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { MetricsSchema } from "../../src/gen/cgroups/v1/metrics_pb.ts";
import { NotFoundError } from "../../src/errdefs.ts";
import { type Cgroup, cgroupFromPath, cgroupMode, cgroupOfPid } from "../../src/linux/cgroup.ts";
import { readStats } from "../../src/linux/stats.ts";
import { makeContainer, type TestContainer, waitFor } from "../support/runc-bundle.ts";
import { describeWith } from "../support/require.ts";

describeWith(["root", "bin:runc"], "stats of a running runc container", () => {
  let c: TestContainer;
  let cg: Cgroup;
  beforeAll(async () => {
    // some CPU first, then a marker file: the loop is done when the file exists
    c = await makeContainer("stats", { args: ["sh", "-c", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; touch /tmp/ready; exec sleep 120"] });
    await c.runDetached();
    const { pid } = await c.state();
    cg = cgroupOfPid(pid);
    await waitFor(() => Bun.file(`${c.bundle}/rootfs/tmp/ready`).exists(), 20_000, "the CPU loop");
  });
  afterAll(async () => {
    await c?.dispose();
  });

  test("the cgroup of the init pid is the spec's cgroupsPath, on the host's cgroup version", () => {
    const mode = cgroupMode();
    expect(cg.version).toBe(mode === "unified" ? 2 : 1);
    expect(cg.path).toBe(c.cgroupsPath);
    expect(cgroupFromPath(c.cgroupsPath, c.id)).toEqual(cg);
  });

  test("memory usage is non-zero, pids current >= 1, CPU time was counted", () => {
    const s = readStats(cg);
    if (s.version === 1) {
      const m = s.metrics;
      expect(m.memory?.usage?.usage).toBeGreaterThan(0n);
      expect(m.pids?.current).toBeGreaterThanOrEqual(1n);
      expect(m.cpu?.usage?.total).toBeGreaterThan(0n);
      expect(m.cpu?.usage?.perCpu.length).toBeGreaterThan(0);
      expect(s.any.typeUrl).toBe("io.containerd.cgroups.v1.Metrics");
      expect(fromBinary(MetricsSchema, s.any.value).pids?.current).toBe(m.pids!.current);
    } else {
      expect(s.metrics.memory?.usage).toBeGreaterThan(0n);
      expect(s.metrics.pids?.current).toBeGreaterThanOrEqual(1n);
      expect(s.metrics.cpu?.usageUsec).toBeGreaterThan(0n);
      expect(s.any.typeUrl).toBe("io.containerd.cgroups.v2.Metrics");
    }
  });

  test("reading stats is cheap: 200 reads well under a second, no process spawned", () => {
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) readStats(cg);
    const perCallMs = (performance.now() - t0) / 200;
    console.log(`readStats: ${perCallMs.toFixed(3)} ms per call`);
    expect(perCallMs).toBeLessThan(5);
  });

  test("after runc delete the cgroup is gone and stats are NotFound", async () => {
    await c.run("delete", "--force", c.id);
    await waitFor(() => {
      try {
        readStats(cg);
        return false;
      } catch (err) {
        return err instanceof NotFoundError;
      }
    }, 10_000, "the cgroup to go away");
    expect(() => readStats(cg)).toThrow("cgroup does not exist");
  });
});
