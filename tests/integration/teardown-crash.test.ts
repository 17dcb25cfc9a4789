// One teardown path, proven against a crash at each of its steps: `rm -f` of a running container
// (bunker's shim, no daemon) is SIGKILLed by the teardown's failpoint before its task step, before
// its bundle step, and before the record goes (BUNKER_TEST_KILL_AT=teardown:<step>); the next rm, ps
// or daemon start finishes it, and nothing is left: no container process, runc state, bundle, work
// dir, record, mount, shim process or shim socket.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { socketAddress, socketPath } from "../../src/contract/address.ts";
import { NAMESPACE_GROUP_KEY } from "../../src/contract/grouping.ts";
import { describeWith } from "../support/require.ts";
import { until } from "../support/cli-harness.ts";
import { CrashEnv, mountsUnder } from "../support/crash-harness.ts";
import { procInfo } from "../support/procs.ts";
import { alive } from "../support/shim-env.ts";

const STEPS = ["task", "bundle", "record"] as const;
const FINISHERS = ["rm", "ps", "daemon start"] as const;

describeWith(["root", "bin:runc"], "a teardown killed at each step is finished by the next rm, ps or daemon start", () => {
  let env: CrashEnv;
  const namespaces: string[] = [];
  beforeAll(async () => {
    env = await CrashEnv.make("bunker-teardown-");
  }, 60_000);
  afterAll(async () => {
    await env?.dispose(namespaces);
  }, 60_000);

  /** `bunker` with extra environment (the failpoint), in namespace ns. */
  async function bunker(ns: string, args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; signal: string | null; stderr: string }> {
    const proc = Bun.spawn([env.bunker, ...env.globals(), "-n", ns, ...args], { env: { ...env.spawnEnv(), ...extraEnv }, stdout: "ignore", stderr: "pipe", stdin: "ignore" });
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    return { code, signal: proc.signalCode === null || proc.signalCode === undefined ? null : String(proc.signalCode), stderr };
  }

  /** What is left of a namespace: bundles, work dirs, records, runc state, mounts. */
  function leftovers(ns: string): string[] {
    const dirs = [join(env.state, ns), join(env.root, ns), join(env.root, "containers", ns), join(env.state, "runc", ns)];
    return [...dirs.flatMap((d) => (existsSync(d) ? readdirSync(d).map((f) => join(d, f)) : [])), ...mountsUnder(env.state)];
  }

  for (const step of STEPS) {
    for (const finisher of FINISHERS) {
      test(`killed before its ${step} step, finished by ${finisher}`, async () => {
        const ns = `td${STEPS.indexOf(step)}${FINISHERS.indexOf(finisher)}${env.namespace}`;
        namespaces.push(ns);
        expect((await bunker(ns, ["run", "-d", "--rootfs", env.rootfs, "c1", "sleep", "1000"])).code).toBe(0);
        const ps = await env.run(["-n", ns, "ps", "-a"]);
        const pid = Number(/^c1\s+(\d+)\s+RUNNING/m.exec(ps.stdout)?.[1] ?? 0);
        expect(pid).toBeGreaterThan(0);
        const container = procInfo(pid)!;
        const shims = env.shims();
        expect(shims.length).toBeGreaterThan(0);

        const killed = await bunker(ns, ["rm", "-f", "c1"], { BUNKER_TEST_KILL_AT: `teardown:${step}` });
        expect(killed.signal).toBe("SIGKILL");
        // cut short: the record says so, and something of the container is still there
        expect(existsSync(join(env.root, "containers", ns, "c1"))).toBe(true);

        if (finisher === "rm") expect((await bunker(ns, ["rm", "c1"])).code).toBe(0);
        if (finisher === "ps") expect((await env.run(["-n", ns, "ps", "-a", "-q"])).stdout).toBe("");
        if (finisher === "daemon start") {
          const daemon = await env.startDaemon();
          expect((await env.run(["-n", ns, "ps", "-a", "-q"])).stdout).toBe("");
          daemon.proc.kill("SIGKILL");
          await daemon.proc.exited;
        }

        expect(alive(container)).toBe(false);
        expect(leftovers(ns)).toEqual([]);
        // the namespace's shim exits with its last container (linger 0) and takes its socket along
        await until(() => env.shims().every((s) => !shims.some((o) => o.pid === s.pid)), 20_000, "the shim to exit");
        expect(existsSync(socketPath(socketAddress(env.address, ns, NAMESPACE_GROUP_KEY)))).toBe(false);
      }, 60_000);
    }
  }
});
