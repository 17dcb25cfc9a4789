// The image commands: pull, images, image inspect, tag, rmi, login, logout, info (load, save and
// prune live in images/archive.ts and images/prune.ts behind the same store). They work on the
// stores under --root directly, with or without a daemon, as nerdctl's do against containerd's.
import { existsSync } from "node:fs";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs.ts";
import { ContainerStore } from "../containers/record.ts";
import { shortId } from "../images/image.ts";
import { readCredentials, removeCredentials, saveCredentials } from "../registry/credentials.ts";
import { RegistryClient } from "../registry/client.ts";
import { familiarString, parseDockerRef } from "../registry/reference.ts";
import type { Command, GlobalOptions } from "./args.ts";
import { openImageStore } from "./image-store.ts";
import { human, PullDisplay } from "./pull-display.ts";
import { stdout } from "./stdout.ts";

function out(line: string): void {
  stdout().write(line + "\n");
}

/** Containers (ns/id) made from an image name, from their records: rmi refuses while there are any. */
export function containersUsing(root: string): (name: string) => string[] {
  const records = new ContainerStore(root).list();
  return (name) => records.filter((r) => r.source?.image === name).map((r) => `${r.namespace}/${r.id}`);
}

export async function pull(g: GlobalOptions, c: Extract<Command, { name: "pull" }>): Promise<number> {
  const store = openImageStore(g);
  const display = new PullDisplay(process.stderr, c.ref, c.quiet);
  let img;
  try {
    img = await store.pull(c.ref, { ...(c.platform ? { platform: c.platform } : {}), onProgress: (e) => display.progress(e) });
  } finally {
    display.end(img !== undefined);
  }
  out(img.name);
  return 0;
}

function ago(iso: string | undefined): string {
  if (!iso) return "";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (!Number.isFinite(s)) return "";
  if (s < 60) return "Less than a minute ago";
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.round(s / 3600)} hours ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export async function images(g: GlobalOptions, quiet: boolean): Promise<number> {
  const list = await openImageStore(g).list();
  if (quiet) {
    for (const { img, rec } of list) out(img ? shortId(img) : rec.target.digest.slice(7, 19));
    return 0;
  }
  const rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]];
  for (const { rec, img, size } of list) {
    const ref = parseDockerRef(rec.name);
    const familiar = familiarString(ref);
    const [repo, tag] = ref.tag ? [familiar.slice(0, familiar.lastIndexOf(":")), ref.tag] : [familiar.split("@")[0]!, "<none>"];
    rows.push([repo, tag, img ? shortId(img) : "<broken>", ago(img?.configJson.created ?? rec.created), human(size)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) out(r.map((cell, i) => cell.padEnd(widths[i]!)).join("   ").trimEnd());
  return 0;
}

export async function inspect(g: GlobalOptions, refs: string[]): Promise<number> {
  const store = openImageStore(g);
  const docs = [];
  for (const ref of refs) {
    const img = await store.get(ref);
    docs.push({
      Id: img.config.digest,
      RepoTags: [familiarString(parseDockerRef(img.name))],
      Name: img.name,
      Target: img.target,
      Manifest: img.manifest,
      Created: img.configJson.created,
      Architecture: img.configJson.architecture,
      Os: img.configJson.os,
      Config: img.configJson.config ?? {},
      RootFS: { Type: "layers", Layers: img.diffIds },
      ChainID: img.chainIds.at(-1),
      Size: img.layers.reduce((n, l) => n + l.size, 0),
    });
  }
  out(JSON.stringify(docs, null, 2));
  return 0;
}

export async function tag(g: GlobalOptions, c: Extract<Command, { name: "tag" }>): Promise<number> {
  await openImageStore(g).tag(c.source, c.target);
  return 0;
}

export async function rmi(g: GlobalOptions, c: Extract<Command, { name: "rmi" }>): Promise<number> {
  const store = openImageStore(g);
  const using = containersUsing(g.root);
  let code = 0;
  for (const ref of c.refs) {
    try {
      for (const name of await store.untag(ref, c.force, using)) out(`Untagged: ${name.startsWith("sha256:") ? name : familiarString(parseDockerRef(name))}`);
    } catch (err) {
      process.stderr.write(`bunker: rmi ${ref}: ${err instanceof Error ? err.message : String(err)}\n`);
      code = 1;
    }
  }
  return code;
}

async function readPasswordStdin(): Promise<string> {
  const text = await new Response(Bun.stdin.stream()).text();
  return text.replace(/\r?\n$/, "");
}

export async function login(g: GlobalOptions, c: Extract<Command, { name: "login" }>): Promise<number> {
  const host = c.registry.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
  const existing = readCredentials(host);
  const username = c.username ?? existing?.username;
  const password = c.passwordStdin ? await readPasswordStdin() : (c.password ?? existing?.password);
  if (!username || password === undefined) throw new InvalidArgumentError(`login ${host}: give -u USER and -p PASS or --password-stdin`);
  // checked against the registry before anything is saved, as docker login does
  const client = new RegistryClient({ insecure: g.insecureRegistries, credentials: () => ({ username, password }) });
  await client.ping(host);
  saveCredentials(host, { username, password });
  out("Login Succeeded");
  return 0;
}

export function logout(c: Extract<Command, { name: "logout" }>): number {
  const host = c.registry.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
  if (!removeCredentials(host)) throw new FailedPreconditionError(`not logged in to ${host}`);
  out(`Removing login credentials for ${host}`);
  return 0;
}

export async function info(g: GlobalOptions): Promise<number> {
  const [{ VERSION }, { runcVersion }, { NetworkStore }, { daemonListening }, { installedUnits }] = await Promise.all([
    import("../version.ts"),
    import("./install.ts"),
    import("../network/networks.ts"),
    import("./run-foreground.ts"),
    import("./systemd-unit.ts"),
  ]);
  const store = openImageStore(g);
  const s = store.snapshots;
  out(`Version: bunker ${VERSION} (bun ${Bun.version})`);
  out(`Runtime: ${runcVersion()}`);
  out(`Cgroups: ${existsSync("/sys/fs/cgroup/cgroup.controllers") ? "v2 (unified)" : "v1 (or hybrid)"}`);
  out(`Root: ${g.root}`);
  out(`State: ${g.state}`);
  out(`Daemon socket: ${g.address}`);
  out(`Daemon: ${(await daemonListening(g.address)) ? "listening" : "not running (commands run the manager in-process)"}`);
  out(`Service unit: ${installedUnits().join(", ") || "none (bunker install writes one)"}`);
  out(`Snapshotter: ${s.kind}${s.fallbackReason ? ` (overlayfs cannot work here: ${s.fallbackReason})` : ""}`);
  out(`Images: ${store.content.names.listImages().length}`);
  out(`Containers: ${new ContainerStore(g.root).list().length}`);
  out(`Networks: ${new NetworkStore(g.root).list().map((n) => `${n.name} (${n.subnet})`).join(", ") || "none yet (bridge is made on first use)"}`);
  return 0;
}
