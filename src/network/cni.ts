// The CNI exec protocol (containernetworking/cni SPEC.md, versions 0.1.0–1.0.0), as libcni's
// `pkg/invoke` and `libcni/api.go` speak it: a plugin is a binary found by its `type` in CNI_PATH,
// run with CNI_COMMAND/CONTAINERID/NETNS/IFNAME/ARGS/PATH in its environment and one network
// config on stdin; it answers with a result (ADD), nothing (DEL, CHECK) or an error object
// `{code, msg, details}` on stdout. A conflist is a chain: each plugin gets the list's `name` and
// `cniVersion`, the capability arguments it declares (`runtimeConfig`), and the previous plugin's
// result as `prevResult`; DEL runs the chain in reverse with the ADD result as every plugin's
// `prevResult`. There is no CNI library on npm, so this is ours; it is small on purpose.
//
// Two things libcni leaves to its callers are done here, because every caller needs them:
//   - a plugin that hangs is killed after a deadline. It runs in its own process group (the
//     bridge plugin execs host-local as its child), and the group is killed by its id;
//   - an ADD that fails mid-chain is rolled back: DEL runs for the plugins that ran, so a failed
//     attach leaves no veth, lease or rule behind (what containerd's CRI and nerdctl do by hand).
import { isAbsolute, join } from "node:path";
import * as fs from "node:fs";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError, UnknownError, type BunkerError, errorMessage } from "../errdefs.ts";
import { spawnTracked } from "../sys/children.ts";

/** Where Debian's containernetworking-plugins lives, then the upstream default. */
export const DEFAULT_CNI_PATH: readonly string[] = ["/usr/lib/cni", "/opt/cni/bin"];
/** How long one plugin invocation may take before its process group is killed. */
export const DEFAULT_PLUGIN_TIMEOUT_MS = 10_000;

export type CniCommand = "ADD" | "DEL" | "CHECK" | "VERSION";

export interface PluginConfig {
  type: string;
  /** Runtime arguments the plugin accepts through `runtimeConfig` (e.g. `{portMappings: true}`). */
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  disableCheck?: boolean;
  plugins: PluginConfig[];
}

/** What identifies one attachment to the plugins. */
export interface RuntimeConf {
  containerId: string;
  /** The netns path; "" on a DEL whose netns is gone (plugins then release what lives outside it). */
  netns: string;
  ifName: string;
  /** CNI_ARGS, `K=V;K=V`. */
  args?: Record<string, string>;
  /** Capability arguments, passed to a plugin as `runtimeConfig.<key>` only when it declares `capabilities.<key>`. */
  capabilityArgs?: Record<string, unknown>;
}

export interface CniOptions {
  cniPath?: readonly string[];
  timeoutMs?: number;
  /** Called after every plugin exec with its wall time (bench/network.ts uses it to say where an attach's time goes). */
  onExec?: (event: PluginExecEvent) => void;
}

export interface PluginExecEvent {
  type: string;
  command: CniCommand;
  ms: number;
  ok: boolean;
}

/** A plugin result as the plugins print it (any spec version); see summarizeResult. */
export type CniResult = Record<string, unknown>;

const PLUGIN_TYPE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const ARG = /^[^;=\0]+$/;

/** Rejects what the spec forbids before any plugin sees it (CNI_CONTAINERID, CNI_IFNAME, CNI_ARGS). */
export function validateRuntimeConf(rt: RuntimeConf): void {
  if (!CONTAINER_ID.test(rt.containerId)) throw new InvalidArgumentError(`CNI container id ${JSON.stringify(rt.containerId)} must match ${CONTAINER_ID.source}`);
  const ifName = rt.ifName;
  if (ifName.length === 0 || ifName.length > 15 || ifName === "." || ifName === ".." || /[/:\s]/.test(ifName)) {
    throw new InvalidArgumentError(`interface name ${JSON.stringify(ifName)} must be 1-15 characters without "/", ":" or spaces`);
  }
  if (rt.netns !== "" && !isAbsolute(rt.netns)) throw new InvalidArgumentError(`netns path ${JSON.stringify(rt.netns)} is not absolute`);
  for (const [k, v] of Object.entries(rt.args ?? {})) {
    if (!ARG.test(k) || !ARG.test(v)) throw new InvalidArgumentError(`CNI argument ${JSON.stringify(`${k}=${v}`)} may not contain ";", "=" or NUL`);
  }
}

/** The executable for `type` in the first CNI_PATH dir that has it. */
export function findPlugin(type: string, cniPath: readonly string[] = DEFAULT_CNI_PATH): string {
  if (!PLUGIN_TYPE.test(type) || type === "..") throw new InvalidArgumentError(`CNI plugin type ${JSON.stringify(type)} is not a plain file name`);
  for (const dir of cniPath) {
    const candidate = join(dir, type);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not in this dir
    }
  }
  throw new NotFoundError(`CNI plugin ${JSON.stringify(type)} not found in ${cniPath.join(":")} (is containernetworking-plugins installed?)`);
}

/** The CNI error codes (SPEC.md "Error") as bunker's error classes. */
function errorClassOf(code: number): new (message: string) => BunkerError {
  switch (code) {
    case 1: case 2: case 4: case 6: case 7: return InvalidArgumentError;
    case 3: return NotFoundError;
    case 11: return UnavailableError;
    default: return FailedPreconditionError;
  }
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, "; ").trim();

/**
 * Runs one plugin once: `config` goes on stdin exactly as given. Returns the parsed stdout (ADD,
 * VERSION), or undefined when the plugin printed nothing (DEL, CHECK). `binaryType` runs another
 * plugin with that config, as a main plugin runs its IPAM plugin (libcni's `pkg/ipam` ExecAdd/ExecDel).
 */
export async function execPlugin(command: CniCommand, config: Record<string, unknown> & { type: string }, rt: RuntimeConf, opts: CniOptions = {}, binaryType: string = config.type): Promise<CniResult | undefined> {
  const cniPath = opts.cniPath ?? DEFAULT_CNI_PATH;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS;
  const binary = findPlugin(binaryType, cniPath);
  const what = `CNI plugin ${binaryType} (${command}${typeof config.name === "string" ? ` on network ${JSON.stringify(config.name)}` : ""})`;
  const env: Record<string, string> = {
    // Plugins exec iptables and their IPAM plugin: they need a PATH with the sbin dirs.
    PATH: `${process.env.PATH ?? "/usr/bin:/bin"}:/usr/sbin:/sbin`,
    CNI_COMMAND: command,
    CNI_CONTAINERID: rt.containerId,
    CNI_NETNS: rt.netns,
    CNI_IFNAME: rt.ifName,
    CNI_PATH: cniPath.join(":"),
  };
  if (rt.args && Object.keys(rt.args).length > 0) env.CNI_ARGS = Object.entries(rt.args).map(([k, v]) => `${k}=${v}`).join(";");
  const started = performance.now();
  let ok = false;
  let proc;
  try {
    proc = spawnTracked([binary], { env, stdin: "pipe", stdout: "pipe", stderr: "pipe", detached: true });
  } catch (err) {
    throw new FailedPreconditionError(`${what}: cannot run ${binary}: ${errorMessage(err)}`);
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    // Its own process group (detached): the IPAM child it may have started dies with it.
    try { process.kill(-proc.pid, "SIGKILL"); } catch { try { proc.kill("SIGKILL"); } catch { /* already gone */ } }
  }, timeoutMs);
  try {
    try {
      proc.stdin.write(JSON.stringify(config));
      await proc.stdin.end();
    } catch {
      // A plugin may exit without reading stdin (a bad binary); its exit status tells the story.
    }
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (timedOut) throw new UnavailableError(`${what} did not finish within ${timeoutMs} ms and was killed`);
    if (code !== 0) throw pluginError(what, code, stdout, stderr);
    if (stdout.trim() === "") {
      ok = true;
      return undefined;
    }
    let parsed: CniResult;
    try {
      parsed = JSON.parse(stdout) as CniResult;
    } catch {
      throw new FailedPreconditionError(`${what}: printed a result that is not JSON: ${oneLine(stdout).slice(0, 200)}`);
    }
    ok = true;
    return parsed;
  } finally {
    clearTimeout(timer);
    opts.onExec?.({ type: binaryType, command, ms: performance.now() - started, ok });
  }
}

function pluginError(what: string, exitCode: number, stdout: string, stderr: string): BunkerError {
  let parsed: { code?: unknown; msg?: unknown; details?: unknown } | undefined;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    parsed = undefined;
  }
  if (parsed && typeof parsed === "object" && typeof parsed.msg === "string") {
    const details = typeof parsed.details === "string" && parsed.details !== "" ? `: ${parsed.details}` : "";
    const Cls = errorClassOf(typeof parsed.code === "number" ? parsed.code : 0);
    return new Cls(oneLine(`${what} failed: ${parsed.msg}${details}`));
  }
  const text = oneLine(stderr || stdout) || "no output";
  return new UnknownError(`${what} failed with exit status ${exitCode}: ${text.slice(0, 400)}`);
}

/** The config one plugin of a list sees: the list's name and version, its capability args, the previous result. */
export function pluginStdin(list: NetworkConfigList, plugin: PluginConfig, rt: RuntimeConf, prevResult: CniResult | undefined): Record<string, unknown> & { type: string } {
  const config: Record<string, unknown> & { type: string } = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  const runtimeConfig: Record<string, unknown> = {};
  for (const [key, on] of Object.entries(plugin.capabilities ?? {})) {
    if (on === true && rt.capabilityArgs?.[key] !== undefined) runtimeConfig[key] = rt.capabilityArgs[key];
  }
  if (Object.keys(runtimeConfig).length > 0) config.runtimeConfig = { ...(plugin.runtimeConfig as object | undefined), ...runtimeConfig };
  if (prevResult !== undefined) config.prevResult = prevResult;
  return config;
}

const rollbackFailures = new WeakSet<object>();

/** True for an addNetworkList error whose rollback failed too: the caller must keep what DEL needs. */
export function isRollbackIncomplete(err: unknown): boolean {
  return typeof err === "object" && err !== null && rollbackFailures.has(err);
}

/**
 * ADD through the chain. When plugin N fails, DEL runs for plugins N..0 (reverse, with the last
 * good result) before the error is thrown, so nothing the chain made stays behind; if that
 * rollback fails too, its error is appended (then the caller's kept record must DEL later).
 */
export async function addNetworkList(list: NetworkConfigList, rt: RuntimeConf, opts: CniOptions = {}): Promise<CniResult> {
  validateRuntimeConf(rt);
  if (rt.netns === "") throw new InvalidArgumentError("ADD needs a netns path");
  // Every binary first: a missing one fails the attach before anything is made.
  for (const plugin of list.plugins) findPlugin(plugin.type, opts.cniPath);
  let result: CniResult | undefined;
  for (const [i, plugin] of list.plugins.entries()) {
    try {
      result = await execPlugin("ADD", pluginStdin(list, plugin, rt, result), rt, opts);
    } catch (err) {
      const rollback = await delPlugins(list, list.plugins.slice(0, i + 1), rt, result, opts).then(() => undefined, (e: unknown) => e);
      if (rollback === undefined) throw err;
      const Cls = (err as { constructor: new (m: string) => Error }).constructor;
      const both = new Cls(`${errorMessage(err)} (and the rollback failed: ${errorMessage(rollback)})`);
      rollbackFailures.add(both);
      throw both;
    }
    if (result === undefined) throw new FailedPreconditionError(`CNI plugin ${plugin.type} (ADD on network ${JSON.stringify(list.name)}) printed no result`);
  }
  if (result === undefined) throw new InvalidArgumentError(`network ${JSON.stringify(list.name)} has no plugins`);
  return result;
}

/** DEL through the chain in reverse, each plugin given the ADD result. Every plugin runs even when one fails; the first error is thrown. */
export async function delNetworkList(list: NetworkConfigList, rt: RuntimeConf, prevResult: CniResult | undefined, opts: CniOptions = {}): Promise<void> {
  validateRuntimeConf(rt);
  await delPlugins(list, list.plugins, rt, prevResult, opts);
}

async function delPlugins(list: NetworkConfigList, plugins: PluginConfig[], rt: RuntimeConf, prevResult: CniResult | undefined, opts: CniOptions): Promise<void> {
  let first: unknown;
  for (const plugin of [...plugins].reverse()) {
    try {
      await execPlugin("DEL", pluginStdin(list, plugin, rt, prevResult), rt, opts);
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

/** CHECK through the chain (spec 0.4.0+), each plugin given the ADD result; refused when the list disables it. */
export async function checkNetworkList(list: NetworkConfigList, rt: RuntimeConf, prevResult: CniResult, opts: CniOptions = {}): Promise<void> {
  validateRuntimeConf(rt);
  if (list.disableCheck) return;
  const [major, minor] = list.cniVersion.split(".").map(Number);
  if ((major ?? 0) === 0 && (minor ?? 0) < 4) throw new InvalidArgumentError(`CHECK needs CNI spec 0.4.0 or later; network ${JSON.stringify(list.name)} is ${list.cniVersion}`);
  for (const plugin of list.plugins) await execPlugin("CHECK", pluginStdin(list, plugin, rt, prevResult), rt, opts);
}

/** VERSION: the spec versions a plugin supports. */
export async function pluginVersions(type: string, opts: CniOptions = {}): Promise<string[]> {
  const out = await execPlugin("VERSION", { type, cniVersion: "1.0.0" }, { containerId: "version", netns: "", ifName: "none" }, opts);
  const versions = out?.supportedVersions;
  if (!Array.isArray(versions)) throw new FailedPreconditionError(`CNI plugin ${type} (VERSION) printed no supportedVersions`);
  return versions.map(String);
}
