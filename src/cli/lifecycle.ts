// `stop`, `start` and `restart`: a container's life after `run`, as docker has them. stop sends the
// stop signal and SIGKILLs after the timeout, leaving the container stopped (and its restart policy
// held); start runs a created or stopped container again (the manager remakes its task from the
// saved config: runc cannot restart a process); restart is the two in a row.
import { NotFoundError } from "../errdefs.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import type { Api } from "../api/client.ts";
import { type Command, type GlobalOptions, parseSignal } from "./args.ts";
import { stdout } from "./stdout.ts";

function out(line: string): void {
  stdout().write(line + "\n");
}

function report(verb: string, id: string, err: unknown): void {
  process.stderr.write(`bunker: ${verb} ${id}: ${err instanceof Error ? err.message : String(err)}\n`);
}

/** Stops one container: its stop signal, then SIGKILL to all its processes after `timeout` seconds. */
async function stopOne(api: Api, g: GlobalOptions, id: string, timeout: number | undefined): Promise<void> {
  const t = (await api.list({ namespace: g.namespace, id })).tasks[0];
  if (!t) throw new NotFoundError(`container ${id} not found`);
  const ref = { namespace: g.namespace, id };
  if (t.status !== Status.RUNNING && t.status !== Status.PAUSED && t.status !== Status.PAUSING) {
    // between two runs of its restart policy: a kill (refused: nothing runs) still marks it stopped
    // by a user, which holds the policy as docker's stop of a restarting container does
    if (t.restartPolicy !== "" && t.restartPolicy !== "no") await api.kill({ ...ref, signal: 15 }).catch(() => undefined);
    return;
  }
  const waiting = api.wait(ref);
  waiting.catch(() => undefined);
  const seconds = timeout ?? (t.stopTimeout || 10);
  if (seconds > 0) await api.kill({ ...ref, signal: parseSignal(t.stopSignal || "TERM") });
  let timer: Timer | undefined;
  const stopped = await Promise.race([waiting.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), seconds * 1000)))]);
  clearTimeout(timer);
  if (!stopped) {
    await api.kill({ ...ref, signal: 9, all: true });
    await waiting;
  }
}

/** Runs `each` for every id, printing the id on success and a `bunker: VERB ID: …` line on failure (docker's way). */
async function forEachId(verb: string, ids: readonly string[], each: (id: string) => Promise<void>): Promise<number> {
  let code = 0;
  for (const id of ids) {
    try {
      await each(id);
      out(id);
    } catch (err) {
      report(verb, id, err);
      code = 1;
    }
  }
  return code;
}

/** docker stop: the container stays, stopped, until rm. */
export function stop(api: Api, g: GlobalOptions, c: Extract<Command, { name: "stop" }>): Promise<number> {
  return forEachId("stop", c.ids, (id) => stopOne(api, g, id, c.timeout));
}

/** docker start: a running container is left as it is; a created or stopped one runs (-a: and is followed, start-attach.ts). */
export async function start(api: Api, g: GlobalOptions, c: Extract<Command, { name: "start" }>): Promise<number> {
  if (c.attach) return await (await import("./start-attach.ts")).startAttached(api, g, c.ids);
  return await forEachId("start", c.ids, async (id) => {
    const ref = { namespace: g.namespace, id };
    const t = (await api.list(ref)).tasks[0];
    if (!t) throw new NotFoundError(`container ${id} not found`);
    if (t.status !== Status.RUNNING && t.status !== Status.PAUSED) await api.start(ref);
  });
}

/** docker restart: stop (signal, timeout, SIGKILL), then start. */
export function restart(api: Api, g: GlobalOptions, c: Extract<Command, { name: "restart" }>): Promise<number> {
  return forEachId("restart", c.ids, async (id) => {
    await stopOne(api, g, id, c.timeout);
    await api.start({ namespace: g.namespace, id });
  });
}
