// The bunker runc shim as the shim library sees it: `start` groups containers into shared serve
// processes, `delete` cleans up one container after its shim died (containerd's manager.Stop for
// runc: force delete, unmount the rootfs, report 137), serve runs the runc task service.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../errdefs.ts";
import { canConnect, readAddress, removeSocket } from "../shim/address.ts";
import { groupKey, readBundleAnnotations } from "../shim/grouping.ts";
import { startGrouped, type SpawnOptions } from "../shim/start.ts";
import type { DeleteOpts, DeleteResult, ServeContext, Shim, StartOpts, TaskService } from "../shim/types.ts";
import { sys } from "../sys/index.ts";

import { readOptions, runcConfig } from "./options.ts";
import { Runc } from "./runc.ts";

export const RUNTIME_NAME = "io.containerd.bunker.v1";
/** Environment knob for the default group ("namespace", "container" or a name), below annotations. */
export const GROUP_ENV = "BUNKER_SHIM_GROUP";

const SIGKILL = 9;
/** containerd's InitPidFile; container.ts (serve side) writes it. */
const INIT_PID_FILE = "init.pid";

export class RuncShim implements Shim {
  readonly name = RUNTIME_NAME;
  constructor(private readonly spawn: SpawnOptions = {}) {}

  async start(opts: StartOpts): Promise<string> {
    const group = groupKey({
      id: opts.id,
      annotations: readBundleAnnotations(opts.bundle),
      option: process.env[GROUP_ENV],
    });
    return await startGrouped(opts, group, this.spawn);
  }

  async delete(opts: DeleteOpts): Promise<DeleteResult> {
    const { bundle, id, log } = opts;
    const runc = new Runc(runcConfig(readOptions(bundle), bundle, opts.namespace));
    try {
      await runc.delete(id, { force: true });
    } catch (err) {
      log.warn({ err: errorMessage(err) }, "failed to remove runc container");
    }
    try {
      sys().unmountAll(join(bundle, "rootfs"));
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
      if (existsSync(join(bundle, "address"))) {
        const address = readAddress(bundle);
        if (!(await canConnect(address))) removeSocket(address);
      }
    } catch (err) {
      log.warn({ err: errorMessage(err) }, "failed to remove a stale shim socket");
    }
    return { pid, exitStatus: 128 + SIGKILL, exitedAt: new Date() };
  }

  async createTaskService(ctx: ServeContext): Promise<TaskService> {
    const { RuncTaskService } = await import("./service.ts");
    return new RuncTaskService(ctx);
  }
}
