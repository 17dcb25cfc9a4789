// Runtime options (containerd.runc.v1.Options) as the runc shim reads them: from the Any in
// CreateTaskRequest, persisted to <bundle>/options.json (Go's JSON field names) so the `delete`
// action, run after the shim died, uses the same runc root and binary.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_RUNC_ROOT, Runc, type RuncConfig, type SpawnFn } from "../../runc/runc.ts";
import type { OciRuntime } from "../../oci/runtime.ts";
import { RUNC_LOG_FILE } from "../../contract/bundle.ts";

export interface RuncOptions {
  binaryName: string;
  root: string;
  systemdCgroup: boolean;
  criuPath: string;
  noPivotRoot: boolean;
  noNewKeyring: boolean;
  ioUid: number;
  ioGid: number;
}

export const defaultOptions = (): RuncOptions => ({
  binaryName: "",
  root: "",
  systemdCgroup: false,
  criuPath: "",
  noPivotRoot: false,
  noNewKeyring: false,
  ioUid: 0,
  ioGid: 0,
});

const JSON_NAMES: Record<keyof RuncOptions, string> = {
  binaryName: "binary_name",
  root: "root",
  systemdCgroup: "systemd_cgroup",
  criuPath: "criu_path",
  noPivotRoot: "no_pivot_root",
  noNewKeyring: "no_new_keyring",
  ioUid: "io_uid",
  ioGid: "io_gid",
};

export function writeOptions(bundle: string, o: RuncOptions): void {
  const out: Record<string, unknown> = {};
  for (const [k, name] of Object.entries(JSON_NAMES) as [keyof RuncOptions, string][]) {
    if (o[k]) out[name] = o[k]; // Go's omitempty
  }
  writeFileSync(join(bundle, "options.json"), JSON.stringify(out), { mode: 0o600 });
  writeFileSync(join(bundle, "runtime"), o.binaryName, { mode: 0o600 });
}

/** The options a previous Create persisted; defaults when there are none. */
export function readOptions(bundle: string): RuncOptions {
  const o = defaultOptions();
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(join(bundle, "options.json"), "utf8")) as Record<string, unknown>;
  } catch {
    return o;
  }
  const target = o as unknown as Record<string, unknown>;
  for (const [k, name] of Object.entries(JSON_NAMES)) {
    const v = raw[name];
    if (v !== undefined && typeof v === typeof target[k]) target[k] = v;
  }
  return o;
}

/** The runc client config containerd's shim uses for a bundle (pkg/process NewRunc). */
export function runcConfig(o: RuncOptions, bundle: string, namespace: string): RuncConfig {
  return {
    command: o.binaryName || "runc",
    root: join(o.root || DEFAULT_RUNC_ROOT, namespace),
    log: join(bundle, RUNC_LOG_FILE),
    logFormat: "json",
    systemdCgroup: o.systemdCgroup,
    ...(o.criuPath ? { criu: o.criuPath } : {}),
  };
}

/** The runc runtimes of a shim: one client per container, configured by its options (spawn: see RuncConfig.spawn). */
export function runcRuntimes(spawn?: SpawnFn): (o: RuncOptions, bundle: string, namespace: string) => OciRuntime {
  return (o, bundle, namespace) => new Runc({ ...runcConfig(o, bundle, namespace), ...(spawn ? { spawn } : {}) });
}
