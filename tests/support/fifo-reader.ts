// A stdout FIFO the way containerd makes one (created and opened for reading before Create),
// read line by line in the background so that a test can wait for output as it comes.
import { closeSync, constants, openSync } from "node:fs";
import { sys } from "../../src/sys/index.ts";
import { waitFor } from "./shim-env.ts";

export class FifoLines {
  readonly lines: string[] = [];
  private readonly fd: number;
  private partial = "";
  private closed = false;

  constructor(readonly path: string) {
    sys().mkfifo(path, 0o600);
    this.fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    void this.read();
  }

  private async read(): Promise<void> {
    const dec = new TextDecoder();
    try {
      for await (const chunk of Bun.file(this.fd).stream()) {
        this.partial += dec.decode(chunk, { stream: true });
        const parts = this.partial.split("\n");
        this.partial = parts.pop() ?? "";
        this.lines.push(...parts);
      }
    } catch {
      // closed under the reader at the end of the test
    }
  }

  async waitFor(what: string, fn: (lines: string[]) => boolean, timeoutMs = 20_000): Promise<void> {
    await waitFor(what, () => fn(this.lines), timeoutMs);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      closeSync(this.fd);
    } catch {}
  }
}
