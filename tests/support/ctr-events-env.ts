// Set-up shared by the shim part 2 suites: a test containerd with our shim on PATH, a busybox
// rootfs, and a `ctr events` reader (started by us, ended by its pid) to check event order.
import { join } from "node:path";
import type { TestContainerd } from "./containerd.ts";
import { waitFor } from "./shim-env.ts";

export interface EventLine {
  topic: string;
  body: Record<string, unknown>;
}

export class EventLog {
  readonly lines: EventLine[] = [];
  private readonly proc: ReturnType<typeof Bun.spawn>;
  private done: Promise<void>;

  constructor(ctd: TestContainerd, ns: string) {
    this.proc = Bun.spawn([ctd.ctrBin, "-a", ctd.address, "-n", ns, "events"], { stdout: "pipe", stderr: "ignore" });
    this.done = this.read(this.proc.stdout as ReadableStream<Uint8Array>);
  }

  private async read(stream: ReadableStream<Uint8Array>): Promise<void> {
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        // "<date> <time> +0000 UTC <namespace> <topic> <json>"
        const m = /^\S+ \S+ \S+ \S+ \S+ (\/\S+) (\{.*\})$/.exec(line);
        if (m) this.lines.push({ topic: m[1]!, body: JSON.parse(m[2]!) as Record<string, unknown> });
      }
    }
  }

  /** The topics of events about one container (and, if given, one process id), in order. */
  topics(containerId: string, pred: (e: EventLine) => boolean = () => true): string[] {
    return this.lines.filter((e) => e.body.container_id === containerId && pred(e)).map((e) => e.topic);
  }

  async waitFor(what: string, fn: (lines: EventLine[]) => boolean, timeoutMs = 20_000): Promise<void> {
    await waitFor(what, () => fn(this.lines), timeoutMs);
  }

  async stop(): Promise<void> {
    this.proc.kill("SIGTERM");
    await this.proc.exited;
    await this.done.catch(() => undefined);
  }
}
