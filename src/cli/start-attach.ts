// `bunker start -a ID`, as `docker start -a`: start the container and stay with it, its stdout on
// our stdout and its stderr on our stderr until it exits, our signals passed on to it (docker's
// --sig-proxy, on by default when attached), and its exit code as ours.
//
// docker attaches to the container's live streams. The bunker.v1 API gives a started container no
// new stdio (Start remakes the task from the saved config, whose output is its kept log), and its
// .proto is not ours to change, so attaching follows that log from the moment of the start: the
// json-file log from that time on (stdout and stderr kept apart, as `logs -f --since` reads it,
// rotation included), the raw `file` log from the byte it had reached. A container that keeps no
// log (--log-driver none, or one made by an attached `run`) has no output to attach to: that is
// said before it is started, so nothing runs unseen. stdin is not attached (no -i): the API has no
// way to hand a started task a new stdin.
import type { Api } from "../api/client.ts";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import type { GlobalOptions } from "./args.ts";
import { withSignalProxy } from "./attach.ts";
import { FileCursor } from "./log-reader.ts";
import { wallClockNs } from "./log-time.ts";
import { logs } from "./logs.ts";
import { stdout } from "./stdout.ts";

const FOLLOW_POLL_MS = 200;

/** A wall-clock time in nanoseconds as `--since` takes Unix seconds (all nine digits kept). */
export function unixSecondsArg(ns: bigint): string {
  return `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, "0")}`;
}

export async function startAttached(api: Api, g: GlobalOptions, ids: readonly string[]): Promise<number> {
  if (ids.length !== 1) throw new InvalidArgumentError("start: you cannot start and attach multiple containers at once");
  const id = ids[0]!;
  const ref = { namespace: g.namespace, id };
  const t = (await api.list(ref)).tasks[0];
  if (!t) throw new NotFoundError(`container ${id} not found`);
  const driver = t.logDriver || (t.logPath !== "" ? "file" : "");
  if (driver === "none" || t.logPath === "") {
    throw new FailedPreconditionError(`start -a: container ${id} keeps no output to attach to (${driver === "none" ? "--log-driver none" : "it was not run detached"}); start it without -a`);
  }
  const stopped = async (): Promise<boolean> => {
    const now = (await api.list(ref).catch(() => ({ tasks: [] }))).tasks[0];
    return !now || now.status === Status.STOPPED;
  };
  // where this run's output begins: a time for json-file, a byte offset for the raw file
  const since = wallClockNs();
  let cursor = driver === "file" ? FileCursor.open(t.logPath) : undefined;
  cursor?.readNew();
  try {
    if (t.status !== Status.RUNNING && t.status !== Status.PAUSED) await api.start(ref);
    return await withSignalProxy(async (signal) => void (await api.kill({ ...ref, signal })), async () => {
      if (driver === "file") {
        for (;;) {
          const done = await stopped();
          cursor ??= FileCursor.open(t.logPath);
          const data = cursor?.readNew();
          if (data && data.length > 0) stdout().write(data);
          if (done) break;
          await Bun.sleep(FOLLOW_POLL_MS);
        }
      } else {
        await logs(api, g, { name: "logs", id, follow: true, timestamps: false, since: unixSecondsArg(since) });
      }
      return (await api.wait(ref)).exitStatus;
    });
  } finally {
    cursor?.close();
  }
}
