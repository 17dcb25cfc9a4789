// Logs kept by default, as docker's json-file driver, driven through the real CLI with real runc,
// with and without a daemon: bunker's shim writes json-file (streams apart, times, rotation, whole
// lines across writes); Debian's runc shim, which cannot, gets the raw file and `logs` says what it
// cannot do with one. `rm` removes the log with the container's record.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describeWith } from "../support/require.ts";
import { BUNKER_RUNTIME, BunkerEnv, RUNC_RUNTIME, runtimes } from "../support/cli-harness.ts";

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z /;

for (const daemon of [false, true]) {
  for (const runtime of runtimes()) {
    const mode = `${daemon ? "with" : "without"} a daemon, ${runtime}`;
    describeWith(["root", "bin:runc"], `bunker logs (${mode})`, () => {
      let env: BunkerEnv;
      beforeAll(async () => {
        env = await BunkerEnv.create("bunker-logs-");
        if (daemon) await env.startDaemon();
      }, 120_000);
      afterAll(async () => {
        await env?.dispose();
      }, 60_000);

      const recordDir = (id: string): string => join(env.root, "containers", env.namespace, id);
      /** run -d, then wait for the exit (the shim has written everything by then). */
      async function runToEnd(id: string, script: string, flags: string[] = []): Promise<void> {
        const r = await env.run(["run", "-d", "--runtime", runtime, ...flags, "--rootfs", env.rootfs, id, "sh", "-c", script]);
        expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
        expect((await env.run(["wait", id])).code).toBe(0);
      }

      if (runtime === BUNKER_RUNTIME) {
        test("run -d keeps stdout and stderr apart in docker's json-file; logs prints each on its own stream", async () => {
          await runToEnd("j1", "echo out; echo err >&2");
          expect(await env.run(["logs", "j1"])).toEqual({ code: 0, stdout: "out\n", stderr: "err\n" });
          const file = join(recordDir("j1"), "j1-json.log");
          const entries = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, string>);
          expect(entries.map((e) => [e.log, e.stream]).sort()).toEqual([["err\n", "stderr"], ["out\n", "stdout"]]);
          for (const e of entries) expect(e.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/);
          const inspect = JSON.parse((await env.run(["inspect", "j1"])).stdout) as { LogPath: string }[];
          expect(inspect[0]!.LogPath).toBe(file);
        }, 60_000);

        test("--tail N, --timestamps, --since and --until", async () => {
          await runToEnd("j2", "echo a; echo b; sleep 1.2; echo c");
          expect((await env.run(["logs", "--tail", "1", "j2"])).stdout).toBe("c\n");
          expect((await env.run(["logs", "--tail", "0", "j2"])).stdout).toBe("");
          expect((await env.run(["logs", "-n", "all", "j2"])).stdout).toBe("a\nb\nc\n");
          const stamped = (await env.run(["logs", "-t", "j2"])).stdout.trimEnd().split("\n");
          expect(stamped.map((l) => l.replace(TIMESTAMP, ""))).toEqual(["a", "b", "c"]);
          for (const l of stamped) expect(l).toMatch(TIMESTAMP);
          const cTime = stamped[2]!.split(" ")[0]!;
          expect((await env.run(["logs", "--since", cTime, "j2"])).stdout).toBe("c\n");
          expect((await env.run(["logs", "--until", stamped[1]!.split(" ")[0]!, "j2"])).stdout).toBe("a\nb\n");
          expect((await env.run(["logs", "--since", "1h", "j2"])).stdout).toBe("a\nb\nc\n");
          expect((await env.run(["logs", "--since", String(Math.floor(Date.now() / 1000) + 3600), "j2"])).stdout).toBe("");
          const bad = await env.run(["logs", "--since", "yesterday", "j2"]);
          expect(bad.code).not.toBe(0);
          expect(bad.stderr).toContain('--since "yesterday": not a time');
        }, 60_000);

        test("a line written in pieces, and one past 16 KiB, come out whole", async () => {
          await runToEnd("j3", "printf abc; sleep 0.3; printf 'def\\n'; head -c 40000 /dev/zero | tr '\\0' x; echo; printf tail");
          const r = await env.run(["logs", "j3"]);
          expect(r.stdout).toBe(`abcdef\n${"x".repeat(40000)}\ntail`);
          // on disk: the long line is in 16 KiB partial entries, as docker writes it
          const logs = readFileSync(join(recordDir("j3"), "j3-json.log"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { log: string }).log);
          expect(logs[0]).toBe("abcdef\n");
          expect(logs.slice(1, 4).map((l) => l.length)).toEqual([16384, 16384, 40001 - 32768]);
        }, 60_000);

        test("max-size rotation keeps at most max-file files, and logs reads across them in order", async () => {
          await runToEnd("j4", "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done", ["--log-opt", "max-size=2k", "--log-opt", "max-file=3"]);
          const files = readdirSync(recordDir("j4")).filter((f) => f.startsWith("j4-json.log")).sort();
          expect(files).toEqual(["j4-json.log", "j4-json.log.1", "j4-json.log.2"]);
          const lines = (await env.run(["logs", "j4"])).stdout.trimEnd().split("\n");
          // the newest lines, contiguous, in order, ending with the last one
          expect(lines.at(-1)).toBe("line-299");
          const first = Number(lines[0]!.slice(5));
          expect(first).toBeGreaterThan(0);
          expect(lines).toEqual(Array.from({ length: 300 - first }, (_, i) => `line-${first + i}`));
          expect((await env.run(["logs", "--tail", "2", "j4"])).stdout).toBe("line-298\nline-299\n");
        }, 60_000);

        test("-f follows a running container across rotation and ends when it exits", async () => {
          // rows in small bursts, so a 200 ms poll keeps up with 1 KiB files (a follower, docker's too, loses
          // what rotates past max-file between two reads)
          const script = "echo one; sleep 1; i=0; while [ $i -lt 40 ]; do echo row-$i; i=$((i+1)); [ $((i % 4)) = 0 ] && sleep 0.25; done; sleep 0.5; echo two >&2";
          expect((await env.run(["run", "-d", "--runtime", runtime, "--log-opt", "max-size=1k", "--log-opt", "max-file=5", "--rootfs", env.rootfs, "j5", "sh", "-c", script])).code).toBe(0);
          const t0 = performance.now();
          const r = await env.run(["logs", "-f", "j5"], { timeoutMs: 30_000 });
          expect(r.code).toBe(0);
          expect(r.stdout).toBe(["one", ...Array.from({ length: 40 }, (_, i) => `row-${i}`), ""].join("\n"));
          // it did rotate meanwhile
          expect(existsSync(join(recordDir("j5"), "j5-json.log.2"))).toBe(true);
          expect(r.stderr).toBe("two\n");
          expect(performance.now() - t0).toBeLessThan(10_000);
        }, 60_000);

        test("--log-driver none keeps nothing, and logs says so; a bad --log-opt is refused before anything is made", async () => {
          await runToEnd("j6", "echo gone", ["--log-driver", "none"]);
          expect(readdirSync(recordDir("j6")).filter((f) => f.includes("log"))).toEqual([]);
          const r = await env.run(["logs", "j6"]);
          expect(r.code).not.toBe(0);
          expect(r.stderr).toContain("keeps no logs (it was started with --log-driver none)");
          for (const [flags, msg] of [
            [["--log-opt", "max-size=lots"], 'max-size "lots" is not a size'],
            [["--log-opt", "colour=blue"], 'unknown log-opt "colour"'],
            [["--log-driver", "syslog"], 'log driver "syslog" is not supported'],
          ] as const) {
            const bad = await env.run(["run", "-d", "--runtime", runtime, ...flags, "--rootfs", env.rootfs, "j7", "true"]);
            expect(bad.code).toBe(125);
            expect(bad.stderr).toContain(msg);
            expect(existsSync(recordDir("j7"))).toBe(false);
          }
          expect((await env.run(["rm", "j6"])).code).toBe(0);
        }, 60_000);

        test("-d -t: the terminal's output is kept as stdout, as docker logs a tty", async () => {
          await runToEnd("j9", "echo hi; echo there >&2", ["-t"]);
          expect(await env.run(["logs", "j9"])).toEqual({ code: 0, stdout: "hi\r\nthere\r\n", stderr: "" });
        }, 60_000);

        test("--log-driver file keeps the raw bytes; -t and --since are refused with a clear line", async () => {
          await runToEnd("j8", "echo raw1; echo raw2", ["--log-driver", "file"]);
          expect(await env.run(["logs", "j8"])).toEqual({ code: 0, stdout: "raw1\nraw2\n", stderr: "" });
          expect((await env.run(["logs", "--tail", "1", "j8"])).stdout).toBe("raw2\n");
          const r = await env.run(["logs", "-t", "j8"]);
          expect(r.code).not.toBe(0);
          expect(r.stderr).toContain("--timestamps needs the json-file log driver");
        }, 60_000);
      }

      if (runtime === RUNC_RUNTIME) {
        test("a shim that cannot write json-file gets the raw file, and logs reads it as one", async () => {
          await runToEnd("r1", "echo out");
          expect(existsSync(join(recordDir("r1"), "r1.log"))).toBe(true);
          expect((await env.run(["logs", "r1"])).stdout).toContain("out\n");
          const r = await env.run(["logs", "--since", "1h", "r1"]);
          expect(r.code).not.toBe(0);
          expect(r.stderr).toContain("--since needs the json-file log driver");
        }, 60_000);
      }

      test("rm removes the logs with the container; nothing is left", async () => {
        await runToEnd("rm1", "echo bye", ["--log-opt", "max-size=1k"]);
        expect(readdirSync(recordDir("rm1")).some((f) => f.startsWith("rm1"))).toBe(true);
        expect((await env.run(["rm", "rm1"])).code).toBe(0);
        expect(existsSync(recordDir("rm1"))).toBe(false);
        const ids = (await env.run(["ps", "-a", "-q"])).stdout.split("\n").filter(Boolean);
        if (ids.length > 0) expect((await env.run(["rm", "-f", ...ids])).code).toBe(0);
        expect(env.leftovers()).toEqual([]);
      }, 60_000);
    });
  }
}
