// `bunker` end to end, embedded and through the daemon, with each runtime: Debian's Go shim
// (io.containerd.runc.v2) and ours (io.containerd.bunker.v1), driven by the same manager.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeWith } from "../support/require.ts";
import { BunkerEnv, runtimes, supports, until } from "../support/cli-harness.ts";

for (const runtime of runtimes()) {
  for (const mode of ["embedded", "daemon"] as const) {
    describeWith(["root", "bin:runc", "bin:containerd-shim-runc-v2"], `bunker CLI (${runtime}, ${mode})`, () => {
      let env: BunkerEnv;
      const R = ["--runtime", runtime];
      beforeAll(async () => {
        env = await BunkerEnv.create();
        if (mode === "daemon") await env.startDaemon();
      }, 60_000);
      afterAll(async () => {
        await env?.dispose();
      }, 60_000);

      test("run --rm: output, stderr and the container's exit code; nothing left", async () => {
        const r = await env.run(["run", "--rm", ...R, "--env", "GREETING=hello", "--rootfs", env.rootfs, "rm1", "sh", "-c", 'echo "$GREETING from $(hostname)"; echo oops >&2; exit 7']);
        expect(r).toEqual({ code: 7, stdout: "hello from rm1\n", stderr: "oops\n" });
        const big = await env.run(["run", "--rm", ...R, "--rootfs", env.rootfs, "rm2", "sh", "-c", "seq 1 100000"]);
        expect(big.code).toBe(0);
        expect(big.stdout.split("\n").length).toBe(100001);
        expect(big.stdout.endsWith("99999\n100000\n")).toBe(true);
        // PID 1 cannot be SIGKILLed from inside its namespace: kill it from outside while run waits.
        const running = env.run(["run", "--rm", ...R, "--rootfs", env.rootfs, "rm3", "sleep", "1000"]);
        await until(async () => /^rm3\s+\d+\s+RUNNING/m.test((await env.run(["ps", "-a"])).stdout), 20_000, "rm3 to run");
        expect(await env.run(["kill", "-s", "KILL", "rm3"])).toEqual({ code: 0, stdout: "rm3\n", stderr: "" });
        expect(await running).toEqual({ code: 137, stdout: "", stderr: "" });
        expect(env.leftovers()).toEqual([]);
      }, 60_000);

      test("run --rm with a reader that goes away (| head -1): the container still ends and is removed", async () => {
        const proc = Bun.spawn([env.bunker, ...env.globals(), "run", "--rm", ...R, "--rootfs", env.rootfs, "pipe1", "seq", "1", "200000"], {
          env: env.spawnEnv(),
          stdout: "pipe",
          stderr: "pipe",
        });
        const reader = proc.stdout.getReader();
        const first = await reader.read();
        expect(new TextDecoder().decode(first.value).startsWith("1\n")).toBe(true);
        await reader.cancel();
        expect(await proc.exited).toBe(0);
        expect(await new Response(proc.stderr).text()).toBe("");
        expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
        expect(env.leftovers()).toEqual([]);
      }, 60_000);

      if (supports(runtime, "tty", "run -t")) {
        test("run -t: the process gets a terminal", async () => {
          const r = await env.run(["run", "--rm", "-t", ...R, "--rootfs", env.rootfs, "tty1", "sh", "-c", 'tty; echo "TERM=$TERM"; exit 2']);
          expect(r).toEqual({ code: 2, stdout: "/dev/pts/0\r\nTERM=xterm\r\n", stderr: "" });
        }, 60_000);
      }

      if (supports(runtime, "logFile", "run -d --log + logs")) {
        test("run -d --log FILE, then logs", async () => {
          const log = join(env.dir, "l1.log");
          expect(await env.run(["run", "-d", ...R, "--log", log, "--rootfs", env.rootfs, "l1", "sh", "-c", "echo out; echo err >&2; exit 6"])).toEqual({ code: 0, stdout: "", stderr: "" });
          await until(async () => /^l1\s+\d+\s+STOPPED\s+6\s/m.test((await env.run(["ps", "-a"])).stdout), 10_000, "l1 to stop with 6");
          try {
            // containerd-shim-runc-v2 may report the exit before its file:// copy of stderr is written
            // (its IO copy is not drained before TaskExit): wait for the file, not for the exit.
            let logs = await env.run(["logs", "l1"]);
            await until(async () => (logs = await env.run(["logs", "l1"])).stdout.split("\n").length >= 3, 5_000, "both lines in l1's log");
            expect(logs.code).toBe(0);
            expect(logs.stdout.split("\n").sort()).toEqual(["", "err", "out"]);
            // kept by default now (tests/integration/cli-logs.test.ts); none keeps nothing
            const none = await env.run(["run", "-d", ...R, "--log-driver", "none", "--rootfs", env.rootfs, "l2", "true"]);
            expect(none.code).toBe(0);
            expect(await env.run(["logs", "l2"])).toEqual({ code: 1, stdout: "", stderr: "bunker: container l2 keeps no logs (it was started with --log-driver none)\n" });
          } finally {
            // a failure above must not leave l1/l2 behind for the next tests' leftover checks
            expect(await env.run(["rm", "-f", "l1", "l2"])).toMatchObject({ code: 0, stdout: "" });
          }
          expect(env.leftovers()).toEqual([]);
        }, 60_000);
      }

      test("detached run, ps, exec, kill, rm", async () => {
        const started = await env.run(["run", "-d", ...R, "--rootfs", env.rootfs, "d1", "sh", "-c", 'trap "exit 3" TERM; while true; do sleep 0.05; done']);
        expect(started).toEqual({ code: 0, stdout: "", stderr: "" });
        const ps = await env.run(["ps", "-a"]);
        expect(ps.stdout).toMatch(new RegExp(`^d1\\s+\\d+\\s+RUNNING\\s+${runtime.replaceAll(".", "\\.")}$`, "m"));
        const ex = await env.run(["exec", "d1", "sh", "-c", "echo in exec; ls /proc/1/exe >/dev/null && exit 4"]);
        expect(ex).toEqual({ code: 4, stdout: "in exec\n", stderr: "" });
        const busy = await env.run(["rm", "d1"]);
        expect(busy.code).toBe(1);
        expect(busy.stderr.trim().split("\n")).toEqual([expect.stringContaining("is running")]);
        expect(await env.run(["kill", "-s", "TERM", "d1"])).toEqual({ code: 0, stdout: "d1\n", stderr: "" });
        await until(async () => /^d1\s+\d+\s+STOPPED\s+3\s/m.test((await env.run(["ps", "-a"])).stdout), 10_000, "d1 to stop with 3");
        expect(await env.run(["rm", "d1"])).toEqual({ code: 0, stdout: "", stderr: "" });
        expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
        const sleeper = await env.run(["run", "-d", ...R, "--rootfs", env.rootfs, "d2", "sleep", "1000"]);
        expect(sleeper.code).toBe(0);
        // kill's default is KILL, as docker's: PID 1 cannot ignore it; a missing one is one line, the rest still go
        expect(await env.run(["kill", "d2", "ghost"])).toEqual({ code: 1, stdout: "d2\n", stderr: expect.stringMatching(/^bunker: kill ghost: [^\n]*ghost[^\n]*\n$/) });
        await until(async () => /^d2\s+\d+\s+STOPPED\s+137\s/m.test((await env.run(["ps", "-a"])).stdout), 10_000, "d2 to stop with 137");
        expect(await env.run(["rm", "-f", "d2"])).toEqual({ code: 0, stdout: "", stderr: "" });
        const gone = await env.run(["exec", "d2", "true"]);
        expect(gone.code).toBe(125);
        expect(gone.stderr).toBe(`bunker: task ${env.namespace}/d2 not found\n`);
        expect(env.leftovers()).toEqual([]);
      }, 60_000);

      test("20 concurrent runs", async () => {
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => env.run(["run", "--rm", ...R, "--rootfs", env.rootfs, `c${i}`, "sh", "-c", `echo task ${i}; exit ${i}`])),
        );
        results.forEach((r, i) => expect(r).toEqual({ code: i, stdout: `task ${i}\n`, stderr: "" }));
        expect(env.leftovers()).toEqual([]);
      }, 120_000);

      test("bad requests: one line on stderr, nothing left on disk", async () => {
        const garbage = join(env.dir, "garbage-shim");
        writeFileSync(garbage, "#!/bin/sh\necho 'I am not a shim'\n", { mode: 0o755 });
        const cases: [string[], RegExp][] = [
          [["run", ...R, "--rootfs", env.rootfs, "../x", "true"], /container id .* must match/],
          [["run", ...R, "--rootfs", env.rootfs, "", "true"], /container id must not be empty/],
          [["run", ...R, "--rootfs", env.rootfs, "x".repeat(77), "true"], /longer than 76/],
          [["run", ...R, "--rootfs", env.rootfs, "a..b", "true"], /must match/],
          [["run", ...R, "--rootfs", join(env.dir, "missing"), "ok1", "true"], /rootfs .*missing does not exist/],
          [["run", "--runtime", "io.containerd.nope.v1", "--rootfs", env.rootfs, "ok2", "true"], /containerd-shim-nope-v1 not found/],
          [["run", "--runtime", garbage, "--rootfs", env.rootfs, "ok3", "true"], /did not print a unix socket address: "I am not a shim"/],
          [["run", "--runtime", "rel/shim", "--rootfs", env.rootfs, "ok4", "true"], /not an absolute path/],
        ];
        for (const [args, message] of cases) {
          const r = await env.run(args);
          expect(r.code).toBe(125);
          expect(r.stdout).toBe("");
          const lines = r.stderr.split("\n").filter(Boolean);
          expect(lines).toHaveLength(1);
          expect(lines[0]).toMatch(/^bunker: /);
          expect(lines[0]).toMatch(message);
          expect(env.leftovers()).toEqual([]);
        }
        // Without a daemon the Go shim waits ~5 s for its event publisher before exiting; ours
        // may linger to serve the next container of its namespace.
        const allowed = runtime.includes("bunker") ? 1 : 0;
        await until(() => env.shims().filter((s) => s.state !== "Z").length <= allowed, 20_000, "idle shims to exit");
      }, 60_000);
    });
  }
}
