// The run cache (src/images/run-cache.ts, cached-run.ts) without root: images written straight into
// a content store and their snapshots made by the snapshotter over FakeSyscalls (flock delegated to
// the real one). What is checked is that a run never gets a removed or retagged image from it: rmi,
// tag, a tag pulled anew to another digest, prune and a snapshot gone each turn a hit into a miss;
// a torn, foreign or hostile file is a miss; and the full path's record puts a true entry back.
import { afterEach, beforeEach, expect, test } from "bun:test";
import * as fs from "node:fs";
import { join } from "node:path";
import { MediaType } from "../../src/content/oci.ts";
import { cachedImageRun, recordImageRun, type RunLookup } from "../../src/images/cached-run.ts";
import { topChainId } from "../../src/images/image.ts";
import { pruneImages } from "../../src/images/prune.ts";
import { readRunCache } from "../../src/images/run-cache.ts";
import { ImageStore } from "../../src/images/store.ts";
import { chainIds } from "../../src/snapshots/index.ts";
import { FakeSyscalls, setSys, sys } from "../../src/sys/index.ts";

const real = sys();
let root: string;
let store: ImageStore;

beforeEach(() => {
  const fake = new FakeSyscalls();
  fake.on("flock", (fd, op) => real.flock(fd, op));
  setSys(fake);
  root = fs.mkdtempSync("/tmp/bunker-run-cache-unit-");
  store = new ImageStore(root, { snapshotter: "overlayfs" });
});
afterEach(() => {
  setSys(undefined);
  fs.rmSync(root, { recursive: true, force: true });
});

const NAME = "docker.io/library/app:latest";
const lookup = (ref = "app", platform = ""): RunLookup => ({ ref, platform, want: "overlayfs" });
const base = { namespace: "ns", id: "c1", cgroupParent: "/test" };
const noArgs = { args: [] as string[] };

/** Stores an image of one layer (its snapshot made directly) whose config runs `cmd`; names it `name`. */
async function storeImage(name: string, cmd: string[], salt: string): Promise<string> {
  const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const diffId = `sha256:${new Bun.CryptoHasher("sha256").update(salt).digest("hex")}`;
  const layer = await store.content.writeBlob(new TextEncoder().encode(`layer ${salt}`));
  const configBytes = enc({ architecture: "amd64", os: "linux", config: { Cmd: cmd, Env: ["PATH=/bin", `SALT=${salt}`], StopSignal: "SIGQUIT" }, rootfs: { type: "layers", diff_ids: [diffId] } });
  const config = await store.content.writeBlob(configBytes);
  const manifestBytes = enc({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: configBytes.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size: `layer ${salt}`.length }],
  });
  const manifest = await store.content.writeBlob(manifestBytes);
  const [top] = chainIds([diffId]);
  await store.snapshots.unpack(top!, undefined, async (dir) => fs.writeFileSync(join(dir, "salt"), salt));
  await store.content.names.putImage(name, { mediaType: MediaType.ociManifest, digest: manifest, size: manifestBytes.length });
  return top!;
}

/** What `run IMAGE` does on a miss: the full path, then its record. */
async function fullRun(l = lookup(), policy: "missing" | "never" = "missing"): Promise<void> {
  const img = await store.ensure(l.ref, policy, l.platform ? { platform: l.platform } : {});
  await recordImageRun(store, l, img, topChainId(img));
}

const cached = (l = lookup()) => cachedImageRun(root, l, base, noArgs);
const cacheDir = () => join(root, "content", "run-cache");
const cacheFile = () => join(cacheDir(), fs.readdirSync(cacheDir()).find((f) => f.endsWith(".json"))!);

test("a miss until the full path records; then the hit gives the image's name, chain, config and layers", async () => {
  const top = await storeImage(NAME, ["/bin/app", "serve"], "one");
  expect(await cached()).toBeUndefined();
  await fullRun();
  const plan = await cached();
  expect(plan?.image).toBe(NAME);
  expect(plan?.parent).toBe(top);
  expect(plan?.stopSignal).toBe("SIGQUIT");
  expect(plan?.spec.process.args).toEqual(["/bin/app", "serve"]);
  expect(plan?.spec.process.env).toContain("SALT=one");
  expect(typeof plan?.layers.prepareMounted).toBe("function");
  // the user's command and -e still apply on the short path
  const own = await cachedImageRun(root, lookup(), base, { args: ["/bin/sh"], env: ["SALT=mine"] });
  expect(own?.spec.process.args).toEqual(["/bin/sh"]);
  expect(own?.spec.process.env).toContain("SALT=mine");
  // another reference, platform or snapshotter choice is another entry
  expect(await cached(lookup(NAME))).toBeUndefined();
  expect(await cached(lookup("app", "linux/arm64"))).toBeUndefined();
  expect(await cachedImageRun(root, { ...lookup(), want: "auto" }, base, noArgs)).toBeUndefined();
});

test("rmi: the entry no longer answers, and the full path then says not found", async () => {
  await storeImage(NAME, ["/bin/app"], "one");
  await fullRun();
  expect(await cached()).toBeDefined();
  await store.untag("app", false, () => []);
  expect(await cached()).toBeUndefined();
  await expect(fullRun(lookup(), "never")).rejects.toThrow(/not found/);
});

test("tag: any change of index.json is a miss; the full path records the same image again", async () => {
  await storeImage(NAME, ["/bin/app"], "one");
  await fullRun();
  await store.tag("app", "other:v1");
  expect(await cached()).toBeUndefined();
  await fullRun();
  expect((await cached())?.image).toBe(NAME);
});

test("a tag pulled anew to another digest: the old image's entry is a miss, the record gives the new one", async () => {
  await storeImage(NAME, ["/bin/old"], "old");
  await fullRun();
  expect((await cached())?.spec.process.args).toEqual(["/bin/old"]);
  const newTop = await storeImage(NAME, ["/bin/new"], "new"); // putImage moves the name, as a pull does
  expect(await cached()).toBeUndefined();
  await fullRun();
  const plan = await cached();
  expect(plan?.spec.process.args).toEqual(["/bin/new"]);
  expect(plan?.parent).toBe(newTop);
});

test("image prune clears the cache; prune -a (which untags) leaves a run nothing to find", async () => {
  await storeImage(NAME, ["/bin/app"], "one");
  await fullRun();
  await pruneImages(store, [], false);
  expect(fs.existsSync(cacheDir())).toBe(false);
  expect(await cached()).toBeUndefined();
  await fullRun();
  await pruneImages(store, [], true);
  expect(await cached()).toBeUndefined();
  await expect(fullRun(lookup(), "never")).rejects.toThrow(/not found/);
});

test("a snapshot gone, or made again under another number, with index.json untouched: a miss", async () => {
  const top = await storeImage(NAME, ["/bin/app"], "one");
  await fullRun();
  await store.snapshots.removeCommitted(top);
  expect(await cached()).toBeUndefined();
  // made again (as the full path's unpack would) under another number: number 1 is taken first
  await store.snapshots.unpack(chainIds([`sha256:${"e".repeat(64)}`])[0]!, undefined, async () => undefined);
  await store.snapshots.unpack(top, undefined, async (dir) => fs.writeFileSync(join(dir, "salt"), "again"));
  expect(await cached()).toBeUndefined();
  await fullRun();
  expect(await cached()).toBeDefined();
});

test("a torn, foreign, other-version or hostile file is a miss, never trusted; the full path rewrites it", async () => {
  await storeImage(NAME, ["/bin/app"], "one");
  await fullRun();
  const path = cacheFile();
  const good = fs.readFileSync(path, "utf8");
  const entry = JSON.parse(good) as Record<string, unknown>;
  const bad = [
    good.slice(0, good.length >> 1), // torn
    "",
    "null",
    "[]",
    JSON.stringify({ ...entry, v: 2 }),
    JSON.stringify({ ...entry, ref: "other" }), // another lookup's
    JSON.stringify({ ...entry, index: "0".repeat(64) }),
    JSON.stringify({ ...entry, chainId: "../../../etc" }),
    JSON.stringify({ ...entry, snapshot: "../1" }),
    JSON.stringify({ ...entry, snapshotter: "zfs" }),
    JSON.stringify({ ...entry, config: "nope" }),
    JSON.stringify({ ...entry, name: 42 }),
  ];
  for (const text of bad) {
    fs.writeFileSync(path, text);
    expect(readRunCache(root, lookup())).toBeUndefined();
  }
  await fullRun();
  expect(fs.readFileSync(path, "utf8")).toBe(good);
  expect(await cached()).toBeDefined();
});

test("a name changed between the full path's resolution and its record: nothing is recorded", async () => {
  await storeImage(NAME, ["/bin/app"], "one");
  const img = await store.ensure("app", "missing");
  await store.untag("app", false, () => []);
  await recordImageRun(store, lookup(), img, topChainId(img));
  expect(fs.existsSync(cacheDir()) ? fs.readdirSync(cacheDir()) : []).toEqual([]);
});
