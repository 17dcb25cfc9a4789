// containerd's cleanupAfterDeadShim, kept apart from the manager's task list: run the shim
// binary's `delete`, report TaskExit (255 when delete failed) and TaskDelete (the record's task
// step), then the rest of the container's teardown (its bundle), and remove a socket nothing listens
// on any more. One cleanup per task at a time.
import type { Logger } from "pino";
import { errorMessage } from "../errdefs.ts";
import type { Bundle } from "./bundle.ts";
import { type Exchange, type ExitInfo, publishDeadShimExit } from "./events.ts";
import { readAddress, removeStaleSocket, taskKey } from "./shim.ts";
import type { ShimCommandConfig } from "./shimproc.ts";

export interface DeadShimCleanupDeps {
  command(bundle: Bundle, binary: string): ShimCommandConfig;
  /** Runs the binary's `delete` action (the manager's bounded ShimActions.delete). */
  runDelete(cmd: ShimCommandConfig): Promise<ExitInfo>;
  events: Exchange;
  log: Logger;
  /** The container's teardown (manager.teardown): `releaseTask` is its task step, the bundle follows. */
  teardown(bundle: Bundle, releaseTask: () => Promise<void>): Promise<void>;
}

export class DeadShimCleanup {
  private readonly running = new Map<string, Promise<ExitInfo>>();

  constructor(private readonly d: DeadShimCleanupDeps) {}

  /** Whether a cleanup of this task is in flight. */
  busy(namespace: string, id: string): boolean {
    return this.running.has(taskKey(namespace, id));
  }

  run(bundle: Bundle, binary: string | undefined, publish: boolean): Promise<ExitInfo> {
    // A disconnect and a failing Delete can both find the same dead shim: clean up once.
    const key = taskKey(bundle.namespace, bundle.id);
    const inFlight = this.running.get(key);
    if (inFlight) return inFlight;
    const p = this.cleanup(bundle, binary, publish).finally(() => this.running.delete(key));
    this.running.set(key, p);
    return p;
  }

  private async cleanup(bundle: Bundle, binary: string | undefined, publish: boolean): Promise<ExitInfo> {
    const address = addressOf(bundle);
    let exit: ExitInfo = { pid: 0, exitStatus: 255, exitedAt: new Date() };
    try {
      await this.d.teardown(bundle, async () => {
        exit = await this.releaseTask(bundle, binary, publish);
      });
    } catch (err) {
      this.d.log.error({ id: bundle.id, namespace: bundle.namespace, err: errorMessage(err) }, "teardown after dead shim");
    }
    if (address) await removeStaleSocket(address);
    return exit;
  }

  /**
   * The task step after its shim died: the binary's `delete` (runc delete --force, unmount, the exit
   * to report) and the exit events. Needs the bundle (the action's cwd), so it precedes its removal.
   */
  async releaseTask(bundle: Bundle, binary: string | undefined, publish: boolean): Promise<ExitInfo> {
    let exit: ExitInfo = { pid: 0, exitStatus: 255, exitedAt: new Date() };
    if (binary) {
      try {
        exit = await this.d.runDelete(this.d.command(bundle, binary));
      } catch (err) {
        this.d.log.warn({ id: bundle.id, namespace: bundle.namespace, err: errorMessage(err) }, "failed to clean up after dead shim");
      }
    }
    if (publish) publishDeadShimExit(this.d.events, bundle.namespace, bundle.id, exit);
    return exit;
  }
}

/** The shim address a bundle names, if any. containerd-shim-runc-v2 killed with SIGKILL leaves its
 * socket, and its delete action does not remove it: cleanup removes it once nothing listens there. */
function addressOf(bundle: Bundle): string | undefined {
  try {
    return readAddress(bundle);
  } catch {
    return undefined; // no shim ever answered for this bundle
  }
}
