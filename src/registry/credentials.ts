// Registry credentials in docker's config file (docker/cli's configfile: `$DOCKER_CONFIG/config.json`,
// else `~/.docker/config.json`), so that `docker login` and `bunker login` share them. Entries live
// under `auths`, keyed by host (`host:port`, sometimes with https:// and a path) except Docker Hub's,
// which docker keys `https://index.docker.io/v1/`. A value holds `auth` (base64 user:password) or
// `username`/`password`. Credential helpers (`credsStore`) are not consulted. The file is written
// whole (temp + rename) with mode 0600, keeping every other key docker put there.
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { FailedPreconditionError } from "../errdefs.ts";
import type { Credentials } from "./auth.ts";

export const DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/";
const HUB_HOSTS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

export function dockerConfigPath(env: Record<string, string | undefined> = process.env): string {
  return join(env.DOCKER_CONFIG || join(env.HOME || homedir(), ".docker"), "config.json");
}

/** The `auths` key docker uses for a registry host. */
export function authKeyOf(host: string): string {
  return HUB_HOSTS.has(host) ? DOCKER_HUB_AUTH_KEY : host;
}

/** A key of `auths` reduced to a host: scheme and path dropped, Hub's aliases made docker.io. */
export function hostOfAuthKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, "").split("/")[0]!;
  return HUB_HOSTS.has(host) ? "docker.io" : host;
}

interface ConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  [key: string]: unknown;
}

function readConfig(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return {};
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as ConfigFile;
    return parsed && typeof parsed === "object" ? parsed : {};
  } catch (err) {
    throw new FailedPreconditionError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

/** The credentials stored for a registry host (`docker.io`, `127.0.0.1:5000`), or null. */
export function readCredentials(host: string, path = dockerConfigPath()): Credentials | null {
  const auths = readConfig(path).auths ?? {};
  const want = hostOfAuthKey(host);
  const key = Object.keys(auths).find((k) => k === authKeyOf(host)) ?? Object.keys(auths).find((k) => hostOfAuthKey(k) === want);
  if (key === undefined) return null;
  const entry = auths[key]!;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) throw new FailedPreconditionError(`${path}: the auth entry for ${key} is not base64 of user:password`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username && entry.password !== undefined) return { username: entry.username, password: entry.password };
  return null;
}

/** Stores credentials for a host (`bunker login`), as docker does: base64 `auth` only. */
export function saveCredentials(host: string, creds: Credentials, path = dockerConfigPath()): void {
  const config = readConfig(path);
  const auths = { ...config.auths };
  for (const k of Object.keys(auths)) if (hostOfAuthKey(k) === hostOfAuthKey(host)) delete auths[k];
  auths[authKeyOf(host)] = { auth: Buffer.from(`${creds.username}:${creds.password}`).toString("base64") };
  writeConfig(path, { ...config, auths });
}

/** Removes a host's credentials (`bunker logout`); false when there were none. */
export function removeCredentials(host: string, path = dockerConfigPath()): boolean {
  const config = readConfig(path);
  const auths = { ...config.auths };
  const keys = Object.keys(auths).filter((k) => hostOfAuthKey(k) === hostOfAuthKey(host));
  if (keys.length === 0) return false;
  for (const k of keys) delete auths[k];
  writeConfig(path, { ...config, auths });
  return true;
}

function writeConfig(path: string, config: ConfigFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(config, null, "\t")}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600); // the umask may have narrowed it further, never widened; make it exact
  renameSync(tmp, path);
}
