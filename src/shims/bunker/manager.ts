// The bunker runc shim as the shim library sees it: `start` groups containers into shared serve
// processes, `delete` cleans up one container after its shim died (containerd's manager.Stop for
// runc: force delete, unmount the rootfs, report 137), serve runs the runc task service.
//
// Only what `start` needs is imported statically: runc's wrapper and the options reader (with
// node:os) load on first use by delete or serve, so the per-pod start action does not evaluate them.
import { existsSync, readFileSync } from "node:fs";
import { errorMessage } from "../../errdefs.ts";
import { canConnect, readAddress, removeSocket } from "../../contract/address.ts";
import { bunkerGroup } from "../../contract/grouping.ts";
import { BUNKER_RUNTIME } from "../../contract/runtime.ts";
import { startGrouped, type SpawnOptions } from "../../shim/start.ts";
import type { DeleteOpts, DeleteResult, ServeContext, Shim, StartOpts, TaskService } from "../../shim/types.ts";
import type { RuntimeInfo } from "../../shim/runtime-info.ts";
import { VERSION } from "../../version.ts";
import { ADDRESS_FILE, INIT_PID_FILE } from "../../contract/bundle.ts";
import { goJoin as join } from "../../gopath.ts";

const SIGKILL = 9;

/** Whether path is a mount point in our mount namespace (mountinfo escapes space and friends as \ooo). */
export function isMounted(path: string): boolean {
  const escaped = path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    if (line.split(" ")[4] === escaped) return true;
  }
  return false;
}

/** The modules the task service needs: loaded by the serve process, or ahead of time by a warm spare. */
function loadServing() {
  return Promise.all([import("./service.ts"), import("../../sys/children.ts"), import("../../sys/index.ts"), import("./options.ts")]);
}

/**
 * Whether runc's state for id in root belongs to this bundle (runc records `bundle=<path>` in its
 * config labels). Another owner's container of the same id in a shared root is not ours to force-
 * delete; unreadable state is taken as ours, as before, so a half-made container is still removed.
 */
export function runcStateIsOurs(root: string, id: string, bundle: string): boolean {
  try {
    const state = JSON.parse(readFileSync(join(root, id, "state.json"), "utf8")) as { config?: { labels?: unknown } };
    const labels = state.config?.labels;
    if (!Array.isArray(labels)) return true;
    const label = labels.find((l): l is string => typeof l === "string" && l.startsWith("bundle="));
    return label === undefined || label.slice("bundle=".length) === bundle;
  } catch {
    return true;
  }
}

export class RuncShim implements Shim {
  readonly name = BUNKER_RUNTIME;
  constructor(private readonly spawn: SpawnOptions = {}) {}

  async start(opts: StartOpts): Promise<string> {
    return await startGrouped(opts, bunkerGroup(opts.id, opts.bundle, opts.options), this.spawn);
  }

  async info(options: Uint8Array): Promise<RuntimeInfo> {
    // loaded on demand: start and delete must not pay for it
    const { bunkerRuntimeInfo } = await import("./info.ts");
    return await bunkerRuntimeInfo(options, { version: VERSION });
  }

  async delete(opts: DeleteOpts): Promise<DeleteResult> {
    const { bundle, id, log } = opts;
    const [{ readOptions, runcConfig }, { Runc }] = await Promise.all([import("./options.ts"), import("../../runc/runc.ts")]);
    const config = runcConfig(readOptions(bundle), bundle, opts.namespace);
    // containerd runs this after every shim disconnect, also after a clean Delete: when runc has
    // no state for the container, there is nothing to force (and one runc exec less to wait for)
    if (existsSync(join(config.root!, id)) && runcStateIsOurs(config.root!, id, bundle)) {
      try {
        await new Runc(config).delete(id, { force: true });
      } catch (err) {
        log.warn({ err: errorMessage(err) }, "failed to remove runc container");
      }
    }
    try {
      // loading the native library costs more than reading mountinfo: only when something is mounted
      const rootfs = join(bundle, "rootfs");
      if (isMounted(rootfs)) {
        const { sys } = await import("../../sys/index.ts");
        sys().unmountAll(rootfs);
      }
    } catch (err) {
      log.warn({ err: errorMessage(err) }, "failed to cleanup rootfs mount");
    }
    let pid = 0;
    try {
      pid = Number.parseInt(readFileSync(join(bundle, INIT_PID_FILE), "utf8"), 10) || 0;
    } catch (err) {
      log.warn({ err: errorMessage(err) }, "failed to read init pid file");
    }
    // a dead grouped shim leaves its socket file behind; the last container's cleanup removes it
    try {
      if (existsSync(join(bundle, ADDRESS_FILE))) {
        const address = readAddress(bundle);
        if (!(await canConnect(address))) removeSocket(address);
      }
    } catch (err) {
      log.warn({ err: errorMessage(err) }, "failed to remove a stale shim socket");
    }
    return { pid, exitStatus: 128 + SIGKILL, exitedAt: new Date() };
  }

  async preload(): Promise<unknown> {
    return await loadServing();
  }

  async createTaskService(ctx: ServeContext): Promise<TaskService> {
    const [{ RuncTaskService }, { spawnTracked }, { sys }, { runcRuntimes }] = await loadServing();
    // the serve process is a subreaper: runc runs through spawnTracked (see RuncConfig.spawn)
    return new RuncTaskService(ctx, sys(), runcRuntimes(spawnTracked));
  }
}
