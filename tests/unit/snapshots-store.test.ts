// The snapshot store without root: its metadata index, crash leftovers and cleanup, idempotence
// and refusals, and the mounts it asks for, over FakeSyscalls (flock delegated to the real one
// where a test needs a lock another holder keeps).
import { afterEach, beforeEach, expect, test } from "bun:test";
import * as fs from "node:fs";
import { join } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../src/errdefs.ts";
import { chainIds, openSnapshotter, type Snapshotter } from "../../src/snapshots/index.ts";
import { encodeKey, lockNameOfTemp, StoreLayout, writeSmall } from "../../src/snapshots/layout.ts";
import { tryLock } from "../../src/sys/filelock.ts";
import { FakeSyscalls, MS, setSys, sys } from "../../src/sys/index.ts";

const real = sys();
let fake: FakeSyscalls;
let tmp: string;

beforeEach(() => {
  fake = new FakeSyscalls();
  fake.on("flock", (fd, op) => real.flock(fd, op));
  setSys(fake);
  tmp = fs.mkdtempSync("/tmp/bunker-snapshots-unit-");
});
afterEach(() => {
  setSys(undefined);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const ids = (n: number, salt = "l") => chainIds(Array.from({ length: n }, (_, i) => `sha256:${new Bun.CryptoHasher("sha256").update(`${salt}${i}`).digest("hex")}`));

async function unpackAll(s: Snapshotter, chain: string[]): Promise<void> {
  for (const [i, id] of chain.entries()) await s.unpack(id, chain[i - 1], async (dir) => fs.writeFileSync(join(dir, `f${i}`), String(i)));
}

test("keys become one safe file name; temps carry the lock their writer holds", () => {
  expect(encodeKey("default/web.1")).toBe("default%2Fweb%2E1");
  expect(encodeKey("..")).toBe("%2E%2E");
  expect(() => encodeKey("")).toThrow(InvalidArgumentError);
  expect(() => encodeKey("a\0b")).toThrow(InvalidArgumentError);
  expect(() => encodeKey("x".repeat(201))).toThrow(/too long/);
  expect(lockNameOfTemp(`chain.sha256:${"a".repeat(64)}.0123abcd`)).toBe(`chain.sha256:${"a".repeat(64)}`);
  expect(lockNameOfTemp("key.default%2Fc1.ff00")).toBe("key.default%2Fc1");
  expect(lockNameOfTemp("stray")).toBeUndefined();
});

test("auto picks overlayfs when the test mount works, native when it fails (saying why); an explicit overlayfs is refused then", () => {
  expect(openSnapshotter(join(tmp, "a")).kind).toBe("overlayfs");
  expect(fake.callsOf("mount")[0]?.[2]).toBe("overlay");
  expect(fake.callsOf("unmountAll").length).toBe(1); // the probe is taken down
  fake.fail("mount", "EPERM");
  const s = openSnapshotter(join(tmp, "b"));
  expect(s.kind).toBe("native");
  expect(s.fallbackReason).toMatch(/^a test overlay mount failed: mount .*: EPERM/);
  expect(() => openSnapshotter(join(tmp, "c"), "overlayfs")).toThrow(FailedPreconditionError);
  expect(fs.readdirSync(join(tmp, "b/snapshots")).sort()).toEqual(["native"]); // no probe dir left
  expect(() => openSnapshotter("relative/root")).toThrow(/is not absolute/);
});

test("the index: numbered dirs with chain, parent and ancestors; by-chain links; unpack of a committed chain calls no apply", async () => {
  const s = openSnapshotter(tmp, "overlayfs");
  const chain = ids(3);
  await unpackAll(s, chain);
  const layout = new StoreLayout(s.dir);
  expect(layout.committed(chain[2]!)).toEqual({ id: "3", chainId: chain[2]!, parent: chain[1]!, ancestors: ["2", "1"], targets: [] });
  expect(fs.readlinkSync(join(s.dir, "by-chain", chain[0]!))).toBe("../1");
  const byChain = (a: { chainId: string }, b: { chainId: string }) => (a.chainId < b.chainId ? -1 : 1);
  expect(s.list().committed.sort(byChain)).toEqual([{ chainId: chain[0]! }, { chainId: chain[1]!, parent: chain[0]! }, { chainId: chain[2]!, parent: chain[1]! }].sort(byChain));
  let called = false;
  expect(await s.unpack(chain[1]!, chain[0], async () => void (called = true))).toBe(false);
  expect(called).toBe(false);
  await expect(s.unpack(ids(1, "orphan")[0]!, ids(1, "missing")[0], async () => undefined)).rejects.toThrow(NotFoundError);
  await expect(s.unpack("sha256:nothex", undefined, async () => undefined)).rejects.toThrow(InvalidArgumentError);
  await expect(s.unpack(chain[0]!, chain[0], async () => undefined)).rejects.toThrow(/its own parent/);
});

test("a failed apply commits nothing and leaves no temp", async () => {
  const s = openSnapshotter(tmp, "overlayfs");
  const [id] = ids(1);
  await expect(s.unpack(id!, undefined, async (dir) => {
    fs.writeFileSync(join(dir, "half"), "");
    throw new Error("truncated layer");
  })).rejects.toThrow("truncated layer");
  expect(s.has(id!)).toBe(false);
  expect(fs.readdirSync(join(s.dir, "tmp"))).toEqual([]);
  expect(fs.readdirSync(s.dir).filter((n) => /^\d+$/.test(n))).toEqual([]);
});

test("overlay mounts: absolute options for short stacks, relative ones from inside the store for 130 layers, cwd restored", async () => {
  const s = openSnapshotter(tmp, "overlayfs");
  fake.calls.length = 0;
  const short = ids(2, "s");
  await unpackAll(s, short);
  await s.prepare("default/short", short[1]!);
  s.mount("default/short", join(tmp, "rootfs-short"));
  const [source, target, fstype, flags, data] = fake.callsOf("mount")[0]!;
  expect([source, target, fstype, flags]).toEqual(["overlay", join(tmp, "rootfs-short"), "overlay", 0]);
  expect(data).toBe(`workdir=${s.dir}/3/work,upperdir=${s.dir}/3/fs,lowerdir=${s.dir}/2/fs:${s.dir}/1/fs`);
  expect(s.mounts("default/short")).toEqual([{ type: "overlay", source: "overlay", options: [`workdir=${s.dir}/3/work`, `upperdir=${s.dir}/3/fs`, `lowerdir=${s.dir}/2/fs:${s.dir}/1/fs`] }]);

  const deep = ids(130, "d");
  await unpackAll(s, deep);
  await s.prepare("default/deep", deep[129]!);
  let cwdAtMount = "";
  fake.on("mount", () => void (cwdAtMount = process.cwd()));
  const before = process.cwd();
  s.mount("default/deep", "rootfs-deep"); // a relative target is resolved before the chdir
  expect(cwdAtMount).toBe(s.dir);
  expect(process.cwd()).toBe(before);
  const deepCall = fake.callsOf("mount").at(-1)!;
  expect(deepCall[1]).toBe(join(before, "rootfs-deep"));
  expect(deepCall[4]).toStartWith("workdir=134/work,upperdir=134/fs,lowerdir=133/fs:132/fs:");
  expect(deepCall[4]).toEndWith(":5/fs:4/fs");
  // the mount list stays absolute, as containerd's; linux/mount.ts compacts it when the shim mounts it
  const listed = s.mounts("default/deep")[0]!.options.join(",");
  expect(listed.length).toBeGreaterThan(4096);
  expect(listed).toContain(`upperdir=${s.dir}/134/fs`);
}, 60_000); // 130 committed snapshots on disk: seconds where a file create takes 3-5 ms (this machine under load)

test("a failed mount is not recorded as a target; remove unmounts recorded targets and deletes the layer", async () => {
  const s = openSnapshotter(tmp, "overlayfs");
  const chain = ids(1);
  await unpackAll(s, chain);
  await s.prepare("default/c", chain[0]!);
  fake.fail("mount", "EINVAL");
  expect(() => s.mount("default/c", "/nowhere")).toThrow(/EINVAL/);
  expect(s.list().active).toEqual([{ key: "default/c", parent: chain[0]!, mountedAt: [] }]);
  fake.restore("mount");
  s.mount("default/c", "/run/x/rootfs");
  s.mount("default/c", "/run/x/rootfs"); // recorded once
  expect(s.list().active[0]?.mountedAt).toEqual(["/run/x/rootfs"]);
  fake.calls.length = 0;
  await s.remove("default/c");
  expect(fake.callsOf("unmountAll")).toEqual([["/run/x/rootfs"]]);
  expect(s.list().active).toEqual([]);
  expect(fs.readdirSync(join(s.dir, "locks")).some((n) => n.startsWith("key."))).toBe(false);
  await s.remove("default/c"); // idempotent
  expect(() => s.mount("default/c", "/run/x/rootfs")).toThrow(NotFoundError);
});

test("a deferred remove unmounts and unindexes at once, leaves the tree as trash; sweepTrash deletes it, claiming each entry once; cleanup reclaims a dead sweeper's", async () => {
  const s = openSnapshotter(tmp, "overlayfs");
  const layout = new StoreLayout(s.dir);
  const chain = ids(1);
  await unpackAll(s, chain);
  await s.prepare("default/d", chain[0]!);
  s.mount("default/d", "/run/d/rootfs");
  fs.writeFileSync(join(s.dir, layout.numbers().sort().at(-1)!, "fs", "written"), "by the container");
  fake.calls.length = 0;
  await s.remove("default/d", { defer: true });
  expect(fake.callsOf("unmountAll")).toEqual([["/run/d/rootfs"]]);
  expect(s.list().active).toEqual([]);
  expect(layout.numbers()).toHaveLength(1); // only the committed layer is numbered
  const trash = fs.readdirSync(layout.tmp);
  expect(trash).toEqual([expect.stringMatching(/^trash\.[0-9a-f]{32}$/)]);
  expect(fs.existsSync(join(layout.tmp, trash[0]!, "fs", "written"))).toBe(true);
  // the same key can be prepared again while its old tree waits in the trash
  await s.prepare("default/d", chain[0]!);
  expect(s.list().active.map((a) => a.key)).toEqual(["default/d"]);

  // two sweepers: each entry is claimed (renamed to sweep.<pid>.*) by one; one spare layer is made ahead
  const [a, b] = await Promise.all([s.sweepTrash(), s.sweepTrash()]);
  expect(a + b).toBe(1);
  const spares = fs.readdirSync(layout.tmp);
  expect(spares).toEqual([expect.stringMatching(/^spare\.[0-9a-f]{32}$/)]);
  expect(fs.readdirSync(join(layout.tmp, spares[0]!)).sort()).toEqual(["fs", "key", "parent", "targets", "work"]);
  expect(await s.sweepTrash()).toBe(0);
  expect(fs.readdirSync(layout.tmp)).toEqual(spares); // still one

  // the next prepare takes the spare: no temp left, the layer is whole and mounts like a fresh one
  await s.prepare("default/e", chain[0]!);
  expect(fs.readdirSync(layout.tmp)).toEqual([]);
  expect(s.list().active.find((x) => x.key === "default/e")).toEqual({ key: "default/e", parent: chain[0]!, mountedAt: [] });
  expect(s.mounts("default/e")[0]!.options.some((o) => /^upperdir=.*\/fs$/.test(o))).toBe(true);
  await s.remove("default/e");

  // cleanup deletes a spare too (prune leaves nothing made ahead; not counted as a crash's leftover),
  // and a spare half made by a dead process
  await s.sweepTrash();
  fs.mkdirSync(join(layout.tmp, "building.999999999.89abcdef"));
  expect(await s.cleanup()).toBe(1);
  expect(fs.readdirSync(layout.tmp)).toEqual([]);

  // a sweeper SIGKILLed mid-delete: its claimed entry is taken over; a live sweeper's is not
  fs.mkdirSync(join(layout.tmp, "sweep.999999999.0123abcd", "fs"), { recursive: true });
  fs.mkdirSync(join(layout.tmp, `sweep.${process.ppid}.4567cdef`, "fs"), { recursive: true });
  expect(await s.cleanup()).toBe(1);
  expect(fs.readdirSync(layout.tmp)).toEqual([`sweep.${process.ppid}.4567cdef`]);
  fs.rmSync(join(layout.tmp, `sweep.${process.ppid}.4567cdef`), { recursive: true });
  await s.remove("default/d");
  expect(fs.readdirSync(layout.tmp)).toEqual([]);
});

test("prepare with mountAt mounts in the same pass (volatile when asked), records the target first, and keeps the layer when the mount fails; an existing layer is mounted as mount() does", async () => {
  const s = openSnapshotter(tmp, "overlayfs");
  const chain = ids(2, "m");
  await unpackAll(s, chain);
  fake.calls.length = 0;
  await s.prepare("default/m", chain[1]!, { mountAt: join(tmp, "m-rootfs"), volatile: true });
  const [source, target, fstype, , data] = fake.callsOf("mount")[0]!;
  expect([source, target, fstype]).toEqual(["overlay", join(tmp, "m-rootfs"), "overlay"]);
  expect(data).toBe(`volatile,workdir=${s.dir}/3/work,upperdir=${s.dir}/3/fs,lowerdir=${s.dir}/2/fs:${s.dir}/1/fs`);
  expect(s.list().active).toEqual([{ key: "default/m", parent: chain[1]!, mountedAt: [join(tmp, "m-rootfs")] }]);
  // idempotent: the existing layer is mounted again through mount() (the target recorded once)
  await s.prepare("default/m", chain[1]!, { mountAt: join(tmp, "m-rootfs") });
  expect(fake.callsOf("mount")).toHaveLength(2);
  expect(s.list().active[0]?.mountedAt).toEqual([join(tmp, "m-rootfs")]);
  await s.remove("default/m");

  fake.fail("mount", "EPERM");
  await expect(s.prepare("default/f", chain[1]!, { mountAt: join(tmp, "f-rootfs") })).rejects.toThrow(/EPERM/);
  expect(s.list().active).toEqual([{ key: "default/f", parent: chain[1]!, mountedAt: [] }]);
  fake.restore("mount");
  await s.remove("default/f");
  expect(s.list().active).toEqual([]);
});

test("prepare is idempotent for the same parent, refuses another parent and an uncommitted one", async () => {
  const s = openSnapshotter(tmp, "overlayfs");
  const chain = ids(2);
  await unpackAll(s, chain);
  await s.prepare("default/c", chain[1]!);
  await s.prepare("default/c", chain[1]!);
  await expect(s.prepare("default/c", chain[0]!)).rejects.toThrow(AlreadyExistsError);
  await expect(s.prepare("default/d", ids(1, "nope")[0]!)).rejects.toThrow(NotFoundError);
  expect(s.list().active.length).toBe(1);
});

test("native: layers and container layers are copies, the rootfs a recursive bind mount", async () => {
  const s = openSnapshotter(tmp, "native");
  const chain = ids(2);
  const modes: string[] = [];
  await s.unpack(chain[0]!, undefined, async (dir, mode, lowers) => {
    modes.push(mode, String(lowers.length));
    fs.writeFileSync(join(dir, "gone"), "");
  });
  await s.unpack(chain[1]!, chain[0], async (dir, mode) => {
    modes.push(mode, String(fs.existsSync(join(dir, "gone"))));
    fs.rmSync(join(dir, "gone"));
  });
  expect(modes).toEqual(["remove", "0", "remove", "true"]);
  await s.prepare("default/n", chain[1]!);
  s.mount("default/n", "/run/n/rootfs");
  expect(fake.callsOf("mount").at(-1)).toEqual([join(s.dir, "3/fs"), "/run/n/rootfs", "none", MS.BIND | MS.REC, ""]);
  expect(s.mounts("default/n")).toEqual([{ type: "bind", source: join(s.dir, "3/fs"), options: ["rbind", "rw"] }]);
});

test("removeCommitted refuses while a layer on it is being unpacked (its lock is held) and while it has children", async () => {
  const s = openSnapshotter(tmp, "overlayfs");
  const chain = ids(2);
  await unpackAll(s, chain);
  const held = tryLock(join(s.dir, "locks", `chain.${chain[1]}`), "shared")!;
  await expect(s.removeCommitted(chain[1]!)).rejects.toThrow(/is in use/);
  held.release();
  await expect(s.removeCommitted(chain[0]!)).rejects.toThrow(/is the parent of 1 snapshot/);
  await s.removeCommitted(chain[1]!);
  await s.removeCommitted(chain[0]!);
  expect(s.list().committed).toEqual([]);
  expect(fs.readdirSync(s.dir).filter((n) => /^\d+$/.test(n))).toEqual([]);
});

test("cleanup: a dead writer's temp, a number published but never linked, a stale probe; a live writer's temp stays", async () => {
  const s = openSnapshotter(tmp, "overlayfs");
  const layout = new StoreLayout(s.dir);
  const [dead, live, unlinked] = ids(3, "c");
  layout.makeTemp(`chain.${dead}`);
  const liveTemp = layout.makeTemp(`chain.${live}`);
  const liveLock = tryLock(layout.lockPath(`chain.${live}`), "exclusive")!;
  const orphan = layout.makeTemp(`chain.${unlinked}`);
  fs.mkdirSync(join(orphan, "fs"));
  writeSmall(join(orphan, "chain"), unlinked!);
  const orphanId = layout.publish(orphan); // a crash between publish and link
  const keyOrphan = layout.makeTemp("key.default%2Fgone");
  writeSmall(join(keyOrphan, "key"), "default/gone");
  writeSmall(join(keyOrphan, "parent"), unlinked!);
  writeSmall(join(keyOrphan, "targets"), "/run/gone/rootfs");
  layout.publish(keyOrphan);
  fs.mkdirSync(join(tmp, "snapshots", "overlay-probe-999999999-abcd", "merged"), { recursive: true });

  fake.calls.length = 0;
  expect(await s.cleanup()).toBe(4);
  expect(fake.callsOf("unmountAll").map((c) => c[0])).toEqual(["/run/gone/rootfs", join(tmp, "snapshots", "overlay-probe-999999999-abcd", "merged")]);
  expect(fs.readdirSync(layout.tmp)).toEqual([liveTemp.split("/").at(-1)!]);
  expect(fs.existsSync(layout.snapshotDir(orphanId))).toBe(false);
  expect(fs.readdirSync(join(tmp, "snapshots"))).toEqual(["overlayfs"]);
  expect(fs.existsSync(layout.lockPath(`chain.${dead}`))).toBe(false); // nothing goes by that lock any more
  liveLock.release();
  expect(await s.cleanup()).toBe(1);
  expect(fs.readdirSync(layout.tmp)).toEqual([]);
});
