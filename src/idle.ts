// What bunker's long-lived processes (the daemon, a shim's serve process) set for Bun so that they
// cost nothing while nothing happens. An edge host's daemon and shims are idle nearly all the time.
//
// Bun's GC controller wakes every second, reads /proc/self/statm and may collect (strace of an idle
// daemon: one statm read and two event-loop wakeups a second). Measured here, one sleeping
// container under `bunker daemon`, 30 s idle: daemon 60 ms and shim 90 ms of CPU with the timer,
// 20 ms and 30 ms with BUN_GC_TIMER_DISABLE=1 (0.50% -> 0.17% of a core). JSC still collects when
// allocation calls for it, and the shim collects itself after a burst of work (shim/serve.ts).
//
// JavaScriptCore throws away compiled code older than a few seconds at the next GC (CodeBlock's
// "old age": 5 s interpreted, 15 s baseline, 20 s DFG), and these processes run each piece of
// their code seldom: a restart, a create, an exit. So every such burst ran on freshly made
// CodeBlocks and paid to compile them again on the JIT threads (a crash-looping --restart always
// container: ~5 ms of JITWorker CPU per restart in each of the daemon and the shim). With the
// baseline JIT's thresholds 40x and 50x JSC's (500 and 100 counts; a call counts 15, a loop
// iteration 1), a once-per-event path stays in the interpreter, while a hot loop (a busy
// container's log copy, a restore of many containers) still compiles within ~20k iterations.
// Measured per restart of that loop (daemon + shim, their own CPU): 55 -> 32 ms.
// Bun reads these when its VM starts, so they go into the environment of the process being
// started: the shim's start action sets them for serve, and the systemd unit for the daemon.

export const IDLE_ENV: Readonly<Record<string, string>> = {
  BUN_GC_TIMER_DISABLE: "1",
  BUN_JSC_thresholdForJITAfterWarmUp: "20000",
  BUN_JSC_thresholdForJITSoon: "5000",
};
