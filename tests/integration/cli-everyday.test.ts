// The everyday CLI as docker users drive it: exit codes of a command that cannot run, rm -f of a
// container that is not there, every command's --help, relative global paths.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join, relative } from "node:path";
import { describeWith } from "../support/require.ts";
import { BunkerEnv } from "../support/cli-harness.ts";

describeWith(["root", "bin:runc"], "bunker's everyday CLI", () => {
  let env: BunkerEnv;
  beforeAll(async () => {
    env = await BunkerEnv.create("bunker-everyday-");
  }, 60_000);
  afterAll(async () => {
    await env?.dispose();
  }, 60_000);

  test("a command that does not exist exits 127, one that cannot be executed 126 (foreground and -d); nothing is left", async () => {
    for (const [args, code] of [[["nosuch"], 127], [["/nonexistent/x"], 127], [["/etc/passwd"], 126]] as const) {
      const fg = await env.run(["run", "--rm", "--rootfs", env.rootfs, "ex1", ...args]);
      expect([fg.code, fg.stderr.trim().split("\n").length]).toEqual([code, 1]);
      const d = await env.run(["run", "-d", "--rootfs", env.rootfs, "ex2", ...args]);
      expect(d.code).toBe(code);
      expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
    }
  }, 60_000);

  test("rm -f of a container that is not there succeeds, as docker's; rm without -f says it is not there", async () => {
    expect(await env.run(["rm", "-f", "ghost"])).toEqual({ code: 0, stdout: "", stderr: "" });
    const plain = await env.run(["rm", "ghost"]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain("ghost");
  }, 60_000);

  test("every command has its own --help", async () => {
    for (const cmd of ["run", "ps", "exec", "rm", "pull", "network"]) {
      const r = await env.run([cmd, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`usage: bunker [global flags] ${cmd}`);
    }
  }, 60_000);

  test("without root and without a daemon socket to use: one line saying so, and nothing touched", async () => {
    for (const args of [["ps", "-a"], ["run", "-d", "--rootfs", env.rootfs, "nr1", "true"], ["rm", "-f", "nr1"], ["images"]]) {
      const p = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", env.bunker, ...env.globals(), ...args], { env: env.spawnEnv() });
      expect(p.exitCode).not.toBe(0);
      expect(p.stderr.toString()).toBe(`bunker: this needs root (or access to a bunker daemon's socket, ${env.address})\n`);
    }
    expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
  }, 60_000);

  test("--log into a directory that does not exist is refused, and the directory is not made", async () => {
    const r = await env.run(["run", "-d", "--log", join(env.dir, "no", "such", "f.log"), "--rootfs", env.rootfs, "lg1", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("does not exist");
    expect(Bun.spawnSync(["test", "-e", join(env.dir, "no")]).exitCode).toBe(1);
  }, 60_000);

  test("stop sends the stop signal, SIGKILLs after the timeout, and leaves the container listed until rm; wait prints the exit code", async () => {
    // a process that exits 3 on TERM stops gracefully
    const trap = `trap 'exit 3' TERM; while true; do sleep 0.1; done`;
    expect((await env.run(["run", "-d", "--rootfs", env.rootfs, "st1", "sh", "-c", trap])).code).toBe(0);
    const t0 = performance.now();
    expect(await env.run(["stop", "st1"])).toEqual({ code: 0, stdout: "st1\n", stderr: "" });
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect((await env.run(["ps", "-a"])).stdout).toMatch(/^st1\s+\S+\s+STOPPED\s+3\b/m);
    expect(await env.run(["wait", "st1"])).toEqual({ code: 0, stdout: "3\n", stderr: "" });
    // one that ignores TERM is killed after -t; --stop-signal picks what is sent first
    expect((await env.run(["run", "-d", "--rootfs", env.rootfs, "st2", "sh", "-c", `trap '' TERM; while true; do sleep 0.1; done`])).code).toBe(0);
    const t1 = performance.now();
    expect((await env.run(["stop", "-t", "1", "st2"])).code).toBe(0);
    expect(performance.now() - t1).toBeGreaterThan(900);
    expect((await env.run(["ps", "-a"])).stdout).toMatch(/^st2\s+\S+\s+STOPPED\s+137\b/m);
    expect((await env.run(["run", "-d", "--stop-signal", "USR1", "--rootfs", env.rootfs, "st3", "sh", "-c", `trap 'exit 5' USR1; while true; do sleep 0.1; done`])).code).toBe(0);
    expect((await env.run(["stop", "st3"])).code).toBe(0);
    expect(await env.run(["wait", "st3"])).toEqual({ code: 0, stdout: "5\n", stderr: "" });
    expect((await env.run(["rm", "st1", "st2", "st3"])).code).toBe(0);
    expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
  }, 60_000);

  test("-i: the process reads our stdin, the same with or without a daemon; without -i it gets none", async () => {
    const piped = async (args: string[], input: string) => {
      const proc = Bun.spawn([env.bunker, ...env.globals(), ...args], { env: env.spawnEnv(), stdin: new TextEncoder().encode(input), stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
      const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
      clearTimeout(timer);
      return { code, out, err };
    };
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i}`).join("\n") + "\n";
    // foreground (no daemon), then a shim of each kind
    for (const rt of [[], ["--runtime", "io.containerd.bunker.v1"], ["--runtime", "io.containerd.runc.v2"]]) {
      expect(await piped(["run", "--rm", "-i", ...rt, "--rootfs", env.rootfs, "in1", "wc", "-l"], lines)).toEqual({ code: 0, out: "20000\n", err: "" });
      expect(await piped(["run", "--rm", ...rt, "--rootfs", env.rootfs, "in2", "cat"], "not read\n")).toEqual({ code: 0, out: "", err: "" });
    }
    const daemon = await env.startDaemon();
    try {
      expect(await piped(["run", "--rm", "-i", "--rootfs", env.rootfs, "in3", "cat"], "through the daemon\n")).toEqual({ code: 0, out: "through the daemon\n", err: "" });
      expect(await piped(["run", "--rm", "--rootfs", env.rootfs, "in4", "cat"], "not read\n")).toEqual({ code: 0, out: "", err: "" });
    } finally {
      daemon.proc.kill("SIGTERM");
      await daemon.proc.exited;
    }
  }, 120_000);

  test("info: versions, runc, cgroups, dirs, snapshotter, counts and networks", async () => {
    const r = await env.run(["info"]);
    expect(r.code).toBe(0);
    for (const line of [/^Version: bunker /m, /^Runtime: runc version /m, /^Cgroups: v[12]/m, new RegExp(`^Root: ${env.root}$`, "m"), /^Snapshotter: (overlayfs|native)/m, /^Images: 0$/m, /^Networks: /m]) {
      expect(r.stdout).toMatch(line);
    }
  }, 60_000);

  test("relative --root and --state are taken from the cwd", async () => {
    const cwd = env.dir;
    const proc = Bun.spawnSync([env.bunker, "--root", "rel-root", "--state", relative(cwd, join(cwd, "rel-state")), "--address", join(cwd, "rel.sock"), "run", "--rm", "--rootfs", env.rootfs, "rel1", "echo", "ok"], {
      cwd,
      env: env.spawnEnv(),
    });
    expect([proc.exitCode, proc.stdout.toString(), proc.stderr.toString()]).toEqual([0, "ok\n", ""]);
  }, 60_000);

  test("with an empty PATH, run --rm and run -d find runc alike (the default search path)", async () => {
    const noPath = { ...env.spawnEnv(), PATH: "" };
    const fg = Bun.spawnSync([env.bunker, ...env.globals(), "run", "--rm", "--rootfs", env.rootfs, "np1", "echo", "fg"], { env: noPath });
    expect([fg.exitCode, fg.stdout.toString(), fg.stderr.toString()]).toEqual([0, "fg\n", ""]);
    const d = Bun.spawnSync([env.bunker, ...env.globals(), "run", "-d", "--rootfs", env.rootfs, "np2", "sleep", "100"], { env: noPath });
    expect([d.exitCode, d.stderr.toString()]).toEqual([0, ""]);
    expect((await env.run(["ps"])).stdout).toMatch(/^np2\s+\d+\s+RUNNING/m);
    expect((await env.run(["rm", "-f", "np2"])).code).toBe(0);
  }, 60_000);
});
