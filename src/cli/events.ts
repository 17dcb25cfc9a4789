// `bunker events [--since T] [--until T] [--filter K=V]...`: the daemon's task events as JSON lines,
// with docker events' semantics: live by default (only what happens from now on: the first call
// asks for nothing but the daemon's newest sequence number), `--since` replays the daemon's
// history from a time, `--until` ends the stream at a time, and the end of the daemon is a clean
// end (exit 0), not an error: there is nothing more to wait for.
//
// The daemon's log is a bounded ring (runtime/events.ts), so `--since` reaches as far back as it
// holds. Filters follow docker's rule: values of one key are alternatives, different keys must
// all match. The daemon filters by topic; containers are matched here, from the decoded event.
import type { Api } from "../api/client.ts";
import { InvalidArgumentError, UnavailableError } from "../errdefs.ts";
import type { GlobalOptions } from "./args.ts";
import { stdout } from "./stdout.ts";

/** How long one poll waits at the daemon for an event before asking again. */
const POLL_MS = 30_000;
/** The largest uint64: `after` it there is nothing, so the reply carries only the daemon's `last`. */
const NEWEST = 0xffff_ffff_ffff_ffffn;

/** docker's event names (`--filter event=die`) and the containerd topics they are. */
export const EVENT_TOPICS: Record<string, string> = {
  create: "/tasks/create",
  start: "/tasks/start",
  die: "/tasks/exit",
  destroy: "/tasks/delete",
  oom: "/tasks/oom",
  pause: "/tasks/paused",
  unpause: "/tasks/resumed",
  exec_create: "/tasks/exec-added",
  exec_start: "/tasks/exec-started",
  checkpoint: "/tasks/checkpointed",
};

/** The event types docker names that bunker's task events are. */
const TASK_TYPES = new Set(["container", "task"]);

export interface EventFilter {
  /** Topics the daemon sends; empty: all. Undefined when no event can match (`type=image`). */
  topics: string[] | undefined;
  containers: Set<string>;
}

/** `type=`, `event=` (a docker name or a topic) and `container=` filters, checked and combined. */
export function parseEventFilters(filters: readonly string[]): EventFilter {
  const byKey = new Map<string, string[]>();
  for (const f of filters) {
    const eq = f.indexOf("=");
    const key = f.slice(0, eq);
    if (!["type", "event", "container"].includes(key)) throw new InvalidArgumentError(`--filter ${JSON.stringify(f)}: filters are type=, event= and container=`);
    byKey.set(key, [...(byKey.get(key) ?? []), f.slice(eq + 1)]);
  }
  const types = byKey.get("type");
  const events = byKey.get("event") ?? [];
  const topics = events.map((e) => {
    const topic = EVENT_TOPICS[e] ?? (e.startsWith("/") ? e : undefined);
    if (topic === undefined) throw new InvalidArgumentError(`--filter event=${e}: unknown event (one of ${Object.keys(EVENT_TOPICS).join(", ")}, or a topic such as /tasks/exit)`);
    return topic;
  });
  const none = types !== undefined && !types.some((t) => TASK_TYPES.has(t));
  return { topics: none ? undefined : topics, containers: new Set(byKey.get("container") ?? []) };
}

export async function events(api: Api, g: GlobalOptions, c: { since?: Date; until?: Date; filters: string[] }): Promise<number> {
  const filter = parseEventFilters(c.filters);
  // Loaded here: JSON rendering of protobuf is the heaviest code the CLI has, and only this uses it.
  const [{ createRegistry, toJson }, { timestampDate }, { file_containerd_events_task }, { unpackAnyWith }] = await Promise.all([
    import("@bufbuild/protobuf"),
    import("@bufbuild/protobuf/wkt"),
    import("../gen/containerd/events/task_pb.ts"),
    import("../ttrpc/any.ts"),
  ]);
  const eventRegistry = createRegistry(file_containerd_events_task);
  const request = { namespace: g.namespace, topics: filter.topics ?? [] };
  try {
    // Live: after the newest event the daemon has, and none that happened before now (a shim that
    // could not reach the daemon delivers its backlog late, with the times the events happened).
    // --since: from the oldest the daemon holds, dropped by time.
    const since = c.since ?? new Date();
    let after = c.since ? 0n : (await api.events({ ...request, after: NEWEST, timeoutMs: 0 })).last;
    for (;;) {
      // with --until, what is already there is printed before the end, even when that time is past
      const left = c.until ? c.until.getTime() - Date.now() : POLL_MS;
      const r = await api.events({ ...request, after, timeoutMs: Math.max(0, Math.min(POLL_MS, Math.ceil(left))) });
      for (const e of r.events) {
        const at = e.timestamp ? timestampDate(e.timestamp) : undefined;
        if (c.until && at && at > c.until) return 0;
        if (filter.topics === undefined || (at && at < since)) continue;
        let event: Record<string, unknown> = { typeUrl: e.event?.typeUrl };
        try {
          if (e.event) {
            const msg = unpackAnyWith(e.event, eventRegistry);
            event = toJson(eventRegistry.getMessage(msg.$typeName)!, msg, { registry: eventRegistry }) as Record<string, unknown>;
          }
        } catch {
          // an event type we do not know: print its type only
        }
        if (filter.containers.size > 0 && !filter.containers.has(String(event.containerId ?? ""))) continue;
        stdout().write(JSON.stringify({ seq: Number(e.seq), timestamp: at?.toISOString() ?? "", namespace: e.namespace, topic: e.topic, event }) + "\n");
      }
      if (r.last > after) after = r.last;
      if (c.until && Date.now() >= c.until.getTime() && r.events.length === 0) return 0;
    }
  } catch (err) {
    // the daemon stopped (its connection closed): the stream is over, which is no failure
    if (err instanceof UnavailableError) return 0;
    throw err;
  }
}
