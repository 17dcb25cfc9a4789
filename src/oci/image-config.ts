// An image's config applied to the OCI spec of a container, as containerd's oci.WithImageConfigArgs
// and oci.WithUser/WithAdditionalGIDs do (and docker/nerdctl users expect):
// - args: Entrypoint + (the user's args, else Cmd); `--entrypoint` replaces Entrypoint and drops Cmd;
// - env: the image's Env (PATH by default when it sets none), then the user's `-e` values replace or
//   append, and a bare `KEY` removes KEY;
// - cwd: `-w`, else WorkingDir, else `/`;
// - user: `uid`, `name`, `uid:gid`, `name:group` (any mix), resolved against the image's own
//   /etc/passwd and /etc/group, with the supplementary groups /etc/group lists the user in.
// Pure functions over strings: the caller reads the passwd/group files from the mounted rootfs.
import { InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { DEFAULT_PATH_ENV, type OciSpec } from "./spec.ts";

/** The `config` object of an OCI image config (the fields a runtime uses). */
export interface ImageConfig {
  User?: string;
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  StopSignal?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, unknown> | null;
}

export interface ImageRunOptions {
  /** The user's CMD (after the image name); empty means the image's Cmd. */
  args: readonly string[];
  /** `--entrypoint`: replaces the image's Entrypoint, and the image's Cmd is dropped (docker). */
  entrypoint?: string;
  env?: readonly string[];
  user?: string;
  cwd?: string;
}

/** The process args, env and cwd a container of this image runs with (user resolved separately). */
export function imageProcess(config: ImageConfig, o: ImageRunOptions): { args: string[]; env: string[]; cwd: string } {
  const entrypoint = o.entrypoint !== undefined ? (o.entrypoint === "" ? [] : [o.entrypoint]) : (config.Entrypoint ?? []);
  const cmd = o.args.length > 0 ? [...o.args] : o.entrypoint !== undefined ? [] : (config.Cmd ?? []);
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) throw new InvalidArgumentError("no command specified: the image has no Entrypoint or Cmd, and none was given");
  const imageEnv = config.Env && config.Env.length > 0 ? config.Env : [DEFAULT_PATH_ENV];
  const env = applyEnv(imageEnv, o.env ?? []);
  const cwd = o.cwd || config.WorkingDir || "/";
  if (!cwd.startsWith("/")) throw new InvalidArgumentError(`working directory ${JSON.stringify(cwd)} must be absolute`);
  return { args, env, cwd };
}

/** containerd's replaceOrAppendEnvValues: KEY=V replaces or appends; a bare KEY removes KEY. */
export function applyEnv(base: readonly string[], overrides: readonly string[]): string[] {
  const out = [...base];
  for (const kv of overrides) {
    const eq = kv.indexOf("=");
    if (eq === 0 || kv === "") throw new InvalidArgumentError(`environment variable ${JSON.stringify(kv)} has no name`);
    const key = eq < 0 ? kv : kv.slice(0, eq);
    const at = out.findIndex((e) => e === key || e.startsWith(`${key}=`));
    if (eq < 0) {
      if (at >= 0) out.splice(at, 1);
    } else if (at >= 0) out[at] = kv;
    else out.push(kv);
  }
  return out;
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  /** The passwd entry's home, for HOME (docker sets it when the image did not). */
  home?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const ID = /^[0-9]+$/;
const MAX_ID = 0xffff_fffe; // 2^32-1 is (uid_t)-1, "no change"

function parseId(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n > MAX_ID) throw new InvalidArgumentError(`${what} ${s} is out of range`);
  return n;
}

function parsePasswd(text: string | undefined): PasswdEntry[] {
  if (!text) return [];
  return text.split("\n").flatMap((line) => {
    const f = line.split(":");
    if (line.startsWith("#") || f.length < 7 || !ID.test(f[2]!) || !ID.test(f[3]!)) return [];
    return [{ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! }];
  });
}

function parseGroup(text: string | undefined): GroupEntry[] {
  if (!text) return [];
  return text.split("\n").flatMap((line) => {
    const f = line.split(":");
    if (line.startsWith("#") || f.length < 4 || !ID.test(f[2]!)) return [];
    return [{ name: f[0]!, gid: Number(f[2]), members: f[3]!.split(",").filter(Boolean) }];
  });
}

/**
 * Resolves `-u`/the image's User against the image's /etc/passwd and /etc/group contents (undefined
 * when the file is missing). A numeric uid need not exist (its gid is then 0, as containerd); a name
 * must. Supplementary groups are the groups that list the user by name (not for a bare unknown uid).
 */
export function resolveUser(user: string, passwd: string | undefined, group: string | undefined): ResolvedUser {
  const spec = user.trim();
  if (spec === "") return { uid: 0, gid: 0, additionalGids: [], home: "/root" };
  const [u, g, ...rest] = spec.split(":");
  if (rest.length > 0 || u === "" || g === "") throw new InvalidArgumentError(`invalid user ${JSON.stringify(user)}: must be user[:group]`);
  const users = parsePasswd(passwd);
  const groups = parseGroup(group);
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (ID.test(u!)) {
    uid = parseId(u!, "uid");
    entry = users.find((e) => e.uid === uid);
  } else {
    entry = users.find((e) => e.name === u);
    if (!entry) throw new NotFoundError(`unable to find user ${u}: no matching entries in the image's /etc/passwd`);
    uid = entry.uid;
  }
  let gid = entry?.gid ?? 0;
  if (g !== undefined) {
    if (ID.test(g)) gid = parseId(g, "gid");
    else {
      const ge = groups.find((e) => e.name === g);
      if (!ge) throw new NotFoundError(`unable to find group ${g}: no matching entries in the image's /etc/group`);
      gid = ge.gid;
    }
  }
  const additionalGids = entry ? groups.filter((e) => e.members.includes(entry.name) && e.gid !== gid).map((e) => e.gid) : [];
  return entry ? { uid, gid, additionalGids: [...new Set(additionalGids)], home: entry.home } : { uid, gid, additionalGids: [] };
}

/** Puts a resolved user into the spec's process (and HOME when the env has none, as docker does). */
export function applyUser(spec: OciSpec, user: ResolvedUser): void {
  spec.process.user = user.additionalGids.length > 0 ? { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids } : { uid: user.uid, gid: user.gid };
  if (!spec.process.env.some((e) => e.startsWith("HOME="))) spec.process.env.push(`HOME=${user.home || "/"}`);
}
