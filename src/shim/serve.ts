// The serve action: the long-lived shim process. It becomes a subreaper (container processes are
// reparented to it when runc exits), logs into the bundle's `log` FIFO, publishes events to
// containerd, serves the task API on its socket (owner-only, peers of another uid refused), and
// stops when its lifecycle says so: Shutdown with nothing left to serve, or a long idle time.
import { errorMessage } from "../errdefs.ts";
import { Task } from "../gen/containerd/task/v2/shim_pb.ts";
import { sameUidPeers, sys } from "../sys/index.ts";
import { Server } from "../ttrpc/server.ts";
import { listenFd, listenUnix, socketPath } from "../ttrpc/unix.ts";
import { LISTEN_FD_ENV, type ShimFlags } from "./flags.ts";
import { Lifecycle, lingerFromEnv, type LifecycleOptions } from "./lifecycle.ts";
import { redirectStderrToLogFifo, stderrLogger } from "./logger.ts";
import { RemotePublisher } from "./publisher.ts";
import { MEMSTATS_ENV } from "./memstats.ts";
import { Monitor } from "./reaper.ts";
import { scheduleSpare } from "./spare-spawn.ts";
import { SPARE_ENV } from "./spare-wire.ts";
import type { ServeContext, Shim, TaskService } from "./types.ts";

export interface ServeOptions {
  lifecycle?: LifecycleOptions;
  /** Skip PR_SET_CHILD_SUBREAPER (tests that are not root-free otherwise). */
  noSubreaper?: boolean;
  /** Keep fd 2 as it is instead of pointing it at the bundle's log FIFO. */
  noLogFifo?: boolean;
  /** The listener to serve, already bound (a warm spare got it from `start`); else LISTEN_FD_ENV's. */
  listenFd?: number;
}

const SHUTDOWN_DRAIN_MS = 2000;
const GC_INTERVAL_MS = 30_000;
/** How much the heap must have grown since the last interval collection for the next one. */
const GC_GROWTH_BYTES = 512 * 1024;
const QUIET_GC_MS = 2000;

/** Logs dropped connections, at most a few lines per second; the rest are counted in the next line. */
class DropLog {
  private windowStart = 0;
  private logged = 0;
  private suppressed = 0;
  constructor(private readonly log: ServeContext["log"]) {}
  note(err: string): void {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.logged = 0;
    }
    if (this.logged >= 5) {
      this.suppressed++;
      return;
    }
    this.logged++;
    this.log.warn({ err, suppressedBefore: this.suppressed }, "connection dropped");
    this.suppressed = 0;
  }
}

/** The inherited listener's fd, if `start` passed one; the variable is not handed on to runc. */
function takeListenFd(): number | undefined {
  const value = process.env[LISTEN_FD_ENV];
  delete process.env[LISTEN_FD_ENV];
  const fd = Number(value);
  return value && Number.isInteger(fd) && fd > 2 ? fd : undefined;
}

export async function serve(shim: Shim, flags: ShimFlags, ttrpcAddress: string, opts: ServeOptions = {}): Promise<number> {
  const bundle = flags.bundle || process.cwd();
  if (!opts.noLogFifo) redirectStderrToLogFifo(bundle, sys());
  const log = stderrLogger({ debug: flags.debug, bindings: { runtime: shim.name, namespace: flags.namespace } });
  if (!flags.socket) {
    log.error({}, "serve needs -socket: the start action passes it");
    return 1;
  }
  if (!opts.noSubreaper) sys().setSubreaper(true);

  const monitor = new Monitor();
  const stopMonitor = monitor.start();
  const publisher = new RemotePublisher(ttrpcAddress, flags.namespace, { log });
  let service: TaskService | undefined;
  // a full GC once the served set has been quiet for a moment (after a burst of creates/deletes)
  let quiet: Timer | undefined;
  let heapAfterGc = 0;
  const collect = (): void => {
    Bun.gc(true);
    heapAfterGc = process.memoryUsage().heapUsed;
  };
  const collectWhenQuiet = (): void => {
    clearTimeout(quiet);
    quiet = setTimeout(collect, QUIET_GC_MS);
    quiet.unref();
  };
  const lifecycle = new Lifecycle(() => service?.containerCount() ?? 0, { lingerMs: lingerFromEnv(), onChanged: collectWhenQuiet, ...opts.lifecycle });
  const ctx: ServeContext = {
    id: flags.id,
    namespace: flags.namespace,
    bundle,
    socket: flags.socket,
    containerdAddress: flags.address,
    ttrpcAddress,
    debug: flags.debug,
    log,
    publisher,
    monitor,
    lifecycle,
    logBundle: bundle,
    logTo(b) {
      if (opts.noLogFifo || !redirectStderrToLogFifo(b, sys())) return false;
      ctx.logBundle = b;
      return true;
    },
  };
  service = await shim.createTaskService(ctx);
  const drops = new DropLog(log);

  const server = new Server({
    onError: (err, info) => log.error({ err: errorMessage(err), ...info }, "request failed"),
    // a peer sending garbage or not reading its answers is dropped; say so, at a bounded rate
    onDrop: (err) => drops.note(errorMessage(err)),
  });
  server.register(Task, service.impl);
  const inherited = opts.listenFd ?? takeListenFd();
  let listener;
  if (inherited === undefined) {
    listener = await listenUnix(server, flags.socket, { mode: 0o600, authorize: sameUidPeers() });
  } else {
    // `start` bound the socket, printed its address and went: the container it ran for is ours
    // until its Create comes (what start's Connect reservation does for a shim that was running)
    if (flags.id) lifecycle.reserve(flags.id);
    listener = listenFd(server, inherited, socketPath(flags.socket), { authorize: sameUidPeers() });
  }
  // a warm spare that became this pod's shim says so (containerd's log tells the two paths apart)
  log.info(opts.listenFd === undefined ? { socket: flags.socket } : { socket: flags.socket, spare: true }, "serving");
  // opt-in (spare-wire.ts): a warm spare for the next pod, started once this one is served
  const spareAtShutdown = process.env[SPARE_ENV] === "1" ? scheduleSpare(flags, ttrpcAddress, log) : undefined;
  const memStatsDir = process.env[MEMSTATS_ENV];
  if (memStatsDir) await (await import("./memstats.ts")).writeMemStats(memStatsDir, "serving");

  const onSignal = (sig: NodeJS.Signals): void => {
    const containers = service?.containerCount() ?? 0;
    log.info({ signal: sig, containers }, "signal received");
    // with containers this shim stays (containerd still needs it); empty, it goes now
    if (containers === 0 && lifecycle.reserved === 0) lifecycle.stop();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  process.on("SIGPIPE", () => {}); // a reader that went away is an error on write, not a death
  // one container's bug must not end the process that serves all the others
  process.on("unhandledRejection", (err) => log.error({ err: errorMessage(err) }, "unhandled rejection"));
  process.on("uncaughtException", (err) => log.error({ err: errorMessage(err), stack: err.stack }, "uncaught exception"));

  // Go's shim runs with a low GC percent and frees memory to the OS every 30 s: one process holds
  // many containers here, so give back what the bursts of creates and deletes left behind. Only
  // when the heap grew since the last collection: an idle shim is left asleep (a full collection
  // of an idle shim's heap costs it ~10-20 ms of CPU for nothing; see ../idle.ts).
  const gcTimer = setInterval(() => {
    if (process.memoryUsage().heapUsed - heapAfterGc >= GC_GROWTH_BYTES) collect();
  }, GC_INTERVAL_MS);
  gcTimer.unref();

  lifecycle.changed();
  await lifecycle.done;
  clearInterval(gcTimer);
  clearTimeout(quiet);

  log.info({}, "shutting down");
  // stop taking connections first, so a concurrent `start` spawns a new shim instead of this one
  listener.close();
  await Promise.race([server.shutdown(), Bun.sleep(SHUTDOWN_DRAIN_MS)]);
  server.close();
  await publisher.flush(SHUTDOWN_DRAIN_MS);
  publisher.close();
  await service.close?.();
  stopMonitor();
  await spareAtShutdown?.();
  // no removeSocket here: listener.close() removed ours, and the path may already be a new shim's
  return 0;
}
