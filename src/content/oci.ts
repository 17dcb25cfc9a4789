// The OCI image-spec types the content layout and the registry client share (image-spec v1.1's
// descriptor, platform, index and manifest, and the Docker schema2 media types registries still
// serve). They are here, the lowest image folder, so that registry/ and images/ read one definition.
import { InvalidArgumentError } from "../errdefs.ts";
import { isSha256Digest } from "./digest.ts";

export const MediaType = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

export const isIndexType = (t: string): boolean => t === MediaType.ociIndex || t === MediaType.dockerManifestList;
export const isManifestType = (t: string): boolean => t === MediaType.ociManifest || t === MediaType.dockerManifest;
export const isSchema1Type = (t: string): boolean => t === MediaType.dockerSchema1 || t === MediaType.dockerSchema1Signed;

export interface Platform {
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** Checks the fields every descriptor must have; `what` names it in the error. */
export function checkDescriptor(d: unknown, what: string): Descriptor {
  const x = d as Partial<Descriptor> | null;
  if (x === null || typeof x !== "object") throw new InvalidArgumentError(`${what}: not a descriptor`);
  if (typeof x.mediaType !== "string" || x.mediaType === "") throw new InvalidArgumentError(`${what}: descriptor has no mediaType`);
  if (!isSha256Digest(x.digest)) throw new InvalidArgumentError(`${what}: descriptor digest ${JSON.stringify(x.digest)} is not sha256:<64 hex>`);
  if (typeof x.size !== "number" || !Number.isSafeInteger(x.size) || x.size < 0) {
    throw new InvalidArgumentError(`${what}: descriptor ${x.digest} has an invalid size ${JSON.stringify(x.size)}`);
  }
  return x as Descriptor;
}
