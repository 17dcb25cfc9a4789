// The registry client's pure parts (src/registry/client.ts): which hosts speak plain HTTP, the
// API host of docker.io, the manifest media type rules (schema1 refused, umoci's typeless
// manifests), and the size cap on buffered bodies.
import { expect, test } from "bun:test";
import { apiHost, isLoopbackHost, manifestMediaType, MANIFEST_ACCEPT, readCapped, RegistryClient } from "../../src/registry/client.ts";
import { MediaType } from "../../src/content/oci.ts";

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

test("loopback registries are plain HTTP, others HTTPS unless listed insecure", () => {
  for (const h of ["localhost:5000", "localhost", "127.0.0.1:5000", "127.3.2.1", "[::1]:5000"]) expect(isLoopbackHost(h)).toBe(true);
  for (const h of ["example.com", "10.0.0.1:5000", "128.0.0.1", "localhost.example.com"]) expect(isLoopbackHost(h)).toBe(false);
  const c = new RegistryClient({ insecure: ["10.0.0.1:5000"], credentials: () => null });
  expect(c.baseUrl("127.0.0.1:5000")).toBe("http://127.0.0.1:5000");
  expect(c.baseUrl("10.0.0.1:5000")).toBe("http://10.0.0.1:5000");
  expect(c.baseUrl("docker.io")).toBe("https://registry-1.docker.io");
  expect(apiHost("quay.io")).toBe("quay.io");
});

test("every manifest type is accepted in one Accept list", () => {
  for (const t of [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest]) expect(MANIFEST_ACCEPT).toContain(t);
  expect(MANIFEST_ACCEPT).not.toContain(MediaType.dockerSchema1);
});

test("media type: the manifest's own field, else Content-Type, else its shape; schema1 refused", () => {
  expect(manifestMediaType(enc({ schemaVersion: 2, mediaType: MediaType.dockerManifest }), "text/plain", "x")).toBe(MediaType.dockerManifest);
  expect(manifestMediaType(enc({ schemaVersion: 2, config: {}, layers: [] }), `${MediaType.ociManifest}; charset=utf-8`, "x")).toBe(MediaType.ociManifest);
  expect(manifestMediaType(enc({ schemaVersion: 2, manifests: [] }), null, "x")).toBe(MediaType.ociIndex);
  expect(() => manifestMediaType(enc({ schemaVersion: 1, name: "x" }), MediaType.dockerSchema1Signed, "r")).toThrow(/manifest r: Docker Image Format v1 \/ schema 1 manifests are not supported/);
  expect(() => manifestMediaType(enc({ schemaVersion: 2 }), "application/json", "r")).toThrow(/unsupported media type "application\/json"/);
  expect(() => manifestMediaType(new TextEncoder().encode("<html>"), "text/html", "r")).toThrow(/manifest r: not valid JSON/);
});

test("readCapped refuses a body over the cap, by header or by counting", async () => {
  expect(new TextDecoder().decode(await readCapped(new Response("abc"), 3, "m"))).toBe("abc");
  await expect(readCapped(new Response("abcd"), 3, "m")).rejects.toThrow(/m: over the 3-byte limit/);
  await expect(readCapped(new Response("abcd", { headers: { "content-length": "4" } }), 3, "m")).rejects.toThrow(/m: 4 bytes is over the 3-byte limit/);
});
