// The shipped binary alone: `bunker install` puts dist/bunker and its shim link in an empty
// prefix, and with a PATH holding only that prefix and runc (no repo, no node_modules, cwd /) it
// runs a container itself and serves as a real containerd's shim found on containerd's PATH.
import { runCommand } from "../support/run-command.ts";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { sys } from "../../src/sys/index.ts";
import { startContainerd, type TestContainerd } from "../support/containerd.ts";
import { allProcs, cmdline, killSame, waitGone } from "../support/procs.ts";
import { copyRootfs } from "../support/rootfs.ts";
import { describeWith } from "../support/require.ts";

const DIST = resolve(import.meta.dir, "../../dist/bunker");
const RUNTIME = "io.containerd.bunker.v1";

const runIn = (argv: string[], env: Record<string, string>, timeoutMs = 60_000) => runCommand(argv, { cwd: "/", env, timeoutMs });

describeWith(["root", "bin:runc", "bin:containerd", "bin:ctr"], "the bunker binary installed alone", () => {
  let dir: string;
  let bin: string;
  let env: Record<string, string>;
  let ctd: TestContainerd | undefined;
  const suffix = `${process.pid}-${Date.now().toString(36)}`;

  beforeAll(async () => {
    if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run bash scripts/build.sh first`);
    dir = mkdtempSync("/tmp/bunker-standalone-");
    bin = join(dir, "prefix", "bin");
    const runcDir = join(dir, "runc-only");
    mkdirSync(runcDir);
    const runc = Bun.which("runc", { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` });
    if (!runc) throw new Error("runc not found");
    symlinkSync(runc, join(runcDir, "runc"));
    mkdirSync(join(dir, "tmp"));
    // no network: bridge networking would make a bridge and rules in the machine's own namespace
    env = { PATH: `${runcDir}:${bin}`, TMPDIR: join(dir, "tmp"), HOME: "/root", BUNKER_NETWORK: "none" };
  });

  afterAll(async () => {
    await ctd?.stop();
    // Whatever the standalone run left (a shim, a container) names our dir in its argv: end it by pid.
    const ours = allProcs().filter((p) => p.pid !== process.pid && cmdline(p.pid).includes(dir));
    const alive = await waitGone(ours.filter((p) => killSame(p, "SIGKILL")), 5000);
    const mounts = readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[4])
      .filter((p): p is string => p?.startsWith(`${dir}/`) === true);
    for (const p of mounts.sort((a, b) => b.length - a.length)) sys().unmountAll(p);
    rmSync(dir, { recursive: true, force: true });
    expect(alive.map((p) => p.pid)).toEqual([]);
  });

  test("install places the binary and the shim link, and nothing else", async () => {
    const r = await runIn([DIST, "install", "--prefix", join(dir, "prefix")], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toContain(`runtime_type = "${RUNTIME}"`);
    expect(readdirSync(bin).sort()).toEqual(["bunker", "containerd-shim-bunker-v1"]);
    expect(lstatSync(join(bin, "bunker")).size).toBe(lstatSync(DIST).size);
    expect(readlinkSync(join(bin, "containerd-shim-bunker-v1"))).toBe("bunker");
    const v = await runIn(["bunker", "version"], env);
    expect(v.code).toBe(0);
    // The one version, package.json's, reaches the compiled binary and its shim side alike.
    expect(v.stdout).toStartWith(`bunker ${pkg.version}\n`);
    const shimV = await runIn(["containerd-shim-bunker-v1", "-v"], env);
    expect(shimV.stdout).toContain(`Version:  ${pkg.version}\n`);
    expect(v.stdout).toContain(`bun ${Bun.version}`);
    expect(v.stdout).toMatch(/^runc version /m);
  });

  test("bunker run, with only runc and the prefix on PATH, from /", async () => {
    const rootfs = await copyRootfs(join(dir, "rootfs1"));
    const g = ["--root", join(dir, "root"), "--state", join(dir, "state"), "--address", join(dir, "b.sock")];
    const r = await runIn(["bunker", ...g, "run", "--rm", "--rootfs", rootfs, `s1-${suffix}`, "/bin/echo", "hi"], env);
    expect(r).toEqual({ code: 0, stdout: "hi\n", stderr: "" });
  });

  test("containerd finds containerd-shim-bunker-v1 on its PATH and runs a task through it", async () => {
    const rootfs = await copyRootfs(join(dir, "rootfs2"));
    // containerd and ctr themselves come from /usr/bin; the shim can only be the installed link
    // (containerd also looks next to its own executable: nothing of ours is there).
    const path = `${env.PATH}:/usr/bin:/bin`;
    expect(Bun.which("containerd-shim-bunker-v1", { PATH: path })).toBe(join(bin, "containerd-shim-bunker-v1"));
    expect(existsSync("/usr/bin/containerd-shim-bunker-v1")).toBe(false);
    ctd = await startContainerd({ dir: join(dir, "containerd"), path, env: { TMPDIR: join(dir, "tmp") } });
    const r = await ctd.ctr(["run", "--rm", "--runtime", RUNTIME, "--rootfs", rootfs, `s2-${suffix}`, "/bin/echo", "shim"]);
    expect({ code: r.code, stdout: r.stdout.replace(/\r/g, ""), stderr: r.stderr }).toEqual({ code: 0, stdout: "shim\n", stderr: "" });
  });
});
