// A real registry for integration tests: Debian's docker-registry (distribution 2.8) serving
// 127.0.0.1 on a free port, storage in its own temp dir, its JSON log kept so that tests can count
// what it served (bytes written per request: how a test proves a Range resume or a single download).
// `auth: "token"` runs a token server in this process that issues RS256 JWTs with an x5c header
// (a self-signed cert made with openssl, given to the registry as rootcertbundle), as Docker Hub's
// auth service does; `auth: "basic"` uses an htpasswd file (bcrypt). stop() kills the registry by
// its pid and removes the dir.
import { createPrivateKey, createSign, randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const TEST_USER = "bunker";
export const TEST_PASSWORD = "s3cret-pass";
const SERVICE = "bunker-test-registry";
const ISSUER = "bunker-test-issuer";
const READY_TIMEOUT_MS = 15_000;

export interface RegistryLogEntry {
  method: string;
  uri: string;
  status: number;
  written: number;
}

export interface TestRegistry {
  /** "127.0.0.1:<port>": a reference domain (loopback, so plain HTTP). */
  host: string;
  dir: string;
  /** Where the registry keeps blobs: docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data. */
  storage: string;
  pid: number;
  /** Requests the token server answered (auth: "token"), with their scope and basic user. */
  tokenRequests: { scope: string; user: string | null; granted: boolean }[];
  /** The registry's completed requests so far, parsed from its log. */
  requests(): RegistryLogEntry[];
  /** The path of a blob's data file in the registry's storage (to corrupt it). */
  blobFile(digest: string): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

function makeCert(dir: string): { keyPem: string; certDer: Buffer; certPath: string } {
  const keyPath = join(dir, "token.key"), certPath = join(dir, "token.crt");
  const r = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath,
    "-days", "2", "-subj", "/CN=bunker-test-token-issuer"], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl req failed: ${r.stderr.toString()}`);
  const pem = readFileSync(certPath, "utf8");
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  return { keyPem: readFileSync(keyPath, "utf8"), certDer: der, certPath };
}

/** A token server: grants what the scope asks when the basic credentials are right (or when anonymous pulls are allowed). */
function startTokenServer(keyPem: string, certDer: Buffer, allowAnonymous: boolean, log: TestRegistry["tokenRequests"]) {
  const key = createPrivateKey(keyPem);
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      const scope = url.searchParams.getAll("scope").join(" ");
      const authz = req.headers.get("authorization");
      let user: string | null = null;
      if (authz?.startsWith("Basic ")) {
        const [u, p] = Buffer.from(authz.slice(6), "base64").toString().split(":");
        if (u !== TEST_USER || p !== TEST_PASSWORD) {
          log.push({ scope, user: u ?? "", granted: false });
          return new Response(JSON.stringify({ details: "incorrect username or password" }), { status: 401 });
        }
        user = u;
      } else if (!allowAnonymous) {
        log.push({ scope, user: null, granted: false });
        return new Response(JSON.stringify({ details: "authentication required" }), { status: 401 });
      }
      const access = scope.split(" ").filter(Boolean).map((s) => {
        const [type, ...rest] = s.split(":");
        const actions = rest.pop()!.split(",");
        return { type, name: rest.join(":"), actions };
      });
      const now = Math.floor(Date.now() / 1000);
      const header = b64url(JSON.stringify({ typ: "JWT", alg: "RS256", x5c: [certDer.toString("base64")] }));
      const claims = b64url(JSON.stringify({ iss: ISSUER, sub: user ?? "", aud: SERVICE, exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access }));
      const signature = createSign("RSA-SHA256").update(`${header}.${claims}`).sign(key).toString("base64url");
      log.push({ scope, user, granted: true });
      return Response.json({ token: `${header}.${claims}.${signature}`, expires_in: 300, issued_at: new Date().toISOString() });
    },
  });
}

export async function startRegistry(opts: { auth?: "token" | "basic"; allowAnonymous?: boolean } = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "bunker-registry-"));
  const storage = join(dir, "storage");
  const port = await freePort();
  const tokenRequests: TestRegistry["tokenRequests"] = [];
  let tokenServer: ReturnType<typeof Bun.serve> | undefined;
  let authConfig = "";
  if (opts.auth === "token") {
    const { keyPem, certDer, certPath } = makeCert(dir);
    tokenServer = startTokenServer(keyPem, certDer, opts.allowAnonymous ?? false, tokenRequests);
    authConfig = `auth:
  token:
    realm: http://127.0.0.1:${tokenServer.port}/token
    service: ${SERVICE}
    issuer: ${ISSUER}
    rootcertbundle: ${certPath}
`;
  } else if (opts.auth === "basic") {
    // Bun's bcrypt writes $2b$; Go's bcrypt (the registry's htpasswd) accepts any minor version.
    const hash = await Bun.password.hash(TEST_PASSWORD, { algorithm: "bcrypt", cost: 5 });
    writeFileSync(join(dir, "htpasswd"), `${TEST_USER}:${hash}\n`);
    authConfig = `auth:
  htpasswd:
    realm: bunker-test
    path: ${join(dir, "htpasswd")}
`;
  }
  const config = `version: 0.1
log:
  level: info
  formatter: json
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
${authConfig}`;
  writeFileSync(join(dir, "config.yml"), config);
  const logPath = join(dir, "registry.log");
  const proc = Bun.spawn(["/usr/bin/docker-registry", "serve", join(dir, "config.yml")], {
    stdout: Bun.file(logPath), stderr: Bun.file(join(dir, "registry.err")), stdin: "ignore",
  });
  const host = `127.0.0.1:${port}`;
  const stop = async () => {
    tokenServer?.stop(true);
    if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, "SIGKILL");
    await proc.exited;
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      const res = await fetch(`http://${host}/v2/`);
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) break;
    } catch {
      // not listening yet
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      const err = readFileSync(join(dir, "registry.err"), "utf8").slice(-2000);
      await stop();
      throw new Error(`docker-registry did not come up on ${host}: ${err}`);
    }
    await Bun.sleep(50);
  }
  return {
    host, dir, storage, pid: proc.pid, tokenRequests, stop,
    blobFile: (digest) => {
      const hex = digest.replace(/^sha256:/, "");
      return join(storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    },
    requests: () => parseLog(readFileSync(join(dir, "registry.err"), "utf8") + readFileSync(logPath, "utf8")),
  };
}

/** The registry's "response completed" JSON lines. */
function parseLog(text: string): RegistryLogEntry[] {
  const out: RegistryLogEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (e.msg !== "response completed") continue;
    out.push({
      method: String(e["http.request.method"] ?? ""),
      uri: String(e["http.request.uri"] ?? ""),
      status: Number(e["http.response.status"] ?? 0),
      written: Number(e["http.response.written"] ?? 0),
    });
  }
  return out;
}
