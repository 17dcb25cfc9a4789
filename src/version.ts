// bunker's version, read from package.json so there is one source of truth: Bun inlines the JSON
// into the compiled binary, and the CLI, the daemon's Version RPC and the shim all report it.
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
