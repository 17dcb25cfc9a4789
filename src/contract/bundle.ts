// The files of a runtime v2 bundle that both sides know by name (containerd runtime/v2: the bundle
// dir is the shim's cwd; pkg/process and the runc shim name the pid file and runc's log).
/** The OCI runtime spec. */
export const CONFIG_FILE = "config.json";
/** The shim's socket address, written by `start` (containerd's shim.WriteAddress). */
export const ADDRESS_FILE = "address";
/** The init process's pid, written by `runc create|run --pid-file` (containerd's InitPidFile). */
export const INIT_PID_FILE = "init.pid";
/** runc's JSON log (`--log ... --log-format json`), read for the reason of a failure. */
export const RUNC_LOG_FILE = "log.json";
