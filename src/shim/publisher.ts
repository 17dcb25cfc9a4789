// Events from the shim to containerd: Events/Forward on TTRPC_ADDRESS, one Envelope per event
// with the event packed in an Any whose type_url is the bare full name ("containerd.events.TaskExit",
// what containerd's typeurl registry resolves). Unlike Go's publisher, which requeues a failed event
// behind later ones, this one keeps strict order (TaskExit must never overtake TaskStart): one queue,
// one call in flight, the head retried with backoff and a fresh connection until it goes through or
// has failed too often to be worth keeping.
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { errorMessage } from "../errdefs.ts";
import { Events } from "../gen/containerd/services/events/ttrpc/v1/events_pb.ts";
import { packAny } from "../ttrpc/any.ts";
import type { Client } from "../ttrpc/client.ts";
import { dial } from "../ttrpc/unix.ts";
import type { Any } from "@bufbuild/protobuf/wkt";

export interface Publisher {
  /** Queues an event; never blocks and never throws for delivery problems. */
  publish<D extends DescMessage>(topic: string, schema: D, event: MessageInitShape<D>): void;
  /** Resolves when everything queued so far was delivered or dropped, or after timeoutMs. */
  flush(timeoutMs?: number): Promise<void>;
  close(): void;
}

export interface PublisherLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

interface Item {
  topic: string;
  event: Any;
  at: Date;
  attempts: number;
}

export interface RemotePublisherOptions {
  log?: PublisherLog;
  /** Attempts per event before it is dropped (Go: 5 requeues). */
  maxAttempts?: number;
  /** Backoff after the n-th failure: n * backoffMs (Go: n seconds). */
  backoffMs?: number;
  callTimeoutMs?: number;
  connect?: (address: string) => Promise<Client>;
}

export class RemotePublisher implements Publisher {
  private readonly queue: Item[] = [];
  private client: Client | undefined;
  private running = false;
  private closed = false;
  private readonly idle: Array<() => void> = [];
  private readonly maxAttempts: number;
  private readonly backoffMs: number;
  private readonly callTimeoutMs: number;
  private readonly connect: (address: string) => Promise<Client>;

  constructor(
    private readonly address: string,
    private readonly namespace: string,
    private readonly opts: RemotePublisherOptions = {},
  ) {
    this.maxAttempts = opts.maxAttempts ?? 6;
    this.backoffMs = opts.backoffMs ?? 1000;
    this.callTimeoutMs = opts.callTimeoutMs ?? 5000;
    this.connect = opts.connect ?? ((a) => dial(a, { connectTimeoutMs: 5000 }));
  }

  get pending(): number {
    return this.queue.length;
  }

  publish<D extends DescMessage>(topic: string, schema: D, event: MessageInitShape<D>): void {
    if (this.closed) return;
    this.queue.push({ topic, event: packAny(schema, event), at: new Date(), attempts: 0 });
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const item = this.queue[0]!;
        try {
          await this.forward(item);
          this.queue.shift();
        } catch (err) {
          item.attempts++;
          this.dropClient();
          if (item.attempts >= this.maxAttempts) {
            this.opts.log?.error({ topic: item.topic, err: errorMessage(err) }, "evicting event after repeated failures");
            this.queue.shift();
            continue;
          }
          this.opts.log?.warn({ topic: item.topic, attempt: item.attempts, err: errorMessage(err) }, "forward event");
          await Bun.sleep(item.attempts * this.backoffMs);
        }
      }
    } finally {
      this.running = false;
      if (this.queue.length === 0 || this.closed) for (const r of this.idle.splice(0)) r();
    }
  }

  private async forward(item: Item): Promise<void> {
    if (!this.client || this.client.closed) this.client = await this.connect(this.address);
    await this.client.call(
      Events.method.forward,
      {
        envelope: {
          timestamp: timestampFromDate(item.at),
          namespace: this.namespace,
          topic: item.topic,
          event: item.event,
        },
      },
      { timeoutMs: this.callTimeoutMs, namespace: this.namespace },
    );
  }

  private dropClient(): void {
    this.client?.close();
    this.client = undefined;
  }

  flush(timeoutMs = 5000): Promise<void> {
    if (this.queue.length === 0 && !this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.closed = true;
    this.dropClient();
    for (const r of this.idle.splice(0)) r();
  }
}
