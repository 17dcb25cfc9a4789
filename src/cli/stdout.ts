// process.stdout, made on first use. Bun builds the Node stream behind process.stdout lazily and
// that costs ~8 ms of start-up (a compiled no-op exits in 4.6 ms; one that touches process.stdout
// in 13.5 ms), so paths that print nothing (the shim's actions, a foreground run) must never touch it.
let used = false;

/** The stdout stream, with EPIPE ignored: `bunker ps | head -1` is not an error worth a trace. */
export function stdout(): NodeJS.WriteStream {
  if (!used) {
    used = true;
    process.stdout.on("error", () => undefined);
  }
  return process.stdout;
}

/** Whether anything asked for stdout (and so may have output still buffered at exit). */
export function stdoutUsed(): boolean {
  return used;
}
