// Interactive use as a docker user drives it, on a real terminal (tmux), with a daemon and without:
// `run --rm -it` and `exec -it` into a busybox shell: typed input reaches it, its output comes back,
// `stty size` follows the terminal's size (ResizePty at start and on SIGWINCH), Ctrl-C interrupts
// a command in the shell without ending it (a byte for the container's terminal, not a signal for
// the CLI), the shell's exit code is the CLI's, and the terminal is not left raw. Without -t, the
// CLI forwards Ctrl-\ (SIGQUIT) and a SIGHUP to the process instead of dying and leaving the
// `--rm` container behind. `exec -i` reads piped stdin alike in both modes (`run -i`'s is in
// cli-everyday.test.ts).
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { BunkerEnv, RUNC_RUNTIME } from "../support/cli-harness.ts";
import { describeWith } from "../support/require.ts";
import { TmuxTerminal } from "../support/tmux.ts";

type Mode = "without a daemon" | "with a daemon";

describeWith(["root", "bin:runc", "bin:tmux"], "interactive use through the CLI", () => {
  for (const mode of ["without a daemon", "with a daemon"] as Mode[]) {
    describe(mode, () => {
      let env: BunkerEnv;
      const terminals: TmuxTerminal[] = [];
      beforeAll(async () => {
        env = await BunkerEnv.create("bunker-tty-");
        if (mode === "with a daemon") await env.startDaemon();
      }, 120_000);
      afterEach(async () => {
        for (const t of terminals.splice(0)) await t.close();
      }, 30_000);
      afterAll(async () => {
        await env?.dispose();
      }, 60_000);

      const bunker = (...args: string[]) => [env.bunker, ...env.globals(), ...args];
      const terminal = async (...steps: string[][]) => {
        const t = await TmuxTerminal.start(env.dir, env.spawnEnv(), steps);
        terminals.push(t);
        return t;
      };
      const ioDirs = () => readdirSync(env.tmp).filter((f) => f.startsWith("bunker-io-"));

      /** The shell session both -it tests type: input, size, resize, Ctrl-C, then `exit code`. */
      async function shellSession(t: TmuxTerminal, code: number): Promise<void> {
        await t.waitFor(/^\/ # ?$/m); // capture-pane drops the prompt's trailing space
        await t.line(`echo hel''lo`);
        await t.waitFor(/^hello$/m);
        await t.line("stty size");
        await t.waitFor(/^40 120$/m);
        await t.resize(100, 30);
        await t.line("stty size");
        await t.waitFor(/^30 100$/m);
        await t.line("sleep 100; echo sleep-ended-$((40+2))");
        await Bun.sleep(500);
        const t0 = performance.now();
        await t.keys("C-c");
        // the shell's prompt again, soon, and the sleep's line never ran its echo
        await t.line("echo alive-$((1+1))");
        const screen = await t.waitFor(/^alive-2$/m, 5_000);
        expect(performance.now() - t0).toBeLessThan(5_000);
        expect(screen).not.toContain("sleep-ended-42");
        await t.line(`exit ${code}`);
        const end = await t.waitFor(/STEP-DONE/);
        expect(end).toMatch(new RegExp(`^exit=${code}\\nSANE$`, "m"));
      }

      test("run --rm -it: a shell on our terminal, sized as it is, Ctrl-C for the shell, exit code back, terminal sane", async () => {
        const t = await terminal(bunker("run", "--rm", "-it", "--rootfs", env.rootfs, "tty1", "sh"));
        await shellSession(t, 3);
        expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
        expect(ioDirs()).toEqual([]);
      }, 90_000);

      test("run --rm -it with Debian's containerd-shim-runc-v2: the same session", async () => {
        const t = await terminal(bunker("run", "--rm", "-it", "--runtime", RUNC_RUNTIME, "--rootfs", env.rootfs, "tty4", "sh"));
        await shellSession(t, 5);
        expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
      }, 90_000);

      test("closing the terminal (its SIGHUP, passed on) ends a run --rm -it shell, and the container is removed", async () => {
        const t = await terminal(bunker("run", "--rm", "-it", "--rootfs", env.rootfs, "tty3", "sh"));
        await t.waitFor(/^\/ # ?$/m);
        expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("tty3\n");
        await t.close();
        const deadline = Date.now() + 15_000;
        while ((await env.run(["ps", "-a", "-q"])).stdout !== "" && Date.now() < deadline) await Bun.sleep(100);
        expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
        expect(ioDirs()).toEqual([]);
      }, 60_000);

      test("exec -it into a detached container: the same, and the container keeps running", async () => {
        expect((await env.run(["run", "-d", "--rootfs", env.rootfs, "tty2", "sleep", "1000"])).code).toBe(0);
        try {
          const t = await terminal(bunker("exec", "-it", "tty2", "sh"));
          await shellSession(t, 4);
          expect((await env.run(["ps"])).stdout).toMatch(/^tty2\s+\d+\s+RUNNING/m);
          expect(ioDirs()).toEqual([]);
        } finally {
          await env.run(["rm", "-f", "tty2"]);
        }
      }, 90_000);

      test("without -t, Ctrl-\\ reaches the process (it exits by its trap) and the --rm container is gone", async () => {
        const trap = `echo ready; trap 'echo got-quit; exit 7' QUIT; while :; do sleep 0.2; done`;
        // the foreground path (no daemon), then the API's (a shim) with or without -i
        const steps = [
          bunker("run", "--rm", "--rootfs", env.rootfs, "quit1", "sh", "-c", trap),
          bunker("run", "--rm", "-i", "--runtime", "io.containerd.bunker.v1", "--rootfs", env.rootfs, "quit2", "sh", "-c", trap),
        ];
        const t = await terminal(...steps);
        for (let i = 1; i <= steps.length; i++) {
          await t.waitFor(new RegExp(`(ready[^]*){${i}}`));
          await t.keys("C-\\");
          await t.waitFor(new RegExp(`(got-quit\\nexit=7\\nSANE\\nSTEP-DONE[^]*){${i}}`));
          // (the next step may already be running)
          expect((await env.run(["ps", "-a", "-q"])).stdout).not.toContain(`quit${i}\n`);
        }
        expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
        expect(ioDirs()).toEqual([]);
      }, 90_000);

      test("without -t, a SIGHUP or SIGQUIT sent to the CLI is passed on; the --rm container does not outlive it", async () => {
        for (const [signal, code] of [["SIGHUP", 11], ["SIGQUIT", 12]] as const) {
          const trap = `trap 'exit ${code}' ${signal.slice(3)}; echo ready; while :; do sleep 0.2; done`;
          for (const rt of [[], ["--runtime", "io.containerd.bunker.v1"]]) {
            const proc = Bun.spawn(bunker("run", "--rm", ...rt, "--rootfs", env.rootfs, "sig1", "sh", "-c", trap), { env: env.spawnEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
            const reader = proc.stdout.getReader();
            const first = await reader.read();
            expect(new TextDecoder().decode(first.value)).toBe("ready\n");
            proc.kill(signal);
            const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
            expect(await proc.exited).toBe(code);
            clearTimeout(timer);
            reader.releaseLock();
            expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
          }
        }
        expect(ioDirs()).toEqual([]);
      }, 90_000);

      test("exec -i reads piped stdin; without -i the process gets none", async () => {
        expect((await env.run(["run", "-d", "--rootfs", env.rootfs, "pipe1", "sleep", "1000"])).code).toBe(0);
        try {
          const piped = async (args: string[], input: string) => {
            const proc = Bun.spawn(bunker(...args), { env: env.spawnEnv(), stdin: new TextEncoder().encode(input), stdout: "pipe", stderr: "pipe" });
            const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
            const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
            clearTimeout(timer);
            return { code, out, err };
          };
          expect(await piped(["exec", "-i", "pipe1", "cat"], "x\n")).toEqual({ code: 0, out: "x\n", err: "" });
          expect(await piped(["exec", "pipe1", "cat"], "not read\n")).toEqual({ code: 0, out: "", err: "" });
        } finally {
          await env.run(["rm", "-f", "pipe1"]);
        }
        expect(ioDirs()).toEqual([]);
      }, 60_000);
    });
  }
});
