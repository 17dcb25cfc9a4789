// Image names in the content layout's index.json (src/content/names.ts): the annotations other
// tools read, replace/delete semantics, entries of other tools kept, and concurrent updates.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContentStore } from "../../src/content/store.ts";
import { MediaType, type Descriptor } from "../../src/content/oci.ts";
import { refNameOf } from "../../src/content/names.ts";

let root: string;
let store: ContentStore;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "bunker-names-"));
  store = new ContentStore(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const desc = (n: number): Descriptor => ({ mediaType: MediaType.ociManifest, digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, size: 100 + n });
const indexJson = () => JSON.parse(readFileSync(join(root, "content/index.json"), "utf8"));

test("a name is an index.json entry with the full name, the tag as ref.name and the time", async () => {
  await store.names.putImage("docker.io/library/busybox:latest", desc(1), "2026-01-02T03:04:05.000Z");
  expect(indexJson()).toEqual({
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [{
      ...desc(1),
      annotations: {
        "io.containerd.image.name": "docker.io/library/busybox:latest",
        "org.opencontainers.image.ref.name": "latest",
        "dev.bunker.image.created": "2026-01-02T03:04:05.000Z",
      },
    }],
  });
  expect(store.names.getImage("docker.io/library/busybox:latest")).toEqual({ name: "docker.io/library/busybox:latest", target: desc(1), created: "2026-01-02T03:04:05.000Z" });
  expect(store.names.getImage("docker.io/library/busybox:other")).toBeNull();
});

test("putting a name again repoints it; deleting removes only it", async () => {
  await store.names.putImage("docker.io/library/a:1", desc(1));
  await store.names.putImage("docker.io/library/b:1", desc(2));
  await store.names.putImage("docker.io/library/a:1", desc(3));
  expect(store.names.listImages().map((r) => [r.name, r.target.digest])).toEqual([["docker.io/library/b:1", desc(2).digest], ["docker.io/library/a:1", desc(3).digest]]);
  expect(await store.names.deleteImage("docker.io/library/a:1")).toBe(true);
  expect(await store.names.deleteImage("docker.io/library/a:1")).toBe(false);
  expect(store.names.listImages().map((r) => r.name)).toEqual(["docker.io/library/b:1"]);
});

test("entries other tools wrote (no image name) are kept; the target's own annotations survive", async () => {
  mkdirSync(join(root, "content"), { recursive: true });
  const foreign = { ...desc(4), annotations: { "org.opencontainers.image.ref.name": "umoci-tag" } };
  writeFileSync(join(root, "content/index.json"), JSON.stringify({ schemaVersion: 2, manifests: [foreign] }));
  await store.names.putImage("example.com/x/y:v2", { ...desc(5), annotations: { "com.example.note": "kept" } });
  expect(indexJson().manifests[0]).toEqual(foreign);
  expect(store.names.listImages()).toHaveLength(1);
  expect(store.names.getImage("example.com/x/y:v2")!.target.annotations).toEqual({ "com.example.note": "kept" });
});

test("ref.name is the tag, or the digest of a digest-only name", () => {
  expect(refNameOf("docker.io/library/busybox:1.36")).toBe("1.36");
  expect(refNameOf("127.0.0.1:5000/x/y:v1")).toBe("v1");
  expect(refNameOf(`127.0.0.1:5000/x/y@${desc(1).digest}`)).toBe(desc(1).digest);
});

test("bad input is refused without touching index.json", async () => {
  await store.names.putImage("docker.io/library/a:1", desc(1));
  const before = readFileSync(join(root, "content/index.json"), "utf8");
  await expect(store.names.putImage("", desc(1))).rejects.toThrow(/must not be empty/);
  await expect(store.names.putImage("docker.io/library/a:2", { ...desc(1), digest: "sha256:zz" })).rejects.toThrow(/not sha256/);
  expect(readFileSync(join(root, "content/index.json"), "utf8")).toBe(before);
});

test("a corrupt index.json is a clear error", () => {
  mkdirSync(join(root, "content"), { recursive: true });
  writeFileSync(join(root, "content/index.json"), "{not json");
  expect(() => store.names.listImages()).toThrow(/index.json: not valid JSON/);
});

test("concurrent updates (one process, many writers) lose nothing", async () => {
  await Promise.all(Array.from({ length: 20 }, (_, i) => new ContentStore(root).names.putImage(`docker.io/library/n${i}:latest`, desc(i % 10))));
  expect(store.names.listImages()).toHaveLength(20);
});
