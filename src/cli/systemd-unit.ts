// The systemd unit `bunker install` writes for `bunker daemon`, modelled on containerd's own
// (containerd.service, installed by its release packaging as <prefix>/lib/systemd/system, which
// systemd searches for /usr/local as for /usr):
// - Delegate=yes: the daemon's shims make containers' cgroups under the daemon's slice, which
//   systemd must leave alone;
// - KillMode=process: stopping or restarting the unit ends the daemon only, never the shims and
//   containers it started (they are re-adopted when it comes back, as containerd's are);
// - Restart=always, RestartSec=5: an unattended host keeps its daemon (and with it the restart
//   policies) running;
// - Type=simple: bunker does not speak sd_notify yet, so systemd counts it started once it runs;
//   a client that comes too early finds no socket and runs embedded, which is safe;
// - LimitNOFILE/LimitNPROC/TasksMax unlimited and OOMScoreAdjust=-999 as containerd's: the
//   daemon must not be the first thing the OOM killer takes, nor hit the unit's task cap.
// - Environment=BUN_GC_TIMER_DISABLE=1 and the BUN_JSC_ JIT thresholds: an idle daemon does not wake every
//   second, and its seldom-run paths do not compile again each time (../idle.ts).
// The daemon's --root/--state/--address are written out, so the unit serves the instance that
// installed it rather than whatever the defaults become.
import { existsSync, mkdirSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { FailedPreconditionError } from "../errdefs.ts";
import { IDLE_ENV } from "../idle.ts";

export const UNIT_NAME = "bunker.service";

export interface UnitOptions {
  /** The installed binary. */
  binary: string;
  root: string;
  state: string;
  address: string;
}

/** systemd's quoting for one ExecStart word: plain when it can be, else double-quoted. */
function execWord(word: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(word) ? word : `"${word.replace(/(["\\])/g, "\\$1")}"`;
}

export function systemdUnit(o: UnitOptions): string {
  const exec = [o.binary, "--root", o.root, "--state", o.state, "--address", o.address, "daemon"].map(execWord).join(" ");
  return `[Unit]
Description=bunker container daemon
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=${exec}
${Object.entries(IDLE_ENV).map(([k, v]) => `Environment=${k}=${v}`).join("\n")}
Type=simple
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
LimitNOFILE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`;
}

/** Where the unit goes for an install prefix (containerd's packaging: <prefix>/lib/systemd/system). */
export function unitPath(prefix: string): string {
  return join(resolve(prefix), "lib/systemd/system", UNIT_NAME);
}

/** Writes the unit by rename, so systemd never reads half of it; returns the lines to print. */
export function writeUnit(prefix: string, o: UnitOptions): string[] {
  const path = unitPath(prefix);
  const tmp = join(dirname(path), `.${UNIT_NAME}.tmp-${process.pid}`);
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, systemdUnit(o), { mode: 0o644 });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new FailedPreconditionError(`write ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return [`installed ${path}`, "# to run the daemon at boot: systemctl daemon-reload && systemctl enable --now bunker"];
}

/** The bunker units systemd would find (its search path for system units), for `bunker info`. */
export function installedUnits(dirs = ["/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"]): string[] {
  // /lib is /usr/lib on a merged-/usr system: one file, named once
  return [...new Set(dirs.map((d) => join(d, UNIT_NAME)).filter((p) => existsSync(p)).map((p) => realpathSync(p)))];
}
