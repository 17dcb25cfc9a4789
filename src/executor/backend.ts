// One interface, two backends: the executor speaks bunker.v1.Bunker either to a running `bunker
// daemon` (over its socket, redialed when the daemon restarts) or, in-process, to an embedded
// TaskManager through the very handlers the daemon serves (src/api/service.ts), so both behave alike.
import { errorMessage, UnavailableError } from "../errdefs.ts";
import { Bunker } from "../gen/bunker/v1/api_pb.ts";
import type { TaskManager } from "../runtime/manager.ts";
import { type Client, dial } from "../ttrpc/index.ts";
import { type Api, managerApi } from "../api/client.ts";

export type { Api };

const DIAL_TIMEOUT_MS = 2_000;

export interface Backend {
  /** The API to call now; for a daemon, redials a closed connection (UnavailableError when it cannot). */
  api(): Promise<Api>;
  /** Grows with every new connection: the event reader replays the log and rechecks its containers then. */
  readonly generation: number;
  /** What the backend is, for messages. */
  readonly description: string;
  close(): void;
}

/** The embedded manager. Its events come from its exchange, so the embedder must serve Forward (see embedded.ts). */
export function managerBackend(manager: TaskManager): Backend {
  const api = managerApi(manager, { embedded: false });
  return { api: () => Promise.resolve(api), generation: 1, description: "the embedded task manager", close: () => undefined };
}

/** A bunker daemon at `address`, dialed on first use and again after its connection closed. */
export class DaemonBackend implements Backend {
  private client: Client | undefined;
  private current: Api | undefined;
  private dialing: Promise<Api> | undefined;
  private closed = false;
  generation = 0;

  constructor(readonly address: string) {}

  get description(): string {
    return `the bunker daemon at ${this.address}`;
  }

  api(): Promise<Api> {
    if (this.closed) return Promise.reject(new UnavailableError("the executor is closed"));
    if (this.client && !this.client.closed && this.current) return Promise.resolve(this.current);
    this.dialing ??= this.dial().finally(() => (this.dialing = undefined));
    return this.dialing;
  }

  private async dial(): Promise<Api> {
    let client: Client;
    try {
      client = await dial(this.address, { connectTimeoutMs: DIAL_TIMEOUT_MS });
    } catch (err) {
      throw new UnavailableError(`${this.description} is not reachable: ${errorMessage(err)}`, { cause: err });
    }
    if (this.closed) {
      client.close();
      throw new UnavailableError("the executor is closed");
    }
    this.client = client;
    this.current = client.service(Bunker);
    this.generation++;
    return this.current;
  }

  close(): void {
    this.closed = true;
    this.client?.close();
  }
}
