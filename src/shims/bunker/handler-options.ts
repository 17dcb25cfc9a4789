// runc's options from a CRI runtime handler's `options` table. CRI hands runtimes other than runc a
// runtimeoptions.v1.Options (the table in a config_path file or inline in config_body) instead of
// containerd.runc.v1.Options, so without this a handler written for runc, e.g.
//   [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.bunker.options]
//     SystemdCgroup = true
//     BinaryName = "/usr/local/bin/runc"
// would lose those keys under bunker: runc would run without --systemd-cgroup and be handed the
// systemd-form cgroupsPath ("kubepods-pod<uid>.slice:cri-containerd:<id>") kubelet's systemd
// driver makes. The keys are runc.v2's, spelled as CRI's TOML spells containerd.runc.v1.Options'
// Go fields; a key of the wrong type is InvalidArgument, unknown keys (bunker's `group`) are left
// to whoever reads them.
import { InvalidArgumentError } from "../../errdefs.ts";
import { handlerConfigValues, type HandlerValue } from "../../contract/handler-config.ts";
import type { RuntimeConfigText } from "../../contract/start-options.ts";
import { defaultOptions, type RuncOptions } from "./options.ts";

const KEYS: Record<string, keyof RuncOptions> = {
  BinaryName: "binaryName",
  Root: "root",
  SystemdCgroup: "systemdCgroup",
  CriuPath: "criuPath",
  NoPivotRoot: "noPivotRoot",
  NoNewKeyring: "noNewKeyring",
  IoUid: "ioUid",
  IoGid: "ioGid",
};

export function runcOptionsFromHandler(values: Record<string, HandlerValue>, source: string): RuncOptions {
  const o = defaultOptions();
  const target = o as unknown as Record<string, HandlerValue>;
  for (const [key, field] of Object.entries(KEYS)) {
    const v = values[key];
    if (v === undefined) continue;
    const want = typeof target[field];
    if (typeof v !== want || (want === "number" && (!Number.isInteger(v) || (v as number) < 0))) {
      throw new InvalidArgumentError(`${source}: ${key} must be ${want === "number" ? "a non-negative integer" : `a ${want}`}`);
    }
    target[field] = v;
  }
  return o;
}

/** runc's options from the handler config CRI sent (its file's content or the inline body). */
export function runcOptionsFromConfig(config: RuntimeConfigText): RuncOptions {
  return runcOptionsFromHandler(handlerConfigValues(config.content, config.source), config.source);
}
