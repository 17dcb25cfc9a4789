// Containers from images, end to end through the compiled `bunker` against a real registry
// (docker-registry 2.8 on 127.0.0.1, images built offline with umoci and pushed with skopeo) and
// real runc: pull, images, image inspect, and `run IMAGE` on each of its paths (the foreground
// `runc run` of `run --rm` with no daemon, the shim of `run -d`, a running `bunker daemon`); the
// layers as the container sees them (whiteouts, opaque dirs, hardlinks, symlinks, a 131-layer
// stack past a page of overlay options); the image config and docker run's overrides (-u, -w,
// --entrypoint, -e); the run cache after tag, rmi and prune; layers that try to write outside the
// root, or write into lower directories without entries for them; and image containers' teardowns SIGKILLed midway (rm -f between its
// bundle and snapshot steps, a foreground run before its bundle step).
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BunkerEnv, type Result, until } from "../support/cli-harness.ts";
import { ociArchive, pushFixture, removeImageFixtures } from "../support/image-fixtures.ts";
import { DEEP_LAYERS, escapeTarget, imageBuilds } from "../support/image-builds.ts";
import { startRegistry, type TestRegistry } from "../support/registry.ts";
import { describeWith } from "../support/require.ts";

const NEEDS = ["root", "bin:runc", "bin:docker-registry", "bin:skopeo", "bin:umoci"] as const;

/** The snapshotter's index of active (container) snapshots: one entry per writable layer. */
function snapshotKeys(env: BunkerEnv): string[] {
  const dir = join(env.root, "snapshots/overlayfs/by-key");
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** What is left of containers (the image stores under --root are not leftovers of a container). */
function leftovers(env: BunkerEnv): string[] {
  return env.leftovers().filter((p) => !p.startsWith(join(env.root, "content")) && !p.startsWith(join(env.root, "snapshots")));
}

/** mountinfo lines that name anything under the test's dir (a rootfs mount point, or a lowerdir/upperdir in the store). */
function mountsOf(env: BunkerEnv): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(env.dir));
}

describeWith([...NEEDS], "images: pull and run through the CLI", () => {
  let reg: TestRegistry;
  let env: BunkerEnv;
  let busybox: string, multilayer: string, users: string, escape: string, parents: string;

  beforeAll(async () => {
    imageBuilds();
    reg = await startRegistry();
    const tags = ["busybox", "multilayer", "users", "escape", "parents"] as const;
    for (const tag of tags) await pushFixture(tag, reg.host, `test/${tag}:1`);
    [busybox, multilayer, users, escape, parents] = tags.map((tag) => `${reg.host}/test/${tag}:1`) as [string, string, string, string, string];
    env = await BunkerEnv.create("bunker-images-run-");
  }, 120_000);
  /** Containers a failed test may have left: removed before the next test's leftover checks. */
  const cleanups: string[][] = [];
  afterEach(async () => {
    for (const ids of cleanups.splice(0)) await env.run(["rm", "-f", ...ids]);
  });
  afterAll(async () => {
    await env?.dispose();
    await reg?.stop();
    removeImageFixtures();
  }, 60_000);

  test("pull, images, image inspect; run --rm in the foreground (no shim), run -d + exec + rm -f through the shim", async () => {
    const pulled = await env.run(["pull", "-q", busybox]);
    expect(pulled).toMatchObject({ code: 0, stdout: `${busybox}\n` });
    const images = await env.run(["images"]);
    expect(images.code).toBe(0);
    const [header, ...rows] = images.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    expect(rows).toEqual([expect.stringMatching(new RegExp(`^${reg.host}/test/busybox\\s+1\\s+[0-9a-f]{12}\\s`))]);
    const inspect = await env.run(["image", "inspect", busybox]);
    expect(inspect.code).toBe(0);
    const [doc] = JSON.parse(inspect.stdout) as { Id: string; Config: { Cmd: string[] }; RootFS: { Type: string; Layers: string[] } }[];
    expect(doc!.Config.Cmd).toEqual(["/bin/sh"]);
    expect(doc!.RootFS).toEqual({ Type: "layers", Layers: [expect.stringMatching(/^sha256:[0-9a-f]{64}$/)] });
    // the IMAGE ID column is the config digest's prefix
    expect(rows[0]).toContain(doc!.Id.slice(7, 19));

    const fg = await env.run(["run", "--rm", "--name", "fg1", busybox, "sh", "-c", "cat /etc/keep; echo $(hostname)"]);
    expect(fg).toEqual({ code: 0, stdout: "kept\nfg1\n", stderr: "" });
    expect(await env.run(["run", "--rm", busybox, "sh", "-c", "exit 3"])).toEqual({ code: 3, stdout: "", stderr: "" });
    expect(env.shims()).toEqual([]); // the foreground path runs runc under the CLI
    expect(snapshotKeys(env)).toEqual([]);

    expect(await env.run(["run", "-d", "--name", "sh1", busybox, "sleep", "1000"])).toEqual({ code: 0, stdout: "", stderr: "" });
    cleanups.push(["sh1"]);
    const ps = await env.run(["ps", "-a"]);
    expect(ps.stdout).toMatch(new RegExp(`^sh1\\s+\\d+\\s+RUNNING\\s+io\\.containerd\\.bunker\\.v1\\s+${reg.host}/test/busybox:1(\\s|$)`, "m"));
    expect(snapshotKeys(env)).toHaveLength(1);
    expect(await env.run(["exec", "sh1", "sh", "-c", "echo written > /etc/new; cat /etc/keep /etc/new"])).toEqual({ code: 0, stdout: "kept\nwritten\n", stderr: "" });
    expect(await env.run(["rm", "-f", "sh1"])).toEqual({ code: 0, stdout: "", stderr: "" });
    // the container's writable layer went with it: a new container does not see its write
    expect(snapshotKeys(env)).toEqual([]);
    expect(await env.run(["run", "--rm", busybox, "cat", "/etc/new"])).toMatchObject({ code: 1, stdout: "" });
    expect(leftovers(env)).toEqual([]);
    expect(mountsOf(env)).toEqual([]);
  }, 120_000);

  test("through a running bunker daemon: run --rm, and run -d + exec + rm -f", async () => {
    const denv = await BunkerEnv.create("bunker-images-daemon-");
    try {
      const daemon = await denv.startDaemon();
      expect((await denv.run(["pull", "-q", busybox])).code).toBe(0);
      expect(await denv.run(["run", "--rm", busybox, "sh", "-c", "cat /etc/keep; exit 4"])).toEqual({ code: 4, stdout: "kept\n", stderr: "" });
      expect(await denv.run(["run", "-d", "--name", "dd1", busybox, "sleep", "1000"])).toEqual({ code: 0, stdout: "", stderr: "" });
      expect((await denv.run(["ps", "-a"])).stdout).toMatch(new RegExp(`^dd1\\s+\\d+\\s+RUNNING\\s+\\S+\\s+${reg.host}/test/busybox:1(\\s|$)`, "m"));
      expect(await denv.run(["exec", "dd1", "cat", "/etc/passwd"])).toEqual({ code: 0, stdout: "root:x:0:0:root:/root:/bin/sh\n", stderr: "" });
      expect(await denv.run(["rm", "-f", "dd1"])).toEqual({ code: 0, stdout: "", stderr: "" });
      expect(snapshotKeys(denv)).toEqual([]);
      expect(daemon.proc.exitCode).toBeNull();
      expect(mountsOf(denv)).toEqual([]);
    } finally {
      await denv.dispose();
    }
  }, 120_000);

  test("the multilayer image: whiteout gone, opaque dir holds only the new file, hardlinks share an inode, symlinks resolve", async () => {
    const script = [
      "test -e /etc/gone && echo gone-present",
      "ls /opt/dir",
      "[ $(stat -c %i /hl/one) = $(stat -c %i /hl/two) ] && echo same-inode",
      "stat -c %h /hl/one",
      "cat /abs-link /hl/rel-link",
      "readlink /abs-link",
    ].join("; ");
    cleanups.push(["ml1"]);
    for (const mode of [["--rm"], ["-d", "--name", "ml1"]]) {
      const run = await env.run(["run", ...mode, multilayer, ...(mode[0] === "--rm" ? ["sh", "-c", script] : ["sleep", "1000"])]);
      const r: Result = mode[0] === "--rm" ? run : await env.run(["exec", "ml1", "sh", "-c", script]);
      expect(r).toEqual({ code: 0, stdout: "new\nsame-inode\n2\nkept\nkept\n/etc/keep\n", stderr: mode[0] === "--rm" ? expect.stringContaining("pulling") : "" });
    }
    expect((await env.run(["rm", "-f", "ml1"])).code).toBe(0);
    expect(leftovers(env)).toEqual([]);
  }, 60_000);

  test("a layer that writes into lower directories without entries for them leaves their mode and times alone (/tmp stays 1777)", async () => {
    const r = await env.run(["run", "--rm", parents, "sh", "-c", "stat -c '%n %a %Y' /tmp /opt/dir /fresh /fresh/dir; ls /opt/dir; cat /tmp/newfile"]);
    expect(r).toMatchObject({ code: 0, stdout: "/tmp 1777 1700000000\n/opt/dir 755 1700000000\n/fresh 755 0\n/fresh/dir 755 0\nf2\nold\nx\n" });
  }, 60_000);

  test("the image config and docker run's overrides: Cmd, WorkingDir, Env, -u, -w, --entrypoint, -e", async () => {
    expect((await env.run(["pull", "-q", users])).code).toBe(0);
    const run = (...args: string[]) => env.run(["run", "--rm", ...args]);
    expect(await run(users)).toEqual({ code: 0, stdout: "default cmd: uid 0 in /srv says from-image\n", stderr: "" });
    expect(await run("-u", "nobody", users, "id")).toEqual({ code: 0, stdout: "uid=65534(nobody) gid=65534(nogroup)\n", stderr: "" });
    expect(await run("-u", "1000:1000", users, "id")).toEqual({ code: 0, stdout: "uid=1000(app) gid=1000(app)\n", stderr: "" });
    expect(await run("-u", "app", users, "id")).toEqual({ code: 0, stdout: "uid=1000(app) gid=1000(app) groups=2000(extra)\n", stderr: "" });
    expect(await run("-u", "4321:99", busybox, "id")).toEqual({ code: 0, stdout: "uid=4321 gid=99\n", stderr: "" });
    expect(await run("-w", "/newdir", users, "sh", "-c", "pwd; ls /srv")).toEqual({ code: 0, stdout: "/newdir\nmarker\n", stderr: "" });
    expect(await run("--entrypoint", "/bin/echo", users, "from", "entrypoint")).toEqual({ code: 0, stdout: "from entrypoint\n", stderr: "" });
    // --entrypoint drops the image's Cmd
    expect(await run("--entrypoint", "/bin/echo", users)).toEqual({ code: 0, stdout: "\n", stderr: "" });
    const env1 = await run("-e", "KEY=V", "-e", "GREETING=over", users, "/bin/env");
    expect(env1.code).toBe(0);
    expect(env1.stdout.split("\n").filter(Boolean).sort()).toEqual(["GREETING=over", "HOME=/root", "KEY=V", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
    // a bare -e KEY removes KEY: no PATH at all, so only an absolute command runs
    const noPath = await run("-e", "PATH", users, "/bin/env");
    expect(noPath.code).toBe(0);
    expect(noPath.stdout.split("\n").filter(Boolean).sort()).toEqual(["GREETING=from-image", "HOME=/root"]);
    const unknown = await run("-u", "ghost", users, "id");
    expect(unknown).toEqual({ code: 125, stdout: "", stderr: "bunker: unable to find user ghost: no matching entries in the image's /etc/passwd\n" });
    expect(leftovers(env)).toEqual([]);
    expect(snapshotKeys(env)).toEqual([]);
  }, 60_000);

  test("the run cache never runs a removed or retagged image: tag moved to another image, rmi, prune", async () => {
    for (const ref of [busybox, multilayer]) expect((await env.run(["pull", "-q", ref])).code).toBe(0);
    expect((await env.run(["tag", busybox, "local/app:1"])).code).toBe(0);
    const hl = ["run", "--rm", "local/app:1", "cat", "/hl/one"];
    // busybox has no /hl: twice, the second answered by the cache the first wrote
    for (let i = 0; i < 2; i++) expect(await env.run(hl)).toMatchObject({ code: 1, stdout: "" });
    const cacheDir = join(env.root, "content/run-cache");
    expect(readdirSync(cacheDir).filter((f) => f.endsWith(".json")).length).toBeGreaterThan(0);
    // the tag moved to another digest (as a pull of a changed tag does): the new image runs
    expect((await env.run(["tag", multilayer, "local/app:1"])).code).toBe(0);
    for (let i = 0; i < 2; i++) expect(await env.run(hl)).toEqual({ code: 0, stdout: "linked twice\n", stderr: "" });
    expect((await env.run(["rmi", "local/app:1"])).code).toBe(0);
    const gone = await env.run(["run", "--rm", "--pull", "never", "local/app:1", "true"]);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toMatch(/not found/);
    expect((await env.run(["image", "prune"])).code).toBe(0);
    expect(existsSync(cacheDir)).toBe(false);
    // still runs after the prune (the full path, then the cache again)
    for (let i = 0; i < 2; i++) expect(await env.run(["run", "--rm", busybox, "cat", "/etc/keep"])).toEqual({ code: 0, stdout: "kept\n", stderr: "" });
    expect(leftovers(env)).toEqual([]);
    expect(snapshotKeys(env)).toEqual([]);
  }, 120_000);

  test("layers that aim outside the root (../ names, an absolute name, absolute symlinks) write inside the container's root only", async () => {
    const target = escapeTarget();
    expect(readdirSync(target)).toEqual([]);
    const r = await env.run(["run", "--rm", escape, "sh", "-c", `cat ${target}/dotdot ${target}/absolute ${target}/through-same; cat /lowlink/through-lower`]);
    expect(r).toMatchObject({
      code: 0,
      stdout: "climbed with ../\nan absolute name\nthrough a symlink of the same layer\nthrough a symlink of the layer below\n",
    });
    // nothing reached the host, and nothing landed next to the store either
    expect(readdirSync(target)).toEqual([]);
    expect(existsSync(join(env.root, "lowlink"))).toBe(false);
    expect(leftovers(env)).toEqual([]);
  }, 60_000);

  test(`a deep image (${DEEP_LAYERS + 1} layers): run --rm in the foreground and run -d through the shim read the bottom and top layers`, async () => {
    const archive = join(env.dir, "deep.tar");
    ociArchive("deep", archive, "example.com/test/deep:1");
    expect(await env.run(["load", "-i", archive])).toEqual({ code: 0, stdout: "Loaded image: example.com/test/deep:1\n", stderr: "" });
    const deep = "example.com/test/deep:1";
    // the lowerdir list would not fit a page of mount options uncompacted: the mounts must compact it
    const store = join(env.root, "snapshots/overlayfs");
    expect((DEEP_LAYERS + 1) * `${store}/${DEEP_LAYERS}/fs:`.length).toBeGreaterThan(4096);
    const expected = `kept\nlayer 1\nlayer ${DEEP_LAYERS}\n`;
    const fg = await env.run(["run", "--rm", "--pull", "never", deep, "sh", "-c", `cat /etc/keep /layers/1 /layers/${DEEP_LAYERS}`]);
    expect(fg).toEqual({ code: 0, stdout: expected, stderr: "" });
    // the namespace's shim runs in the bundle of the container it was started for: remove that
    // container first, so the shim mounts the deep image with its cwd gone (it lingers 5 s for the next)
    cleanups.push(["deep0", "deep1"]);
    expect(await env.run(["run", "-d", "--name", "deep0", busybox, "sleep", "1000"])).toMatchObject({ code: 0 });
    expect(await env.run(["rm", "-f", "deep0"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(await env.run(["run", "-d", "--name", "deep1", "--pull", "never", deep, "sleep", "1000"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(await env.run(["exec", "deep1", "cat", "/etc/keep", "/layers/1", `/layers/${DEEP_LAYERS}`])).toEqual({ code: 0, stdout: expected, stderr: "" });
    const listed = (await env.run(["exec", "deep1", "ls", "/layers"])).stdout.trim().split(/\s+/);
    expect(listed).toHaveLength(DEEP_LAYERS);
    expect(await env.run(["rm", "-f", "deep1"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(leftovers(env)).toEqual([]);
    expect(mountsOf(env)).toEqual([]);
  }, 120_000);

  test("a foreground run --rm SIGKILLed before its bundle step (its layer still mounted by the dead CLI) is listed UNKNOWN and removed by rm", async () => {
    cleanups.push(["fgk"]);
    const proc = Bun.spawn([env.bunker, ...env.globals(), "run", "--rm", "--name", "fgk", busybox, "true"], {
      env: { ...env.spawnEnv(), BUNKER_TEST_KILL_AT: "teardown:bundle" },
      stdin: "ignore", stdout: "ignore", stderr: "ignore",
    });
    await proc.exited;
    expect(proc.signalCode).toBe("SIGKILL");
    expect(snapshotKeys(env)).toHaveLength(1);
    expect(mountsOf(env).length).toBeGreaterThan(0);
    expect((await env.run(["ps", "-a"])).stdout).toMatch(new RegExp(`^fgk\\s+-\\s+UNKNOWN\\s+runc\\s+${reg.host}/test/busybox:1(\\s|$)`, "m"));
    expect(await env.run(["rm", "fgk"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(snapshotKeys(env)).toEqual([]);
    expect(mountsOf(env)).toEqual([]);
    expect(leftovers(env)).toEqual([]);
  }, 60_000);

  for (const finisher of ["rm", "ps"] as const) {
    test(`rm -f of an image container SIGKILLed between its bundle and snapshot steps is finished by the next ${finisher}`, async () => {
      const id = `td-${finisher}`;
      cleanups.push([id]);
      expect(await env.run(["run", "-d", "--name", id, busybox, "sleep", "1000"])).toMatchObject({ code: 0 });
      expect(snapshotKeys(env)).toHaveLength(1);
      expect(mountsOf(env).length).toBeGreaterThan(0);
      const proc = Bun.spawn([env.bunker, ...env.globals(), "rm", "-f", id], {
        env: { ...env.spawnEnv(), BUNKER_TEST_KILL_AT: "teardown:snapshot" },
        stdin: "ignore", stdout: "ignore", stderr: "pipe",
      });
      await proc.exited;
      expect(proc.signalCode).toBe("SIGKILL");
      // cut short after the bundle step: the record is there, and so is the writable layer
      const record = JSON.parse(readFileSync(join(env.root, "containers", env.namespace, id, "record.json"), "utf8")) as { removing: boolean; released: string[] };
      expect(record).toMatchObject({ removing: true, released: ["task", "bundle"] });
      expect(snapshotKeys(env)).toHaveLength(1);
      expect(existsSync(join(env.state, env.namespace, id))).toBe(false);

      if (finisher === "rm") expect(await env.run(["rm", id])).toEqual({ code: 0, stdout: "", stderr: "" });
      else expect(await env.run(["ps", "-a", "-q"])).toEqual({ code: 0, stdout: "", stderr: "" });
      expect(snapshotKeys(env)).toEqual([]);
      expect(mountsOf(env)).toEqual([]);
      expect(existsSync(join(env.root, "containers", env.namespace, id))).toBe(false);
      expect(leftovers(env)).toEqual([]);
      await until(async () => (await env.run(["ps", "-a", "-q"])).stdout === "", 5_000, "ps to be empty");
    }, 60_000);
  }
});
