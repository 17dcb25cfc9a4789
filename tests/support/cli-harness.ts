// Shared set-up for bunker's CLI/runtime integration tests and bench: the bunker binary compiled
// once per test process (src/cli/main.ts, with containerd-shim-bunker-v1 linked to it, as
// dist/ ships it), and a per-test environment (root, state, socket, TMPDIR, busybox rootfs) whose
// processes are ended by pid.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { COMPILE_FLAGS } from "./compile.ts";
import { copyRootfs } from "./rootfs.ts";
import { IDLE_ENV } from "../../src/idle.ts";
import { allProcs, cmdline, killSame, procInfo, waitGone } from "./procs.ts";
import { removeAtEnd } from "./cleanup.ts";

const REPO = resolve(import.meta.dir, "../..");

export const RUNC_RUNTIME = "io.containerd.runc.v2";
export const BUNKER_RUNTIME = "io.containerd.bunker.v1";

/** The runtimes the suites run with: Debian's Go shim always, ours when its sources exist. */
export function runtimes(): string[] {
  const out = [RUNC_RUNTIME];
  if (existsSync(join(REPO, "src/shims/bunker/main.ts")) && process.env.BUNKER_TEST_RUNTIMES !== RUNC_RUNTIME) out.push(BUNKER_RUNTIME);
  return out;
}

/**
 * Features a runtime's shim does not implement yet, with the shim's own refusal. Their tests are
 * not registered for that runtime (and say so on stderr); remove an entry once the shim has it.
 */
export const NOT_YET: Record<string, Partial<Record<"tty" | "logFile", string>>> = {
  // Debian's containerd-shim-runc-v2 1.6.20 now and then never writes a file:// stderr line at all
  // (seen in about 1 of 4 runs, waiting 5 s); our shim is tested on the same case.
  "io.containerd.runc.v2": { logFile: "file:// stderr is lost now and then by containerd-shim-runc-v2 1.6.20" },
};

/** Whether a runtime supports a feature; logs why a test is left out when it does not. */
export function supports(runtime: string, feature: "tty" | "logFile", test: string): boolean {
  const why = NOT_YET[runtime]?.[feature];
  if (why) console.warn(`not registered: ${test} (${runtime}): the shim answers "${why}"`);
  return !why;
}

let built: Promise<string> | undefined;

async function build(): Promise<string> {
  const dir = mkdtempSync("/tmp/bunker-cli-bin-");
  removeAtEnd(dir);
  const target = join(dir, "bunker");
  const proc = Bun.spawn([process.execPath, "build", ...COMPILE_FLAGS, join(REPO, "src/cli/main.ts"), "--outfile", target], {
    cwd: REPO,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0 || !existsSync(target)) throw new Error(`bun build --compile src/cli/main.ts failed (${code}): ${err}`);
  symlinkSync("bunker", join(dir, "containerd-shim-bunker-v1"));
  return dir;
}

/** A directory with the compiled `bunker` and its `containerd-shim-bunker-v1` link. */
export function bunkerBinDir(): Promise<string> {
  built ??= build();
  return built;
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export class BunkerEnv {
  readonly root: string;
  readonly state: string;
  readonly address: string;
  readonly tmp: string;
  /** A namespace of our own (containers under containerd keep runc state in /run/containerd/runc/<ns>, shared host-wide). */
  readonly namespace = `bk${Math.random().toString(36).slice(2, 10)}`;
  rootfs = "";
  private bin = "";
  private daemons = new Set<Bun.Subprocess>();

  constructor(readonly dir: string) {
    this.root = join(dir, "root");
    this.state = join(dir, "state");
    this.address = join(dir, "bunker.sock");
    this.tmp = join(dir, "tmp");
  }

  static async create(prefix = "bunker-it-"): Promise<BunkerEnv> {
    const env = new BunkerEnv(mkdtempSync(join("/tmp", prefix)));
    env.bin = await bunkerBinDir();
    env.rootfs = await copyRootfs(join(env.dir, "rootfs"));
    await Bun.$`mkdir -p ${env.tmp}`;
    return env;
  }

  get bunker(): string {
    return join(this.bin, "bunker");
  }

  globals(): string[] {
    return ["--root", this.root, "--state", this.state, "--address", this.address, "--namespace", this.namespace];
  }

  spawnEnv(): Record<string, string> {
    // TMPDIR: the CLI's FIFO dirs land in the test's dir, so "nothing left" can be checked.
    // BUNKER_NETWORK: no network unless a test (in its own netns) says --net; benches too.
    return { ...(process.env as Record<string, string>), PATH: `${this.bin}:${process.env.PATH ?? ""}:/usr/sbin:/sbin`, TMPDIR: this.tmp, BUNKER_NETWORK: process.env.BUNKER_NETWORK ?? "none" };
  }

  async run(args: string[], opts: { timeoutMs?: number } = {}): Promise<Result> {
    const proc = Bun.spawn([this.bunker, ...this.globals(), ...args], { env: this.spawnEnv(), stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    clearTimeout(timer);
    return { code, stdout, stderr };
  }

  /** Starts `bunker daemon` (in the environment its systemd unit gives it) and waits until it answers. */
  async startDaemon(globals: string[] = []): Promise<{ proc: Bun.Subprocess<"ignore", "ignore", "pipe">; readyMs: number; log: () => string }> {
    const t0 = performance.now();
    const proc = Bun.spawn([this.bunker, ...this.globals(), ...globals, "daemon"], { env: { ...this.spawnEnv(), ...IDLE_ENV }, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    this.daemons.add(proc);
    // Drain its log as it comes: a full pipe would block the daemon's (synchronous) logger.
    let text = "";
    const decoder = new TextDecoder();
    void (async () => {
      for await (const chunk of proc.stderr) text += decoder.decode(chunk, { stream: true });
    })().catch(() => undefined);
    void proc.exited.then(() => this.daemons.delete(proc));
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`bunker daemon exited with ${proc.exitCode}`);
      const r = await this.run(["version"]).catch(() => undefined);
      if (r && r.stdout.includes("daemon")) break;
      await Bun.sleep(20);
    }
    return { proc, readyMs: performance.now() - t0, log: () => text };
  }

  /**
   * What a power cut does to this environment's processes: every container (the pids `ps -a`
   * shows), every shim and the daemon SIGKILLed, by pid, one after another, and waited for.
   */
  async killEverything(daemon: { proc: { pid: number } }): Promise<void> {
    const r = await this.run(["ps", "-a"]);
    if (r.code !== 0) throw new Error(`bunker ps -a: exit ${r.code}: ${r.stderr}`);
    const containers = r.stdout.split("\n").slice(1).map((l) => Number(l.split(/\s+/)[1])).filter((p) => p > 0);
    const victims = [...containers, ...this.shims().map((s) => s.pid), daemon.proc.pid].flatMap((pid) => procInfo(pid) ?? []);
    for (const v of victims) killSame(v, "SIGKILL");
    await waitGone(victims, 10_000);
  }

  /** Shim processes serving this environment (their argv carries our -address; ours runs as `bunker shim`). */
  shims(): { pid: number; start: number; ppid: number; state: string }[] {
    return allProcs().filter((p) => {
      const cmd = cmdline(p.pid);
      return (cmd.includes("containerd-shim") || cmd.includes(" shim -")) && ` ${cmd} `.includes(` -address ${this.address} `);
    });
  }

  /** Files left under state, root and TMPDIR (the empty namespace dirs do not count). */
  leftovers(): string[] {
    const out: string[] = [];
    for (const base of [this.state, this.root]) {
      if (!existsSync(base)) continue;
      // <state>/runc/<ns> is runc's root (src/runtime/runc-root.ts): an empty one is not a leftover, its containers are
      for (const ns of readdirSync(base)) for (const f of readdirSync(join(base, ns))) if (!(base === this.state && ns === "runc" && readdirSync(join(base, ns, f)).length === 0)) out.push(join(base, ns, f));
    }
    // .bun-*.so: the compiled binary's embedded native library, extracted to TMPDIR by Bun.
    if (existsSync(this.tmp)) for (const f of readdirSync(this.tmp)) if (!/^\.bun-.*\.so$/.test(f)) out.push(join(this.tmp, f));
    return out;
  }

  /** Removes every task, stops daemons and shims we started (by pid), deletes the dir. */
  async dispose(namespaces: string[] = [this.namespace]): Promise<void> {
    for (const ns of namespaces) {
      const ids = (await this.run(["-n", ns, "ps", "-a", "-q"])).stdout.split("\n").filter(Boolean);
      if (ids.length > 0) await this.run(["-n", ns, "rm", "-f", ...ids]);
    }
    for (const d of this.daemons) d.kill("SIGKILL");
    const shims = this.shims();
    for (const s of shims) killSame(s, "SIGKILL");
    await waitGone(shims, 5_000);
    // Containers whose shim we just killed: runc state is under our state dir (runc-root.ts), or in
    // /run/containerd/runc/<ns> for options that name no root of their own.
    for (const runcRoot of namespaces.flatMap((ns) => [`${this.state}/runc/${ns}`, `/run/containerd/runc/${ns}`])) {
      if (!existsSync(runcRoot)) continue;
      const ids = (await Bun.$`runc --root ${runcRoot} list -q`.quiet().nothrow()).stdout.toString().split("\n").filter(Boolean);
      for (const id of ids) await Bun.$`runc --root ${runcRoot} delete --force ${id}`.quiet().nothrow();
      rmSync(runcRoot, { recursive: true, force: true });
    }
    // Rootfs mounts of bundles whose shim died before unmounting them (and a tmpfs a bench put on --state).
    const mounts = readFileSync("/proc/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "");
    for (const m of mounts.filter((m) => m === this.state || m.startsWith(`${this.state}/`)).reverse()) await Bun.$`umount -l ${m}`.quiet().nothrow();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Polls until cond() is true, or fails with what it was waiting for. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}
