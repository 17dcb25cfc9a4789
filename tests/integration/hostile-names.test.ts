// Hostile names and paths at the manager's doors (the CLI and the daemon's API): namespaces and
// ids that try to leave the state dir, a NUL byte (only the API can carry one), rootfs paths that
// are symlinks to something else, a bundle path that already exists as a symlink. Each is one
// clear error, and nothing is made on disk (or outside it).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeWith } from "../support/require.ts";
import { BUNKER_RUNTIME } from "../support/cli-harness.ts";
import { CrashEnv, createTask } from "../support/crash-harness.ts";

const R = ["--runtime", BUNKER_RUNTIME];

describeWith(["root", "bin:runc"], "hostile names and paths (CLI and daemon API)", () => {
  let env: CrashEnv;
  beforeAll(async () => {
    env = await CrashEnv.make("bunker-hostile-");
  }, 60_000);
  afterAll(async () => {
    await env?.dispose();
  }, 60_000);

  async function refused(args: string[], message: RegExp): Promise<void> {
    const r = await env.run(args);
    const lines = r.stderr.split("\n").filter(Boolean);
    // 125: refused before anything ran (run); rm and exec report a failed command as 1
    expect({ failed: r.code === 125 || r.code === 1, stdout: r.stdout, lines: lines.length }).toEqual({ failed: true, stdout: "", lines: 1 });
    expect(lines[0]).toMatch(/^bunker: /);
    expect(lines[0]).toMatch(message);
    expect(env.leftovers()).toEqual([]);
  }

  test("namespaces and ids that are not identifiers: one line each, nothing on disk", async () => {
    for (const n of ["../x", "a/b", "..", ".", "x".repeat(77), "ünï"]) {
      await refused(["-n", n, "run", ...R, "--rootfs", env.rootfs, "ok", "true"], /namespace .*(must match|longer than 76)/);
    }
    await refused(["-n", "", "run", ...R, "--rootfs", env.rootfs, "ok", "true"], /namespace must not be empty/);
    for (const id of ["a/b", "..", ".", "../../etc", "x/../../y"]) await refused(["run", ...R, "--rootfs", env.rootfs, id, "true"], /container id .* must match/);
    for (const id of ["a/b", ".."]) {
      await refused(["rm", "-f", id], /container id .* must match/);
      await refused(["exec", id, "true"], /container id .* must match/);
    }
  }, 60_000);

  test("a NUL byte in an id or namespace, through the daemon's API", async () => {
    const daemon = await env.startDaemon();
    const { api, client } = await env.api();
    const tries: [string, string, RegExp][] = [
      [env.namespace, "a\0b", /container id .* must match/],
      ["a\0b", "ok", /namespace .* must match/],
      [env.namespace, "../../x", /container id .* must match/],
      ["..", "ok", /namespace .* must match/],
    ];
    for (const [ns, id, message] of tries) {
      const err = await createTask(env, api, ns, id, { runtime: BUNKER_RUNTIME, args: ["true"] }).then(() => undefined, (e: unknown) => e);
      expect(String(err)).toMatch(message);
      expect(String(err).split("\n")).toHaveLength(1);
      await expect(api.delete({ namespace: ns, id, force: true })).rejects.toThrow(/must match/);
    }
    expect(env.leftovers()).toEqual([]);
    client.close();
    daemon.proc.kill("SIGKILL");
    await daemon.proc.exited;
  }, 60_000);

  test("rootfs symlinks: to a file, dangling; one line, nothing on disk", async () => {
    const file = join(env.dir, "a-file");
    writeFileSync(file, "not a dir");
    symlinkSync(file, join(env.dir, "to-file"));
    symlinkSync(join(env.dir, "nowhere"), join(env.dir, "dangling"));
    await refused(["run", ...R, "--rootfs", join(env.dir, "to-file"), "ok", "true"], /is not a directory/);
    await refused(["run", ...R, "--rootfs", join(env.dir, "dangling"), "ok", "true"], /does not exist/);
  }, 60_000);

  test("a bundle path that already exists as a symlink is refused, and its target left alone", async () => {
    const outside = join(env.dir, "outside");
    mkdirSync(outside);
    writeFileSync(join(outside, "keep"), "mine");
    const nsDir = join(env.state, env.namespace);
    mkdirSync(nsDir, { recursive: true });
    symlinkSync(outside, join(nsDir, "evil"));
    const r = await env.run(["run", ...R, "--rootfs", env.rootfs, "evil", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr.split("\n").filter(Boolean)).toEqual([expect.stringMatching(/^bunker: .*evil.* already exists/)]);
    expect(readdirSync(outside)).toEqual(["keep"]);
    expect(readdirSync(nsDir)).toEqual(["evil"]);
    expect(readdirSync(env.root).flatMap((n) => readdirSync(join(env.root, n)))).toEqual([]);
  }, 60_000);
});
