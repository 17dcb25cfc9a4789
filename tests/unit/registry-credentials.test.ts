// docker's config.json credentials (src/registry/credentials.ts): the key forms docker writes, the
// Hub's legacy key, login/logout keeping other settings, and the file mode.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dockerConfigPath, readCredentials, removeCredentials, saveCredentials } from "../../src/registry/credentials.ts";

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bunker-creds-"));
  path = join(dir, "docker", "config.json");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const b64 = (s: string) => Buffer.from(s).toString("base64");

test("reads base64 auth and username/password entries under every key form docker uses", () => {
  saveCredentials("placeholder", { username: "x", password: "y" }, path);
  writeFileSync(path, JSON.stringify({
    auths: {
      "https://index.docker.io/v1/": { auth: b64("hubuser:hub:pass") },
      "127.0.0.1:5000": { username: "local", password: "pw" },
      "https://registry.example.com/v2/": { auth: b64("ex:pw2") },
      "empty.example.com": {},
    },
    credsStore: "desktop",
  }));
  expect(readCredentials("docker.io", path)).toEqual({ username: "hubuser", password: "hub:pass" });
  expect(readCredentials("registry-1.docker.io", path)).toEqual({ username: "hubuser", password: "hub:pass" });
  expect(readCredentials("127.0.0.1:5000", path)).toEqual({ username: "local", password: "pw" });
  expect(readCredentials("registry.example.com", path)).toEqual({ username: "ex", password: "pw2" });
  expect(readCredentials("empty.example.com", path)).toBeNull();
  expect(readCredentials("nowhere.example.com", path)).toBeNull();
});

test("a missing file means no credentials; a broken one is a clear error", () => {
  expect(readCredentials("docker.io", join(dir, "none.json"))).toBeNull();
  writeFileSync(join(dir, "bad.json"), "{");
  expect(() => readCredentials("docker.io", join(dir, "bad.json"))).toThrow(/bad.json: not valid JSON/);
  writeFileSync(join(dir, "bad2.json"), JSON.stringify({ auths: { "x.io": { auth: b64("nocolon") } } }));
  expect(() => readCredentials("x.io", join(dir, "bad2.json"))).toThrow(/not base64 of user:password/);
});

test("login writes docker's form (Hub under its legacy key), mode 0600, other settings kept; logout removes", () => {
  saveCredentials("docker.io", { username: "a", password: "b" }, path);
  const cfg = JSON.parse(readFileSync(path, "utf8"));
  cfg.credHelpers = { "gcr.io": "gcloud" };
  writeFileSync(path, JSON.stringify(cfg));
  saveCredentials("127.0.0.1:5000", { username: "c", password: "d" }, path);
  saveCredentials("index.docker.io", { username: "a2", password: "b2" }, path);
  const after = JSON.parse(readFileSync(path, "utf8"));
  expect(after).toEqual({
    auths: { "https://index.docker.io/v1/": { auth: b64("a2:b2") }, "127.0.0.1:5000": { auth: b64("c:d") } },
    credHelpers: { "gcr.io": "gcloud" },
  });
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(removeCredentials("docker.io", path)).toBe(true);
  expect(removeCredentials("docker.io", path)).toBe(false);
  expect(readCredentials("docker.io", path)).toBeNull();
  expect(readCredentials("127.0.0.1:5000", path)).toEqual({ username: "c", password: "d" });
});

test("the file is $DOCKER_CONFIG/config.json, else ~/.docker/config.json", () => {
  expect(dockerConfigPath({ DOCKER_CONFIG: "/etc/dc", HOME: "/home/u" })).toBe("/etc/dc/config.json");
  expect(dockerConfigPath({ HOME: "/home/u" })).toBe("/home/u/.docker/config.json");
});
