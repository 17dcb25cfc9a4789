// One entry point for every shim action (the Rust crate's `run`/`bootstrap`, Go's shim.Run):
// parse the flags as Go does, then `start` (print the address and nothing else), `delete` (print
// a protobuf DeleteResponse), or serve. Returns the process exit code; errors go to stderr as
// "<runtime>: <message>", which containerd includes in its own error.
//
// Only the serve action loads the heavy modules (ttrpc server, generated descriptors, pino): start
// and delete run once per container on containerd's critical path and must start fast.
import { readFileSync, writeSync } from "node:fs";
import { errorMessage } from "../errdefs.ts";
import { parseStartInput } from "../contract/bootstrap.ts";
import { encodeDeleteResponse } from "./delete-response.ts";
import { FlagHelpError, parseFlags, type ShimFlags } from "./flags.ts";
import { stderrLogger } from "./logger.ts";
import type { ServeOptions } from "./serve.ts";
import type { Shim } from "./types.ts";

export interface RunOptions extends ServeOptions {
  version?: string;
  /** Where start/delete write their reply (default: fd 1). */
  stdout?: (data: Uint8Array | string) => Promise<void>;
  /** stdin of `start` (default: all of fd 0). */
  stdin?: () => Promise<Uint8Array>;
}

const USAGE = `Usage: containerd-shim-<name>-<version> [flags] [start|delete]
  -address string  grpc address back to main containerd
  -bundle string   path to the bundle if not workdir
  -debug           enable debug output in logs
  -id string       id of the task
  -namespace string  namespace that owns the shim
  -publish-binary string  path to publish binary (used for publishing events) (default "containerd")
  -socket string   socket path to serve
  -info            read the runtime options from stdin, print the shim's RuntimeInfo protobuf, exit
  -v               show the shim version and exit
`;

// Synchronous on purpose: `Bun.write(Bun.stdout)` hands the write to Bun's thread pool, and the
// start action's answer reached containerd ~10 ms after its work was done (strace -f of one start,
// under load); containerd waits for it on every new pod. The answers are small (an address, a
// RuntimeInfo of a few KiB) and containerd's pipe is blocking.
async function writeStdout(data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  for (let off = 0; off < bytes.length; ) off += writeSync(1, bytes, off, bytes.length - off);
}

async function readStdin(): Promise<Uint8Array> {
  try {
    return new Uint8Array(readFileSync(0));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EBADF") return new Uint8Array(); // started with stdin closed
    throw err;
  }
}

export async function run(argv: readonly string[], shim: Shim, opts: RunOptions = {}): Promise<number> {
  const out = opts.stdout ?? writeStdout;
  let flags: ShimFlags;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    // Go's flag.ExitOnError: the message and the usage on stderr, exit status 2
    if (!(err instanceof FlagHelpError)) process.stderr.write(`${errorMessage(err)}\n`);
    process.stderr.write(USAGE);
    return err instanceof FlagHelpError ? 0 : 2;
  }
  if (flags.version) {
    await out(`${process.argv0}:\n  Version:  ${opts.version ?? "unknown"}\n  Runtime:  ${shim.name}\n  Bun:      ${Bun.version}\n\n`);
    return 0;
  }
  try {
    // containerd runs -info with no namespace or id (Go's shim answers it before checking them)
    if (flags.info) {
      if (!shim.info) throw new Error("this shim has no -info");
      const { encodeRuntimeInfo } = await import("./runtime-info.ts");
      await out(encodeRuntimeInfo(await shim.info(await (opts.stdin ?? readStdin)())));
      return 0;
    }
    if (flags.namespace === "") throw new Error("shim namespace cannot be empty");
    const ttrpcAddress = process.env.TTRPC_ADDRESS ?? "";
    switch (flags.action) {
      case "start": {
        // containerd ≤ 2.2 sends the runtime options, 2.3+ a BootstrapParams holding them
        const { options } = parseStartInput(await (opts.stdin ?? readStdin)());
        const address = await shim.start({
          id: flags.id,
          namespace: flags.namespace,
          address: flags.address,
          ttrpcAddress,
          publishBinary: flags.publishBinary,
          debug: flags.debug,
          bundle: process.cwd(),
          options,
          flags,
        });
        await out(address);
        return 0;
      }
      case "delete": {
        const log = stderrLogger({ debug: flags.debug, bindings: { runtime: shim.name, namespace: flags.namespace, id: flags.id } });
        const r = await shim.delete({
          id: flags.id,
          namespace: flags.namespace,
          bundle: flags.bundle || process.cwd(),
          address: flags.address,
          ttrpcAddress,
          flags,
          log,
        });
        await out(encodeDeleteResponse(r));
        return 0;
      }
      case "": {
        const { serve } = await import("./serve.ts");
        return await serve(shim, flags, ttrpcAddress, opts);
      }
      case "spare": {
        // a serve process that waits, loaded, for a `start` to hand it a pod (spare.ts; opt-in)
        const { runSpare } = await import("./spare.ts");
        return await runSpare(shim, flags, ttrpcAddress, opts);
      }
      default:
        throw new Error(`unknown action ${JSON.stringify(flags.action)} (want start, delete or none)`);
    }
  } catch (err) {
    process.stderr.write(`${shim.name}: ${errorMessage(err)}\n`);
    return 1;
  }
}
