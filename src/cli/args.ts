// Command-line parsing for `bunker`, in the style of ctr/nerdctl: global flags, then a command,
// its flags, then positionals; flags stop at the first positional so a container's command keeps
// its own flags (`bunker run --rootfs r id /bin/ls -l`).
import { resolve } from "node:path";
import { InvalidArgumentError } from "../errdefs.ts";
import { DEFAULT_ADDRESS, DEFAULT_ROOT, DEFAULT_STATE } from "../runtime/paths.ts";
import { parseImageCommand } from "./image-args.ts";
import { formatRestartPolicy, parseRestartPolicy } from "../containers/restart-policy.ts";
import { logOptionsFromList } from "../contract/log-uri.ts";
import { parseTail } from "./log-time.ts";
import { type NetworkCommand, parseNetworkCommand } from "./network.ts";
import type { RunSpecFlags } from "../oci/run-options.ts";
import { parseRunSpecFlags, RUN_SPEC_FLAGS } from "./run-flags.ts";
import { type OpsCommand, parseOpsCommand } from "./ops-args.ts";

export interface GlobalOptions {
  root: string;
  state: string;
  address: string;
  namespace: string;
  debug: boolean;
  /** A runtime config (TOML, [runtimes.<name>] sections) that `run --runtime NAME` looks NAME up in. */
  runtimeConfig?: string;
  /** Registries reached over plain HTTP besides localhost and 127.0.0.0/8 (docker's insecure-registries). */
  insecureRegistries: string[];
  /** The snapshotter for image layers: overlayfs, or native (copies) where overlay cannot stack; default auto. */
  snapshotter?: "auto" | "overlayfs" | "native";
}

export const DEFAULT_GLOBALS: GlobalOptions = {
  root: DEFAULT_ROOT,
  state: DEFAULT_STATE,
  address: DEFAULT_ADDRESS,
  namespace: "default",
  debug: false,
  insecureRegistries: [],
};

/** The image store's options from the global flags (src/images/store.ts ImageStoreOptions). */
export function imageStoreOptions(g: GlobalOptions): { insecureRegistries: string[]; snapshotter?: "auto" | "overlayfs" | "native" } {
  return g.snapshotter ? { insecureRegistries: g.insecureRegistries, snapshotter: g.snapshotter } : { insecureRegistries: g.insecureRegistries };
}

/** When `run IMAGE` pulls: docker's and nerdctl's --pull. */
export type PullPolicy = "missing" | "always" | "never";

export interface RunOptions {
  rm: boolean;
  detach: boolean;
  tty: boolean;
  /** -i: the process reads our stdin (else it gets none, as with docker). */
  interactive?: boolean;
  /** A runtime name (of the runtime config, or bunker/runc), a runtime type, or a shim's absolute path. */
  runtime?: string;
  env: string[];
  labels: Record<string, string>;
  /** OCI spec annotations; the shim's start reads its group from them (e.g. io.kubernetes.cri.sandbox-id). */
  annotations: Record<string, string>;
  log?: string;
  /** docker's --log-driver (json-file, file, none) and --log-opt k=v (checked by the manager). */
  logDriver?: string;
  logOptions?: Record<string, string>;
  cwd?: string;
  /** The container's root: a host directory (`--rootfs DIR ID CMD...`), or an image (`[--name ID] IMAGE [CMD...]`). */
  source: { rootfs: string } | { image: string; pull: PullPolicy; platform?: string };
  id: string;
  args: string[];
  /** `--entrypoint` (image runs only): replaces the image's Entrypoint and drops its Cmd. */
  entrypoint?: string;
  /** `-u user[:group]`: resolved against the image's /etc/passwd and /etc/group. */
  user?: string;
  /** `--stop-signal` and `--stop-timeout` (seconds): what `stop` does (default: the image's StopSignal, else TERM; 10 s). */
  stopSignal?: string;
  stopTimeout?: number;
  /** docker's --restart: no, always, unless-stopped, on-failure[:N] (applied by bunker daemon). */
  restart?: string;
  /** -v, --mount, --tmpfs, --read-only, --memory, --cpus, --pids-limit, caps, --privileged, --device, --init (run-flags.ts); absent when none is given. */
  runSpec?: RunSpecFlags;
  /** `--net` (default bridge, or BUNKER_NETWORK) and its companions. */
  network: { mode: string; publish: string[]; dns: string[]; dnsSearch: string[]; addHosts: string[]; hostname?: string };
}

export type Command =
  | { name: "run"; opts: RunOptions }
  | { name: "ps"; quiet: boolean; all: boolean }
  | { name: "start"; ids: string[]; attach?: true }
  | { name: "restart"; timeout?: number; ids: string[] }
  | { name: "inspect"; ids: string[] }
  | { name: "stop"; timeout?: number; ids: string[] }
  | { name: "wait"; ids: string[] }
  | { name: "exec"; tty: boolean; interactive?: boolean; detach: boolean; execId?: string; env: string[]; cwd?: string; id: string; args: string[] }
  | { name: "kill"; signal: number; all: boolean; ids: string[] }
  | { name: "rm"; force: boolean; ids: string[] }
  | { name: "logs"; id: string; follow: boolean; tail?: number; timestamps: boolean; since?: string; until?: string }
  | { name: "version" }
  | { name: "daemon" }
  | { name: "install"; prefix: string; containerdConfig?: string; containerdVersion?: string }
  | { name: "pull"; ref: string; platform?: string; quiet: boolean }
  | { name: "load"; input?: string; quiet: boolean }
  | { name: "save"; output: string; refs: string[] }
  | { name: "images"; quiet: boolean }
  | { name: "image-inspect"; refs: string[] }
  | { name: "tag"; source: string; target: string }
  | { name: "rmi"; force: boolean; refs: string[] }
  | { name: "image-prune"; all: boolean }
  | { name: "login"; registry: string; username?: string; password?: string; passwordStdin: boolean }
  | { name: "logout"; registry: string }
  | { name: "info" }
  | NetworkCommand
  | OpsCommand
  | { name: "help"; topic?: string };

export interface Parsed {
  globals: GlobalOptions;
  command: Command;
}

export const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12,
  PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22,
  URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
};

/** A whole number of seconds (docker's -t/--stop-timeout). */
function seconds(value: string, what: string): number {
  if (!/^\d{1,6}$/.test(value)) throw new InvalidArgumentError(`${what} must be a whole number of seconds, not ${JSON.stringify(value)}`);
  return Number(value);
}

/** `KILL`, `SIGKILL`, `sigkill` or `9` -> 9. */
export function parseSignal(value: string): number {
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    if (n >= 1 && n <= 64) return n;
  } else {
    const name = value.toUpperCase().replace(/^SIG/, "");
    const n = SIGNALS[name];
    if (n !== undefined) return n;
  }
  throw new InvalidArgumentError(`invalid signal ${JSON.stringify(value)}`);
}

type FlagKind = "bool" | "string" | "list";
export interface FlagSpec {
  names: string[];
  key: string;
  kind: FlagKind;
}

/** Parses flags until the first positional; returns values by key and the remaining arguments. */
export function parseFlags(argv: string[], specs: FlagSpec[], context: string): { values: Map<string, string | boolean | string[]>; rest: string[] } {
  const values = new Map<string, string | boolean | string[]>();
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    // docker's clustered short flags (`-it`, `-dit`): each letter a boolean flag of this command
    const cluster = /^-[a-zA-Z]{2,}$/.test(arg) ? [...arg.slice(1)].map((c) => specs.find((s) => s.names.includes(`-${c}`))) : [];
    if (cluster.length > 0 && cluster.every((s) => s?.kind === "bool")) {
      for (const s of cluster) values.set(s!.key, true);
      i++;
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq > 0 && arg.startsWith("--") ? arg.slice(0, eq) : arg;
    const spec = specs.find((s) => s.names.includes(name));
    if (!spec) throw new InvalidArgumentError(`${context}: unknown flag ${name}`);
    let value: string | undefined;
    if (spec.kind !== "bool") {
      if (eq > 0 && arg.startsWith("--")) value = arg.slice(eq + 1);
      else {
        value = argv[i + 1];
        if (value === undefined) throw new InvalidArgumentError(`${context}: flag ${name} needs a value`);
        i++;
      }
    } else if (eq > 0 && arg.startsWith("--")) {
      throw new InvalidArgumentError(`${context}: flag ${name} takes no value`);
    }
    if (spec.kind === "bool") values.set(spec.key, true);
    else if (spec.kind === "string") values.set(spec.key, value!);
    else {
      const list = (values.get(spec.key) as string[] | undefined) ?? [];
      list.push(value!);
      values.set(spec.key, list);
    }
    i++;
  }
  return { values, rest: argv.slice(i) };
}

export const str = (v: Map<string, unknown>, k: string): string | undefined => v.get(k) as string | undefined;
export const bool = (v: Map<string, unknown>, k: string): boolean => v.get(k) === true;
export const list = (v: Map<string, unknown>, k: string): string[] => (v.get(k) as string[] | undefined) ?? [];

const GLOBAL_FLAGS: FlagSpec[] = [
  { names: ["--root"], key: "root", kind: "string" },
  { names: ["--state"], key: "state", kind: "string" },
  { names: ["--address", "-a"], key: "address", kind: "string" },
  { names: ["--namespace", "-n"], key: "namespace", kind: "string" },
  { names: ["--debug"], key: "debug", kind: "bool" },
  { names: ["--runtime-config"], key: "runtimeConfig", kind: "string" },
  { names: ["--insecure-registry"], key: "insecureRegistry", kind: "list" },
  { names: ["--snapshotter"], key: "snapshotter", kind: "string" },
  { names: ["--help", "-h"], key: "help", kind: "bool" },
];

export function one(rest: string[], what: string, context: string): string {
  const v = rest[0];
  if (v === undefined) throw new InvalidArgumentError(`${context}: ${what} is required`);
  return v;
}

export function noMore(rest: string[], from: number, context: string): void {
  if (rest.length > from) throw new InvalidArgumentError(`${context}: unexpected argument ${JSON.stringify(rest[from])}`);
}

function parseLabels(items: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq === 0) throw new InvalidArgumentError(`label ${JSON.stringify(item)} must be key=value`);
    if (eq < 0) labels[item] = "";
    else labels[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return labels;
}

function parseAnnotations(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`--annotation ${JSON.stringify(item)} must be key=value`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** docker's container names are random; ours are the first 12 hex digits of a random id, as docker shows ids. */
function randomName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** With an image, a bare `-e KEY` removes KEY from the image's env (oci/image-config.ts); with a rootfs there is nothing to remove. */
function checkRunEnv(items: string[], image: boolean): string[] {
  if (!image) return checkEnv(items);
  for (const e of items) if (e === "" || e.startsWith("=")) throw new InvalidArgumentError(`--env ${JSON.stringify(e)} must be KEY=VALUE or KEY`);
  return items;
}

function checkEnv(items: string[]): string[] {
  for (const e of items) if (e.indexOf("=") <= 0) throw new InvalidArgumentError(`--env ${JSON.stringify(e)} must be KEY=VALUE`);
  return items;
}

export function parseArgs(argv: string[], env: Record<string, string | undefined> = {}): Parsed {
  const g = parseFlags(argv, GLOBAL_FLAGS, "bunker");
  const globals: GlobalOptions = {
    // relative paths are taken from the cwd, as every other tool does (bundles need absolute ones)
    root: resolve(str(g.values, "root") ?? env.BUNKER_ROOT ?? DEFAULT_GLOBALS.root),
    state: resolve(str(g.values, "state") ?? env.BUNKER_STATE ?? DEFAULT_GLOBALS.state),
    address: resolve(str(g.values, "address") ?? env.BUNKER_ADDRESS ?? DEFAULT_GLOBALS.address),
    namespace: str(g.values, "namespace") ?? env.BUNKER_NAMESPACE ?? DEFAULT_GLOBALS.namespace,
    debug: bool(g.values, "debug"),
    insecureRegistries: [...list(g.values, "insecureRegistry"), ...(env.BUNKER_INSECURE_REGISTRIES ?? "").split(",").filter(Boolean)],
  };
  const snapshotter = str(g.values, "snapshotter") ?? env.BUNKER_SNAPSHOTTER;
  if (snapshotter !== undefined && snapshotter !== "") {
    if (snapshotter !== "auto" && snapshotter !== "overlayfs" && snapshotter !== "native") throw new InvalidArgumentError(`--snapshotter must be auto, overlayfs or native, not ${JSON.stringify(snapshotter)}`);
    globals.snapshotter = snapshotter;
  }
  const runtimeConfig = str(g.values, "runtimeConfig") ?? env.BUNKER_RUNTIME_CONFIG;
  if (runtimeConfig !== undefined && runtimeConfig !== "") globals.runtimeConfig = runtimeConfig;
  const [name, ...tail] = g.rest;
  if (name === undefined || bool(g.values, "help")) return { globals, command: { name: "help", topic: name } };
  // `bunker run --help`: every command's own help (its flags come before any positional)
  if (tail[0] === "--help" || tail[0] === "-h") return { globals, command: { name: "help", topic: name === "image" || name === "network" ? `${name} ${tail[1] ?? ""}`.trim() : name } };
  const ctx = `bunker ${name}`;
  switch (name) {
    case "run": {
      const f = parseFlags(tail, [
        { names: ["--rm"], key: "rm", kind: "bool" },
        { names: ["-d", "--detach"], key: "detach", kind: "bool" },
        { names: ["-t", "--tty"], key: "tty", kind: "bool" },
        { names: ["-i", "--interactive"], key: "interactive", kind: "bool" },
        { names: ["--runtime"], key: "runtime", kind: "string" },
        { names: ["-e", "--env"], key: "env", kind: "list" },
        { names: ["-l", "--label"], key: "label", kind: "list" },
        { names: ["--annotation"], key: "annotation", kind: "list" },
        { names: ["--log"], key: "log", kind: "string" },
        { names: ["--log-driver"], key: "logDriver", kind: "string" },
        { names: ["--log-opt"], key: "logOpt", kind: "list" },
        { names: ["--cwd", "-w"], key: "cwd", kind: "string" },
        { names: ["--rootfs"], key: "rootfs", kind: "string" },
        { names: ["--name"], key: "name", kind: "string" },
        { names: ["--pull"], key: "pull", kind: "string" },
        { names: ["--platform"], key: "platform", kind: "string" },
        { names: ["--entrypoint"], key: "entrypoint", kind: "string" },
        { names: ["-u", "--user"], key: "user", kind: "string" },
        { names: ["--net", "--network"], key: "net", kind: "string" },
        { names: ["-p", "--publish"], key: "publish", kind: "list" },
        { names: ["--dns"], key: "dns", kind: "list" },
        { names: ["--dns-search"], key: "dnsSearch", kind: "list" },
        { names: ["--add-host"], key: "addHost", kind: "list" },
        { names: ["--hostname"], key: "hostname", kind: "string" },
        { names: ["--stop-signal"], key: "stopSignal", kind: "string" },
        { names: ["--stop-timeout"], key: "stopTimeout", kind: "string" },
        { names: ["--restart"], key: "restart", kind: "string" },
        ...RUN_SPEC_FLAGS,
      ], ctx);
      const rootfs = str(f.values, "rootfs");
      const name = str(f.values, "name");
      let id: string;
      let args: string[];
      let source: RunOptions["source"];
      if (rootfs !== undefined) {
        // today's form, kept: --rootfs DIR ID CMD...
        for (const k of ["pull", "platform", "entrypoint", "user"]) {
          if (f.values.has(k)) throw new InvalidArgumentError(`${ctx}: --${k} needs an image, not --rootfs`);
        }
        if (name !== undefined) throw new InvalidArgumentError(`${ctx}: with --rootfs the container id comes before the command, not in --name`);
        id = one(f.rest, "a container id", ctx);
        args = f.rest.slice(1);
        if (args.length === 0) throw new InvalidArgumentError(`${ctx}: a command to run is required after the container id`);
        source = { rootfs };
      } else {
        const image = one(f.rest, "an image (or --rootfs DIR)", ctx);
        args = f.rest.slice(1);
        id = name ?? randomName();
        const pull = str(f.values, "pull") ?? "missing";
        if (pull !== "missing" && pull !== "always" && pull !== "never") throw new InvalidArgumentError(`${ctx}: --pull must be missing, always or never`);
        const platform = str(f.values, "platform");
        source = platform === undefined ? { image, pull } : { image, pull, platform };
      }
      const opts: RunOptions = {
        rm: bool(f.values, "rm"),
        detach: bool(f.values, "detach"),
        tty: bool(f.values, "tty"),
        env: checkRunEnv(list(f.values, "env"), "image" in source),
        labels: parseLabels(list(f.values, "label")),
        annotations: parseAnnotations(list(f.values, "annotation")),
        source,
        id,
        args,
        network: {
          mode: str(f.values, "net") ?? env.BUNKER_NETWORK ?? "bridge",
          publish: list(f.values, "publish"),
          dns: list(f.values, "dns"),
          dnsSearch: list(f.values, "dnsSearch"),
          addHosts: list(f.values, "addHost"),
        },
      };
      const hostname = str(f.values, "hostname");
      if (hostname !== undefined) opts.network.hostname = hostname;
      const stopSignal = str(f.values, "stopSignal");
      if (stopSignal !== undefined) {
        parseSignal(stopSignal); // refused now, not at stop time
        opts.stopSignal = stopSignal;
      }
      const stopTimeout = str(f.values, "stopTimeout");
      if (stopTimeout !== undefined) opts.stopTimeout = seconds(stopTimeout, `${ctx}: --stop-timeout`);
      const runSpec = parseRunSpecFlags(f.values);
      if (Object.keys(runSpec).length > 0) opts.runSpec = runSpec;
      if (bool(f.values, "interactive")) opts.interactive = true;
      const entrypoint = str(f.values, "entrypoint");
      if (entrypoint !== undefined) opts.entrypoint = entrypoint;
      const user = str(f.values, "user");
      if (user !== undefined) opts.user = user;
      const runtime = str(f.values, "runtime");
      if (runtime !== undefined) opts.runtime = runtime;
      const log = str(f.values, "log");
      if (log !== undefined) opts.log = log;
      const logDriver = str(f.values, "logDriver");
      if (logDriver !== undefined) opts.logDriver = logDriver;
      if (list(f.values, "logOpt").length > 0) opts.logOptions = logOptionsFromList(list(f.values, "logOpt"));
      if ((opts.logDriver !== undefined || opts.logOptions) && !opts.detach) throw new InvalidArgumentError(`${ctx}: --log-driver and --log-opt apply to detached containers (-d)`);
      const cwd = str(f.values, "cwd");
      if (cwd !== undefined) opts.cwd = cwd;
      const restart = str(f.values, "restart");
      if (restart !== undefined) {
        opts.restart = formatRestartPolicy(parseRestartPolicy(restart)); // refused now, not at the first exit
        if (opts.rm && opts.restart !== "no") throw new InvalidArgumentError(`${ctx}: --restart and --rm cannot be combined`);
      }
      if (opts.rm && opts.detach) throw new InvalidArgumentError(`${ctx}: --rm and --detach cannot be combined`);
      if (opts.log !== undefined && !opts.detach) throw new InvalidArgumentError(`${ctx}: --log needs --detach`);
      return { globals, command: { name: "run", opts } };
    }
    case "stop": {
      const f = parseFlags(tail, [{ names: ["-t", "--time", "--timeout"], key: "time", kind: "string" }], ctx);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: a container id is required`);
      const time = str(f.values, "time");
      return { globals, command: { name: "stop", ids: f.rest, ...(time !== undefined ? { timeout: seconds(time, `${ctx}: -t`) } : {}) } };
    }
    case "wait": {
      const f = parseFlags(tail, [], ctx);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: a container id is required`);
      return { globals, command: { name: "wait", ids: f.rest } };
    }
    case "inspect": {
      const f = parseFlags(tail, [], ctx);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: a container id is required`);
      return { globals, command: { name: "inspect", ids: f.rest } };
    }
    case "ps":
    case "ls": {
      const f = parseFlags(tail, [
        { names: ["-q", "--quiet"], key: "quiet", kind: "bool" },
        { names: ["-a", "--all"], key: "all", kind: "bool" },
      ], ctx);
      noMore(f.rest, 0, ctx);
      return { globals, command: { name: "ps", quiet: bool(f.values, "quiet"), all: bool(f.values, "all") } };
    }
    case "start": {
      const f = parseFlags(tail, [{ names: ["-a", "--attach"], key: "attach", kind: "bool" }], ctx);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: a container id is required`);
      const attach = bool(f.values, "attach");
      if (attach && f.rest.length > 1) throw new InvalidArgumentError(`${ctx}: you cannot start and attach multiple containers at once`);
      return { globals, command: { name: "start", ids: f.rest, ...(attach ? { attach: true as const } : {}) } };
    }
    case "restart": {
      const f = parseFlags(tail, [{ names: ["-t", "--time", "--timeout"], key: "time", kind: "string" }], ctx);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: a container id is required`);
      const time = str(f.values, "time");
      return { globals, command: { name: "restart", ids: f.rest, ...(time !== undefined ? { timeout: seconds(time, `${ctx}: -t`) } : {}) } };
    }
    case "exec": {
      const f = parseFlags(tail, [
        { names: ["-t", "--tty"], key: "tty", kind: "bool" },
        { names: ["-i", "--interactive"], key: "interactive", kind: "bool" },
        { names: ["-d", "--detach"], key: "detach", kind: "bool" },
        { names: ["--exec-id"], key: "execId", kind: "string" },
        { names: ["-e", "--env"], key: "env", kind: "list" },
        { names: ["--cwd", "-w"], key: "cwd", kind: "string" },
      ], ctx);
      const id = one(f.rest, "a container id", ctx);
      const args = f.rest.slice(1);
      if (args.length === 0) throw new InvalidArgumentError(`${ctx}: a command to execute is required after the container id`);
      const cmd: Command = { name: "exec", tty: bool(f.values, "tty"), detach: bool(f.values, "detach"), env: checkEnv(list(f.values, "env")), id, args };
      const execId = str(f.values, "execId");
      if (execId !== undefined) cmd.execId = execId;
      if (bool(f.values, "interactive")) cmd.interactive = true;
      const cwd = str(f.values, "cwd");
      if (cwd !== undefined) cmd.cwd = cwd;
      return { globals, command: cmd };
    }
    case "kill": {
      const f = parseFlags(tail, [
        { names: ["-s", "--signal"], key: "signal", kind: "string" },
        { names: ["-a", "--all"], key: "all", kind: "bool" },
      ], ctx);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: a container id is required`);
      // KILL by default, as docker, podman and nerdctl kill (ctr task kill's TERM is stop's job here)
      return { globals, command: { name: "kill", signal: parseSignal(str(f.values, "signal") ?? "KILL"), all: bool(f.values, "all"), ids: f.rest } };
    }
    case "rm":
    case "delete": {
      const f = parseFlags(tail, [{ names: ["-f", "--force"], key: "force", kind: "bool" }], ctx);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: a container id is required`);
      return { globals, command: { name: "rm", force: bool(f.values, "force"), ids: f.rest } };
    }
    case "logs": {
      const f = parseFlags(tail, [
        { names: ["-f", "--follow"], key: "follow", kind: "bool" },
        { names: ["-n", "--tail"], key: "tail", kind: "string" },
        { names: ["-t", "--timestamps"], key: "timestamps", kind: "bool" },
        { names: ["--since"], key: "since", kind: "string" },
        { names: ["--until"], key: "until", kind: "string" },
      ], ctx);
      const id = one(f.rest, "a container id", ctx);
      noMore(f.rest, 1, ctx);
      const cmd: Command = { name: "logs", id, follow: bool(f.values, "follow"), timestamps: bool(f.values, "timestamps") };
      const tailArg = str(f.values, "tail");
      if (tailArg !== undefined) {
        const n = parseTail(tailArg);
        if (n !== undefined) cmd.tail = n;
      }
      const since = str(f.values, "since");
      if (since !== undefined) cmd.since = since;
      const until = str(f.values, "until");
      if (until !== undefined) cmd.until = until;
      return { globals, command: cmd };
    }
    case "version":
    case "daemon": {
      const f = parseFlags(tail, [], ctx);
      noMore(f.rest, 0, ctx);
      return { globals, command: { name } };
    }
    case "install": {
      const f = parseFlags(tail, [
        { names: ["--prefix"], key: "prefix", kind: "string" },
        { names: ["--containerd-config"], key: "containerdConfig", kind: "string" },
        { names: ["--containerd-version"], key: "containerdVersion", kind: "string" },
      ], ctx);
      noMore(f.rest, 0, ctx);
      const containerdConfig = str(f.values, "containerdConfig");
      const containerdVersion = str(f.values, "containerdVersion");
      return {
        globals,
        command: { name: "install", prefix: str(f.values, "prefix") ?? "/usr/local", ...(containerdConfig !== undefined ? { containerdConfig } : {}), ...(containerdVersion !== undefined ? { containerdVersion } : {}) },
      };
    }
    case "pull":
    case "load":
    case "save":
    case "images":
    case "image":
    case "tag":
    case "rmi":
    case "login":
    case "logout":
    case "info":
      return { globals, command: parseImageCommand(name, tail) };
    case "network":
      return { globals, command: parseNetworkCommand(tail) };
    case "pause":
    case "unpause":
    case "top":
    case "stats":
    case "cp":
    case "events":
      return { globals, command: parseOpsCommand(name, tail) };
    case "help":
      return { globals, command: { name: "help", topic: tail[0] } };
    default:
      throw new InvalidArgumentError(`unknown command ${JSON.stringify(name)} (try: bunker help)`);
  }
}

/** The usage lines of one command (its line and the indented lines after it), or all of them. */
export function usageOf(topic: string | undefined): string {
  if (!topic) return USAGE;
  const lines = USAGE.split("\n");
  const head = lines.findIndex((l) => new RegExp(`^  ${topic.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}( |$)`).test(l) || l.startsWith(`  ${topic.split(" ")[0]} `));
  if (head < 0) return USAGE;
  const out = [lines[head]!];
  for (const l of lines.slice(head + 1)) {
    if (!/^ {3,}\S/.test(l) && !l.startsWith(`  ${topic.split(" ")[0]} `)) break;
    out.push(l);
  }
  return `usage: bunker [global flags] ${out.join("\n").trim()}\n`;
}

export const USAGE = `usage: bunker [--root DIR] [--state DIR] [--address SOCK] [--namespace NS] [--runtime-config FILE] [--debug] COMMAND

commands:
  run [--rm] [-d] [-i] [-t] [--name ID] [--pull missing|always|never] [--platform P] [--entrypoint CMD] [-u USER]
      [--runtime NAME] [-e K=V|K]... [--label k=v]... [--annotation k=v]... [--log FILE] [--log-driver json-file|file|none] [--log-opt max-size=10m|max-file=3]... [-w DIR] IMAGE [CMD [ARG...]]
      [--net bridge|NAME|host|none|container:ID] [-p [IP:]HOST:CTR[/udp]]... [--dns IP]... [--dns-search D]...
      [--add-host NAME:IP]... [--hostname NAME] [--stop-signal SIG] [--stop-timeout SECONDS]
      [--restart no|always|unless-stopped|on-failure[:N]]
      [-v HOST:CTR[:ro]]... [--mount type=bind|tmpfs,source=S,target=T[,readonly][,tmpfs-size=N]]... [--tmpfs CTR[:OPTS]]...
      [--read-only] [-m|--memory SIZE] [--memory-swap SIZE|-1] [--cpus N.N] [--pids-limit N]
      [--cap-add CAP]... [--cap-drop CAP]... [--privileged] [--device HOST[:CTR][:rwm]]... [--init]
  run [same flags] --rootfs DIR ID CMD [ARG...]
                                 a container from an image (pulled when missing), or from a host directory;
                                 NAME: with --runtime-config, one of its [runtimes.NAME] (default: its default
                                 runtime); else bunker, runc, a runtime type (io.containerd.runc.v2) or a shim's path;
                                 annotations go into the OCI spec: io.kubernetes.cri.sandbox-id or
                                 io.containerd.runc.v2.group equal means one shim for those containers;
                                 -v makes a missing HOST dir, --mount type=bind needs it; SIZE: 64m, 1g (b k m g t p);
                                 CAP: chown or CAP_CHOWN, or ALL; --privileged: all caps and host devices, no masked
                                 paths; --init: a reaper at PID 1 (/sbin/docker-init) that passes signals on
  ps [-a] [-q]                   list running containers (-a: stopped ones too, until rm)
  start [-a] ID...               start created or stopped containers (again: the same config, layer and logs);
                                 -a: one container, its output (from its log) on ours until it exits, its exit code
  restart [-t SECONDS] ID...     stop (as stop does), then start
  stop [-t SECONDS] ID...        send the stop signal (--stop-signal, the image's StopSignal, else TERM), SIGKILL after
                                 SECONDS (--stop-timeout, else 10); the container stays, stopped, until rm
  wait ID...                     wait until containers exit; print their exit codes
  inspect ID...                  print containers as JSON: state, pid, exit, image, network, addresses, ports, labels
  exec [-i] [-t] [-d] [--exec-id ID] [--env K=V]... [-w DIR] ID CMD [ARG...]
                                 run a process in a running container; -i: it reads our stdin, -t: on a terminal
  kill [-s SIGNAL] [-a] ID...    signal containers (default KILL, as docker); -a: every process
  rm [-f] ID...                  delete stopped tasks (-f kills them first)
  logs [-f] [-n|--tail N|all] [-t|--timestamps] [--since T] [--until T] ID
                                 print a detached container's output (stdout to stdout, stderr to stderr);
                                 T: RFC3339, Unix seconds, or a duration before now (10m, 1h30m)
  pause ID...                    freeze every process of containers (runc pause; ps shows PAUSED)
  unpause ID...                  thaw paused containers
  top ID [PS OPTIONS]            the container's processes, as the host's ps prints them (default -ef)
  stats [--no-stream] [ID...]    live CPU, memory, block I/O and pids of running containers (all by default),
                                 refreshed every second until Ctrl-C; --no-stream prints one sample
  cp [-a] [-L] CONTAINER:PATH HOSTPATH / cp [-a] [-L] HOSTPATH CONTAINER:PATH
                                 copy files or directories out of / into a container's rootfs (docker cp's rules:
                                 symlinks resolved inside the container; -a keeps uid/gid, -L follows a symlink SRC);
                                 HOSTPATH "-": a tar stream on stdout (out) or from stdin into a directory (in)
  events [--since T] [--until T] [-f type=|event=|container=V]...
                                 print task events as JSON lines: new ones (live) until Ctrl-C or the daemon stops;
                                 --since replays the history from T (RFC 3339, Unix seconds or a duration: 10m)
  version                        print the versions of bunker, bun and runc, and the commit
  install [--prefix DIR] [--containerd-config FILE] [--containerd-version VERSION]
                                 copy this binary to DIR/bin (default /usr/local) with the shim link,
                                 print (or append to FILE) containerd's runtime section
  daemon                         serve the bunker API on --address
  pull [--platform P] [-q] REF   fetch an image from its registry and unpack it
  load [-i FILE] [-q]            load a docker-archive (docker save), an OCI archive or an OCI layout dir
  save -o FILE REF...            write images as an archive docker load and bunker load read
  images [-q]                    list images (also: image ls)
  image inspect REF...           print images' manifests and configs as JSON
  tag SRC DST                    name an image anew
  rmi [-f] REF...                remove image names (refused while a container uses it; -f only untags)
  image prune [-a]               remove unused blobs and snapshots (-a: images no container uses, too)
  login [-u USER] [-p PASS | --password-stdin] REGISTRY / logout REGISTRY
  info                           the root, state, snapshotter and image counts
  network create [--subnet CIDR] [--gateway IP] NAME / network ls [-q] / network inspect NAME... / network rm NAME...

Without a daemon listening on --address, commands run the task manager in-process.
Global --insecure-registry HOST[:PORT] (repeatable): plain HTTP for it (localhost and 127.0.0.0/8 always are).
Global --snapshotter auto|overlayfs|native: how image layers are stacked (auto: overlayfs unless the store
sits where overlay cannot stack, e.g. on overlayfs inside a container; then native copies; see bunker info).
Environment: BUNKER_ROOT, BUNKER_STATE, BUNKER_ADDRESS, BUNKER_NAMESPACE, BUNKER_RUNTIME_CONFIG, BUNKER_INSECURE_REGISTRIES,
BUNKER_SNAPSHOTTER, BUNKER_NETWORK (run's default --net; bridge when unset).
`;
