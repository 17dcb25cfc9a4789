// Loaded before every test file (bunfig.toml).
// - bunker's `run` joins the default bridge network unless told otherwise; the suite's containers
//   do not, so that no test touches the machine's own links and iptables: the network tests make
//   their own network namespaces and say --net there.
// - What the run registered with tests/support/cleanup.ts is removed at its end: bun test fires no
//   process "exit" handlers, and a global afterAll is the one hook that runs once after every file.
import { afterAll } from "bun:test";
import { runAtEnd } from "./cleanup.ts";

process.env.BUNKER_NETWORK ??= "none";
afterAll(runAtEnd);
