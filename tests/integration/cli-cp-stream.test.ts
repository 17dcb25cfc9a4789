// `bunker cp` with a tar stream on one side, as a docker user pipes it, with real runc, embedded and
// under a daemon: `cp CONTAINER:PATH -` writes a tar GNU tar reads (docker's layout: the base name on
// top, owners and modes as in the container), `cp - CONTAINER:DIR` extracts GNU tar's output into a
// directory (root-owned, or the archive's owners with -a), the two pipe into each other, and hostile
// archives (".." names, absolute names, symlinks out, writes through a symlink out) are refused in one
// line with nothing changed outside the directory; the container is left running, not paused.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tarBytes, type TarWriteHeader } from "../../src/archive/tar-writer.ts";
import { BunkerEnv, type Result } from "../support/cli-harness.ts";
import { describeEachMode } from "../support/cli-modes.ts";
import { describeWith } from "../support/require.ts";

async function collect(proc: Bun.Subprocess<"ignore" | Blob, "pipe", "pipe">): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).arrayBuffer(), new Response(proc.stderr).text()]);
  return { code, stdout: new Uint8Array(stdout), stderr };
}

describeWith(["root", "bin:runc", "bin:tar"], "bunker cp with - (tar streams)", () => {
  let env: BunkerEnv;
  beforeAll(async () => {
    env = await BunkerEnv.create("bunker-cptar-");
  }, 60_000);
  afterAll(async () => {
    await env?.dispose();
  }, 60_000);

  /** bunker with `input` on stdin, stdout kept as bytes. */
  const bunker = async (args: string[], input?: Uint8Array): Promise<{ code: number; stdout: Uint8Array; stderr: string }> =>
    await collect(Bun.spawn([env.bunker, ...env.globals(), ...args], { env: env.spawnEnv(), stdin: input ? new Blob([input]) : "ignore", stdout: "pipe", stderr: "pipe" }));
  const tar = async (args: string[], input?: Uint8Array) =>
    await collect(Bun.spawn(["tar", ...args], { stdin: input ? new Blob([input]) : "ignore", stdout: "pipe", stderr: "pipe" }));
  const sh = async (id: string, script: string): Promise<Result> => await env.run(["exec", id, "sh", "-c", script]);

  describeEachMode(() => env, (mode) => {
    const id = `cptar-${mode}`;
    beforeAll(async () => {
      expect((await env.run(["run", "-d", "--rootfs", env.rootfs, id, "sleep", "1000"])).code).toBe(0);
    }, 60_000);

    test("CONTAINER:PATH - writes a tar that GNU tar reads, named and owned as in the container", async () => {
      expect((await sh(id, `rm -rf /tmp/out-${mode} && mkdir -p /tmp/out-${mode}/sub && echo one > /tmp/out-${mode}/a && echo two > /tmp/out-${mode}/sub/b && chown -R 1234:4321 /tmp/out-${mode}/sub && chmod 0751 /tmp/out-${mode}/sub && ln -s ../a /tmp/out-${mode}/sub/l`)).code).toBe(0);
      const dir = await bunker(["cp", `${id}:/tmp/out-${mode}`, "-"]);
      expect([dir.code, dir.stderr]).toEqual([0, ""]);
      const listing = await tar(["-tv", "--numeric-owner", "-f", "-"], dir.stdout);
      expect(listing.code).toBe(0);
      const lines = new TextDecoder().decode(listing.stdout).trim().split("\n");
      expect(lines.map((l) => l.split(/\s+/).slice(5).join(" "))).toEqual([`out-${mode}/`, `out-${mode}/a`, `out-${mode}/sub/`, `out-${mode}/sub/b`, `out-${mode}/sub/l -> ../a`]);
      expect(lines[2]).toMatch(/^drwxr-x--x 1234\/4321 /);
      const back = join(env.dir, `back-${mode}`);
      mkdirSync(back);
      expect((await tar(["-x", "-C", back, "-f", "-"], dir.stdout)).code).toBe(0);
      expect(readFileSync(join(back, `out-${mode}`, "sub", "b"), "utf8")).toBe("two\n");
      // a file is a one-entry tar of its base name; DIR/. is its contents under "."
      const file = await bunker(["cp", `${id}:/etc/passwd`, "-"]);
      expect(new TextDecoder().decode((await tar(["-t", "-f", "-"], file.stdout)).stdout)).toBe("passwd\n");
      const contents = await bunker(["cp", `${id}:/tmp/out-${mode}/.`, "-"]);
      expect(new TextDecoder().decode((await tar(["-t", "-f", "-"], contents.stdout)).stdout).split("\n").slice(0, 2)).toEqual(["./", "./a"]);
      const missing = await bunker(["cp", `${id}:/no/such`, "-"]);
      expect([missing.code, missing.stderr, missing.stdout.length]).toEqual([1, "bunker: /no/such: no such file or directory in the container\n", 0]);
    }, 60_000);

    test("- CONTAINER:DIR extracts GNU tar's output, root-owned (the archive's owners with -a); the two pipe into each other", async () => {
      const host = join(env.dir, `host-${mode}`);
      mkdirSync(join(host, "d"), { recursive: true });
      writeFileSync(join(host, "d", "f.txt"), "from the host\n", { mode: 0o604 });
      chownSync(join(host, "d", "f.txt"), 1000, 1000);
      const archive = (await tar(["-C", host, "-c", "-f", "-", "."])).stdout;
      expect((await sh(id, `mkdir -p /tmp/in-${mode} /tmp/keep-${mode}`)).code).toBe(0);
      const plain = await bunker(["cp", "-", `${id}:/tmp/in-${mode}`], archive);
      expect([plain.code, plain.stderr, plain.stdout.length]).toEqual([0, "", 0]);
      expect((await sh(id, `cat /tmp/in-${mode}/d/f.txt; stat -c '%u:%g %a' /tmp/in-${mode}/d/f.txt`)).stdout).toBe("from the host\n0:0 604\n");
      expect((await bunker(["cp", "-a", "-", `${id}:/tmp/keep-${mode}`], archive)).code).toBe(0);
      expect((await sh(id, `stat -c '%u:%g' /tmp/keep-${mode}/d/f.txt`)).stdout).toBe("1000:1000\n");
      // docker cp c:/x - | docker cp - c:/y
      const piped = Bun.spawnSync(["sh", "-c", `"$0" "$@" cp ${id}:/tmp/in-${mode}/d - | "$0" "$@" cp - ${id}:/tmp/keep-${mode}`, env.bunker, ...env.globals()], { env: env.spawnEnv() });
      expect([piped.exitCode, piped.stderr.toString()]).toEqual([0, ""]);
      expect((await sh(id, `cat /tmp/keep-${mode}/d/f.txt`)).stdout).toBe("from the host\n");
      // the extraction point must be there and be a directory, checked before stdin is read
      const nowhere = await bunker(["cp", "-", `${id}:/tmp/nowhere-${mode}`], archive);
      expect([nowhere.code, nowhere.stderr]).toEqual([1, `bunker: /tmp/nowhere-${mode}: no such directory in the container\n`]);
      const onFile = await bunker(["cp", "-", `${id}:/etc/passwd`], archive);
      expect([onFile.code, onFile.stderr]).toEqual([1, "bunker: /etc/passwd: extraction point is not a directory\n"]);
      const both = await bunker(["cp", "-", "-"]);
      expect([both.code, both.stderr]).toEqual([1, "bunker: cp: one of SRC and DST must be CONTAINER:PATH\n"]);
    }, 60_000);

    test("hostile archives: one line, exit 1, nothing changed outside the directory; the container keeps running", async () => {
      const file = (name: string) => ({ header: { name, type: "file", mode: 0o644 } as TarWriteHeader, body: new TextEncoder().encode("pwned\n") });
      const symlink = (name: string, linkname: string) => ({ header: { name, type: "symlink", linkname } as TarWriteHeader });
      expect((await sh(id, `mkdir -p /tmp/target-${mode} /tmp/victim-${mode} && echo safe > /tmp/victim-${mode}/file && ln -sfn /tmp/victim-${mode} /tmp/target-${mode}/planted`)).code).toBe(0);
      const hostVictim = join(env.dir, `host-victim-${mode}`);
      writeFileSync(hostVictim, "safe\n");
      const cases: [string, Uint8Array, RegExp][] = [
        ["..", tarBytes([file("fine"), file(`../victim-${mode}/file`)]), /^bunker: tar entry "\.\.\/victim-.*\/file": outside of the target directory\n$/],
        ["absolute", tarBytes([file(hostVictim)]), /^bunker: tar entry ".*host-victim-.*": absolute names are refused\n$/],
        ["symlink out", tarBytes([symlink("up", "../../..")]), /^bunker: tar entry "up": symlink to "\.\.\/\.\.\/\.\." points outside of the target directory\n$/],
        ["through a planted symlink", tarBytes([file("planted/file")]), /^bunker: tar entry "planted\/file": goes through a symlink out of \/tmp\/target-/],
        ["through its own symlink", tarBytes([symlink("evil", `/tmp/victim-${mode}`), file("evil/file")]), /^bunker: tar entry "evil\/file": goes through a symlink out of \/tmp\/target-/],
      ];
      for (const [what, archive, message] of cases) {
        const r = await bunker(["cp", "-", `${id}:/tmp/target-${mode}`], archive);
        expect([what, r.code]).toEqual([what, 1]);
        expect(r.stderr).toMatch(message);
      }
      expect((await sh(id, `cat /tmp/victim-${mode}/file; ls /tmp/victim-${mode}`)).stdout).toBe(`safe\nfile\n`);
      expect(readFileSync(hostVictim, "utf8")).toBe("safe\n");
      // the lexical refusals wrote nothing at all; the first entry of ".." ("fine") is not there
      expect((await sh(id, `ls /tmp/target-${mode}`)).stdout).not.toContain("fine");
      expect((await env.run(["ps"])).stdout).toMatch(new RegExp(`^${id}\\s+\\d+\\s+RUNNING\\b`, "m"));
      // nothing spooled is left in TMPDIR
      expect(existsSync(env.tmp) ? readdirSync(env.tmp).filter((f) => f.startsWith("bunker-cp-")) : []).toEqual([]);
      expect(statSync(hostVictim).size).toBe(5);
    }, 60_000);
    return async () => await env.run(["rm", "-f", id]);
  });
});
