// Registry authentication as docker/distribution's client (registry/client/auth) and containerd's
// remotes/docker/auth do it: a 401 carries a `WWW-Authenticate` challenge; `Bearer` means "get a
// token from realm for this service and scope" (sent with basic credentials when we have some,
// otherwise anonymous), `Basic` means "send the credentials on every request". Tokens are cached per
// host and scope until `expires_in` (60 s when absent, the spec's default) runs out.
import { InvalidArgumentError, PermissionDeniedError, UnavailableError, errorMessage } from "../errdefs.ts";

export interface Challenge {
  scheme: string; // lower case: "bearer", "basic"
  params: Record<string, string>; // keys lower case
}

export interface Credentials {
  username: string;
  password: string;
}

/**
 * Parses a WWW-Authenticate header (RFC 7235): one or more challenges, each a scheme and
 * comma-separated `key=value` or `key="quoted \"value\""` parameters.
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skip = (re: RegExp) => {
    while (i < n && re.test(header[i]!)) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < n && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  while (i < n) {
    skip(/[\s,]/);
    const scheme = token();
    if (scheme === "") {
      i++; // garbage: step over it rather than loop forever
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    for (;;) {
      skip(/[\s,]/);
      const save = i;
      const key = token();
      skip(/\s/);
      if (key === "" || header[i] !== "=") {
        i = save; // the next challenge's scheme
        break;
      }
      i++;
      skip(/\s/);
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i++];
        }
        i++;
      } else {
        const start = i;
        while (i < n && header[i] !== "," && !/\s/.test(header[i]!)) i++;
        value = header.slice(start, i);
      }
      challenge.params[key.toLowerCase()] = value;
    }
  }
  return challenges;
}

export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

const DEFAULT_TOKEN_SECONDS = 60;

interface CachedAuth {
  header: string;
  expiresAt: number; // ms; Infinity for basic
}

/** Keeps what each host asked for and the tokens it gave, per scope. */
export class Authorizer {
  private readonly cache = new Map<string, CachedAuth>();
  private readonly schemes = new Map<string, Challenge>();

  constructor(
    private readonly credentialsFor: (host: string) => Credentials | null,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /** The Authorization header for a request, if the host challenged us before. */
  cached(host: string, scope: string): string | undefined {
    const hit = this.cache.get(`${host} ${scope}`);
    if (hit && hit.expiresAt > Date.now()) return hit.header;
    const challenge = this.schemes.get(host);
    if (challenge?.scheme === "basic") return this.basicFor(host);
    return undefined;
  }

  /**
   * Answers a 401's challenge: afterwards `cached(host, scope)` gives the header to retry with.
   * A refused token request or a challenge we cannot answer is a one-line PermissionDeniedError.
   */
  async answer(host: string, scope: string, wwwAuthenticate: string | null, what: string): Promise<void> {
    const challenges = parseWwwAuthenticate(wwwAuthenticate ?? "");
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    if (bearer) {
      this.schemes.set(host, bearer);
      const { token, expiresIn } = await this.fetchToken(host, scope, bearer, what);
      this.cache.set(`${host} ${scope}`, { header: `Bearer ${token}`, expiresAt: Date.now() + expiresIn * 1000 });
      return;
    }
    if (basic) {
      this.schemes.set(host, basic);
      if (!this.basicFor(host)) throw new PermissionDeniedError(`${what}: ${host} requires a login (no credentials; run bunker login ${host})`);
      return;
    }
    throw new PermissionDeniedError(`${what}: ${host} answered 401 with no usable WWW-Authenticate challenge (${JSON.stringify(wwwAuthenticate ?? "")})`);
  }

  /** Forgets a host's tokens (after the registry refused one we thought valid). */
  forget(host: string, scope: string): void {
    this.cache.delete(`${host} ${scope}`);
  }

  private basicFor(host: string): string | undefined {
    const creds = this.credentialsFor(host);
    return creds ? basicAuthorization(creds) : undefined;
  }

  private async fetchToken(host: string, scope: string, challenge: Challenge, what: string): Promise<{ token: string; expiresIn: number }> {
    const realm = challenge.params.realm;
    if (!realm) throw new PermissionDeniedError(`${what}: ${host}'s Bearer challenge has no realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new InvalidArgumentError(`${what}: ${host}'s token realm ${JSON.stringify(realm)} is not a URL`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new InvalidArgumentError(`${what}: token realm ${realm} is not http(s)`);
    if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
    // The challenge's scope wins when present (the registry says what it wants); ours otherwise.
    for (const s of (challenge.params.scope ?? scope).split(" ").filter(Boolean)) url.searchParams.append("scope", s);
    const headers: Record<string, string> = {};
    const basic = this.basicFor(host);
    if (basic) headers.Authorization = basic;
    let res: Response;
    try {
      res = await this.fetchImpl(url, { headers, redirect: "follow" });
    } catch (err) {
      throw new UnavailableError(`${what}: token request to ${url.origin} failed: ${errorMessage(err)}`);
    }
    if (res.status === 401 || res.status === 403) {
      throw new PermissionDeniedError(`${what}: ${url.origin} refused the ${basic ? "credentials" : "anonymous token request"} (HTTP ${res.status})`);
    }
    if (!res.ok) throw new UnavailableError(`${what}: token request to ${url.origin} failed: HTTP ${res.status}`);
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = (await res.json()) as typeof body;
    } catch {
      throw new UnavailableError(`${what}: token response from ${url.origin} is not JSON`);
    }
    const token = typeof body.token === "string" && body.token ? body.token : body.access_token;
    if (typeof token !== "string" || token === "") throw new UnavailableError(`${what}: token response from ${url.origin} has no token`);
    const expiresIn = typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    return { token, expiresIn };
  }
}
