// What the containerd benches (shim.ts, pod-shims.ts) do to many containers through `ctr`: run a
// command that must succeed, work through ids a batch at a time (10 concurrent ctr processes keep
// two cores busy without timing containerd out), and remove a batch of containers for good.
import type { TestContainerd } from "../tests/support/containerd.ts";

export async function ctrOk(ctd: TestContainerd, ns: string, args: string[]): Promise<void> {
  const r = await ctd.ctr(["-n", ns, ...args], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`ctr ${args.join(" ")}: ${r.code} ${r.stderr}`);
}

export async function inBatches<T>(items: T[], size: number, fn: (t: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

/** SIGKILL, task delete (retried until the task has stopped) and container rm of every id. */
export async function removeContainers(ctd: TestContainerd, ns: string, ids: string[]): Promise<void> {
  await inBatches(ids, 10, (id) => ctrOk(ctd, ns, ["task", "kill", "-s", "SIGKILL", id]));
  await inBatches(ids, 10, async (id) => {
    for (let tries = 0; ; tries++) {
      const r = await ctd.ctr(["-n", ns, "task", "delete", id], { timeoutMs: 60_000 });
      if (r.code === 0 || tries > 50) break;
      await Bun.sleep(100); // not stopped yet
    }
    await ctrOk(ctd, ns, ["container", "rm", id]);
  });
}
