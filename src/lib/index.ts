// PLACEHOLDER public entry of the bunker package (package.json "exports"), only so that the packaging
// test (tests/integration/package.test.ts) has an entry to import until the library's own
// src/lib/index.ts (issue #20: `export { bunker, ... }`) replaces this file.
export { VERSION as version } from "../version.ts";
