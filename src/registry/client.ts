// The OCI distribution client (distribution-spec v1.1's pull half) over fetch, as containerd's
// remotes/docker resolver and fetcher do it: manifests are asked for with every Accept type we can
// read (without the OCI index type a registry 404s an OCI index; without the Docker list type it
// converts a list to schema1, which we refuse as containerd 2.x does), their bytes are verified
// against the digest asked for or the registry's Docker-Content-Digest, and sizes are capped. The
// media type comes from the manifest's own mediaType, else from Content-Type (umoci writes none).
// Redirects are followed by hand so that Authorization never goes to another host (blob storage
// redirects to S3 and the like with their own signed URLs).
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError, UnavailableError, errorMessage } from "../errdefs.ts";
import { digestOf, isSha256Digest } from "../content/digest.ts";
import { checkDescriptor, isIndexType, isManifestType, isSchema1Type, MediaType, type Descriptor } from "../content/oci.ts";
import type { OpenedBody } from "../content/store.ts";
import { Authorizer, type Credentials } from "./auth.ts";
import { readCredentials } from "./credentials.ts";
import { parseDockerRef, type Reference } from "./reference.ts";

/** Manifests and configs over this are refused: containerd's limit for what it buffers is similar. */
export const MAX_MANIFEST_BYTES = 4 << 20;
const MAX_REDIRECTS = 5;

export const MANIFEST_ACCEPT = [
  MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest,
].join(", ");

export interface RegistryClientOptions {
  /** Hosts (host[:port]) spoken to over plain HTTP besides localhost, 127.0.0.0/8 and ::1. */
  insecure?: string[];
  /** Credentials by host; defaults to docker's config.json. */
  credentials?: (host: string) => Credentials | null;
  fetch?: typeof fetch;
  userAgent?: string;
}

export interface Resolved {
  /** The normalised reference that was resolved. */
  ref: Reference;
  /** The root descriptor: its media type, digest and size (an index or a manifest). */
  descriptor: Descriptor;
  bytes: Uint8Array;
}

/** `docker.io` -> the API host; any other domain is its own. */
export function apiHost(domain: string): string {
  return domain === "docker.io" ? "registry-1.docker.io" : domain;
}

/** docker's rule: loopback registries speak plain HTTP. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d+$/, "");
  return name === "localhost" || name === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

export class RegistryClient {
  private readonly insecure: Set<string>;
  private readonly fetchImpl: typeof fetch;
  private readonly authorizer: Authorizer;
  private readonly userAgent: string;

  constructor(opts: RegistryClientOptions = {}) {
    this.insecure = new Set(opts.insecure ?? []);
    this.fetchImpl = opts.fetch ?? fetch;
    const credentials = opts.credentials ?? ((host: string) => readCredentials(host));
    this.authorizer = new Authorizer(credentials, this.fetchImpl);
    this.userAgent = opts.userAgent ?? "bunker";
  }

  /** The base URL of a registry domain (docker.io's API lives at registry-1.docker.io). */
  baseUrl(domain: string): string {
    const host = apiHost(domain);
    const scheme = isLoopbackHost(host) || this.insecure.has(host) || this.insecure.has(domain) ? "http" : "https";
    return `${scheme}://${host}`;
  }

  /** Resolves a tag or digest to the root descriptor and its verified bytes. */
  async resolve(reference: string | Reference): Promise<Resolved> {
    const ref = typeof reference === "string" ? parseDockerRef(reference) : reference;
    const tagOrDigest = ref.digest || ref.tag;
    const res = await this.request(ref, `/manifests/${tagOrDigest}`, { Accept: MANIFEST_ACCEPT }, `${ref}`);
    const bytes = await readCapped(res, MAX_MANIFEST_BYTES, `manifest ${ref}`);
    const got = digestOf(bytes);
    const expected = ref.digest || res.headers.get("docker-content-digest") || "";
    if (expected && isSha256Digest(expected) && expected !== got) {
      throw new FailedPreconditionError(`manifest ${ref}: digest mismatch (got ${got}, expected ${expected})`);
    }
    const mediaType = manifestMediaType(bytes, res.headers.get("content-type"), `${ref}`);
    return { ref, descriptor: { mediaType, digest: got, size: bytes.length }, bytes };
  }

  /** A manifest or index by descriptor (a child of an index), verified; capped like resolve. */
  async fetchManifest(ref: Reference, desc: Descriptor): Promise<Uint8Array> {
    checkDescriptor(desc, `manifest of ${ref.name}`);
    if (desc.size > MAX_MANIFEST_BYTES) throw new InvalidArgumentError(`manifest ${desc.digest} of ${ref.name}: ${desc.size} bytes is over the ${MAX_MANIFEST_BYTES}-byte limit`);
    const res = await this.request(ref, `/manifests/${desc.digest}`, { Accept: MANIFEST_ACCEPT }, `${ref.name}@${desc.digest}`);
    const bytes = await readCapped(res, MAX_MANIFEST_BYTES, `manifest ${desc.digest} of ${ref.name}`);
    const got = digestOf(bytes);
    if (got !== desc.digest) throw new FailedPreconditionError(`manifest ${desc.digest} from ${ref.name}: digest mismatch (got ${got})`);
    return bytes;
  }

  /**
   * A blob's body from `offset` (a Range request; a server that ignores it answers 200 and the
   * body starts at 0, which `offset` in the result says). The content store verifies the digest.
   */
  async fetchBlob(ref: Reference, desc: Descriptor, offset = 0): Promise<OpenedBody> {
    const headers: Record<string, string> = {};
    if (offset > 0) headers.Range = `bytes=${offset}-`;
    const res = await this.request(ref, `/blobs/${desc.digest}`, headers, `blob ${desc.digest} of ${ref.name}`);
    if (!res.body) throw new UnavailableError(`blob ${desc.digest} of ${ref.name}: empty response`);
    if (res.status === 206) {
      const start = Number(/^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "")?.[1] ?? NaN);
      if (start !== offset) {
        await res.body.cancel();
        throw new UnavailableError(`blob ${desc.digest} of ${ref.name}: asked for bytes from ${offset}, got Content-Range ${res.headers.get("content-range")}`);
      }
      return { body: res.body, offset };
    }
    return { body: res.body, offset: 0 };
  }

  /**
   * GET /v2/ with our credentials for `domain` (docker login's check): refused credentials are a
   * PermissionDeniedError, an unreachable registry an UnavailableError.
   */
  async ping(domain: string): Promise<void> {
    const host = apiHost(domain);
    const url = `${this.baseUrl(domain)}/v2/`;
    const what = `login to ${domain}`;
    let res = await this.send(url, host, "", {}, what);
    if (res.status === 401) {
      const challenge = res.headers.get("www-authenticate");
      await res.body?.cancel();
      await this.authorizer.answer(host, "", challenge, what);
      res = await this.send(url, host, "", {}, what);
      if (res.status === 401) {
        await res.body?.cancel();
        throw new PermissionDeniedError(`${what}: ${host} refused our credentials (HTTP 401)`);
      }
    }
    if (!res.ok) throw await registryError(res, what);
    await res.body?.cancel();
  }

  /**
   * One API request for a repository: auth (answering one 401), redirects by hand, and the
   * registry's error JSON turned into a one-line errdefs error.
   */
  private async request(ref: Reference, path: string, headers: Record<string, string>, what: string): Promise<Response> {
    const host = apiHost(ref.domain);
    const scope = `repository:${ref.path}:pull`;
    const url = `${this.baseUrl(ref.domain)}/v2/${ref.path}${path}`;
    let res = await this.send(url, host, scope, headers, what);
    if (res.status === 401) {
      const challenge = res.headers.get("www-authenticate");
      await res.body?.cancel();
      this.authorizer.forget(host, scope);
      await this.authorizer.answer(host, scope, challenge, what);
      res = await this.send(url, host, scope, headers, what);
      if (res.status === 401) {
        await res.body?.cancel();
        throw new PermissionDeniedError(`${what}: ${host} refused our credentials (HTTP 401)`);
      }
    }
    if (res.ok) return res;
    throw await registryError(res, what);
  }

  private async send(url: string, host: string, scope: string, headers: Record<string, string>, what: string): Promise<Response> {
    let current = new URL(url);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const h: Record<string, string> = { ...headers, "User-Agent": this.userAgent };
      // Our credentials are for the registry host only; a redirect elsewhere carries its own.
      if (current.host === new URL(url).host) {
        const auth = this.authorizer.cached(host, scope);
        if (auth) h.Authorization = auth;
      }
      let res: Response;
      try {
        res = await this.fetchImpl(current, { headers: h, redirect: "manual" });
      } catch (err) {
        throw new UnavailableError(`${what}: cannot reach ${current.origin}: ${errorMessage(err)}`);
      }
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel();
        current = new URL(location, current);
        if (current.protocol !== "https:" && current.protocol !== "http:") throw new UnavailableError(`${what}: redirect to ${current.protocol} refused`);
        continue;
      }
      return res;
    }
    throw new UnavailableError(`${what}: more than ${MAX_REDIRECTS} redirects`);
  }
}

/** The registry's `{"errors":[{code,message}]}` as one line. */
async function registryError(res: Response, what: string): Promise<Error> {
  let detail = "";
  try {
    const text = (await res.text()).slice(0, 4096);
    const body = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    detail = (body.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(": ")).join("; ");
  } catch {
    // not JSON: the status says enough
  }
  const suffix = detail ? ` (${detail})` : "";
  if (res.status === 404) return new NotFoundError(`${what}: not found${suffix}`);
  if (res.status === 403) return new PermissionDeniedError(`${what}: access denied (HTTP 403)${suffix}`);
  if (res.status === 400 || res.status === 405) return new InvalidArgumentError(`${what}: refused by the registry (HTTP ${res.status})${suffix}`);
  return new UnavailableError(`${what}: registry answered HTTP ${res.status}${suffix}`);
}

/** A response body, refused once it passes `max` bytes (Content-Length is only a hint). */
export async function readCapped(res: Response, max: number, what: string): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? NaN);
  if (declared > max) {
    await res.body?.cancel();
    throw new InvalidArgumentError(`${what}: ${declared} bytes is over the ${max}-byte limit`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      total += chunk.length;
      if (total > max) throw new InvalidArgumentError(`${what}: over the ${max}-byte limit`);
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks);
}

/** The manifest's media type: its own field, else Content-Type; schema1 and unknown types refused. */
export function manifestMediaType(bytes: Uint8Array, contentType: string | null, what: string): string {
  let json: { mediaType?: unknown; schemaVersion?: unknown; manifests?: unknown; layers?: unknown };
  try {
    json = JSON.parse(new TextDecoder().decode(bytes)) as typeof json;
  } catch {
    throw new InvalidArgumentError(`manifest ${what}: not valid JSON`);
  }
  const header = (contentType ?? "").split(";")[0]!.trim();
  const type = typeof json.mediaType === "string" && json.mediaType ? json.mediaType : header;
  if (isSchema1Type(type) || json.schemaVersion === 1) {
    throw new InvalidArgumentError(`manifest ${what}: Docker Image Format v1 / schema 1 manifests are not supported (push the image again with a newer client)`);
  }
  if (isIndexType(type) || isManifestType(type)) return type;
  // No type at all: guess from the shape, as containerd does for old OCI layouts.
  if (Array.isArray(json.manifests)) return MediaType.ociIndex;
  if (Array.isArray(json.layers)) return MediaType.ociManifest;
  throw new InvalidArgumentError(`manifest ${what}: unsupported media type ${JSON.stringify(type)}`);
}
