// SysError: a failed kernel call, with the errno name a human searches for and the path involved.
//
// node:util and node:os are loaded on the first error, not with this module: every serve process
// (one per pod) and every `run IMAGE` (flock, mount) load the native core, and with it this file,
// and most never fail; evaluating node:util cost the serve boot ~3 ms (cpu profile) and run IMAGE
// ~1-2 ms, for messages they may never write. require keeps the load lazy and is still followed
// by `bun build --compile`.
type Os = typeof import("node:os");
type Util = typeof import("node:util");
const util = (): Util => require("node:util") as Util;
const errnoNumbers = (): Record<string, number> => (require("node:os") as Os).constants.errno as Record<string, number>;

let errnoNames: Map<number, string> | undefined;
function names(): Map<number, string> {
  if (errnoNames) return errnoNames;
  errnoNames = new Map();
  for (const [name, value] of Object.entries(errnoNumbers())) {
    // Aliases (EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK) keep the first, more common name.
    if (!errnoNames.has(value)) errnoNames.set(value, name);
  }
  return errnoNames;
}

/** errno number -> name ("ENOENT"); unknown numbers become "E<n>". */
export function errnoName(errno: number): string {
  const known = names().get(errno);
  if (known) return known;
  try {
    return util().getSystemErrorName(-errno);
  } catch {
    return `E${errno}`;
  }
}

// glibc's texts for the errnos libuv has no message for (getSystemErrorMessage says "Unknown").
const extraMessages: Record<string, string> = {
  EBADMSG: "Bad message",
  ECHILD: "No child processes",
  EDEADLK: "Resource deadlock avoided",
  EDOM: "Numerical argument out of domain",
  EDQUOT: "Disk quota exceeded",
  EIDRM: "Identifier removed",
  EINPROGRESS: "Operation now in progress",
  EMULTIHOP: "Multihop attempted",
  ENETRESET: "Network dropped connection on reset",
  ENOLCK: "No locks available",
  ENOLINK: "Link has been severed",
  ENOMSG: "No message of desired type",
  ENOSR: "Out of streams resources",
  ENOSTR: "Device not a stream",
  ESTALE: "Stale file handle",
  ETIME: "Timer expired",
};

/** errno number -> "No such file or directory". */
export function errnoMessage(errno: number): string {
  const extra = extraMessages[errnoName(errno)];
  if (extra) return extra;
  let text: string;
  try {
    text = util().getSystemErrorMessage(-errno);
  } catch {
    text = "";
  }
  if (!text || text.startsWith("Unknown system error")) return `errno ${errno}`;
  return text[0]!.toUpperCase() + text.slice(1);
}

/** errno name -> number (for the fake and for tests: `errnoOf("EPERM")`). */
export function errnoOf(code: string): number {
  const n = errnoNumbers()[code];
  if (n === undefined) throw new TypeError(`unknown errno name ${code}`);
  return n;
}

export class SysError extends Error {
  override readonly name = "SysError";
  readonly errno: number;
  /** "ENOENT", like Node's ErrnoException.code, so code that handles fs errors handles these too. */
  readonly code: string;
  readonly syscall: string;
  readonly path?: string;

  constructor(syscall: string, errno: number, path?: string) {
    const code = errnoName(errno);
    super(`${syscall}${path === undefined ? "" : ` ${path}`}: ${code} (${errnoMessage(errno)})`);
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
    if (path !== undefined) this.path = path;
  }

  /** Builds the error from an errno name: `SysError.of("mount", "EPERM", "/x")`. */
  static of(syscall: string, code: string, path?: string): SysError {
    return new SysError(syscall, errnoOf(code), path);
  }
}

/** True when err is a SysError with one of the given errno names. */
export function isErrno(err: unknown, ...codes: string[]): err is SysError {
  return err instanceof SysError && codes.includes(err.code);
}
