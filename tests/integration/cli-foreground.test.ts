// `bunker run --rm` with no daemon and no --runtime: the container runs under `runc run` in the
// CLI's foreground (src/cli/run-foreground.ts), with real runc. Other bunker commands and a
// daemon starting up must see it, signal it, leave it alone while its CLI lives, and clean it up
// once that CLI died.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeWith } from "../support/require.ts";
import { BunkerEnv, until } from "../support/cli-harness.ts";

function runcIds(env: BunkerEnv): string[] {
  const r = Bun.spawnSync(["runc", "--root", `${env.state}/runc/${env.namespace}`, "list", "-q"], { stderr: "ignore" });
  return r.stdout.toString().split("\n").filter(Boolean);
}

function owner(env: BunkerEnv, id: string): number {
  return (JSON.parse(readFileSync(join(env.state, env.namespace, id, "foreground"), "utf8")) as { owner: number }).owner;
}

describeWith(["root", "bin:runc"], "bunker run --rm in the foreground (no daemon, default runtime)", () => {
  let env: BunkerEnv;
  beforeAll(async () => {
    env = await BunkerEnv.create("bunker-fg-");
  }, 60_000);
  afterAll(async () => {
    await env?.dispose();
  }, 60_000);

  test("output, stderr, env and exit codes; no shim; nothing left", async () => {
    const r = await env.run(["run", "--rm", "--env", "GREETING=hello", "--rootfs", env.rootfs, "fg1", "sh", "-c", 'echo "$GREETING from $(hostname)"; echo oops >&2; exit 7']);
    expect(r).toEqual({ code: 7, stdout: "hello from fg1\n", stderr: "oops\n" });
    const big = await env.run(["run", "--rm", "--rootfs", env.rootfs, "fg2", "sh", "-c", "seq 1 100000; seq 1 50000 >&2"]);
    expect(big.code).toBe(0);
    expect(big.stdout.split("\n").length).toBe(100001);
    expect(big.stderr.endsWith("49999\n50000\n")).toBe(true);
    expect(env.shims()).toEqual([]);
    expect(env.leftovers()).toEqual([]);
    expect(runcIds(env)).toEqual([]);
  }, 60_000);

  test("20 concurrent runs, and --debug shows what ran", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => env.run(["run", "--rm", "--rootfs", env.rootfs, `con${i}`, "sh", "-c", `echo task ${i}; exit ${i}`])));
    results.forEach((r, i) => expect(r).toEqual({ code: i, stdout: `task ${i}\n`, stderr: "" }));
    const dbg = await env.run(["--debug", "run", "--rm", "--rootfs", env.rootfs, "dbg1", "true"]);
    expect(dbg.code).toBe(0);
    const lines = dbg.stderr.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { msg: string; argv?: string[]; code?: number });
    expect(lines.map((l) => l.msg)).toEqual(["running in the foreground (no daemon, default runtime)", "runc run ended"]);
    expect(lines[0]!.argv).toContain("--pid-file");
    expect(lines[1]!.code).toBe(0);
    expect(env.leftovers()).toEqual([]);
    expect(runcIds(env)).toEqual([]);
  }, 60_000);

  test("another bunker lists it, kills it, and refuses what needs a shim", async () => {
    const running = env.run(["run", "--rm", "--label", "tier=edge", "--rootfs", env.rootfs, "fg3", "sleep", "1000"]);
    await until(async () => /^fg3\s+\d+\s+RUNNING\s+runc\s+tier=edge$/m.test((await env.run(["ps", "-a"])).stdout), 20_000, "fg3 to be listed RUNNING");
    const ex = await env.run(["exec", "fg3", "true"]);
    expect(ex.code).toBe(125);
    expect(ex.stderr).toMatch(/^bunker: task .*\/fg3 runs in the foreground of bunker pid \d+ .*\n$/);
    const busy = await env.run(["rm", "fg3"]);
    expect(busy).toEqual({ code: 1, stdout: "", stderr: "bunker: rm fg3: task fg3 is running: stop it first, or use rm -f\n" });
    expect(await env.run(["kill", "-s", "KILL", "fg3"])).toEqual({ code: 0, stdout: "fg3\n", stderr: "" });
    expect(await running).toEqual({ code: 137, stdout: "", stderr: "" });

    const second = env.run(["run", "--rm", "--rootfs", env.rootfs, "fg4", "sleep", "1000"]);
    await until(async () => /^fg4\s+\d+\s+RUNNING/m.test((await env.run(["ps", "-a"])).stdout), 20_000, "fg4 to run");
    const dup = await env.run(["run", "--rm", "--rootfs", env.rootfs, "fg4", "true"]);
    expect(dup).toEqual({ code: 125, stdout: "", stderr: `bunker: task ${env.namespace}/fg4 already exists\n` });
    expect(await env.run(["rm", "-f", "fg4"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await second).code).toBe(137);
    expect(env.leftovers()).toEqual([]);
    expect(runcIds(env)).toEqual([]);
  }, 60_000);

  test("signals sent to the CLI reach the container", async () => {
    const proc = Bun.spawn([env.bunker, ...env.globals(), "run", "--rm", "--rootfs", env.rootfs, "fg5", "sh", "-c", "trap 'echo got TERM; exit 3' TERM; while true; do sleep 0.05; done"], {
      env: env.spawnEnv(),
      stdout: "pipe",
      stderr: "pipe",
    });
    await until(async () => /^fg5\s+\d+\s+RUNNING/m.test((await env.run(["ps", "-a"])).stdout), 20_000, "fg5 to run");
    await Bun.sleep(200); // the trap is set once sh runs its first command
    proc.kill("SIGTERM");
    const [code, out] = await Promise.all([proc.exited, new Response(proc.stdout).text()]);
    expect({ code, out }).toEqual({ code: 3, out: "got TERM\n" });
    expect(env.leftovers()).toEqual([]);
  }, 60_000);

  test("a .env in the working directory is not read (the binary is built without autoload)", async () => {
    const cwd = join(env.dir, "with-dotenv");
    mkdirSync(cwd);
    writeFileSync(join(cwd, ".env"), "BUNKER_RUNTIME_CONFIG=/nonexistent/runtimes.toml\n");
    const proc = Bun.spawn([env.bunker, ...env.globals(), "run", "--rm", "--rootfs", env.rootfs, "dotenv1", "echo", "fine"], { cwd, env: env.spawnEnv(), stdout: "pipe", stderr: "pipe" });
    const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    expect({ code, out, err }).toEqual({ code: 0, out: "fine\n", err: "" });
  }, 60_000);

  test("runc's failures: one line, exit 125 (docker's 127 and 126 for a command missing or not executable), nothing left", async () => {
    const cases: [string[], RegExp, number][] = [
      [["run", "--rm", "--rootfs", env.rootfs, "bad1", "/nope"], /^bunker: unable to start container process: exec: "\/nope": stat \/nope: no such file or directory\n$/, 127],
      [["run", "--rm", "--rootfs", env.rootfs, "../x", "true"], /^bunker: container id .* must match/, 125],
      [["run", "--rm", "--rootfs", join(env.dir, "missing"), "bad2", "true"], /^bunker: rootfs .*missing does not exist\n$/, 125],
      [["run", "--rm", "--rootfs", env.rootfs, "bad3", "/etc"], /^bunker: unable to start container process: exec: "\/etc": permission denied\n$/, 126],
    ];
    for (const [args, message, code] of cases) {
      const r = await env.run(args);
      expect({ code: r.code, stdout: r.stdout, lines: r.stderr.split("\n").filter(Boolean).length }).toEqual({ code, stdout: "", lines: 1 });
      expect(r.stderr).toMatch(message);
      expect(env.leftovers()).toEqual([]);
      expect(runcIds(env)).toEqual([]);
    }
  }, 60_000);

  test("its CLI killed -9: listed UNKNOWN, then removed by rm; a starting daemon cleans up another", async () => {
    for (const id of ["orph1", "orph2"]) {
      void env.run(["run", "--rm", "--rootfs", env.rootfs, id, "sleep", "1000"]);
      await until(async () => new RegExp(`^${id}\\s+\\d+\\s+RUNNING`, "m").test((await env.run(["ps", "-a"])).stdout), 20_000, `${id} to run`);
      process.kill(owner(env, id), "SIGKILL");
      await until(async () => new RegExp(`^${id}\\s+-\\s+UNKNOWN`, "m").test((await env.run(["ps", "-a"])).stdout), 20_000, `${id} to be listed UNKNOWN`);
    }
    // The container outlived its CLI (runc run carries on as an orphan): rm kills and removes it.
    expect(runcIds(env).sort()).toEqual(["orph1", "orph2"]);
    expect(await env.run(["rm", "orph1"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(runcIds(env)).toEqual(["orph2"]);
    const daemon = await env.startDaemon();
    try {
      await until(() => !existsSync(join(env.state, env.namespace, "orph2")), 10_000, "the daemon to clean up orph2");
      expect(runcIds(env)).toEqual([]);
      expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
      // With a daemon listening, run --rm goes through it and its shim, not the foreground path.
      const viaDaemon = env.run(["run", "--rm", "--rootfs", env.rootfs, "fg6", "sleep", "1000"]);
      await until(async () => /^fg6\s+\d+\s+RUNNING\s+io\.containerd\.bunker\.v1/m.test((await env.run(["ps", "-a"])).stdout), 20_000, "fg6 to run under the daemon");
      expect(await env.run(["kill", "-s", "KILL", "fg6"])).toEqual({ code: 0, stdout: "fg6\n", stderr: "" });
      expect((await viaDaemon).code).toBe(137);
    } finally {
      daemon.proc.kill("SIGTERM");
      await daemon.proc.exited;
    }
    expect(env.leftovers()).toEqual([]);
  }, 90_000);
});
