// Direct entry for the shim (tests and launchers before the bunker CLI dispatches to it):
// `bun src/shims/bunker/bin.ts [shim] -namespace ... start`. No top-level await, so that
// `bun build --compile --bytecode` can precompile it (parsing is most of a cold start).
import { shimMain } from "./main.ts";

void shimMain(process.argv.slice(2)).then((code) => {
  // the serve action returns after shutdown; start/delete return at once. Either way nothing
  // else should keep this process alive (stray timers, half-closed sockets).
  process.exit(code);
});
