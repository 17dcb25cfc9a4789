// Entry point of src/sys: `sys()` is the process-wide Syscalls (the FFI one unless a test set a
// fake with setSys). The FFI module loads lazily so that unit tests with the fake never dlopen.
import { FailedPreconditionError } from "../errdefs.ts";
import type { Syscalls } from "./types.ts";

let current: Syscalls | undefined;

export function sys(): Syscalls {
  if (!current) {
    // require keeps the load lazy and is still followed by `bun build --compile`.
    try {
      const mod = require("./ffi.ts") as typeof import("./ffi.ts");
      current = new mod.FfiSyscalls();
    } catch (err) {
      // A missing library: src/native.ts's message already names the paths and the make command.
      if (err instanceof FailedPreconditionError) throw err;
      const why = err instanceof Error ? err.message : String(err);
      throw new Error(`cannot load bunker's native core libbunker.so (rebuild it with \`make -C native\` or scripts/build.sh): ${why}`, { cause: err });
    }
  }
  return current;
}

/**
 * An accept check for unix socket servers (listenUnix's `authorize`): only peers of our own uid
 * (SO_PEERCRED), as containerd's shims and daemon do. A peer whose credentials cannot be read is refused.
 */
export function sameUidPeers(uid = process.getuid?.() ?? 0): (conn: { fd: number }) => boolean {
  return ({ fd }) => {
    try {
      return sys().peerCred(fd).uid === uid;
    } catch {
      return false;
    }
  };
}

/** Replaces the process-wide Syscalls (tests); `setSys(undefined)` goes back to the FFI one. */
export function setSys(impl: Syscalls | undefined): void {
  current = impl;
}

export { EFD, MNT, MS } from "./constants.ts";
export { errnoName, errnoOf, isErrno, SysError } from "./errors.ts";
export { FakeSyscalls, type Call, type Method } from "./fake.ts";
export { decodeWaitStatus, exitedStatus, signaledStatus, type ReapedChild, type Syscalls, type WaitStatus } from "./types.ts";
