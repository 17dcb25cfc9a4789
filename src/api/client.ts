// How a client (the CLI, the executor) reaches the task manager: a daemon listening on an address,
// or, when none is, the same bunker.v1 service run in-process against the same state directories.
import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { NotImplementedError } from "../errdefs.ts";
import { Bunker, type WaitResponse } from "../gen/bunker/v1/api_pb.ts";
import { Exchange } from "../runtime/events.ts";
import { type ManagerOptions, TaskManager } from "../runtime/manager.ts";

/** What an embedded manager holds for containers besides tasks: image layers and networks. */
type Resources = Pick<ManagerOptions, "layers" | "networks">;
import { sys } from "../sys/index.ts";
import { type CallContext, type CallOptions, type Client, dial, type Handler, type ServiceClient } from "../ttrpc/index.ts";
import { bunkerService, type ServiceOptions } from "./service.ts";

export type Api = ServiceClient<typeof Bunker>;

export interface Connection {
  api: Api;
  embedded: boolean;
  close(): void;
}

/** Wraps service handlers as a client: the embedded CLI calls them without a socket. */
export function localClient(impl: Record<string, Handler<DescMessage, DescMessage> | undefined>): Api {
  const out: Record<string, unknown> = {};
  for (const m of Bunker.methods) {
    const h = impl[m.localName];
    out[m.localName] = async (req: MessageInitShape<DescMessage>, opts?: CallOptions) => {
      if (!h) throw new NotImplementedError(`bunker.v1.Bunker/${m.name} is not implemented`);
      const ctx: CallContext = {
        service: Bunker.typeName,
        method: m.name,
        metadata: new Map(),
        namespace: undefined,
        signal: opts?.signal ?? new AbortController().signal,
        deadline: undefined,
      };
      const res = await h(create(m.input, req), ctx);
      return create(m.output, (res ?? {}) as MessageInitShape<DescMessage>);
    };
  }
  return out as Api;
}

/**
 * Starts a created process (a container's init, or an exec with `execId`) with its Wait already
 * asked for, so that a fast process never exits unobserved; a Start that fails deletes the process
 * (`force` for a container) and throws. The wait is returned wrapped: an async function would
 * await it.
 */
export async function startWatched(api: Api, proc: { namespace: string; id: string; execId?: string }, o: { force?: boolean } = {}): Promise<{ waiting: Promise<WaitResponse> }> {
  const waiting = api.wait(proc);
  try {
    await api.start(proc);
  } catch (err) {
    waiting.catch(() => undefined);
    await api.delete({ ...proc, ...(o.force ? { force: true } : {}) }).catch(() => undefined);
    throw err;
  }
  return { waiting };
}

/** The bunker.v1 API of a manager in this process, through the very handlers the daemon serves. */
export function managerApi(manager: TaskManager, o: ServiceOptions): Api {
  return localClient(bunkerService(manager, o) as Record<string, Handler<DescMessage, DescMessage> | undefined>);
}

/** Where the manager keeps its state, and the daemon's socket (GlobalOptions of the CLI has these). */
export interface ConnectOptions {
  address: string;
  root: string;
  state: string;
  debug: boolean;
}

async function tryDial(address: string): Promise<Client | undefined> {
  try {
    return await dial(address, { connectTimeoutMs: 2_000 });
  } catch {
    return undefined;
  }
}

/** The daemon if one listens on `address`; otherwise the embedded manager (or nothing with daemonOnly). */
export async function connect(g: ConnectOptions, logger: Logger, opts: { daemonOnly: true }): Promise<Connection | undefined>;
export async function connect(g: ConnectOptions, logger: Logger, opts?: { daemonOnly?: false; resources?: Resources }): Promise<Connection>;
export async function connect(g: ConnectOptions, logger: Logger, opts: { daemonOnly?: boolean; resources?: Resources } = {}): Promise<Connection | undefined> {
  const client = await tryDial(g.address);
  if (client) {
    logger.debug({ address: g.address }, "using the bunker daemon");
    return { api: client.service(Bunker), embedded: false, close: () => client.close() };
  }
  if (opts.daemonOnly) return undefined;
  logger.debug({ state: g.state, root: g.root }, "no daemon listening: running embedded");
  const manager = await TaskManager.create(
    {
      root: g.root,
      state: g.state,
      address: g.address,
      // Shims publish to the daemon's socket; with no daemon their events are dropped, and the
      // embedded CLI learns about exits through Wait instead.
      ttrpcAddress: g.address,
      events: new Exchange(),
      sys: sys(),
      logger,
      debug: g.debug,
      ...opts.resources,
    },
    { load: false },
  );
  return { api: managerApi(manager, { embedded: true }), embedded: true, close: () => manager.close() };
}
