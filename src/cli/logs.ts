// `bunker logs [-f] [--tail N|all] [-t] [--since T] [--until T] ID`, as `docker logs`: a detached
// container's kept output, stdout lines to our stdout and stderr lines to our stderr (json-file), or
// the raw bytes of the `file` driver (`--log FILE`, or a runtime whose shim cannot write json-file)
// to stdout, where a stream's lines and times are unknown, so -t/--since/--until are refused.
// -f follows the log across rotation and ends once the container stopped and all is printed (or
// --until passed). The files are read directly, daemon or not: the shim writes them and the task's
// meta (via List) says where and how.
import { readFileSync, statSync } from "node:fs";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import type { Api } from "../api/client.ts";
import type { Command, GlobalOptions } from "./args.ts";
import { FileCursor, JsonLogDecoder, LineJoiner, type LogLine, rotatedLogFiles, tailRaw } from "./log-reader.ts";
import { formatTimestamp, parseTimeArg, wallClockNs } from "./log-time.ts";
import { stdout } from "./stdout.ts";

type LogsCommand = Extract<Command, { name: "logs" }>;

const FOLLOW_POLL_MS = 200;

interface Window {
  since?: bigint;
  until?: bigint;
}

export async function logs(api: Api, g: GlobalOptions, c: LogsCommand): Promise<number> {
  const now = wallClockNs();
  const window: Window = {};
  if (c.since !== undefined) window.since = parseTimeArg(c.since, now, "--since");
  if (c.until !== undefined) window.until = parseTimeArg(c.until, now, "--until");
  const t = (await api.list({ namespace: g.namespace, id: c.id })).tasks[0];
  if (!t) throw new NotFoundError(`container ${c.id} not found`);
  // a task from before log drivers has only a path: today's raw file
  const driver = t.logDriver || (t.logPath !== "" ? "file" : "");
  if (driver === "none") throw new FailedPreconditionError(`container ${c.id} keeps no logs (it was started with --log-driver none)`);
  if (t.logPath === "") throw new FailedPreconditionError(`container ${c.id} keeps no logs (only detached containers do: run -d)`);
  const stopped = async (): Promise<boolean> => {
    const now = (await api.list({ namespace: g.namespace, id: c.id }).catch(() => ({ tasks: [] }))).tasks[0];
    return !now || now.status === Status.STOPPED;
  };
  if (driver === "file") {
    for (const [flag, set] of [["--timestamps", c.timestamps], ["--since", c.since !== undefined], ["--until", c.until !== undefined]] as const) {
      if (set) throw new InvalidArgumentError(`${flag} needs the json-file log driver: container ${c.id} keeps raw output in ${t.logPath} (log driver file)`);
    }
    return await rawLogs(t.logPath, c, stopped);
  }
  return await jsonLogs(t.logPath, c, window, stopped);
}

function print(lines: LogLine[], timestamps: boolean): void {
  let out = "";
  let err = "";
  for (const l of lines) {
    const text = timestamps ? `${formatTimestamp(l.timeNs)} ${l.text}` : l.text;
    if (l.stream === "stdout") out += text;
    else err += text;
  }
  if (out !== "") stdout().write(out);
  if (err !== "") process.stderr.write(err);
}

function inWindow(l: LogLine, w: Window): boolean {
  return (w.since === undefined || l.timeNs >= w.since) && (w.until === undefined || l.timeNs <= w.until);
}

async function jsonLogs(path: string, c: LogsCommand, w: Window, stopped: () => Promise<boolean>): Promise<number> {
  const decoder = new JsonLogDecoder();
  const joiner = new LineJoiner();
  // the current file through an fd kept open, so -f goes on exactly where this read ended
  const files = rotatedLogFiles(path);
  let cursor = files.at(-1) === path ? FileCursor.open(path) : undefined;
  let lines: LogLine[] = [];
  for (const f of files) {
    let data: Buffer;
    try {
      data = f === path && cursor ? cursor.readNew() : readFileSync(f);
    } catch {
      continue; // rotated away between listing and reading
    }
    lines.push(...joiner.push(decoder.push(data)));
    decoder.reset();
  }
  if (!c.follow) lines.push(...joiner.flush());
  lines = lines.filter((l) => inWindow(l, w));
  if (c.tail !== undefined) lines = c.tail === 0 ? [] : lines.slice(-c.tail);
  print(lines, c.timestamps);
  if (!c.follow) {
    cursor?.close();
    return 0;
  }
  const emit = (data: Buffer): void => print(joiner.push(decoder.push(data)).filter((l) => inWindow(l, w)), c.timestamps);
  try {
    for (;;) {
      // read the stop first: all the output was written before the exit was recorded (the shim drains first)
      const done = await stopped();
      if (cursor) emit(cursor.readNew());
      // rotated (or made, when there was none yet): finish the old file, then go on in the new one
      const ino = inode(path);
      if (ino !== undefined && ino !== cursor?.ino) {
        if (cursor) emit(cursor.readNew());
        cursor?.close();
        decoder.reset();
        cursor = FileCursor.open(path);
        if (cursor) emit(cursor.readNew());
      }
      if (done || (w.until !== undefined && wallClockNs() > w.until)) {
        print(joiner.flush().filter((l) => inWindow(l, w)), c.timestamps);
        return 0;
      }
      await Bun.sleep(FOLLOW_POLL_MS);
    }
  } finally {
    cursor?.close();
  }
}

function inode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

async function rawLogs(path: string, c: LogsCommand, stopped: () => Promise<boolean>): Promise<number> {
  let cursor = FileCursor.open(path);
  const first = cursor?.readNew() ?? Buffer.alloc(0);
  const shown = c.tail === undefined ? first : tailRaw(first, c.tail);
  if (shown.length > 0) stdout().write(shown);
  if (!c.follow) {
    cursor?.close();
    return 0;
  }
  try {
    for (;;) {
      const done = await stopped();
      cursor ??= FileCursor.open(path);
      const data = cursor?.readNew();
      if (data && data.length > 0) stdout().write(data);
      if (done) return 0;
      await Bun.sleep(FOLLOW_POLL_MS);
    }
  } finally {
    cursor?.close();
  }
}
