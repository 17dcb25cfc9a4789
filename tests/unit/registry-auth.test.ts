// WWW-Authenticate parsing and the Authorizer's token handling (src/registry/auth.ts), the token
// endpoint played by a local Bun.serve (a real HTTP server: the auth flow against the real registry
// is in tests/integration/registry-pull.test.ts).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Authorizer, parseWwwAuthenticate } from "../../src/registry/auth.ts";

test("Docker Hub's Bearer challenge", () => {
  expect(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"')).toEqual([
    { scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/busybox:pull" } },
  ]);
});

test("Basic, unquoted values, escapes, spaces and several challenges", () => {
  expect(parseWwwAuthenticate('Basic realm="a \\"quoted\\" realm"')).toEqual([{ scheme: "basic", params: { realm: 'a "quoted" realm' } }]);
  expect(parseWwwAuthenticate("Bearer realm=http://x/token , service=svc")).toEqual([{ scheme: "bearer", params: { realm: "http://x/token", service: "svc" } }]);
  expect(parseWwwAuthenticate('Basic realm="r", Bearer realm="https://t",scope="a b"')).toEqual([
    { scheme: "basic", params: { realm: "r" } },
    { scheme: "bearer", params: { realm: "https://t", scope: "a b" } },
  ]);
  expect(parseWwwAuthenticate("")).toEqual([]);
  expect(parseWwwAuthenticate("Negotiate")).toEqual([{ scheme: "negotiate", params: {} }]);
  expect(parseWwwAuthenticate('== Bearer realm="x"')).toEqual([{ scheme: "bearer", params: { realm: "x" } }]);
});

let server: ReturnType<typeof Bun.serve>;
const seen: { url: URL; auth: string | null }[] = [];
beforeAll(() => {
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      seen.push({ url, auth: req.headers.get("authorization") });
      if (url.pathname === "/deny") return new Response("no", { status: 401 });
      if (url.pathname === "/access") return Response.json({ access_token: "acc", expires_in: 1 });
      return Response.json({ token: `tok-${seen.length}`, expires_in: 300 });
    },
  });
});
afterAll(() => server.stop(true));

test("Bearer: asks the realm for service and scope with basic credentials, caches per scope", async () => {
  const a = new Authorizer(() => ({ username: "u", password: "p" }));
  const challenge = `Bearer realm="http://127.0.0.1:${server.port}/token",service="svc"`;
  await a.answer("reg", "repository:x:pull", challenge, "x");
  const req = seen.at(-1)!;
  expect(req.url.searchParams.get("service")).toBe("svc");
  expect(req.url.searchParams.get("scope")).toBe("repository:x:pull");
  expect(req.auth).toBe(`Basic ${btoa("u:p")}`);
  const header = a.cached("reg", "repository:x:pull")!;
  expect(header).toMatch(/^Bearer tok-\d+$/);
  expect(a.cached("reg", "repository:other:pull")).toBeUndefined();
  expect(a.cached("other", "repository:x:pull")).toBeUndefined();
});

test("access_token is taken when token is absent, and expires_in is honoured", async () => {
  const a = new Authorizer(() => null);
  await a.answer("reg", "s", `Bearer realm="http://127.0.0.1:${server.port}/access"`, "x");
  expect(seen.at(-1)!.auth).toBeNull();
  expect(a.cached("reg", "s")).toBe("Bearer acc");
  await Bun.sleep(1100);
  expect(a.cached("reg", "s")).toBeUndefined();
});

test("a refused token request and an unanswerable challenge are one-line errors", async () => {
  const withCreds = new Authorizer(() => ({ username: "u", password: "bad" }));
  await expect(withCreds.answer("reg", "s", `Bearer realm="http://127.0.0.1:${server.port}/deny"`, "pull r")).rejects.toThrow(
    `pull r: http://127.0.0.1:${server.port} refused the credentials (HTTP 401)`,
  );
  const anonymous = new Authorizer(() => null);
  await expect(anonymous.answer("reg", "s", 'Basic realm="r"', "pull r")).rejects.toThrow("pull r: reg requires a login (no credentials; run bunker login reg)");
  await expect(anonymous.answer("reg", "s", null, "pull r")).rejects.toThrow(/no usable WWW-Authenticate challenge/);
  await expect(anonymous.answer("reg", "s", 'Bearer realm="ftp://x/"', "pull r")).rejects.toThrow(/not http\(s\)/);
});

test("Basic: the credentials go on every request to that host", async () => {
  const a = new Authorizer((h) => (h === "reg" ? { username: "u", password: "p:w" } : null));
  await a.answer("reg", "s", 'Basic realm="r"', "x");
  expect(a.cached("reg", "any-scope")).toBe(`Basic ${btoa("u:p:w")}`);
});
