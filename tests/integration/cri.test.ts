// bunker's shim under containerd's CRI plugin, driven as kubelet drives it (issue #19): pod and
// container lifecycle, the CRI log file, ExecSync, exit codes and reasons, OOM, stop with a grace
// period, resource updates and stats. Every case runs twice, once with bunker as the default runtime
// handler and once with io.containerd.runc.v2 (Debian's Go shim), the reference: a case that passes
// for runc.v2 and fails for bunker is a bunker bug. Host-network pods only here (shim counts,
// leftovers, streaming and restarts are in cri-pods.test.ts, the pod network in cri-network.test.ts). One containerd per handler, shared
// by the cases; each case makes its own pods.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ContainerState, PodSandboxState } from "../../src/gen/k8s/cri/v1/api_pb.ts";
import { describeEachContainerd } from "../support/containerd-versions.ts";
import { type CriEnv, type Handler, startCriEnv } from "../support/cri/containerd-cri.ts";
import { GrpcError } from "../support/cri/client.ts";
import { criLog, runPod, startContainer, waitExited } from "../support/cri/pods.ts";
import { cgroupFile, containerPid, removePod, waitForLog } from "../support/cri/inspect.ts";

const HANDLERS: Handler[] = ["bunker", "runc"];
const T = 120_000;

function memoryCgroupFile(pid: number, file: string): string {
  return cgroupFile(pid, "memory", file);
}

describeEachContainerd(["root", "bin:runc", "bin:containerd", "bin:ctr", "bin:nsenter"], "CRI", (build) => {
  for (const handler of HANDLERS) {
    describe(`${handler} as the default handler`, () => {
      let env: CriEnv;
      beforeAll(async () => {
        env = await startCriEnv({ build, defaultHandler: handler });
      }, T);
      afterAll(async () => {
        await env?.stop();
      }, T);

      test("RunPodSandbox → READY; Create/StartContainer → RUNNING; its output in the CRI log file", async () => {
        const pod = await runPod(env, "life");
        const status = await env.client.runtime.podSandboxStatus({ podSandboxId: pod.id });
        expect(status.status?.state).toBe(PodSandboxState.SANDBOX_READY);
        expect(status.status?.runtimeHandler).toBe("");
        const id = await startContainer(env, pod, "hello", "echo hello from $0; echo to stderr >&2; sleep 300");
        const cs = await env.client.runtime.containerStatus({ containerId: id });
        expect(cs.status?.state).toBe(ContainerState.CONTAINER_RUNNING);
        expect(cs.status?.startedAt).toBeGreaterThan(0n);
        let log = criLog(pod, "hello");
        for (let i = 0; i < 100 && log.length < 2; i++) {
          await Bun.sleep(50);
          log = criLog(pod, "hello");
        }
        expect(log.map((l) => [l.stream, l.tag, l.text]).sort()).toEqual([["stderr", "F", "to stderr"], ["stdout", "F", "hello from sh"]]);
        for (const l of log) expect(Number.isNaN(Date.parse(l.time))).toBe(false);
        const listed = await env.client.runtime.listContainers({ filter: { podSandboxId: pod.id } });
        expect(listed.containers.map((c) => c.id)).toEqual([id]);
        await removePod(env, pod.id);
        const gone = await env.client.runtime.containerStatus({ containerId: id }).catch((e: unknown) => e);
        expect((gone as GrpcError).codeName).toBe("NOT_FOUND");
      }, T);

      test("ExecSync: output, exit code, timeout", async () => {
        const pod = await runPod(env, "exec");
        const id = await startContainer(env, pod, "sleeper", "sleep 300");
        const ok = await env.client.runtime.execSync({ containerId: id, cmd: ["sh", "-c", "echo out; echo err >&2; exit 3"], timeout: 10n });
        expect(new TextDecoder().decode(ok.stdout)).toBe("out\n");
        expect(new TextDecoder().decode(ok.stderr)).toBe("err\n");
        expect(ok.exitCode).toBe(3);
        const started = Date.now();
        const slow = env.client.runtime.execSync({ containerId: id, cmd: ["sleep", "30"], timeout: 1n });
        // containerd answers a timed-out ExecSync with DeadlineExceeded and kills the exec'd process
        const err = await slow.then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(GrpcError);
        expect((err as GrpcError).codeName).toBe("DEADLINE_EXCEEDED");
        expect(Date.now() - started).toBeLessThan(15_000);
        // the container is still there and still runs execs
        const again = await env.client.runtime.execSync({ containerId: id, cmd: ["echo", "still"], timeout: 10n });
        expect(new TextDecoder().decode(again.stdout)).toBe("still\n");
        await removePod(env, pod.id);
      }, T);

      test("exit code and reason: Completed (0), Error (non-zero), OOMKilled under a memory limit", async () => {
        const pod = await runPod(env, "exit");
        const done = await startContainer(env, pod, "done", "exit 0");
        const failed = await startContainer(env, pod, "failed", "exit 7");
        // sleep first: on cgroup v1 an OOM before the shim registers its eventfd is missed by any shim
        const oom = await startContainer(env, pod, "oom", "sleep 1; x=a; while true; do x=$x$x; done", {
          resources: { memoryLimitInBytes: 32n << 20n, memorySwapLimitInBytes: 32n << 20n },
        });
        const [d, f, o] = await Promise.all([waitExited(env, done), waitExited(env, failed), waitExited(env, oom, 60_000)]);
        expect([d.exitCode, d.reason]).toEqual([0, "Completed"]);
        expect([f.exitCode, f.reason]).toEqual([7, "Error"]);
        expect([o.exitCode, o.reason]).toEqual([137, "OOMKilled"]);
        // (finishedAt may precede startedAt for a process that exits at once: containerd stamps the start
        // after the shim's Start returns, the exit when it happened)
        expect(d.finishedAt).toBeGreaterThan(0n);
        await removePod(env, pod.id);
      }, T);

      test("StopContainer with a grace period: a process ignoring TERM is killed after it", async () => {
        const pod = await runPod(env, "stop");
        const id = await startContainer(env, pod, "stubborn", "trap '' TERM; echo ready; while true; do sleep 1; done");
        await waitForLog(pod, "stubborn", "ready");
        const started = Date.now();
        await env.client.runtime.stopContainer({ containerId: id, timeout: 2n }, { timeoutMs: 30_000 });
        const took = Date.now() - started;
        expect(took).toBeGreaterThanOrEqual(1900);
        expect(took).toBeLessThan(10_000);
        const st = await env.client.runtime.containerStatus({ containerId: id });
        expect([st.status?.state, st.status?.exitCode, st.status?.reason]).toEqual([ContainerState.CONTAINER_EXITED, 137, "Error"]);
        await removePod(env, pod.id);
      }, T);

      test("UpdateContainerResources reaches the container's cgroup; ContainerStats, ListContainerStats, PodSandboxStats", async () => {
        const pod = await runPod(env, "res");
        const busy = await startContainer(env, pod, "busy", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo done; sleep 300", {
          resources: { memoryLimitInBytes: 128n << 20n },
        });
        const idle = await startContainer(env, pod, "idle", "sleep 300");
        const pid = await containerPid(env, busy);
        expect(readFileSync(memoryCgroupFile(pid, "memory.limit_in_bytes"), "utf8").trim()).toBe(String(128 << 20));
        await env.client.runtime.updateContainerResources({ containerId: busy, linux: { memoryLimitInBytes: 96n << 20n, cpuPeriod: 100_000n, cpuQuota: 50_000n } });
        expect(readFileSync(memoryCgroupFile(pid, "memory.limit_in_bytes"), "utf8").trim()).toBe(String(96 << 20));
        expect(readFileSync(cgroupFile(pid, "cpu", "cpu.cfs_quota_us"), "utf8").trim()).toBe("50000");
        await waitForLog(pod, "busy", "done");
        const { stats } = await env.client.runtime.containerStats({ containerId: busy });
        expect(stats?.attributes?.id).toBe(busy);
        expect(stats?.attributes?.metadata?.name).toBe("busy");
        expect(stats?.cpu?.usageCoreNanoSeconds?.value).toBeGreaterThan(0n);
        expect(stats?.memory?.workingSetBytes?.value).toBeGreaterThan(0n);
        const listed = await env.client.runtime.listContainerStats({ filter: { podSandboxId: pod.id } });
        expect(listed.stats.map((x) => x.attributes?.id).sort()).toEqual([busy, idle].sort());
        for (const x of listed.stats) expect(x.memory?.workingSetBytes?.value).toBeGreaterThan(0n);
        // the pod's own figures (kubelet's summary API): the sandbox cgroup's usage and each container's
        const pod_ = await env.client.runtime.podSandboxStats({ podSandboxId: pod.id });
        expect(pod_.stats?.attributes?.id).toBe(pod.id);
        expect(pod_.stats?.linux?.cpu?.usageCoreNanoSeconds?.value).toBeGreaterThan(0n);
        expect(pod_.stats?.linux?.memory?.workingSetBytes?.value).toBeGreaterThan(0n);
        expect(pod_.stats?.linux?.containers.map((c) => c.attributes?.id).sort()).toEqual([busy, idle].sort());
        await removePod(env, pod.id);
      }, T);

      test("Status: RuntimeReady, NetworkReady false with no CNI config, the default handler in the config", async () => {
        const r = await env.client.runtime.status({ verbose: true });
        const conditions = Object.fromEntries((r.status?.conditions ?? []).map((c) => [c.type, c]));
        expect(conditions.RuntimeReady?.status).toBe(true);
        expect(conditions.NetworkReady?.status).toBe(false);
        const config = JSON.parse(r.info.config ?? "{}") as { containerd?: { defaultRuntimeName?: string; runtimes?: Record<string, { runtimeType?: string }> } };
        expect(config.containerd?.defaultRuntimeName).toBe(handler);
        expect(config.containerd?.runtimes?.bunker?.runtimeType).toBe("io.containerd.bunker.v1");
        const version = await env.client.runtime.version({ version: "v1" });
        expect([version.runtimeName, version.runtimeApiVersion]).toEqual(["containerd", "v1"]);
      }, T);
    });
  }
});
