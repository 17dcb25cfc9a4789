// The CRI helpers and the runtime config, for embedders (src/executor, the CLI).
export * from "./types.ts";
export * from "./helpers.ts";
export * from "./image.ts";
export * from "../registry/reference.ts";
export * from "./status.ts";
export * from "./events.ts";
export * from "../config/runtime-config.ts";
export { BadPatternError, pathMatch } from "../gostd.ts";
export { marshalToml, type TomlTable, type TomlValue } from "../config/toml.ts";
