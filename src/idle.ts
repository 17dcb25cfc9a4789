// What bunker's long-lived processes (the daemon, a shim's serve process) set for Bun so that they
// cost nothing while nothing happens. An edge host's daemon and shims are idle nearly all the time.
//
// Bun's GC controller wakes every second, reads /proc/self/statm and may collect (strace of an idle
// daemon: one statm read and two event-loop wakeups a second). Measured here, one sleeping
// container under `bunker daemon`, 30 s idle: daemon 60 ms and shim 90 ms of CPU with the timer,
// 20 ms and 30 ms with BUN_GC_TIMER_DISABLE=1 (0.50% -> 0.17% of a core). JSC still collects when
// allocation calls for it, and the shim collects itself after a burst of work (shim/serve.ts).
// Bun reads the variable when its VM starts, so it goes into the environment of the process
// being started: the shim's start action sets it for serve, and the systemd unit for the daemon.

export const IDLE_ENV: Readonly<Record<string, string>> = { BUN_GC_TIMER_DISABLE: "1" };
