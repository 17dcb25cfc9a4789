// `bunker run`'s spec-shaping flags as a docker user drives them, through the compiled CLI and real
// runc: on the foreground path (`run --rm`, runc run), on the shim's (`run -d`) and for an image.
// The executor gets the same: generateSpec({ rootfs }) with the flags applied to create(), and
// createFromImage's runSpec. What each flag promises is looked at where it shows: inside the container (mounts, writes,
// capabilities, device nodes, PID 1, zombies) or in the container's cgroup on the host (limits).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { BUNKER_RUNTIME, BunkerEnv, until } from "../support/cli-harness.ts";
import { collect, ExecutorHarness } from "../support/executor-harness.ts";
import { describeWith } from "../support/require.ts";
import { ociArchive, removeImageFixtures } from "../support/image-fixtures.ts";
import { cgroupMode } from "../../src/linux/cgroup.ts";
import { cgroupParent } from "../../src/runtime/paths.ts";
import { hostDevices, resolveRunOptions } from "../../src/oci/run-resolve.ts";
import { applyRunOptions } from "../../src/oci/run-options.ts";
import { generateSpec } from "../../src/oci/spec.ts";
import { loadImages } from "../../src/images/archive.ts";
import { ImageStore } from "../../src/images/store.ts";

/** A cgroup file of a container: v1 (this host is hybrid: runc uses the v1 controllers) or v2. */
function cgroupFile(env: BunkerEnv, id: string, v1: [controller: string, file: string], v2: string): string {
  const path = `${cgroupParent(env.address)}/${env.namespace}/${id}`;
  const file = cgroupMode() === "unified" ? join("/sys/fs/cgroup", path, v2) : join("/sys/fs/cgroup", v1[0], path, v1[1]);
  return readFileSync(file, "utf8").trim();
}

describeWith(["root", "bin:runc"], "run's spec flags through the CLI", () => {
  let env: BunkerEnv;
  beforeAll(async () => {
    env = await BunkerEnv.create("bunker-run-options-");
  }, 60_000);
  afterAll(async () => {
    await env?.dispose();
  }, 60_000);

  const fg = (flags: string[], id: string, script: string) => env.run(["run", "--rm", ...flags, "--rootfs", env.rootfs, id, "/bin/sh", "-c", script]);

  test("-v binds a host dir (made when missing), :ro is read-only, --mount binds a file read-only", async () => {
    const vol = join(env.dir, "vol");
    mkdirSync(vol);
    writeFileSync(join(vol, "f"), "from the host\n");
    const ro = join(env.dir, "ro");
    mkdirSync(ro);
    const made = join(env.dir, "made", "sub");
    const r = await fg(
      ["-v", `${vol}:/data`, "-v", `${made}:/made`, "-v", `${ro}:/ro:ro`, "--mount", `type=bind,source=${join(vol, "f")},target=/etc/f,readonly`],
      "v1",
      "cat /data/f; echo from the container > /data/out; ls -d /made; touch /ro/x; cat /etc/f; echo more >> /etc/f; echo end",
    );
    expect(r.stdout).toBe("from the host\n/made\nfrom the host\nend\n");
    expect(r.stderr).toBe("touch: /ro/x: Read-only file system\n/bin/sh: can't create /etc/f: Read-only file system\n");
    expect(r.code).toBe(0);
    expect(readFileSync(join(vol, "out"), "utf8")).toBe("from the container\n");
    expect(existsSync(join(ro, "x"))).toBe(false);
    expect(existsSync(made)).toBe(true);
  }, 60_000);

  test("bad mounts: one line each, and nothing is left or made", async () => {
    const missing = join(env.dir, "no-such-dir");
    const cases: [string[], number, string][] = [
      [["--mount", `type=bind,source=${missing},target=/x`], 125, `bunker: --mount: bind source path does not exist: ${missing}\n`],
      [["-v", "data:/x"], 2, 'bunker: -v data:/x: "data" is not an absolute host path, and named volumes are not supported yet\n'],
      [["-v", `${env.dir}:x`], 2, `bunker: -v ${env.dir}:x: the container path "x" must be absolute\n`],
      [["--tmpfs", "/x:size=big"], 2, 'bunker: --tmpfs /x:size=big: invalid tmpfs option "size=big"\n'],
      [["-v", `${join(env.dir, "never")}:/a`, "--device", "/dev/no-such-device"], 125, "bunker: --device /dev/no-such-device: no such device on the host\n"],
    ];
    for (const [flags, code, stderr] of cases) {
      const r = await fg(flags, "bad1", "true");
      expect({ code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({ code, stderr, stdout: "" });
    }
    expect(existsSync(missing)).toBe(false);
    expect(existsSync(join(env.dir, "never"))).toBe(false);
    expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
    expect(env.leftovers().filter((p) => !p.startsWith(join(env.root, "init")))).toEqual([]);
  }, 60_000);

  test("--tmpfs and --mount type=tmpfs are tmpfs with their options; --read-only refuses writes to / but not to them", async () => {
    const r = await fg(
      ["--read-only", "--tmpfs", "/scratch:size=1m", "--mount", "type=tmpfs,target=/t2,tmpfs-mode=700"],
      "ro1",
      "grep -E ' /scratch | /t2 ' /proc/mounts; echo x > /scratch/a && echo scratch ok; touch /rootfile; touch /dev/shm/ok && echo shm ok",
    );
    const lines = r.stdout.split("\n");
    expect(lines.find((l) => l.startsWith("tmpfs /scratch "))).toMatch(/^tmpfs \/scratch tmpfs rw,nosuid,nodev,noexec,\S*size=1024k/);
    expect(lines.find((l) => l.startsWith("tmpfs /t2 "))).toMatch(/^tmpfs \/t2 tmpfs rw,nosuid,nodev,noexec,\S*mode=700/);
    expect(lines.slice(2)).toEqual(["scratch ok", "shm ok", ""]);
    expect(r.stderr).toBe("touch: /rootfile: Read-only file system\n");
  }, 60_000);

  test("--memory, --memory-swap, --cpus and --pids-limit are the container's cgroup limits (shim path)", async () => {
    const r = await env.run(["run", "-d", "--memory", "64m", "--memory-swap", "100m", "--cpus", "1.5", "--pids-limit", "50", "--rootfs", env.rootfs, "lim1", "sleep", "30"]);
    expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
    try {
      expect(cgroupFile(env, "lim1", ["memory", "memory.limit_in_bytes"], "memory.max")).toBe(String(64 << 20));
      const unified = cgroupMode() === "unified";
      // v1: memsw is memory+swap (docker's --memory-swap); v2 keeps swap apart (runc converts)
      expect(cgroupFile(env, "lim1", ["memory", "memory.memsw.limit_in_bytes"], "memory.swap.max")).toBe(String(unified ? (100 << 20) - (64 << 20) : 100 << 20));
      if (unified) expect(cgroupFile(env, "lim1", ["cpu", ""], "cpu.max")).toBe("150000 100000");
      else {
        expect(cgroupFile(env, "lim1", ["cpu", "cpu.cfs_quota_us"], "")).toBe("150000");
        expect(cgroupFile(env, "lim1", ["cpu", "cpu.cfs_period_us"], "")).toBe("100000");
      }
      expect(cgroupFile(env, "lim1", ["pids", "pids.max"], "pids.max")).toBe("50");
    } finally {
      expect((await env.run(["rm", "-f", "lim1"])).code).toBe(0);
    }
  }, 60_000);

  test("--pids-limit stops a loop of forks", async () => {
    const loop = "i=0; while [ $i -lt 20 ]; do sleep 1 & i=$((i+1)); done; echo looped";
    // busybox sh gives up at the first fork the pids cgroup refuses
    expect(await fg(["--pids-limit", "8"], "pid1", loop)).toEqual({ code: 2, stdout: "", stderr: "/bin/sh: can't fork: Resource temporarily unavailable\n" });
    const free = await fg([], "pid2", loop);
    expect(free).toEqual({ code: 0, stdout: "looped\n", stderr: "" });
  }, 60_000);

  test("--cap-drop ALL makes chown fail, --cap-add CHOWN gives it back", async () => {
    const dropped = await fg(["--cap-drop", "ALL"], "cap1", "grep CapEff /proc/self/status; chown 1 /tmp");
    expect(dropped.stdout).toBe("CapEff:\t0000000000000000\n");
    expect(dropped.stderr).toBe("chown: /tmp: Operation not permitted\n");
    expect(dropped.code).toBe(1);
    expect(await fg(["--cap-drop", "all", "--cap-add", "chown"], "cap2", "grep CapEff /proc/self/status; chown 1 /tmp")).toEqual({ code: 0, stdout: "CapEff:\t0000000000000001\n", stderr: "" });
  }, 60_000);

  test("--privileged sees the host's devices, has every capability bunker has, a writable /sys and no masked paths", async () => {
    const runcDefaults = new Set(["null", "zero", "full", "random", "urandom", "tty", "ptmx", "console"]);
    const device = hostDevices().find((d) => !runcDefaults.has(basename(d.path)));
    if (!device) throw new Error("this host's /dev has no device beyond runc's defaults to look for");
    const script = `test -e ${device.path} && echo has ${device.path}; grep CapEff /proc/self/status; grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; grep -c ' /proc/' /proc/mounts; true`;
    // masked and read-only paths are mounts over /proc's entries: none at all when privileged
    const plain = await fg([], "priv1", script);
    expect(plain.stdout).toMatch(/^CapEff:\t00000000a80425fb\nro\n[1-9]\d*\n$/);
    const ours = /^CapBnd:\s*(\S+)$/m.exec(readFileSync("/proc/self/status", "utf8"))![1];
    const priv = await fg(["--privileged"], "priv2", script);
    expect(priv.stdout).toBe(`has ${device.path}\nCapEff:\t${ours}\nrw\n0\n`);
    expect(priv.code).toBe(0);
  }, 60_000);

  test("--device makes a usable node at the container path; its access is enforced by the device cgroup", async () => {
    const rw = await fg(["--device", "/dev/null:/dev/mynull"], "dev1", "echo x > /dev/mynull && echo written; ls -l /dev/mynull | cut -c1; stat -c '%t:%T' /dev/mynull");
    expect(rw).toEqual({ code: 0, stdout: "written\nc\n1:3\n", stderr: "" });
    // /dev/null is in runc's default allow list whatever --device says: the access is checked on a
    // device that is not (loop-control, which opening has no effect on)
    const lc = "/dev/loop-control";
    if (!existsSync(lc)) throw new Error(`this host has no ${lc}`);
    const script = "test -e /dev/lc || echo no node; true < /dev/lc && echo opened for reading; true > /dev/lc || echo refused";
    expect(await fg([], "dev2", script)).toMatchObject({ stdout: "no node\n" });
    const readOnly = await fg(["--device", `${lc}:/dev/lc:r`], "dev3", script);
    expect(readOnly.stdout).toBe("opened for reading\nrefused\n");
    expect(readOnly.stderr).toBe("/bin/sh: can't create /dev/lc: Operation not permitted\n");
  }, 60_000);

  test("--init: PID 1 is the init, it exits with the child's code (foreground)", async () => {
    const r = await fg(["--init"], "init1", "tr '\\0' ' ' < /proc/1/cmdline; echo; exit 3");
    expect(r).toEqual({ code: 3, stdout: "/sbin/docker-init -- /bin/sh -c tr '\\0' ' ' < /proc/1/cmdline; echo; exit 3 \n", stderr: "" });
    // a read-only root and a rootfs with no /sbin/docker-init of its own do not matter: it is bind-mounted
    expect(await fg(["--init", "--read-only"], "init2", "exit 0")).toEqual({ code: 0, stdout: "", stderr: "" });
  }, 60_000);

  test("--init forwards kill's signal to the child and exits with its status; without it, PID 1 ignores TERM (shim path)", async () => {
    expect((await env.run(["run", "-d", "--init", "--rootfs", env.rootfs, "init3", "sleep", "30"])).code).toBe(0);
    expect((await env.run(["run", "-d", "--rootfs", env.rootfs, "init4", "sleep", "30"])).code).toBe(0);
    try {
      expect((await env.run(["kill", "-s", "TERM", "init3"])).code).toBe(0);
      expect(await env.run(["wait", "init3"])).toEqual({ code: 0, stdout: "143\n", stderr: "" });
      // a trapped signal: the child's own exit code comes back
      expect((await env.run(["run", "-d", "--init", "--rootfs", env.rootfs, "init5", "sh", "-c", "trap 'exit 9' USR1; while true; do sleep 0.1; done"])).code).toBe(0);
      await Bun.sleep(300);
      expect((await env.run(["kill", "-s", "USR1", "init5"])).code).toBe(0);
      expect(await env.run(["wait", "init5"])).toEqual({ code: 0, stdout: "9\n", stderr: "" });
      // sleep as PID 1 has no TERM handler: the kernel drops the signal
      expect((await env.run(["kill", "-s", "TERM", "init4"])).code).toBe(0);
      await Bun.sleep(500);
      expect((await env.run(["ps"])).stdout).toMatch(/^init4\s+\d+\s+RUNNING/m);
    } finally {
      await env.run(["rm", "-f", "init3", "init4", "init5"]);
    }
  }, 60_000);

  test("--init reaps orphans; without it they stay zombies under a PID 1 that never waits", async () => {
    const orphan = 'sh -c "sleep 0.2 & exec true"; exec sleep 30';
    const zombies = "sleep 1; for f in /proc/[0-9]*/status; do grep -q '^State:.*Z' $f && echo zombie; done; echo checked";
    expect((await env.run(["run", "-d", "--rootfs", env.rootfs, "zb1", "sh", "-c", orphan])).code).toBe(0);
    expect((await env.run(["run", "-d", "--init", "--rootfs", env.rootfs, "zb2", "sh", "-c", orphan])).code).toBe(0);
    try {
      expect((await env.run(["exec", "zb1", "sh", "-c", zombies])).stdout).toBe("zombie\nchecked\n");
      expect((await env.run(["exec", "zb2", "sh", "-c", zombies])).stdout).toBe("checked\n");
    } finally {
      await env.run(["rm", "-f", "zb1", "zb2"]);
    }
  }, 60_000);

  test("the init is written once under --root, named by its content", async () => {
    const dir = join(env.root, "init");
    await until(() => existsSync(dir), 1_000, "the init dir");
    const files = (await Bun.$`ls ${dir}`.text()).split("\n").filter(Boolean);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^bunker-init-[0-9a-f]{16}$/);
    const bytes = readFileSync(join(dir, files[0]!));
    expect(new Bun.CryptoHasher("sha256").update(bytes).digest("hex").slice(0, 16)).toBe(files[0]!.slice("bunker-init-".length));
  }, 60_000);
});

describeWith(["root", "bin:runc", "bin:skopeo", "bin:umoci"], "run's spec flags on an image's container", () => {
  let env: BunkerEnv;
  const image = "example.com/test/busybox:1";
  beforeAll(async () => {
    env = await BunkerEnv.create("bunker-run-options-image-");
    const archive = ociArchive("busybox", join(env.dir, "busybox.tar"), image);
    expect((await env.run(["load", "-i", archive])).code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await env?.dispose();
    removeImageFixtures();
  }, 60_000);

  test("foreground and shim paths apply the flags over the image's config", async () => {
    const vol = join(env.dir, "vol");
    const script = "tr '\\0' ' ' < /proc/1/cmdline; echo; echo hi > /data/f; touch /x; grep CapEff /proc/self/status";
    const r = await env.run(["run", "--rm", "--init", "--read-only", "-v", `${vol}:/data`, "--cap-drop", "ALL", image, "sh", "-c", script]);
    expect(r.stdout).toBe(`/sbin/docker-init -- sh -c ${script} \nCapEff:\t0000000000000000\n`);
    expect(r.stderr).toBe("touch: /x: Read-only file system\n");
    expect(readFileSync(join(vol, "f"), "utf8")).toBe("hi\n");
    expect((await env.run(["run", "-d", "--name", "img1", "--memory", "32m", "--pids-limit", "12", image, "sleep", "30"])).code).toBe(0);
    try {
      expect(cgroupFile(env, "img1", ["memory", "memory.limit_in_bytes"], "memory.max")).toBe(String(32 << 20));
      expect(cgroupFile(env, "img1", ["pids", "pids.max"], "pids.max")).toBe("12");
    } finally {
      await env.run(["rm", "-f", "img1"]);
    }
  }, 120_000);
});

describeWith(["root", "bin:runc"], "the executor takes generateSpec's output and the run flags", () => {
  let h: ExecutorHarness;
  beforeAll(async () => {
    h = await ExecutorHarness.create("embedded", BUNKER_RUNTIME);
  }, 60_000);
  afterAll(async () => {
    await h?.dispose();
  }, 60_000);

  const script = "tr '\\0' ' ' < /proc/1/cmdline; echo; grep CapEff /proc/self/status; touch /x";

  test("create(generateSpec({ rootfs }) with applyRunOptions), and createFromImage's runSpec", async () => {
    const exits: string[] = [];
    const ex = h.executor(exits);
    const flags = { readonlyRootfs: true, capDrop: ["ALL"], init: true };
    const spec = generateSpec({ namespace: h.namespace, id: "ex1", args: ["/bin/sh", "-c", script], rootfs: h.env.rootfs });
    applyRunOptions(spec, await resolveRunOptions(flags, { root: h.env.root }));
    const out = collect();
    const err = collect();
    await ex.create("ex1", spec, out.cb, err.cb);
    await Promise.all([out.done, err.done]);
    expect([out.text(), err.text()]).toEqual([`/sbin/docker-init -- /bin/sh -c ${script} \nCapEff:\t0000000000000000\n`, "touch: /x: Read-only file system\n"]);

    const archive = join(h.env.dir, "busybox.tar");
    expect(Bun.spawnSync([process.execPath, join(import.meta.dir, "../../scripts/busybox-image.ts"), archive], { stderr: "pipe" }).exitCode).toBe(0);
    await loadImages(new ImageStore(h.env.root), Bun.file(archive).stream());
    const out2 = collect();
    const err2 = collect();
    await ex.createFromImage("ex2", { image: "busybox", args: ["sh", "-c", script], runSpec: flags }, out2.cb, err2.cb);
    await Promise.all([out2.done, err2.done]);
    expect([out2.text(), err2.text()]).toEqual([`/sbin/docker-init -- sh -c ${script} \nCapEff:\t0000000000000000\n`, "touch: /x: Read-only file system\n"]);
    await until(() => exits.length === 2, 20_000, "both exits");
  }, 90_000);
});
