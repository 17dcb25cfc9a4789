// Command-line flags of a containerd shim, parsed exactly as Go's `flag` package parses them
// (containerd runtime/v2/shim/shim.go parseFlags; the Rust crate's go_flag does the same), because
// containerd builds these argument lists for Go shims: `-flag value`, `-flag=value`, `--flag`,
// booleans that never consume the next argument, parsing stops at the first non-flag or `--`,
// and the first remaining argument is the action.
import { InvalidArgumentError } from "../errdefs.ts";

export interface ShimFlags {
  namespace: string;
  id: string;
  /** containerd's grpc address (`-address`). */
  address: string;
  /** containerd binary used to publish events by Go shims; kept for compatibility. */
  publishBinary: string;
  /** Bundle path when it is not the working directory (`delete` gets it). */
  bundle: string;
  /** Socket the serve process binds (`-socket`). */
  socket: string;
  debug: boolean;
  version: boolean;
  /**
   * `-info`: read the runtime options from stdin, print a RuntimeInfo, exit (containerd 2.x). A flag,
   * not an action, as in Go's shim: older shims fail clearly on an unknown flag.
   */
  info: boolean;
  /** `start`, `delete`, or "" for serve. */
  action: string;
  /** Arguments after the action, as flag.Args()[1:]. */
  rest: string[];
}

type Key = Exclude<keyof ShimFlags, "action" | "rest">;
const STRING_FLAGS = new Map<string, Key>([
  ["namespace", "namespace"],
  ["id", "id"],
  ["address", "address"],
  ["publish-binary", "publishBinary"],
  ["bundle", "bundle"],
  ["socket", "socket"],
]);
const BOOL_FLAGS = new Map<string, Key>([
  ["debug", "debug"],
  ["v", "version"],
  ["version", "version"],
  ["info", "info"],
]);

export class FlagHelpError extends InvalidArgumentError {}

/** strconv.ParseBool's accepted spellings. */
function parseBool(name: string, value: string): boolean {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
  throw new InvalidArgumentError(`invalid boolean value ${JSON.stringify(value)} for -${name}: parse error`);
}

export function parseFlags(argv: readonly string[]): ShimFlags {
  const flags: ShimFlags = {
    namespace: "",
    id: "",
    address: "",
    publishBinary: "containerd",
    bundle: "",
    socket: "",
    debug: false,
    version: false,
    info: false,
    action: "",
    rest: [],
  };
  const set = (key: Key, value: string | boolean): void => {
    (flags as unknown as Record<Key, string | boolean>)[key] = value;
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.length < 2 || arg[0] !== "-") break;
    let dashes = 1;
    if (arg[1] === "-") {
      dashes = 2;
      if (arg.length === 2) {
        i++; // "--" ends the flags and is consumed
        break;
      }
    }
    let name = arg.slice(dashes);
    if (name.length === 0 || name[0] === "-" || name[0] === "=") {
      throw new InvalidArgumentError(`bad flag syntax: ${arg}`);
    }
    let value: string | undefined;
    const eq = name.indexOf("=");
    if (eq > 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (name === "help" || name === "h") {
      if (!STRING_FLAGS.has(name) && !BOOL_FLAGS.has(name)) throw new FlagHelpError("flag: help requested");
    }
    const boolKey = BOOL_FLAGS.get(name);
    if (boolKey) {
      set(boolKey, value === undefined ? true : parseBool(name, value));
      continue;
    }
    const strKey = STRING_FLAGS.get(name);
    if (!strKey) throw new InvalidArgumentError(`flag provided but not defined: -${name}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new InvalidArgumentError(`flag needs an argument: -${name}`);
      value = argv[++i]!;
    }
    set(strKey, value);
  }
  const remaining = argv.slice(i);
  flags.action = remaining[0] ?? "";
  flags.rest = remaining.slice(1);
  return flags;
}

/** Set by `start` when it passes the bound socket as fd 3 (Go's shim: the listener is ExtraFiles[0]). */
export const LISTEN_FD_ENV = "BUNKER_SHIM_LISTEN_FD";
/** The fd the serve process finds its listener on. */
export const LISTEN_FD = 3;

/** The argument list a shim passes to its own serve process (Go manager newCommand + `-socket`). */
export function serveArgs(flags: ShimFlags, socket: string): string[] {
  const args = ["-namespace", flags.namespace, "-id", flags.id, "-address", flags.address];
  if (flags.publishBinary !== "containerd") args.push("-publish-binary", flags.publishBinary);
  if (flags.debug) args.push("-debug");
  args.push("-socket", socket);
  return args;
}
