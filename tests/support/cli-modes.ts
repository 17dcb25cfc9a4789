// The same CLI cases run twice, as users meet bunker: embedded (each command does the work itself)
// and under a daemon (each command is a client). One describe per mode; in "daemon" mode a daemon
// of the suite's BunkerEnv runs from before the first case until after the mode's cleanup.
import { afterAll, beforeAll, describe } from "bun:test";
import type { BunkerEnv } from "./cli-harness.ts";

export type CliMode = "embedded" | "daemon";

/**
 * `env` is read when the hooks run (the suite makes its BunkerEnv in its own beforeAll). What `body`
 * returns runs first at the end of each mode, while its daemon still answers (e.g. rm -f of its
 * containers).
 */
export function describeEachMode(env: () => BunkerEnv, body: (mode: CliMode) => (() => Promise<unknown>) | void): void {
  for (const mode of ["embedded", "daemon"] as const) {
    describe(mode, () => {
      let daemon: Awaited<ReturnType<BunkerEnv["startDaemon"]>> | undefined;
      let cleanup: (() => Promise<unknown>) | void = undefined;
      beforeAll(async () => {
        if (mode === "daemon") daemon = await env().startDaemon();
      }, 60_000);
      afterAll(async () => {
        try {
          await cleanup?.();
        } finally {
          if (daemon) {
            daemon.proc.kill("SIGTERM");
            await daemon.proc.exited;
          }
        }
      }, 60_000);
      cleanup = body(mode);
    });
  }
}
