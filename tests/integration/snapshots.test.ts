// The snapshot store against the real kernel (root): overlayfs stacks with whiteouts and opaque
// dirs, container layers that stay private, a 130-layer and a 500-layer image (beyond podman 4.3's
// 128 and at overlayfs's OVL_MAX_STACK), two processes unpacking one image, a SIGKILLed unpack, and
// the native copy snapshotter chosen automatically when the store lives on overlayfs. Layers are
// written by hand in `apply` (the tar applier is src/archive's business).
import { afterAll, beforeAll, expect, test } from "bun:test";
import * as fs from "node:fs";
import { join } from "node:path";
import { chainIds, openSnapshotter, type Snapshotter, type WhiteoutMode } from "../../src/snapshots/index.ts";
import { sys } from "../../src/sys/index.ts";
import { describeWith } from "../support/require.ts";

const S_IFCHR = 0o020000;
const CHILD = join(import.meta.dir, "../support/snapshots-child.ts");

function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => (l.split(" ")[4] ?? "").replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
}

function diffIds(n: number, salt: string): string[] {
  return Array.from({ length: n }, (_, i) => `sha256:${new Bun.CryptoHasher("sha256").update(`${salt}-${i}`).digest("hex")}`);
}

/** Deletes `rel` the way each mode expresses it: an overlay whiteout, or a real removal. */
function whiteout(dir: string, rel: string, mode: WhiteoutMode): void {
  if (mode === "overlay") sys().mknod(join(dir, rel), S_IFCHR | 0o000, 0, 0);
  else fs.rmSync(join(dir, rel), { recursive: true });
}

/** Replaces a directory's lower contents: overlay's opaque xattr, or emptying it. */
function opaque(dir: string, rel: string, mode: WhiteoutMode): void {
  if (mode === "overlay") {
    fs.mkdirSync(join(dir, rel), { recursive: true });
    sys().lsetxattr(join(dir, rel), "trusted.overlay.opaque", new TextEncoder().encode("y"));
  } else {
    fs.rmSync(join(dir, rel), { recursive: true, force: true });
    fs.mkdirSync(join(dir, rel));
  }
}

/** Three layers: a base, one that deletes and replaces, one that overwrites; returns the top chain ID. */
async function unpackImage(s: Snapshotter, salt: string): Promise<string[]> {
  const ids = chainIds(diffIds(3, salt));
  await s.unpack(ids[0]!, undefined, async (dir) => {
    fs.writeFileSync(join(dir, "a"), "a0");
    fs.writeFileSync(join(dir, "gone"), "doomed");
    fs.mkdirSync(join(dir, "opq"));
    fs.writeFileSync(join(dir, "opq/old"), "old");
    fs.mkdirSync(join(dir, "keep"));
    fs.writeFileSync(join(dir, "keep/x"), "x");
    sys().lsetxattr(join(dir, "keep/x"), "user.colour", new TextEncoder().encode("blue"));
    sys().lsetxattr(join(dir, "keep/x"), "trusted.bunker", new TextEncoder().encode("t"));
    sys().mknod(join(dir, "null"), S_IFCHR | 0o666, 1, 3);
    fs.linkSync(join(dir, "keep/x"), join(dir, "keep/x-link"));
  });
  await s.unpack(ids[1]!, ids[0], async (dir, mode) => {
    whiteout(dir, "gone", mode);
    opaque(dir, "opq", mode);
    fs.writeFileSync(join(dir, "opq/new"), "new");
    fs.writeFileSync(join(dir, "b"), "b1");
  });
  await s.unpack(ids[2]!, ids[1], async (dir) => {
    fs.writeFileSync(join(dir, "a"), "a2");
  });
  return ids;
}

function expectImageView(rootfs: string): void {
  expect(fs.readFileSync(join(rootfs, "a"), "utf8")).toBe("a2");
  expect(fs.readFileSync(join(rootfs, "b"), "utf8")).toBe("b1");
  expect(fs.existsSync(join(rootfs, "gone"))).toBe(false);
  expect(fs.readdirSync(join(rootfs, "opq")).sort()).toEqual(["new"]);
  expect(fs.readFileSync(join(rootfs, "keep/x"), "utf8")).toBe("x");
}

function activeUpper(s: Snapshotter, key: string): string {
  return join(s.dir, "by-key", fs.readlinkSync(join(s.dir, "by-key", encodeURIComponent(key))), "fs");
}

describeWith(["root"], "snapshots (overlayfs)", () => {
  let tmp: string;
  let s: Snapshotter;

  beforeAll(() => {
    tmp = fs.mkdtempSync("/tmp/bunker-snapshots-");
    s = openSnapshotter(join(tmp, "root"));
  });
  afterAll(() => {
    for (const m of mountsUnder(tmp).reverse()) sys().unmountAll(m);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test("auto picks overlayfs on ext4 as root", () => {
    expect(s.kind).toBe("overlayfs");
    expect(s.fallbackReason).toBeUndefined();
    expect(s.dir).toBe(join(tmp, "root/snapshots/overlayfs"));
  });

  test("the merged view, whiteouts and opaque dirs; writes go only to the container's upper; two containers are isolated", async () => {
    const ids = await unpackImage(s, "merge");
    expect(ids.every((id) => s.has(id))).toBe(true);
    await s.prepare("default/one", ids[2]!);
    await s.prepare("default/two", ids[2]!);
    const one = join(tmp, "one");
    const two = join(tmp, "two");
    fs.mkdirSync(one);
    fs.mkdirSync(two);
    s.mount("default/one", one);
    s.mount("default/two", two);
    expectImageView(one);
    expectImageView(two);

    fs.writeFileSync(join(one, "a"), "changed by one");
    fs.writeFileSync(join(one, "fresh"), "one only");
    fs.rmSync(join(one, "b"));
    expect(fs.readFileSync(join(activeUpper(s, "default/one"), "fresh"), "utf8")).toBe("one only");
    expect(fs.readFileSync(join(activeUpper(s, "default/one"), "a"), "utf8")).toBe("changed by one");
    expectImageView(two); // the other container and the committed layers are untouched
    expect(fs.existsSync(join(two, "fresh"))).toBe(false);
    expect(fs.readdirSync(activeUpper(s, "default/two"))).toEqual([]);

    expect(s.list().active.map((a) => a.key).sort()).toEqual(["default/one", "default/two"]);
    expect(s.list().active.find((a) => a.key === "default/one")?.mountedAt).toEqual([one]);
    await s.remove("default/one");
    await s.remove("default/two");
    await s.remove("default/two"); // idempotent
    expect(mountsUnder(tmp)).toEqual([]);
    expect(fs.readdirSync(one)).toEqual([]);
    expect(s.list().active).toEqual([]);
    expect(fs.readdirSync(join(s.dir, "by-key"))).toEqual([]);
    expect(fs.readdirSync(join(s.dir, "tmp"))).toEqual([]);
  });

  test("prune: removeCommitted refuses a parent with a child or a container, then removes the stack top-down", async () => {
    const ids = await unpackImage(s, "prune");
    await s.prepare("default/p", ids[2]!);
    await expect(s.removeCommitted(ids[2]!)).rejects.toThrow(/parent of 1 snapshot\(s\): container layer "default\/p"/);
    await expect(s.removeCommitted(ids[1]!)).rejects.toThrow(new RegExp(`parent of 1 snapshot\\(s\\): ${ids[2]}`));
    await s.remove("default/p");
    const before = fs.readdirSync(s.dir).filter((n) => /^\d+$/.test(n)).length;
    for (const id of [...ids].reverse()) await s.removeCommitted(id);
    await s.removeCommitted(ids[0]!); // idempotent
    expect(ids.some((id) => s.has(id))).toBe(false);
    expect(fs.readdirSync(s.dir).filter((n) => /^\d+$/.test(n)).length).toBe(before - 3);
  });

  test("a 130-layer image mounts (its absolute options would not fit a page) and cwd is restored", async () => {
    const ids = chainIds(diffIds(130, "deep"));
    for (const [i, id] of ids.entries()) {
      await s.unpack(id, ids[i - 1], async (dir) => {
        fs.writeFileSync(join(dir, `layer-${i}`), String(i));
        fs.writeFileSync(join(dir, "top"), String(i));
      });
    }
    const absoluteLength = ids.length * `${s.dir}/123/fs:`.length;
    expect(absoluteLength).toBeGreaterThan(4096);
    await s.prepare("default/deep", ids.at(-1)!);
    const rootfs = join(tmp, "deep");
    fs.mkdirSync(rootfs);
    const cwd = process.cwd();
    s.mount("default/deep", rootfs);
    expect(process.cwd()).toBe(cwd);
    expect(fs.readFileSync(join(rootfs, "top"), "utf8")).toBe("129");
    expect(fs.readdirSync(rootfs).filter((n) => n.startsWith("layer-")).length).toBe(130);
    await s.remove("default/deep");
    expect(mountsUnder(rootfs)).toEqual([]);
  });

  test("500 layers (OVL_MAX_STACK) mount; a 501st is refused naming the limit", async () => {
    const ids = chainIds(diffIds(501, "max"));
    for (const [i, id] of ids.entries()) {
      await s.unpack(id, ids[i - 1], async (dir) => fs.writeFileSync(join(dir, `l${i}`), ""));
    }
    await s.prepare("default/max", ids[499]!);
    const rootfs = join(tmp, "max");
    fs.mkdirSync(rootfs);
    s.mount("default/max", rootfs);
    expect(fs.readdirSync(rootfs).length).toBe(500);
    await s.remove("default/max");
    await expect(s.prepare("default/too-deep", ids[500]!)).rejects.toThrow("image " + ids[500] + " has 501 layers; overlayfs stacks at most 500 lower directories (the kernel's OVL_MAX_STACK)");
    expect(s.list().active).toEqual([]);
  }, 120_000);

  test("two processes unpacking the same image extract each layer once", async () => {
    const log = join(tmp, "concurrent.log");
    const ids = diffIds(4, "race");
    const root = join(tmp, "root");
    const procs = [0, 1].map(() => Bun.spawn(["bun", CHILD, root, "overlayfs", log, "write", ...ids], { stdout: "pipe", stderr: "pipe" }));
    try {
      const outs = await Promise.all(procs.map(async (p) => [await p.exited, await new Response(p.stdout).text(), await new Response(p.stderr).text()] as const));
      for (const [code, out, err] of outs) expect({ code, out, err }).toEqual({ code: 0, out: "done\n", err: "" });
    } finally {
      for (const p of procs) if (p.exitCode === null) process.kill(p.pid, "SIGKILL");
    }
    const applied = fs.readFileSync(log, "utf8").trim().split("\n");
    expect(applied.map((l) => l.split(" ")[1]).sort()).toEqual(["0", "1", "2", "3"]);
    expect(chainIds(ids).every((id) => s.has(id))).toBe(true);
  }, 60_000);

  test("a SIGKILLed unpack commits nothing; cleanup reclaims its temp and the layer unpacks again", async () => {
    const log = join(tmp, "killed.log");
    const [diffId] = diffIds(1, "killed");
    const [id] = chainIds([diffId!]);
    const child = Bun.spawn(["bun", CHILD, join(tmp, "root"), "overlayfs", log, "hang", diffId!], { stdout: "ignore", stderr: "inherit" });
    try {
      for (let i = 0; i < 200 && !(fs.existsSync(log) && fs.readFileSync(log, "utf8").includes("started")); i++) await Bun.sleep(25);
      expect(fs.readFileSync(log, "utf8")).toBe(`started ${child.pid}\n`);
      expect(await s.cleanup()).toBe(0); // the writer is alive: its temp stays
      expect(fs.readdirSync(join(s.dir, "tmp")).length).toBe(1);
    } finally {
      process.kill(child.pid, "SIGKILL");
      await child.exited;
    }
    expect(s.has(id!)).toBe(false);
    expect(s.list().committed.some((c) => c.chainId === id)).toBe(false);
    expect(await s.cleanup()).toBe(1);
    expect(fs.readdirSync(join(s.dir, "tmp"))).toEqual([]);
    expect(await s.unpack(id!, undefined, async (dir) => fs.writeFileSync(join(dir, "ok"), ""))).toBe(true);
    expect(s.has(id!)).toBe(true);
  }, 30_000);
});

describeWith(["root"], "snapshots (native, store on overlayfs)", () => {
  let tmp: string;
  let s: Snapshotter;

  beforeAll(() => {
    tmp = fs.mkdtempSync("/tmp/bunker-snapshots-native-");
    for (const d of ["lower", "upper", "work", "merged"]) fs.mkdirSync(join(tmp, d));
    sys().mount("overlay", join(tmp, "merged"), "overlay", 0, `lowerdir=${tmp}/lower,upperdir=${tmp}/upper,workdir=${tmp}/work`);
    s = openSnapshotter(join(tmp, "merged/root"));
  });
  afterAll(() => {
    for (const m of mountsUnder(tmp).reverse()) sys().unmountAll(m);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test("auto falls back to native and says why; asking for overlayfs is refused", () => {
    expect(s.kind).toBe("native");
    expect(s.fallbackReason).toContain("is on overlayfs");
    expect(() => openSnapshotter(join(tmp, "merged/root"), "overlayfs")).toThrow(/the overlayfs snapshotter cannot work here: .* is on overlayfs/);
  });

  test("layers are full copies with deletions applied; the rootfs is a bind mount of the container's copy; xattrs, hardlinks and devices survive the copies", async () => {
    const ids = await unpackImage(s, "native");
    await s.prepare("default/n1", ids[2]!);
    await s.prepare("default/n2", ids[2]!);
    const one = join(tmp, "n1");
    fs.mkdirSync(one);
    s.mount("default/n1", one);
    expectImageView(one); // includes the xattrs (user.* and trusted.*), the hardlink and the device node

    fs.writeFileSync(join(one, "fresh"), "n1 only");
    expect(fs.existsSync(join(activeUpper(s, "default/n2"), "fresh"))).toBe(false);
    for (const c of s.list().committed) expect(fs.existsSync(join(s.dir, "by-chain", fs.readlinkSync(join(s.dir, "by-chain", c.chainId)), "fs/fresh"))).toBe(false);

    await s.remove("default/n1");
    await s.remove("default/n2");
    expect(mountsUnder(one)).toEqual([]);
    expect(s.list().active).toEqual([]);
    expect(fs.readdirSync(join(s.dir, "tmp"))).toEqual([]);
  });
});
