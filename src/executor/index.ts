// The embedding API, in the style of moby's plugin executor on containerd.
//
//   const exec = new Executor({
//     address: "/run/bunker/bunker.sock",      // a running `bunker daemon`, or:
//     // manager: (await startEmbeddedRuntime({ root, state, address })).manager,
//     namespace: "plugins",
//     rootDir: "/run/myapp/plugins",           // per-container FIFO dirs: <rootDir>/<id>/init-std{out,err}
//     runtime: "bunker",                       // optional; resolved through runtimeConfig when given
//     runtimeConfig: "/etc/myapp/runtimes.toml",
//     exitHandler: { handleExitEvent: (id) => ... },
//   });
//   await exec.create(id, ociSpec, stdout, stderr);   // creates AND starts
//   await exec.createFromImage(id, { image: "busybox", args: ["sh", "-c", "echo hi"] }, stdout, stderr);
//   await exec.restore(id, stdout, stderr);           // after a restart: true when alive
//   await exec.isRunning(id);  await exec.signal(id, "SIGTERM");  await exec.close();
//
// Contract:
// - create(id, spec, stdout, stderr): spec is an OCI runtime spec object whose root.path is the
//   absolute path of the root filesystem (it is bind-mounted into the bundle): generateSpec({ ...,
//   rootfs: "/abs/dir" }) of src/oci/spec.ts makes one, and oci/run-options.ts applyRunOptions
//   puts `bunker run`'s spec flags on it (resolved by oci/run-resolve.ts). The container is
//   created and started. If one with the same id exists and is neither RUNNING nor UNKNOWN it is
//   stale: it is deleted and the create is tried again; otherwise the create fails (AlreadyExists
//   for a running one). If Start fails the container is deleted. Outputs receive the process's
//   stdout and stderr and end when its output ends (at exit), or at once when create fails.
// - Outputs: a web WritableStream, a Node writable (write/end), a callback `(chunk | null)` called
//   with null at the end, or null to discard. A destination that throws is dropped (logged); the
//   copy goes on so the container never blocks on a full pipe.
// - createFromImage(id, {image, pull?, platform?, args?, entrypoint?, env?, user?, cwd?, runSpec?}, stdout,
//   stderr): as `bunker run IMAGE` — the image from bunker's image store under `imageRoot` (default
//   the manager's root, else /var/lib/bunker), pulled per `pull` (default "missing"), its config
//   applied to the spec, then runSpec (run's -v, --mount, --tmpfs, --read-only, --memory, --cpus,
//   --pids-limit, caps, --privileged, --device, --init as oci/run-options.ts RunSpecFlags); the
//   container gets its own writable layer, released when it is deleted.
// - Networks: create(..., { network }) and createFromImage's `network` take `bunker run`'s --net,
//   -p, --dns, --dns-search, --add-host and --hostname ({ mode: "bridge", publish: ["8080:80"] });
//   without one a container has an empty network namespace (only lo), as before networks existed.
// - restore(id, stdout, stderr): reattaches the outputs to the FIFOs. Returns true when the
//   container is alive (any status but STOPPED), and from then on its exit reaches the handler.
//   A stopped container is deleted (its remaining output is delivered first); one that does not
//   exist returns false. Restoring an id this executor already follows replaces its outputs (the
//   old ones end).
// - isRunning(id): status is RUNNING; NotFound for an unknown id. signal(id, n | "SIGNAME").
// - Exits: for each exit of the init process of a container this executor created or restored,
//   the container is deleted (task, shim, bundle, FIFO dir), its outputs are drained (up to 5 s),
//   then exitHandler.handleExitEvent(id) runs, exactly once. Exits are read from the backend's
//   event log; against a daemon the executor redials after the daemon restarts, replays the new
//   log and rechecks its containers, so an exit that happened while the daemon was down is
//   still reported. Exits of containers it does not follow are ignored.
// - Backends: `address` (a `bunker daemon` socket) or `manager` (a TaskManager in this process;
//   startEmbeddedRuntime makes one with the socket its shims publish events to). Both go through
//   the same bunker.v1 handlers, so they behave alike.
// - close(): stops reading events and output; containers keep running; restore them later.
export { type ExecutorOptions, type ExitHandler, Executor, type ImageRunRequest, type NetworkOptions } from "./executor.ts";
export { type EmbeddedOptions, type EmbeddedRuntime, startEmbeddedRuntime } from "./embedded.ts";
export { type NodeWritableLike, type OutputCallback, type OutputTarget } from "./streams.ts";
export { DEFAULT_EXECUTOR_RUNTIME, parseSignal } from "./request.ts";
export type { RunSpecFlags } from "../images/run-spec.ts";
