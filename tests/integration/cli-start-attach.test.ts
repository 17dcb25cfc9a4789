// `bunker start -a` as a docker user drives it, with real runc, embedded and under a daemon: the
// container's output of this run (not the runs before) on our stdout and stderr as it comes, its
// exit code as ours, our SIGTERM passed on to it; the raw `file` log driver followed as well; a
// container that keeps no output is refused in one line before it is started.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { BunkerEnv, until } from "../support/cli-harness.ts";
import { describeEachMode } from "../support/cli-modes.ts";
import { describeWith } from "../support/require.ts";

/** Counts its runs in the container's /tmp, then says which run it is on both streams, later. */
const COUNTED = (tag: string) =>
  `n=$(cat /tmp/runs-${tag} 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/runs-${tag}; sleep 0.5; echo out $n; echo err $n >&2; sleep 0.5; echo late $n; exit 3`;

describeWith(["root", "bin:runc"], "bunker start -a", () => {
  let env: BunkerEnv;
  beforeAll(async () => {
    env = await BunkerEnv.create("bunker-starta-");
  }, 60_000);
  afterAll(async () => {
    await env?.dispose();
  }, 60_000);

  describeEachMode(() => env, (mode) => {
    const ids: string[] = [];
    const stoppedRow = async (id: string): Promise<boolean> => /\bSTOPPED\b/.test((await env.run(["ps", "-a"])).stdout.split("\n").find((l) => l.startsWith(`${id} `)) ?? "");

    for (const driver of ["json-file", "file"] as const) {
      test(`${driver} log: this run's stdout and stderr apart, as they come, and its exit code`, async () => {
        const id = `sa-${driver}-${mode}`;
        ids.push(id);
        expect((await env.run(["run", "-d", "--log-driver", driver, "--rootfs", env.rootfs, id, "sh", "-c", COUNTED(id)])).code).toBe(0);
        await until(() => stoppedRow(id), 10_000, "the first run to end");
        const r = await env.run(["start", "-a", id]);
        // the first run's lines are not replayed; with the raw file driver both streams are one
        if (driver === "json-file") expect(r).toEqual({ code: 3, stdout: "out 2\nlate 2\n", stderr: "err 2\n" });
        else expect(r).toEqual({ code: 3, stdout: "out 2\nerr 2\nlate 2\n", stderr: "" });
        expect(await stoppedRow(id)).toBe(true);
      }, 60_000);
    }

    test("our SIGTERM goes to the container, whose exit code is ours", async () => {
      const id = `sa-sig-${mode}`;
      ids.push(id);
      const script = `trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done`;
      expect((await env.run(["run", "-d", "--rootfs", env.rootfs, id, "sh", "-c", script])).code).toBe(0);
      // the first run, killed; start -a must show the second's "ready", not replay the first's
      await until(async () => (await env.run(["logs", id])).stdout.includes("ready"), 10_000, "the first run to be ready");
      expect((await env.run(["kill", "-s", "KILL", id])).code).toBe(0);
      await until(() => stoppedRow(id), 10_000, "the first run to be killed");
      const proc = Bun.spawn([env.bunker, ...env.globals(), "start", "-a", id], { env: env.spawnEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      let out = "";
      const reading = (async () => {
        for await (const chunk of proc.stdout) out += new TextDecoder().decode(chunk);
      })();
      await until(() => out.includes("ready"), 15_000, "start -a to show the new run");
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      const code = await proc.exited;
      clearTimeout(timer);
      await reading;
      expect([code, out, await new Response(proc.stderr).text()]).toEqual([7, "ready\ngot-term\n", ""]);
    }, 60_000);

    test("a container that keeps no output is refused in one line and not started; -a takes one container", async () => {
      const id = `sa-none-${mode}`;
      ids.push(id);
      expect((await env.run(["run", "-d", "--log-driver", "none", "--rootfs", env.rootfs, id, "true"])).code).toBe(0);
      await until(() => stoppedRow(id), 10_000, "the container to exit");
      const r = await env.run(["start", "-a", id]);
      expect(r).toEqual({ code: 1, stdout: "", stderr: `bunker: start -a: container ${id} keeps no output to attach to (--log-driver none); start it without -a\n` });
      expect(await stoppedRow(id)).toBe(true);
      const two = await env.run(["start", "-a", id, "other"]);
      expect([two.code, two.stderr]).toEqual([2, "bunker: bunker start: you cannot start and attach multiple containers at once\n"]);
      const ghost = await env.run(["start", "-a", "ghost"]);
      expect([ghost.code, ghost.stderr.trim().split("\n").length]).toEqual([1, 1]);
    }, 60_000);
    return async () => ids.length > 0 && (await env.run(["rm", "-f", ...ids]));
  });
});
