// podman 4.3 made to run here, for benches that measure it beside bunker: on this hybrid-cgroup
// host it needs runc and the cgroupfs manager (crun fails), `default_ulimits = []` (its default
// nofile limit is refused here), events in a file, and a root, runroot and temp dirs of its own so
// nothing of the machine's podman is read or written. `cni` adds the CNI backend over /usr/lib/cni
// with an empty config dir (its built-in default network). undefined when podman is not installed.
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Podman {
  /** podman with its global flags: append a command and its arguments. */
  argv: string[];
  env: Record<string, string | undefined>;
  /** Removes the cgroupfs parents podman made (libpod_parent, its conmon group), if this run made them and they are empty. */
  cleanup(): void;
}

const CGROUP_ROOT = "/sys/fs/cgroup";

/** The libpod_parent groups that do not exist yet (podman's cgroupfs manager makes them on its first run). */
function cgroupsPodmanWouldMake(): string[] {
  const made: string[] = [];
  for (const c of readdirSync(CGROUP_ROOT)) {
    const parent = join(CGROUP_ROOT, c, "libpod_parent");
    if (statSync(join(CGROUP_ROOT, c)).isDirectory() && !existsSync(parent)) made.push(parent);
  }
  if (existsSync(join(CGROUP_ROOT, "cgroup.controllers")) && !existsSync(join(CGROUP_ROOT, "libpod_parent"))) made.push(join(CGROUP_ROOT, "libpod_parent"));
  return made;
}

export function privatePodman(dir: string, baseEnv: Record<string, string | undefined>, o: { cni?: boolean } = {}): Podman | undefined {
  if (!Bun.which("podman")) return undefined;
  for (const d of ["cni", "tmp"]) mkdirSync(join(dir, d), { recursive: true });
  const conf = join(dir, "containers.conf");
  writeFileSync(conf, [
    "[containers]", "default_ulimits = []",
    ...(o.cni ? ["[network]", 'network_backend = "cni"', 'cni_plugin_dirs = ["/usr/lib/cni"]', `network_config_dir = "${join(dir, "cni")}"`] : []),
    "[engine]", 'cgroup_manager = "cgroupfs"', 'runtime = "runc"', 'events_logger = "file"', `tmp_dir = "${join(dir, "tmp")}"`,
    `image_copy_tmp_dir = "${join(dir, "tmp")}"`, "",
  ].join("\n"));
  const madeCgroups = cgroupsPodmanWouldMake();
  return {
    argv: ["podman", "--root", join(dir, "root"), "--runroot", join(dir, "runroot"), "--storage-driver", "overlay"],
    env: { ...baseEnv, CONTAINERS_CONF: conf },
    cleanup: () => {
      // rmdir removes only an empty group: one still in use is left as it is
      for (const d of madeCgroups) for (const g of [join(d, "conmon"), d]) Bun.spawnSync(["rmdir", g], { stderr: "ignore" });
    },
  };
}
