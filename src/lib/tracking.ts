// Who is told about what the library makes: trackers added process-wide (the cleanup module adds
// its own when loaded) plus the one a client was given, and the labels that mark the library's
// containers. One session id per loaded library, so a sweep can tell this process's containers
// from a concurrent suite's (Testcontainers' session label, org.testcontainers.sessionId).
import { errorMessage } from "../errdefs.ts";
import { cleanupSession } from "./cleanup.ts";
import type { ContainerRef, ContainerTracker, NetworkRef } from "./types.ts";

const trackers = new Set<ContainerTracker>();

/** This process's session: the one cleanup.ts's reaper removes by (its labels are the library's). */
export const SESSION_ID = cleanupSession().identity.session;


/** Adds a tracker told about every container (and network) any client of this process makes; returns its removal. */
export function addTracker(t: ContainerTracker): () => void {
  trackers.add(t);
  return () => void trackers.delete(t);
}

/** The labels every container the library starts carries, over the caller's own. */
export function libLabels(own: Readonly<Record<string, string>> = {}): Record<string, string> {
  return { ...own, ...cleanupSession().labels };
}

/**
 * Cleanup guaranteed (cleanup.ts): the session's reaper is told of every container and network
 * the library makes, before its create, and forgets them once removed; whatever is still there
 * when this process ends, however it ends, is removed.
 */
const cleanup: ContainerTracker = {
  track: (ref) => cleanupSession().track(targetRef(ref)),
  untrack: (ref) => cleanupSession().untrack(targetRef(ref)),
  trackNetwork: (net) => cleanupSession().trackNetwork(net),
  untrackNetwork: (net) => cleanupSession().untrackNetwork(net),
};
trackers.add(cleanup);

/** The API's ref (a daemon socket, or an embedded manager's address) as the reaper's target. */
function targetRef(ref: ContainerRef): { namespace: string; id: string; daemon: boolean; root: string; state: string; address: string } {
  return { namespace: ref.namespace, id: ref.id, daemon: ref.daemon !== undefined, root: ref.root, state: ref.state, address: ref.daemon ?? ref.address };
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
