// The events exchange (containerd events/exchange): shims Forward envelopes to bunker, the manager
// publishes its own (dead-shim exits), and subscribers (`bunker events`, an executor's exit
// handler) receive them filtered by namespace and topic. A bounded log with sequence numbers lets
// a poller resume where it stopped, including across a short gap in its connection.
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { type Any, AnySchema, timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError } from "../errdefs.ts";
import { TaskDeleteSchema, TaskExitSchema } from "../gen/containerd/events/task_pb.ts";
import { Events } from "../gen/containerd/services/events/ttrpc/v1/events_pb.ts";
import type { Server } from "../ttrpc/index.ts";
import { validateIdentifier } from "../identifiers.ts";

export const Topics = {
  TaskCreate: "/tasks/create",
  TaskStart: "/tasks/start",
  TaskOOM: "/tasks/oom",
  TaskExit: "/tasks/exit",
  TaskDelete: "/tasks/delete",
  TaskExecAdded: "/tasks/exec-added",
  TaskExecStarted: "/tasks/exec-started",
  TaskPaused: "/tasks/paused",
  TaskResumed: "/tasks/resumed",
  TaskCheckpointed: "/tasks/checkpointed",
} as const;

export interface Envelope {
  seq: bigint;
  timestamp: Date;
  namespace: string;
  topic: string;
  event: Any;
}

export interface Filter {
  namespace?: string;
  /** Exact topics, or prefixes ending in `*` (`/tasks/*`). Empty or absent: all. */
  topics?: readonly string[];
}

export type Subscriber = (env: Envelope) => void;

export function matches(filter: Filter, env: Pick<Envelope, "namespace" | "topic">): boolean {
  if (filter.namespace && filter.namespace !== env.namespace) return false;
  const topics = filter.topics;
  if (!topics || topics.length === 0) return true;
  return topics.some((t) => (t.endsWith("*") ? env.topic.startsWith(t.slice(0, -1)) : t === env.topic));
}

function validateTopic(topic: string): void {
  if (!/^(\/[A-Za-z0-9_.-]+)+$/.test(topic)) throw new InvalidArgumentError(`invalid event topic ${JSON.stringify(topic)}`);
}

export class Exchange {
  private seq = 0n;
  private readonly log: Envelope[] = [];
  private readonly subscribers = new Set<{ filter: Filter; fn: Subscriber }>();
  private readonly waiters = new Set<() => void>();

  constructor(private readonly capacity = 4096) {}

  /** Publishes an envelope that arrived from a shim (timestamp kept) or from ourselves. */
  forward(namespace: string, topic: string, event: Any, timestamp: Date = new Date()): Envelope {
    validateIdentifier(namespace, "event namespace");
    validateTopic(topic);
    const env: Envelope = { seq: ++this.seq, timestamp, namespace, topic, event };
    this.log.push(env);
    if (this.log.length > this.capacity) this.log.splice(0, this.log.length - this.capacity);
    for (const s of this.subscribers) {
      if (!matches(s.filter, env)) continue;
      try {
        s.fn(env);
      } catch {
        // A subscriber's failure must not stop delivery to the others.
      }
    }
    for (const wake of [...this.waiters]) wake();
    return env;
  }

  publish<Desc extends DescMessage>(namespace: string, topic: string, schema: Desc, message: MessageShape<Desc>): Envelope {
    return this.forward(namespace, topic, packEvent(schema, message));
  }

  subscribe(filter: Filter, fn: Subscriber): () => void {
    const entry = { filter, fn };
    this.subscribers.add(entry);
    return () => this.subscribers.delete(entry);
  }

  /** The sequence number of the newest event. */
  get last(): bigint {
    return this.seq;
  }

  /** Logged events after `after` that match. */
  since(after: bigint, filter: Filter = {}): Envelope[] {
    return this.log.filter((e) => e.seq > after && matches(filter, e));
  }

  /** Like since(), but waits up to timeoutMs for at least one matching event. */
  async poll(after: bigint, filter: Filter, timeoutMs: number, signal?: AbortSignal): Promise<Envelope[]> {
    let found = this.since(after, filter);
    if (found.length > 0 || timeoutMs <= 0) return found;
    const { promise, resolve } = Promise.withResolvers<void>();
    const wake = (): void => {
      found = this.since(after, filter);
      if (found.length > 0) resolve();
    };
    const timer = setTimeout(resolve, timeoutMs);
    const onAbort = (): void => resolve();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.waiters.add(wake);
    try {
      await promise;
    } finally {
      clearTimeout(timer);
      this.waiters.delete(wake);
      signal?.removeEventListener("abort", onAbort);
    }
    return found;
  }
}

/** containerd's typeurl names events by their bare full name (`containerd.events.TaskExit`), not type.googleapis.com/... */
export function packEvent<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Any {
  return create(AnySchema, { typeUrl: schema.typeName, value: toBinary(schema, message) });
}

/** Unpacks an event Any in either URL form; undefined when it holds another type. */
export function unpackEvent<Desc extends DescMessage>(any: Any, schema: Desc): MessageShape<Desc> | undefined {
  const name = any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1);
  return name === schema.typeName ? fromBinary(schema, any.value) : undefined;
}

export interface ExitInfo {
  pid: number;
  exitStatus: number;
  exitedAt: Date;
}

/** What containerd's cleanupAfterDeadShim publishes: TaskExit then TaskDelete for the init process. */
export function publishDeadShimExit(ex: Exchange, namespace: string, id: string, exit: ExitInfo): void {
  const exitedAt: Timestamp = timestampFromDate(exit.exitedAt);
  ex.publish(namespace, Topics.TaskExit, TaskExitSchema, create(TaskExitSchema, { containerId: id, id, pid: exit.pid, exitStatus: exit.exitStatus, exitedAt }));
  ex.publish(namespace, Topics.TaskDelete, TaskDeleteSchema, create(TaskDeleteSchema, { containerId: id, pid: exit.pid, exitStatus: exit.exitStatus, exitedAt }));
}

/** Serves containerd.services.events.ttrpc.v1.Events/Forward into the exchange (shims publish here). */
export function registerForwardService(server: Server, ex: Exchange): void {
  server.register(Events, {
    forward(req) {
      const env = req.envelope;
      if (!env?.event) throw new InvalidArgumentError("Forward: envelope with an event is required");
      ex.forward(env.namespace, env.topic, env.event, env.timestamp ? timestampDate(env.timestamp) : new Date());
    },
  });
}
