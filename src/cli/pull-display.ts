// What `bunker pull` shows: on a terminal, docker's per-layer lines (short digest, status, bytes and
// speed) redrawn in place; otherwise one plain line per blob as it completes, which logs and test
// suites can read. Nothing at all for an image already present (no events arrive).
import type { PullProgressEvent } from "../registry/pull.ts";

const REDRAW_MS = 100;

/** Bytes as docker prints them (decimal units: 2.1MB). */
export function human(bytes: number): string {
  const units = ["B", "kB", "MB", "GB"];
  let n = bytes;
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${n.toFixed(u === 0 ? 0 : 1)}${units[u]}`;
}

interface Row {
  digest: string;
  role: string;
  current: number;
  size: number;
  status: string;
  started: number;
}

export class PullDisplay {
  private readonly rows = new Map<string, Row>();
  private drawn = 0;
  private lastDraw = 0;
  private readonly tty: boolean;
  private readonly started = performance.now();
  private total = { current: 0, size: 0 };

  constructor(private readonly out: NodeJS.WriteStream, private readonly ref: string, private readonly quiet = false) {
    this.tty = out.isTTY === true;
  }

  progress(e: PullProgressEvent): void {
    if (this.quiet) return;
    if (this.rows.size === 0 && !this.tty) this.out.write(`pulling ${this.ref}\n`);
    const row = this.rows.get(e.digest) ?? { digest: e.digest, role: e.role, current: 0, size: e.size, status: "", started: performance.now() };
    const was = row.status;
    row.current = e.current;
    row.status = e.status;
    this.rows.set(e.digest, row);
    this.total = { current: e.totalCurrent, size: e.totalSize };
    if (!this.tty) {
      if (e.status !== "downloading" && was !== e.status) this.out.write(`${e.role} ${e.digest.slice(7, 19)}: ${e.status === "exists" ? "already present" : `${human(e.size)} done`}\n`);
      return;
    }
    const now = performance.now();
    if (now - this.lastDraw >= REDRAW_MS || e.status !== "downloading") this.draw(now);
  }

  private draw(now: number): void {
    this.lastDraw = now;
    const lines = [...this.rows.values()].map((r) => {
      const id = r.digest.slice(7, 19);
      if (r.status === "exists") return `${id}: already exists`;
      if (r.status === "done") return `${id}: done ${human(r.size)}`;
      const secs = Math.max((now - r.started) / 1000, 0.001);
      return `${id}: downloading ${human(r.current)}/${human(r.size)} ${human(r.current / secs)}/s`;
    });
    // move up over what we drew before, then redraw every line (clearing each)
    let s = this.drawn > 0 ? `\x1b[${this.drawn}A` : "";
    for (const l of lines) s += `\r\x1b[2K${l}\n`;
    this.out.write(s);
    this.drawn = lines.length;
  }

  /** The last frame; the summary line only for a pull that succeeded (a failure's line is the error). */
  end(ok = true): void {
    if (this.quiet || this.rows.size === 0) return;
    if (this.tty) this.draw(performance.now());
    if (!ok) return;
    const secs = (performance.now() - this.started) / 1000;
    this.out.write(`${this.ref}: ${human(this.total.size)} in ${secs.toFixed(1)}s\n`);
  }
}
