// The library (src/lib) as a `bun test` suite uses it, with real runc and bunker's shim, on each of
// its two paths: embedded (a task manager inside this test process) and against a running
// `bunker daemon`. Each path gets a private --root/--state/--address and namespace, and a busybox
// image built offline and loaded there. Covered: exec exit codes and output, logs from the start,
// wait/stop/kill, the waits (log, exec) with Timeout and ContainerExitError carrying the last log
// lines, `await using` removal, labels and trackers, typed errors, 20 containers in parallel, and
// nothing left behind. Ports and networks need bridges and iptables rules, so they run in a
// private network and mount namespace (a child under `unshare`, as network-run.test.ts does):
// tests/support/lib-netns-child.ts, and the examples/ suite, both run there.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  AlreadyExists,
  addTracker,
  Bunker,
  bunker as defaultBunker,
  type ContainerRef,
  ContainerExitError,
  ImagePullError,
  LIB_LABELS,
  NotFound,
  SESSION_ID,
  Timeout,
  Wait,
} from "../../src/lib/index.ts";
import { BunkerEnv, bunkerBinDir } from "../support/cli-harness.ts";
import { allProcs, cmdline, killSame, waitGone } from "../support/procs.ts";
import { describeWith } from "../support/require.ts";

const T = 180_000;
const REPO = join(import.meta.dir, "../..");
const IMAGE = "docker.io/library/busybox:latest";

function buildBusybox(archive: string): void {
  const built = Bun.spawnSync([process.execPath, join(REPO, "scripts/busybox-image.ts"), archive], { stderr: "pipe" });
  if (built.exitCode !== 0) throw new Error(`busybox image: ${built.stderr.toString()}`);
}

/** Shims serving `address` (their argv carries it). */
function shimsOf(address: string) {
  return allProcs().filter((p) => {
    const cmd = cmdline(p.pid);
    return (cmd.includes("containerd-shim") || cmd.includes(" shim -")) && ` ${cmd} `.includes(` -address ${address} `);
  });
}

interface Backend {
  client: Bunker;
  root: string;
  state: string;
  address: string;
  dispose(): Promise<void>;
}

async function embeddedBackend(): Promise<Backend> {
  const bin = await bunkerBinDir(); // first: a failed build leaves no dir behind
  const dir = mkdtempSync("/tmp/bunker-lib-");
  const [root, state, address] = [join(dir, "root"), join(dir, "state"), join(dir, "bunker.sock")];
  const client = new Bunker({ mode: "embedded", root, state, address, namespace: "libtest", shimDir: bin });
  buildBusybox(join(dir, "busybox.tar"));
  await client.loadImage(join(dir, "busybox.tar"));
  return {
    client, root, state, address,
    async dispose() {
      await client.close().catch(() => undefined);
      const shims = shimsOf(address);
      for (const s of shims) killSame(s, "SIGKILL");
      await waitGone(shims, 5_000);
      for (const m of readFileSync("/proc/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(`${dir}/`)).reverse()) {
        await Bun.$`umount -l ${m}`.quiet().nothrow();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function daemonBackend(): Promise<Backend> {
  const env = await BunkerEnv.create("bunker-lib-daemon-");
  await env.startDaemon();
  const client = defaultBunker.connect({ address: env.address, root: env.root, state: env.state, namespace: env.namespace });
  buildBusybox(join(env.dir, "busybox.tar"));
  await client.loadImage(join(env.dir, "busybox.tar"));
  return {
    client, root: env.root, state: env.state, address: env.address,
    async dispose() {
      await client.close().catch(() => undefined);
      await env.dispose();
    },
  };
}

for (const kind of ["embedded", "daemon"] as const) {
  describeWith(["root", "bin:runc"], `library (${kind})`, () => {
    let b: Backend;
    const tracked: string[] = [];
    const untracked: string[] = [];
    let removeTracker: () => void;

    beforeAll(async () => {
      b = kind === "embedded" ? await embeddedBackend() : await daemonBackend();
      removeTracker = addTracker({ track: (r: ContainerRef) => void tracked.push(r.id), untrack: (r: ContainerRef) => void untracked.push(r.id) });
    }, T);
    afterAll(async () => {
      removeTracker?.();
      await b?.dispose();
    }, T);

    /** The namespace's containers as the manager lists them. */
    const listed = async (): Promise<string[]> => {
      const out: string[] = [];
      const ns = b.client.options.namespace;
      const { connect } = await import("../../src/api/client.ts");
      const pino = (await import("pino")).default;
      const conn = await connect({ address: b.address, root: b.root, state: b.state, debug: false }, pino({ level: "silent" }), kind === "daemon" ? {} : {});
      try {
        for (const t of (await conn.api.list({ namespace: ns })).tasks) out.push(t.id);
      } finally {
        conn.close();
      }
      return out;
    };

    test("exec: exit codes, stdout and stderr apart, env, workdir and a numeric user", async () => {
      await using c = await b.client.run(IMAGE, { network: "none", cmd: ["sleep", "300"] });
      expect(c.id).toMatch(/^bunker-[0-9a-f]{12}$/);
      const r = await c.exec(["sh", "-c", "echo $FOO; pwd; id -u; echo oops >&2; exit 7"], { env: { FOO: "bar" }, workdir: "/tmp", user: "65534" });
      expect(r).toMatchObject({ exitCode: 7, stdout: "bar\n/tmp\n65534\n", stderr: "oops\n" });
      expect(new TextDecoder().decode(r.stdoutBytes)).toBe(r.stdout);
      expect(await c.exec(["true"])).toMatchObject({ exitCode: 0, stdout: "", stderr: "" });
      // a big output arrives whole
      const big = await c.exec(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done"]);
      expect(big.stdout.split("\n").length).toBe(20001);
      expect(big.stdout.endsWith("line-19999\n")).toBe(true);
    }, T);

    test("logs from the start (both streams), followed until exit; wait gives the exit code", async () => {
      await using c = await b.client.run(IMAGE, { network: "none", cmd: ["sh", "-c", "echo one; echo two >&2; sleep 1; echo three; exit 5"] });
      const followed: string[] = [];
      for await (const line of c.logs({ follow: true })) followed.push(line);
      expect(followed.sort()).toEqual(["one", "three", "two"]);
      expect(await c.wait()).toBe(5);
      const errs: string[] = [];
      for await (const l of c.logLines({ stream: "stderr" })) errs.push(`${l.stream}:${l.text}`);
      expect(errs).toEqual(["stderr:two"]);
    }, T);

    test("waitFor log and exec; a Timeout carries the last log lines; an early exit is a ContainerExitError; neither leaves a container", async () => {
      await using ready = await b.client.run(IMAGE, {
        network: "none",
        cmd: ["sh", "-c", "sleep 0.5; echo booting; touch /tmp/ready; echo 'ready to serve'; sleep 300"],
        waitFor: [Wait.log(/ready to serve/), Wait.exec(["test", "-f", "/tmp/ready"])],
      });
      expect((await ready.exec(["cat", "/tmp/ready"])).exitCode).toBe(0);

      const before = await listed();
      const t0 = Date.now();
      const timeout = await b.client
        .run(IMAGE, { network: "none", cmd: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do echo line $i; done; sleep 300"], waitFor: Wait.log("never printed"), startupTimeout: 1_500 })
        .catch((e: unknown) => e);
      expect(timeout).toBeInstanceOf(Timeout);
      expect(Date.now() - t0).toBeLessThan(20_000);
      expect((timeout as Timeout).message).toMatch(/^container bunker-[0-9a-f]{12} was not ready after 1500 ms \(waiting for log "never printed"\)$/);
      expect((timeout as Timeout).logs).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i + 6}`));

      const exited = await b.client.run(IMAGE, { network: "none", cmd: ["sh", "-c", "echo 'fatal: no config' >&2; exit 3"], waitFor: Wait.log("never") }).catch((e: unknown) => e);
      expect(exited).toBeInstanceOf(ContainerExitError);
      expect(exited).toMatchObject({ exitCode: 3, logs: ["fatal: no config"] });
      expect(await listed()).toEqual(before);
    }, T);

    test("stop, kill and wait; await using removes it; labels and trackers mark it", async () => {
      let id = "";
      {
        await using c = await b.client.run(IMAGE, { network: "none", cmd: ["sleep", "300"], labels: { suite: "lib" } });
        id = c.id;
        const info = await c.info();
        expect(info.labels).toMatchObject({ suite: "lib", [LIB_LABELS.lib]: "1", [LIB_LABELS.session]: SESSION_ID, [LIB_LABELS.pid]: String(process.pid) });
        expect(tracked).toContain(id);
        const waiting = c.wait();
        await c.kill("SIGTERM"); // sleep as pid 1 ignores TERM: still running
        await Bun.sleep(200);
        expect(await c.exitCode()).toBeUndefined();
        expect(await c.stop({ timeout: 1 })).toBe(137);
        expect(await waiting).toBe(137);
      }
      expect(untracked).toContain(id);
      expect(await listed()).not.toContain(id);
      await expect(b.client.get(id)).rejects.toBeInstanceOf(NotFound);
      // a shell that traps TERM stops at once with its own code
      await using trap = await b.client.run(IMAGE, { network: "none", cmd: ["sh", "-c", "trap 'exit 42' TERM; echo up; while true; do sleep 0.1; done"], waitFor: Wait.log("up") });
      expect(await trap.stop({ timeout: 10 })).toBe(42);
    }, T);

    test("typed errors: a taken name is AlreadyExists, an unknown image an ImagePullError; neither leaves anything", async () => {
      await using c = await b.client.run(IMAGE, { name: `taken-${kind}`, network: "none", cmd: ["sleep", "300"] });
      const before = await listed();
      const dup = await b.client.run(IMAGE, { name: c.id, network: "none", cmd: ["true"] }).catch((e: unknown) => e);
      expect(dup).toBeInstanceOf(AlreadyExists);
      expect((dup as Error).message).not.toContain("\n");
      const pull = await b.client.run("nosuch/image:1", { pull: "never" }).catch((e: unknown) => e);
      expect(pull).toBeInstanceOf(ImagePullError);
      expect((pull as ImagePullError).notFound).toBe(true);
      expect((pull as Error).message).toContain("nosuch/image:1");
      expect(await listed()).toEqual(before);
      expect(await c.exec(["true"])).toMatchObject({ exitCode: 0 });
    }, T);

    test("20 containers started in parallel: distinct ids, each execs, all removed", async () => {
      const t0 = performance.now();
      const cs = await Promise.all(Array.from({ length: 20 }, () => b.client.run(IMAGE, { network: "none", cmd: ["sleep", "300"] })));
      const started = performance.now() - t0;
      try {
        expect(new Set(cs.map((c) => c.id)).size).toBe(20);
        const results = await Promise.all(cs.map((c) => c.exec(["hostname"])));
        expect(results.map((r) => r.stdout.trim())).toEqual(cs.map((c) => c.id));
      } finally {
        await Promise.all(cs.map((c) => c.remove()));
      }
      console.log(`${kind}: 20 containers started in ${started.toFixed(0)} ms`);
      const left = await listed();
      for (const c of cs) expect(left).not.toContain(c.id);
    }, T);

    test("close() removes what the client still holds; nothing is left under --state", async () => {
      await b.client.run(IMAGE, { network: "none", cmd: ["sleep", "300"] });
      await b.client.close();
      expect(await listed()).toEqual([]);
      // bundles, FIFOs and runc state are gone (the namespace dirs stay)
      const leftovers = (base: string) => (existsSync(base) ? readdirSync(base).flatMap((ns) => readdirSync(join(base, ns)).map((f) => join(ns, f))) : []);
      expect(leftovers(b.state).filter((p) => !p.startsWith("runc/") && !p.startsWith("networks/"))).toEqual([]);
      expect(existsSync(join(b.root, "containers", b.client.options.namespace)) ? readdirSync(join(b.root, "containers", b.client.options.namespace)) : []).toEqual([]);
      expect(readFileSync("/proc/mounts", "utf8").split("\n").filter((l) => l.includes(`${b.state}/${b.client.options.namespace}/`))).toEqual([]);
    }, T);
  });
}

describeWith(["root", "bin:runc", "bin:unshare", "bin:iptables", "bin:ip"], "library: ports and networks (in a private network namespace)", () => {
  let dir: string;
  let bin: string;
  const addresses: string[] = [];
  /**
   * argv under `unshare --net --mount` with lo up: bridges, rules and netns pins die with it. Each
   * run has an address of its own: a shim lingering after the previous run (5 s) lives in that
   * run's namespaces, and must not be reused for the next one's containers.
   */
  const inNetns = async (argv: string[]) => {
    const address = join(dir, `bunker-${addresses.length}.sock`);
    addresses.push(address);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}:/usr/sbin:/sbin`, BUNKER_ROOT: join(dir, "root"), BUNKER_STATE: join(dir, "state"), BUNKER_ADDRESS: address, BUNKER_NAMESPACE: "libnet", BUNKER_SHIM_DIR: bin };
    const proc = Bun.spawn(["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", ...argv], { env, cwd: REPO, stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 150_000);
    const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    clearTimeout(timer);
    return { code, stdout, stderr };
  };

  beforeAll(async () => {
    bin = await bunkerBinDir();
    dir = mkdtempSync("/tmp/bunker-lib-net-");
  }, T);
  afterAll(async () => {
    if (!dir) return;
    const shims = addresses.flatMap(shimsOf);
    for (const s of shims) killSame(s, "SIGKILL");
    await waitGone(shims, 5_000);
    rmSync(dir, { recursive: true, force: true });
  });

  test("ports chosen free for 20 parallel servers, waited on by port, reached from the host; a port wait times out with the lines", async () => {
    const r = await inNetns([process.execPath, join(REPO, "tests/support/lib-netns-child.ts")]);
    if (r.code !== 0) throw new Error(`child failed (${r.code}): ${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { ports: number[]; pages: string[]; timeout: { name: string; message: string; logs: string[] }; clash: string; left: string[] };
    expect(new Set(out.ports).size).toBe(20);
    expect(out.pages).toEqual(Array.from({ length: 20 }, (_, i) => `server ${i}`));
    expect(out.timeout.name).toBe("Timeout");
    expect(out.timeout.message).toContain("waiting for port 9999");
    expect(out.timeout.logs).toEqual(["no server here"]);
    expect(out.clash).toMatch(/host port \d+\/tcp is already (in use|published)/);
    expect(out.clash).not.toContain("\n");
    expect(out.left).toEqual([]);
  }, T);

  test("the examples/ suite passes", async () => {
    const r = await inNetns([process.execPath, "test", "./examples/"]);
    if (r.code !== 0) throw new Error(`bun test ./examples/ failed (${r.code}): ${r.stderr}`);
    expect(r.stderr).toMatch(/\b2 pass\b/);
    expect(r.stderr).toMatch(/\b0 fail\b/);
  }, T);
});
