// `bunker load` and `bunker save`: images to and from archives, as `docker load/save`, `ctr import/
// export` and `podman load/save` exchange them.
// - load reads a docker-archive (`docker save`: manifest.json with Config, RepoTags and Layers), an
//   OCI archive (oci-layout, index.json, blobs/sha256/…), either optionally gzip- or zstd-compressed,
//   or an OCI layout directory. Every file is streamed into the content store and hashed on the way
//   (a blob named by digest must hash to it); names are written last, after every blob of the image
//   is present and its layers are unpacked, so a truncated or lying archive names nothing.
// - save writes one archive that both readers take: the OCI layout (index.json names each image, as
//   containerd's export does) plus docker's manifest.json pointing into blobs/ (docker 25's format).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { TarReader } from "../archive/tar.ts";
import { tarStream, type TarWriteEntry } from "../archive/tar-writer.ts";
import { decompressStream, layerMediaType } from "../archive/compression.ts";
import { isIndexType, MediaType, type Descriptor, type ImageIndex, type ImageManifest } from "../content/oci.ts";
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME } from "../content/names.ts";
import { isSha256Digest } from "../content/digest.ts";
import { parseDockerRef } from "../registry/reference.ts";
import { MAX_JSON_BYTES, readImage, readJson } from "./image.ts";
import type { ImageStore } from "./store.ts";
import { unpackImage } from "./unpack.ts";

/** The small files of an archive, kept in memory; everything else goes to the content store. */
const METADATA_FILES = new Set(["manifest.json", "index.json", "oci-layout", "repositories"]);

interface Imported {
  /** Archive path → what it hashed to. */
  files: Map<string, { digest: string; size: number }>;
  metadata: Map<string, Uint8Array>;
}

interface DockerManifestEntry {
  Config?: string;
  RepoTags?: string[] | null;
  Layers?: string[];
}

function cleanPath(p: string): string {
  return p.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
}

function parseJsonBytes<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch {
    throw new InvalidArgumentError(`${what} is not valid JSON`);
  }
}

/** Streams an archive's files into the content store (or memory, for its few metadata files). */
async function importTar(store: ImageStore, input: ReadableStream<Uint8Array>): Promise<Imported> {
  const { stream } = await decompressStream(input);
  const tar = new TarReader(stream);
  const files = new Map<string, { digest: string; size: number }>();
  const metadata = new Map<string, Uint8Array>();
  for (let entry = await tar.next(); entry; entry = await tar.next()) {
    const path = cleanPath(entry.header.name);
    if (entry.header.type !== "file") continue; // dirs, and the symlinks old docker archives use between layer dirs
    if (METADATA_FILES.has(path)) {
      if (entry.header.size > MAX_JSON_BYTES) throw new InvalidArgumentError(`archive file ${path} is over the ${MAX_JSON_BYTES}-byte cap`);
      const chunks: Uint8Array[] = [];
      for await (const c of entry.body) chunks.push(c.slice());
      metadata.set(path, Buffer.concat(chunks));
      continue;
    }
    const blob = await store.content.importStream(entry.body, entry.header.size);
    const named = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(path);
    if (named && `sha256:${named[1]}` !== blob.digest) {
      throw new InvalidArgumentError(`archive file ${path} hashes to ${blob.digest}: the archive is corrupt`);
    }
    files.set(path, blob);
  }
  return { files, metadata };
}

/** An OCI layout directory: its blobs are copied (and checked) into the content store. */
async function importLayoutDir(store: ImageStore, dir: string): Promise<Imported> {
  const files = new Map<string, { digest: string; size: number }>();
  const metadata = new Map<string, Uint8Array>();
  for (const f of ["index.json", "oci-layout"]) if (existsSync(join(dir, f))) metadata.set(f, readFileSync(join(dir, f)));
  const blobs = join(dir, "blobs", "sha256");
  for (const hex of existsSync(blobs) ? readdirSync(blobs) : []) {
    const path = join(blobs, hex);
    const blob = await store.content.importStream(Bun.file(path).stream(), statSync(path).size);
    if (blob.digest !== `sha256:${hex}`) throw new InvalidArgumentError(`${path} hashes to ${blob.digest}: the layout is corrupt`);
    files.set(`blobs/sha256/${hex}`, blob);
  }
  return { files, metadata };
}

/** A name for what an archive calls an image: a full reference, or none (then the digest names it). */
function nameOf(annotations: Record<string, string> | undefined, digest: string): string {
  for (const candidate of [annotations?.[ANNOTATION_IMAGE_NAME], annotations?.[ANNOTATION_REF_NAME]]) {
    if (!candidate) continue;
    try {
      return parseDockerRef(candidate).toString();
    } catch {
      // a bare tag ("latest") names no repository
    }
  }
  return digest;
}

/** The images an archive holds: name → target descriptor. */
async function imagesOf(store: ImageStore, imp: Imported): Promise<[string, Descriptor][]> {
  const index = imp.metadata.get("index.json");
  const manifestJson = imp.metadata.get("manifest.json");
  if (manifestJson && (!index || !hasNamedEntries(index))) return await dockerImages(store, imp, parseJsonBytes<DockerManifestEntry[]>(manifestJson, "manifest.json"));
  if (index) {
    const idx = parseJsonBytes<ImageIndex>(index, "index.json");
    if (!Array.isArray(idx.manifests)) throw new InvalidArgumentError("index.json has no manifests list");
    return idx.manifests.map((d) => [nameOf(d.annotations, d.digest), stripAnnotations(d)]);
  }
  throw new InvalidArgumentError("not an image archive: no manifest.json (docker) or index.json (OCI)");
}

function hasNamedEntries(index: Uint8Array): boolean {
  const idx = parseJsonBytes<ImageIndex>(index, "index.json");
  return Array.isArray(idx.manifests) && idx.manifests.some((d) => d.annotations?.[ANNOTATION_IMAGE_NAME] || d.annotations?.[ANNOTATION_REF_NAME]);
}

function stripAnnotations(d: Descriptor): Descriptor {
  const { annotations: _a, ...bare } = d;
  return bare;
}

/** docker-archive entries become OCI manifests over the same blobs (layers keep their compression). */
async function dockerImages(store: ImageStore, imp: Imported, entries: DockerManifestEntry[]): Promise<[string, Descriptor][]> {
  if (!Array.isArray(entries)) throw new InvalidArgumentError("manifest.json is not a list");
  const out: [string, Descriptor][] = [];
  for (const e of entries) {
    const config = e.Config ? imp.files.get(cleanPath(e.Config)) : undefined;
    if (!config) throw new InvalidArgumentError(`manifest.json names config ${JSON.stringify(e.Config)}, which the archive lacks`);
    const layers: Descriptor[] = [];
    for (const l of e.Layers ?? []) {
      const blob = imp.files.get(cleanPath(l));
      if (!blob) throw new InvalidArgumentError(`manifest.json names layer ${JSON.stringify(l)}, which the archive lacks`);
      const { compression } = await decompressStream(store.content.stream(blob.digest)).then(async (r) => {
        await r.stream.cancel();
        return r;
      });
      layers.push({ mediaType: layerMediaType(compression), digest: blob.digest, size: blob.size });
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: config.digest, size: config.size },
      layers,
    };
    const bytes = new TextEncoder().encode(JSON.stringify(manifest));
    const digest = await store.content.writeBlob(bytes);
    const target: Descriptor = { mediaType: MediaType.ociManifest, digest, size: bytes.length };
    const tags = e.RepoTags ?? [];
    if (tags.length === 0) out.push([digest, target]);
    for (const t of tags) out.push([parseDockerRef(t).toString(), target]);
  }
  return out;
}

/** Loads every image of an archive (a file or stream) or an OCI layout directory; returns their names. */
export async function loadImages(store: ImageStore, input: ReadableStream<Uint8Array> | { dir: string }): Promise<string[]> {
  // shared with pulls, exclusive of prune: what is stored here is named only at the end
  return await store.withGcLock("shared", () => loadLocked(store, input));
}

async function loadLocked(store: ImageStore, input: ReadableStream<Uint8Array> | { dir: string }): Promise<string[]> {
  const imp = "dir" in input ? await importLayoutDir(store, input.dir) : await importTar(store, input);
  const images = await imagesOf(store, imp);
  if (images.length === 0) throw new InvalidArgumentError("the archive holds no image");
  // every image complete and unpacked before any is named
  for (const [name, target] of images) {
    if (!store.content.has(target.digest)) throw new FailedPreconditionError(`image ${name}: ${target.digest} is missing from the archive`);
    const img = await readImage(store.content, { name, target });
    for (const d of [img.config, ...img.layers]) {
      if (!store.content.has(d.digest)) throw new FailedPreconditionError(`image ${name}: blob ${d.digest} is missing from the archive`);
    }
    await unpackImage(store.content, store.snapshots, img);
  }
  for (const [name, target] of images) await store.content.names.putImage(name, target);
  return images.map(([name]) => name);
}

/** Every blob an image name needs: its target, and for an index each stored manifest's config and layers. */
export async function blobsOf(store: ImageStore, target: Descriptor, name: string): Promise<Descriptor[]> {
  const out: Descriptor[] = [target];
  const manifests = isIndexType(target.mediaType)
    ? (await readJson<ImageIndex>(store.content, target, `index of ${name}`)).manifests.filter((d) => store.content.has(d.digest))
    : [target];
  if (isIndexType(target.mediaType)) out.push(...manifests);
  for (const m of manifests) {
    const man = await readJson<ImageManifest>(store.content, m, `manifest of ${name}`);
    if (!man.config || !Array.isArray(man.layers)) continue; // an artifact, not an image
    out.push(man.config, ...man.layers.filter((l) => store.content.has(l.digest)));
  }
  return out;
}

/** The archive of `refs`: OCI layout + docker's manifest.json, streamed (layers are never held in memory). */
export async function saveImages(store: ImageStore, refs: string[]): Promise<ReadableStream<Uint8Array>> {
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  const docker: DockerManifestEntry[] = [];
  const blobs = new Map<string, Descriptor>();
  for (const ref of refs) {
    const rec = store.find(ref);
    if (!rec) throw new NotFoundError(`image ${ref}: not found`);
    for (const d of await blobsOf(store, rec.target, rec.name)) blobs.set(d.digest, d);
    index.manifests.push({ ...rec.target, annotations: { [ANNOTATION_IMAGE_NAME]: rec.name, [ANNOTATION_REF_NAME]: parseDockerRef(rec.name).tag || rec.target.digest } });
    const img = await readImage(store.content, rec);
    // docker load takes only repo:tag in RepoTags ("invalid tag" for repo@digest or a bare digest):
    // an image known by digest alone is saved untagged, as docker save does
    const tag = !isSha256Digest(rec.name) && parseDockerRef(rec.name).tag ? [rec.name] : [];
    docker.push({ Config: `blobs/sha256/${img.config.digest.slice(7)}`, RepoTags: tag, Layers: img.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`) });
  }
  const enc = new TextEncoder();
  const now = BigInt(Date.now()) * 1_000_000n;
  const file = (name: string, body: Uint8Array): TarWriteEntry => ({ header: { name, type: "file", mode: 0o644, mtimeNs: now }, body });
  async function* entries(): AsyncGenerator<TarWriteEntry> {
    yield file("oci-layout", enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
    yield { header: { name: "blobs/", type: "dir", mode: 0o755, mtimeNs: now } };
    yield { header: { name: "blobs/sha256/", type: "dir", mode: 0o755, mtimeNs: now } };
    for (const d of blobs.values()) {
      yield { header: { name: `blobs/sha256/${d.digest.slice(7)}`, type: "file", mode: 0o644, size: d.size, mtimeNs: now }, body: store.content.stream(d.digest) };
    }
    yield file("index.json", enc.encode(JSON.stringify(index)));
    yield file("manifest.json", enc.encode(JSON.stringify(docker)));
  }
  return tarStream(entries());
}
