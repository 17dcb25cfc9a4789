// A real terminal for tests of interactive use: a tmux server of our own (a private -L socket, so
// nobody else's sessions are seen or touched), one detached session of a fixed size running the
// command under test in a wrapper script, keys typed with send-keys, the screen read with
// capture-pane. The wrapper records the command's exit code and whether the terminal's settings
// (stty -g) are the same after it as before, which is how a test sees a terminal left raw. The
// server is ended by its pid, never by name.
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export class TmuxTerminal {
  private pid = 0;
  private readonly socket = `bunker-test-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;

  private constructor(private readonly dir: string) {}

  /**
   * Runs each argv of `steps` in turn in a `width`x`height` terminal, in the given environment.
   * After each it prints `exit=N` and `SANE` (terminal settings as before) or `INSANE`, then `STEP-DONE`.
   * The wrapper ignores SIGINT and SIGQUIT, as an interactive shell does, so a Ctrl-C or Ctrl-\ the
   * terminal sends to its foreground group reaches only the command under test.
   */
  static async start(dir: string, env: Record<string, string>, steps: string[][], size = { width: 120, height: 40 }): Promise<TmuxTerminal> {
    const t = new TmuxTerminal(dir);
    const script = join(dir, `tmux-${t.socket}.sh`);
    const lines = ["#!/bin/sh", `trap ':' INT QUIT`];
    for (const [k, v] of Object.entries(env)) if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) lines.push(`export ${k}=${quote(v)}`);
    lines.push(`before=$(stty -g)`);
    for (const argv of steps) {
      lines.push(argv.map(quote).join(" "));
      lines.push(`echo "exit=$?"`, `if [ "$(stty -g)" = "$before" ]; then echo SANE; else echo INSANE; fi`, `echo STEP-DONE`);
    }
    lines.push("exec sleep 600");
    writeFileSync(script, lines.join("\n") + "\n");
    chmodSync(script, 0o755);
    await t.tmux("new-session", "-d", "-x", String(size.width), "-y", String(size.height), script);
    t.pid = Number((await t.tmux("display-message", "-p", "#{pid}")).trim());
    if (!(t.pid > 0)) throw new Error("tmux did not say its server's pid");
    return t;
  }

  private async tmux(...args: string[]): Promise<string> {
    const p = Bun.spawn(["tmux", "-L", this.socket, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, TMUX: "" } });
    const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
    if (code !== 0) throw new Error(`tmux ${args.join(" ")}: ${err.trim()}`);
    return out;
  }

  /** Types: each argument is a key (`Enter`, `C-c`, `C-\\`) or, when not a key name, literal text. */
  async keys(...keys: string[]): Promise<void> {
    await this.tmux("send-keys", ...keys);
  }

  /** Types a line and presses Enter. */
  async line(text: string): Promise<void> {
    await this.tmux("send-keys", "-l", text);
    await this.tmux("send-keys", "Enter");
  }

  async screen(): Promise<string> {
    return this.tmux("capture-pane", "-p", "-S", "-200");
  }

  /** Waits until the screen matches; fails with the screen it last saw. */
  async waitFor(pattern: RegExp, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let seen = "";
    for (;;) {
      seen = await this.screen();
      if (pattern.test(seen)) return seen;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} on the terminal:\n${seen.replace(/\n+$/, "")}`);
      await Bun.sleep(50);
    }
  }

  async resize(width: number, height: number): Promise<void> {
    await this.tmux("resize-window", "-x", String(width), "-y", String(height));
  }

  /** Ends the tmux server (and with it the pane's processes) by its pid. */
  async close(): Promise<void> {
    if (this.pid <= 0) return;
    try {
      process.kill(this.pid, "SIGTERM");
    } catch {
      return;
    }
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      try {
        process.kill(this.pid, 0);
      } catch {
        return;
      }
      await Bun.sleep(20);
    }
    process.kill(this.pid, "SIGKILL");
  }
}
