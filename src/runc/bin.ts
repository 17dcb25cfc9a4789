// Direct entry for the shim (tests and launchers before the bunker CLI dispatches to it):
// `bun src/runc/bin.ts [shim] -namespace ... start`.
import { shimMain } from "./main.ts";

const code = await shimMain(process.argv.slice(2));
// the serve action returns after shutdown; start/delete return at once. Either way nothing
// else should keep this process alive (stray timers, half-closed sockets).
process.exit(code);
