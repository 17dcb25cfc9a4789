// Who is told about what the library makes: trackers added process-wide (the cleanup module adds
// its own when loaded) plus the one a client was given, and the labels that mark the library's
// containers. One session id per loaded library, so a sweep can tell this process's containers
// from a concurrent suite's (Testcontainers' session label, org.testcontainers.sessionId).
import { errorMessage } from "../errdefs.ts";
import { type ContainerRef, type ContainerTracker, LIB_LABELS, type NetworkRef } from "./types.ts";

export const SESSION_ID = crypto.randomUUID();

const trackers = new Set<ContainerTracker>();

/** Adds a tracker told about every container (and network) any client of this process makes; returns its removal. */
export function addTracker(t: ContainerTracker): () => void {
  trackers.add(t);
  return () => void trackers.delete(t);
}

/** The labels every container the library starts carries, over the caller's own. */
export function libLabels(own: Readonly<Record<string, string>> = {}): Record<string, string> {
  return { ...own, [LIB_LABELS.lib]: "1", [LIB_LABELS.session]: SESSION_ID, [LIB_LABELS.pid]: String(process.pid) };
}

type Event = "track" | "untrack" | "trackNetwork" | "untrackNetwork";

/** Tells every tracker; one that throws is reported on stderr and does not stop the others or the caller. */
export function notify(own: ContainerTracker | undefined, event: Event, ref: ContainerRef | NetworkRef): void {
  for (const t of own ? [...trackers, own] : trackers) {
    try {
      if (event === "track") t.track(ref as ContainerRef);
      else if (event === "untrack") t.untrack(ref as ContainerRef);
      else t[event]?.(ref as NetworkRef);
    } catch (err) {
      process.stderr.write(`bunker: container tracker ${event} failed: ${errorMessage(err)}\n`);
    }
  }
}
