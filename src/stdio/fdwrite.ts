// Writing to a non-blocking fd (a FIFO or a pty master) from the event loop: plain writes, waiting
// out EAGAIN with a short backoff. Plain writes keep the fd entirely ours: a FileSink stuck on a
// full FIFO would still hold it after close(). Shared by the pipe copies and the console copy.
import { writeSync } from "node:fs";

const MAX_BACKOFF_MS = 50;

/**
 * Writes the whole chunk; false when the fd failed or `stopped()` turned true meanwhile.
 * `progressed` runs after every successful write (the callers' idle-drain clocks).
 */
export async function writeAllNonblocking(fd: number, chunk: Uint8Array, stopped: () => boolean, progressed: () => void): Promise<boolean> {
  let off = 0;
  let delay = 1;
  while (off < chunk.length) {
    if (stopped()) return false;
    try {
      off += writeSync(fd, chunk, off);
      delay = 1;
      progressed();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") return false;
      await Bun.sleep(delay);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
  }
  return true;
}
