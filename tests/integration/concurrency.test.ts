// Concurrency in one grouped shim (our default groups a namespace into one shim): 200 concurrent
// creates then 200 concurrent deletes through `bunker daemon` all succeed and leave nothing; and a
// slow `runc create` (the real runc behind a wrapper that sleeps first, for one id) delays neither
// State of the shim's other containers (containerd gives State 2 s) nor their create and delete.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { socketAddress, socketPath } from "../../src/contract/address.ts";
import { NAMESPACE_GROUP_KEY } from "../../src/contract/grouping.ts";
import { dial } from "../../src/ttrpc/index.ts";
import { describeWith } from "../support/require.ts";
import { BUNKER_RUNTIME, until } from "../support/cli-harness.ts";
import { CrashEnv, createTask, leaks, listTasks, NO_LEAKS, SlowRunc } from "../support/crash-harness.ts";

const CONCURRENT = Number(process.env.BUNKER_CONCURRENT ?? "200");
const SLOW_S = 3;

describeWith(["root", "bin:runc", "bin:containerd-shim-runc-v2"], "concurrency in one grouped shim", () => {
  let env: CrashEnv;
  beforeAll(async () => {
    env = await CrashEnv.make("bunker-conc-");
  }, 60_000);
  afterAll(async () => {
    await env?.dispose([`${env.namespace}a`, `${env.namespace}b`]);
  }, 60_000);

  test(`${CONCURRENT} concurrent creates, then ${CONCURRENT} concurrent deletes: all succeed, one shim, nothing left`, async () => {
    const ns = `${env.namespace}a`;
    // --debug: the manager logs whether each create ran the shim's start action or joined the live shim
    const daemon = await env.startDaemon(["--debug"]);
    const { api, client } = await env.api();
    const ids = Array.from({ length: CONCURRENT }, (_, i) => `c${i}`);
    const t0 = performance.now();
    const created = await Promise.allSettled(ids.map((id) => createTask(env, api, ns, id, { runtime: BUNKER_RUNTIME, args: ["sleep", "1000"] })));
    const createMs = performance.now() - t0;
    expect(created.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    expect(env.shims().filter((s) => s.state !== "Z").length).toBe(1);
    // one start action for the group; every other create reserved its id over the manager's connection
    const starts = daemon.log().split("\n").filter((l) => l.includes('"msg":"shim started"')).length;
    const reused = daemon.log().split("\n").filter((l) => l.includes('"msg":"shim reused"')).length;
    expect({ starts, reused }).toEqual({ starts: 1, reused: CONCURRENT - 1 });
    const tasks = await listTasks(api, ns);
    expect([...tasks.values()].filter((t) => t.status === Status.CREATED).length).toBe(CONCURRENT);
    const t1 = performance.now();
    const deleted = await Promise.allSettled(ids.map((id) => api.delete({ namespace: ns, id, force: true })));
    const deleteMs = performance.now() - t1;
    expect(deleted.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    console.log(`concurrency: ${CONCURRENT} creates in ${createMs.toFixed(0)} ms (one shim start action), ${CONCURRENT} deletes in ${deleteMs.toFixed(0)} ms, one shim`);
    expect(await leaks(env, ns, ids, { parents: [daemon.proc.pid] })).toEqual(NO_LEAKS);
    client.close();
    daemon.proc.kill("SIGKILL");
    await daemon.proc.exited;
  }, 300_000);

  test(`a runc create that takes ${SLOW_S} s delays neither State nor create/delete of other containers`, async () => {
    const ns = `${env.namespace}b`;
    const slow = new SlowRunc(env.dir);
    const daemon = await env.startDaemon();
    const { api, client } = await env.api();
    const base = { runtime: BUNKER_RUNTIME, binaryName: slow.path, args: ["sleep", "1000"] };
    await createTask(env, api, ns, "fast", base);
    await api.start({ namespace: ns, id: "fast" });
    slow.slow("create", "slow", SLOW_S);
    const t0 = performance.now();
    const slowCreate = createTask(env, api, ns, "slow", base).then(() => performance.now() - t0);
    await until(() => slow.entered("create", "slow"), 20_000, "the slow runc create to begin");

    // State straight to the shim, as containerd asks it (its deadline is 2 s)
    const shim = await dial(socketPath(socketAddress(env.address, ns, NAMESPACE_GROUP_KEY)), { namespace: ns, connectTimeoutMs: 2_000 });
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const s0 = performance.now();
      const st = await shim.service(Task).state({ id: "fast" }, { timeoutMs: 2_000 });
      times.push(performance.now() - s0);
      expect(st.status).toBe(Status.RUNNING);
    }
    // and the whole life of another container while the slow create is still under way
    const o0 = performance.now();
    await createTask(env, api, ns, "other", base);
    await api.start({ namespace: ns, id: "other" });
    await api.delete({ namespace: ns, id: "other", force: true });
    const otherMs = performance.now() - o0;
    const slowMs = await slowCreate;
    console.log(
      `slow create (${SLOW_S} s): State of another container max ${Math.max(...times).toFixed(1)} ms over ${times.length} calls; ` +
        `another container's create+start+delete ${otherMs.toFixed(0)} ms; the slow create took ${slowMs.toFixed(0)} ms`,
    );
    expect(Math.max(...times)).toBeLessThan(500);
    expect(otherMs).toBeLessThan(SLOW_S * 1000 - 500);
    expect(slowMs).toBeGreaterThan(SLOW_S * 1000);
    shim.close();
    for (const id of ["fast", "slow"]) await api.delete({ namespace: ns, id, force: true });
    expect(await leaks(env, ns, ["fast", "slow", "other"], { parents: [daemon.proc.pid], slow })).toEqual(NO_LEAKS);
    client.close();
    daemon.proc.kill("SIGKILL");
    await daemon.proc.exited;
  }, 120_000);
});
