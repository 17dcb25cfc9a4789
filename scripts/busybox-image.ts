// Builds a one-layer busybox image archive offline from busybox-static's /bin/busybox, for the
// README's main command (`bunker load` then `bunker run busybox …`): an OCI archive (oci-layout,
// index.json, blobs) written with bunker's own tar writer, named docker.io/library/busybox:latest.
// The CRI tests make their pause and workload images with it too, giving the Cmd after the name.
//   bun scripts/busybox-image.ts OUT.tar [NAME [CMD...]]
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { tarBytes, type TarWriteHeader } from "../src/archive/tar-writer.ts";

const [out, name = "docker.io/library/busybox:latest", ...cmd] = process.argv.slice(2);
if (!out) {
  console.error("usage: bun scripts/busybox-image.ts OUT.tar [NAME [CMD...]]");
  process.exit(2);
}
const ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64" };
const mtimeNs = 1_700_000_000n * 1_000_000_000n;
const busybox = readFileSync("/bin/busybox");
const applets = Bun.spawnSync(["/bin/busybox", "--list"]).stdout.toString().split("\n").filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== "busybox");

const dir = (name: string, mode = 0o755): { header: TarWriteHeader } => ({ header: { name, type: "dir", mode, mtimeNs } });
const file = (name: string, body: Uint8Array, mode = 0o644): { header: TarWriteHeader; body: Uint8Array } => ({ header: { name, type: "file", mode, mtimeNs }, body });
const enc = new TextEncoder();
const layer = tarBytes([
  dir("bin/"),
  dir("etc/"),
  dir("root/", 0o700),
  dir("tmp/", 0o1777),
  dir("var/"),
  file("bin/busybox", busybox, 0o755),
  ...applets.map((a) => ({ header: { name: `bin/${a}`, type: "symlink", mode: 0o777, linkname: "busybox", mtimeNs } as TarWriteHeader })),
  file("etc/passwd", enc.encode("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")),
  file("etc/group", enc.encode("root:x:0:\nnogroup:x:65534:\n")),
]);

const sha = (b: Uint8Array): string => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
const config = enc.encode(JSON.stringify({
  architecture: ARCH[process.arch] ?? process.arch,
  os: "linux",
  created: "2023-11-14T22:13:20Z",
  config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: cmd.length > 0 ? cmd : ["sh"] },
  rootfs: { type: "layers", diff_ids: [sha(layer)] },
}));
const manifest = enc.encode(JSON.stringify({
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
  layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(layer), size: layer.length }],
}));
const index = enc.encode(JSON.stringify({
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: [{
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: sha(manifest),
    size: manifest.length,
    // containerd's import picks manifests by platform; naming it spares a read of the config.
    platform: { architecture: ARCH[process.arch] ?? process.arch, os: "linux" },
    annotations: { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.slice(name.lastIndexOf(":") + 1) },
  }],
}));
const blob = (b: Uint8Array) => file(`blobs/sha256/${sha(b).slice(7)}`, b);
const archive = tarBytes([file("oci-layout", enc.encode('{"imageLayoutVersion":"1.0.0"}')), dir("blobs/"), dir("blobs/sha256/"), blob(layer), blob(config), blob(manifest), file("index.json", index)]);
writeFileSync(`${out}.tmp`, archive);
renameSync(`${out}.tmp`, out);
console.log(`${out}: ${name} (${applets.length} applets, layer ${layer.length} bytes)`);
