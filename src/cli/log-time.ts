// The time arguments of `bunker logs`, as docker reads them (moby api/types/time GetTimestamp and
// `docker logs --tail`): --since/--until take an RFC3339 time (with or without a fraction and a zone;
// without a zone it is local time, as docker), a date, Unix seconds with an optional fraction, or a
// Go duration before now ("10m", "1h30m", "1.5h"). Times are nanoseconds since the epoch (bigint):
// the log's times have nanoseconds, and a --since of one entry's exact time must include it.
import { InvalidArgumentError } from "../errdefs.ts";

const NS_PER: Record<string, bigint> = { ns: 1n, us: 1_000n, "µs": 1_000n, "μs": 1_000n, ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n };

/** Go's time.ParseDuration, in nanoseconds; undefined when `value` is not one. */
export function parseGoDuration(value: string): bigint | undefined {
  if (value === "0") return 0n;
  const m = /^([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(value);
  if (!m) return undefined;
  let total = 0n;
  for (const part of value.replace(/^[-+]/, "").matchAll(/(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/g)) {
    const unit = NS_PER[part[3]!]!;
    const whole = BigInt(part[1] || "0");
    const frac = part[2] ?? "";
    total += whole * unit + (frac === "" ? 0n : (BigInt(frac) * unit) / 10n ** BigInt(frac.length));
  }
  return m[1] === "-" ? -total : total;
}

/** RFC3339 with any fraction: nanoseconds since the epoch, or undefined. A missing zone is local time. */
export function parseRfc3339(value: string): bigint | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|z|[+-]\d{2}:?\d{2})?$/.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", zone] = m;
  const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)] as const;
  let ms: number;
  if (zone === undefined) ms = new Date(...fields).getTime();
  else {
    ms = Date.UTC(...fields);
    if (zone !== "Z" && zone !== "z") {
      const z = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
      ms -= (z[1] === "-" ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3])) * 60_000;
    }
  }
  if (!Number.isFinite(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt(frac.padEnd(9, "0") || "0");
}

/** --since/--until: nanoseconds since the epoch, relative to `nowNs` for a duration. */
export function parseTimeArg(value: string, nowNs: bigint, flag: string): bigint {
  const unix = /^(\d+)(?:\.(\d{1,9}))?$/.exec(value);
  if (unix) return BigInt(unix[1]!) * 1_000_000_000n + BigInt((unix[2] ?? "").padEnd(9, "0"));
  const d = parseGoDuration(value);
  if (d !== undefined) return nowNs - d;
  const t = parseRfc3339(value);
  if (t !== undefined) return t;
  throw new InvalidArgumentError(`${flag} ${JSON.stringify(value)}: not a time (RFC3339 like 2024-05-01T10:00:00Z, Unix seconds, or a duration like 10m or 1h30m)`);
}

/** --tail: "all" (or a negative number, as docker) is everything (undefined); else a line count. */
export function parseTail(value: string): number | undefined {
  if (value === "all" || /^-\d+$/.test(value)) return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new InvalidArgumentError(`--tail ${JSON.stringify(value)} must be a number of lines or "all"`);
  return Number(value);
}

/** docker's RFC3339NanoFixed for --timestamps: always nine digits of fraction, UTC. */
export function formatTimestamp(ns: bigint): string {
  const base = new Date(Number(ns / 1_000_000n)).toISOString().slice(0, 19);
  return `${base}.${(((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n).toString().padStart(9, "0")}Z`;
}

/** The wall clock in nanoseconds (millisecond precision is enough for relative --since). */
export function wallClockNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
