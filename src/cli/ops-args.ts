// Parsing of the container operations around the loop: pause, unpause, top, stats, cp and events,
// with docker's names and flags. Kept out of args.ts (which other commands grow in parallel) and
// free of any API code, so parsing stays as cheap as the rest of the CLI's start-up; each command's
// handler lives in its own file and is loaded only when it runs.
import { InvalidArgumentError } from "../errdefs.ts";
import { bool, type Command, list, noMore, one, parseFlags, str } from "./args.ts";

export type OpsCommand =
  | { name: "pause" | "unpause"; ids: string[] }
  | { name: "top"; id: string; psArgs: string[] }
  | { name: "stats"; noStream: boolean; ids: string[] }
  | { name: "cp"; source: string; destination: string; archive: boolean; followLink: boolean }
  | { name: "events"; since?: Date; until?: Date; filters: string[] };

export const OPS_COMMANDS = new Set(["pause", "unpause", "top", "stats", "cp", "events"]);

/** Go's time.ParseDuration units, which docker's --since/--until take for relative times (`10m`, `1h30m`). */
const DURATION_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** A Go duration (`90s`, `1h30m`, `1.5h`) in milliseconds, or undefined when `value` is not one. */
export function parseGoDuration(value: string): number | undefined {
  if (!/^(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))*$/.test(value)) return undefined;
  let total = 0;
  for (const m of value.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
  return total;
}

/**
 * docker events' time forms (its GetTimestamp): Unix seconds with an optional fraction, an RFC 3339
 * date or date-time, or a duration taken back from `now` (`10m`: ten minutes ago).
 */
export function parseEventTime(value: string, flag: string, now: Date = new Date()): Date {
  const bad = (): never => {
    throw new InvalidArgumentError(`${flag} ${JSON.stringify(value)}: expected RFC 3339 (2006-01-02T15:04:05Z), Unix seconds or a duration such as 10m`);
  };
  if (/^\d+(\.\d{1,9})?$/.test(value)) return new Date(Number(value) * 1000);
  const ago = parseGoDuration(value);
  if (ago !== undefined) return new Date(now.getTime() - ago);
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/.test(value)) bad();
  // Date.parse takes at most milliseconds: drop the nanosecond digits beyond them.
  const ms = Date.parse(value.replace(" ", "T").replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(ms) ? bad() : new Date(ms);
}

export function parseOpsCommand(name: string, tail: string[]): Command {
  const ctx = `bunker ${name}`;
  switch (name) {
    case "pause":
    case "unpause": {
      const f = parseFlags(tail, [], ctx);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: a container id is required`);
      return { name, ids: f.rest };
    }
    case "top": {
      // docker top ID [ps OPTIONS]: everything after the id is ps's, flags included
      const f = parseFlags(tail, [], ctx);
      const id = one(f.rest, "a container id", ctx);
      return { name, id, psArgs: f.rest.slice(1) };
    }
    case "stats": {
      const f = parseFlags(tail, [{ names: ["--no-stream"], key: "noStream", kind: "bool" }], ctx);
      return { name, noStream: bool(f.values, "noStream"), ids: f.rest };
    }
    case "cp": {
      const f = parseFlags(tail, [
        { names: ["-a", "--archive"], key: "archive", kind: "bool" },
        { names: ["-L", "--follow-link"], key: "followLink", kind: "bool" },
      ], ctx);
      const source = one(f.rest, "a source (CONTAINER:PATH or a host path)", ctx);
      const destination = one(f.rest.slice(1), "a destination (CONTAINER:PATH or a host path)", ctx);
      noMore(f.rest, 2, ctx);
      return { name, source, destination, archive: bool(f.values, "archive"), followLink: bool(f.values, "followLink") };
    }
    case "events": {
      const f = parseFlags(tail, [
        { names: ["--since"], key: "since", kind: "string" },
        { names: ["--until"], key: "until", kind: "string" },
        { names: ["-f", "--filter"], key: "filter", kind: "list" },
      ], ctx);
      noMore(f.rest, 0, ctx);
      const since = str(f.values, "since");
      const until = str(f.values, "until");
      const filters = list(f.values, "filter");
      for (const filter of filters) if (filter.indexOf("=") <= 0) throw new InvalidArgumentError(`${ctx}: --filter ${JSON.stringify(filter)} must be KEY=VALUE`);
      return {
        name,
        filters,
        ...(since !== undefined ? { since: parseEventTime(since, "--since") } : {}),
        ...(until !== undefined ? { until: parseEventTime(until, "--until") } : {}),
      };
    }
  }
  throw new InvalidArgumentError(`unknown command ${JSON.stringify(name)}`);
}
