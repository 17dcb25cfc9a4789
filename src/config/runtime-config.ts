// bunker's runtime config: containerd CRI-style `[runtimes.<name>]` sections in a TOML file, a
// default runtime and the shim grouping default, validated up front; and generateRuntimeOptions,
// which turns a runtime's `options` table into what its shim reads on stdin (containerd's
// pkg/cri/server generateRuntimeOptions): runc options for runc-like shims, else the generic
// runtimeoptions.v1.Options carrying the TOML body when no config path is given.
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { isAbsolute } from "node:path";
import { InvalidArgumentError, NotFoundError, errorMessage } from "../errdefs.ts";
import { OptionsSchema, type Options as RuncOptions } from "../gen/containerd/runc/v1/options_pb.ts";
import { binaryName } from "../contract/runtime.ts";
import { pathMatch } from "../gostd.ts";
import { isTable, marshalToml, type TomlTable } from "./toml.ts";

export type { RuncOptions };
import { BUNKER_RUNTIME, RUNC_OPTIONS_TYPE_URL, RUNC_RUNTIME_TYPES, RUNTIME_RUNC_V1, RUNTIME_RUNC_V2 } from "../contract/runtime.ts";
import { BUNKER_GROUP_ANNOTATION, GROUP_ANNOTATIONS, GROUP_PER_CONTAINER } from "../contract/grouping.ts";
export { RUNC_OPTIONS_TYPE_URL, RUNC_RUNTIME_TYPES, RUNTIME_RUNC_V1, RUNTIME_RUNC_V2 } from "../contract/runtime.ts";
export const RUNTIME_BUNKER_V1 = BUNKER_RUNTIME;
/** containerd's legacy v1 shim runtime; bunker speaks only shim v2. */
export const RUNTIME_LINUX_V1 = "io.containerd.runtime.v1.linux";
export const GENERIC_OPTIONS_TYPE_URL = "runtimeoptions.v1.Options";

export const SHIM_GROUPS = ["namespace", "container"] as const;
export type ShimGroup = (typeof SHIM_GROUPS)[number];

/** One `[runtimes.<name>]` section (containerd criconfig.Runtime, the fields bunker uses). */
export interface RuntimeEntry {
  name: string;
  /** runtime_type, e.g. io.containerd.runc.v2 or an absolute shim path. */
  type: string;
  /** runtime_path: the shim binary, overriding the one derived from the type. */
  path: string;
  /** options: the raw table, decoded by generateRuntimeOptions. */
  options?: TomlTable;
  podAnnotations: string[];
  containerAnnotations: string[];
  privilegedWithoutHostDevices: boolean;
}

export interface RuntimeConfig {
  defaultRuntimeName: string;
  shimGroup: ShimGroup;
  runtimes: Record<string, RuntimeEntry>;
}

const builtinRuntime = (name: string, type: string): RuntimeEntry => ({
  name,
  type,
  path: "",
  podAnnotations: [],
  containerAnnotations: [],
  privilegedWithoutHostDevices: false,
});

/** With no file: `bunker` (our shim, the default) and `runc` (containerd's runc shim). */
export function defaultRuntimeConfig(): RuntimeConfig {
  return {
    defaultRuntimeName: "bunker",
    shimGroup: "namespace",
    runtimes: { bunker: builtinRuntime("bunker", RUNTIME_BUNKER_V1), runc: builtinRuntime("runc", RUNTIME_RUNC_V2) },
  };
}

const describe = (v: unknown): string =>
  Array.isArray(v) ? "an array" : isTable(v) ? "a table" : v === null ? "null" : `a ${typeof v} (${String(v)})`;

function checkKeys(table: TomlTable, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(table)) {
    if (!allowed.includes(key)) {
      throw new InvalidArgumentError(`${where}: unknown key ${JSON.stringify(key)} (expected one of ${allowed.join(", ")})`);
    }
  }
}

function str(v: unknown, where: string): string {
  if (typeof v !== "string") throw new InvalidArgumentError(`${where} must be a string, got ${describe(v)}`);
  return v;
}

function bool(v: unknown, where: string): boolean {
  if (typeof v !== "boolean") throw new InvalidArgumentError(`${where} must be a boolean, got ${describe(v)}`);
  return v;
}

function patterns(v: unknown, where: string): string[] {
  if (!Array.isArray(v)) throw new InvalidArgumentError(`${where} must be an array of strings, got ${describe(v)}`);
  return v.map((p, i) => {
    const pattern = str(p, `${where}[${i}]`);
    try {
      pathMatch(pattern, ""); // a malformed glob would silently match nothing at run time
    } catch (err) {
      throw new InvalidArgumentError(`${where}[${i}]: ${errorMessage(err)}`);
    }
    return pattern;
  });
}

function validateRuntimeType(type: string, where: string): void {
  if (type === "") throw new InvalidArgumentError(`${where} must not be empty`);
  if (type === RUNTIME_LINUX_V1) {
    throw new InvalidArgumentError(`${where} ${JSON.stringify(type)}: v1 shims are not supported, use ${RUNTIME_RUNC_V2} or ${RUNTIME_BUNKER_V1}`);
  }
  if (isAbsolute(type)) return;
  try {
    binaryName(type);
  } catch (err) {
    throw new InvalidArgumentError(`${where}: ${errorMessage(err)}`);
  }
}

const RUNTIME_KEYS = [
  "runtime_type",
  "runtime_path",
  "options",
  "pod_annotations",
  "container_annotations",
  "privileged_without_host_devices",
] as const;

function parseRuntime(name: string, v: unknown, source: string): RuntimeEntry {
  const where = `${source}: [runtimes.${name}]`;
  if (!isTable(v)) throw new InvalidArgumentError(`${where} must be a table, got ${describe(v)}`);
  checkKeys(v, RUNTIME_KEYS, where);
  if (v.runtime_type === undefined) throw new InvalidArgumentError(`${where}: runtime_type is required`);
  const type = str(v.runtime_type, `${where} runtime_type`);
  validateRuntimeType(type, `${where} runtime_type`);
  const path = v.runtime_path === undefined ? "" : str(v.runtime_path, `${where} runtime_path`);
  if (path !== "" && !isAbsolute(path)) throw new InvalidArgumentError(`${where} runtime_path must be absolute, got ${JSON.stringify(path)}`);
  let options: TomlTable | undefined;
  if (v.options !== undefined) {
    if (!isTable(v.options)) throw new InvalidArgumentError(`${where} options must be a table, got ${describe(v.options)}`);
    options = v.options;
  }
  const entry: RuntimeEntry = {
    name,
    type,
    path,
    podAnnotations: v.pod_annotations === undefined ? [] : patterns(v.pod_annotations, `${where} pod_annotations`),
    containerAnnotations:
      v.container_annotations === undefined ? [] : patterns(v.container_annotations, `${where} container_annotations`),
    privilegedWithoutHostDevices:
      v.privileged_without_host_devices === undefined
        ? false
        : bool(v.privileged_without_host_devices, `${where} privileged_without_host_devices`),
  };
  if (options !== undefined) {
    entry.options = options;
    generateRuntimeOptions(entry); // wrong option types fail at load, not at the first container
  }
  return entry;
}

/** The config a parsed TOML document describes, on top of defaultRuntimeConfig(). */
export function runtimeConfigFromTable(doc: unknown, source = "runtime config"): RuntimeConfig {
  if (!isTable(doc)) throw new InvalidArgumentError(`${source} must be a TOML table`);
  checkKeys(doc, ["default_runtime_name", "shim_group", "runtimes"], source);
  const config = defaultRuntimeConfig();
  if (doc.runtimes !== undefined) {
    if (!isTable(doc.runtimes)) throw new InvalidArgumentError(`${source}: runtimes must be a table, got ${describe(doc.runtimes)}`);
    for (const [name, v] of Object.entries(doc.runtimes)) {
      if (name === "") throw new InvalidArgumentError(`${source}: a runtime name must not be empty`);
      config.runtimes[name] = parseRuntime(name, v, source);
    }
  }
  if (doc.default_runtime_name !== undefined) {
    config.defaultRuntimeName = str(doc.default_runtime_name, `${source}: default_runtime_name`);
  }
  if (!Object.hasOwn(config.runtimes, config.defaultRuntimeName)) {
    throw new InvalidArgumentError(
      `${source}: no runtime configured for default_runtime_name ${JSON.stringify(config.defaultRuntimeName)}`,
    );
  }
  if (doc.shim_group !== undefined) {
    const group = str(doc.shim_group, `${source}: shim_group`);
    if (!(SHIM_GROUPS as readonly string[]).includes(group)) {
      throw new InvalidArgumentError(`${source}: shim_group must be one of ${SHIM_GROUPS.join(", ")}, got ${JSON.stringify(group)}`);
    }
    config.shimGroup = group as ShimGroup;
  }
  return config;
}

/** Parses and validates runtime config text; syntax and type errors are InvalidArgument. */
export function parseRuntimeConfig(text: string, source = "runtime config"): RuntimeConfig {
  let doc: unknown;
  try {
    doc = Bun.TOML.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${source}: ${errorMessage(err)}`, { cause: err });
  }
  return runtimeConfigFromTable(doc, source);
}

/** Reads a runtime config file; NotFound when it does not exist. */
export async function loadRuntimeConfig(path: string): Promise<RuntimeConfig> {
  const file = Bun.file(path);
  if (!(await file.exists())) throw new NotFoundError(`runtime config ${path} does not exist`);
  return parseRuntimeConfig(await file.text(), path);
}


/**
 * The config's shim_group as a spec's annotations: with "container", a spec that names no group gets
 * bunker's group annotation set to "container" (one shim each; runc's shim does that anyway). With
 * "namespace", bunker's shim default, or when the spec names a group, the annotations are unchanged.
 */
export function applyShimGroup(config: RuntimeConfig | undefined, annotations: Readonly<Record<string, string>>): Record<string, string> {
  if (config?.shimGroup !== "container" || GROUP_ANNOTATIONS.some((k) => (annotations[k] ?? "") !== "")) return { ...annotations };
  return { ...annotations, [BUNKER_GROUP_ANNOTATION]: GROUP_PER_CONTAINER };
}

/** The named runtime, or the default one; NotFound names the runtimes there are. */
export function getRuntime(config: RuntimeConfig, name?: string): RuntimeEntry {
  const wanted = name === undefined || name === "" ? config.defaultRuntimeName : name;
  const runtime = Object.hasOwn(config.runtimes, wanted) ? config.runtimes[wanted] : undefined;
  if (runtime === undefined) {
    throw new NotFoundError(`runtime ${JSON.stringify(wanted)} is not configured (have ${Object.keys(config.runtimes).join(", ")})`);
  }
  return runtime;
}

/** runtimeoptions.v1.Options (containerd pkg/runtimeoptions/v1), which src/gen does not generate. */
export interface GenericRuntimeOptions {
  typeUrl: string;
  configPath: string;
  configBody: Uint8Array;
}

export type GeneratedRuntimeOptions =
  | { typeUrl: typeof RUNC_OPTIONS_TYPE_URL; options: RuncOptions }
  | { typeUrl: typeof GENERIC_OPTIONS_TYPE_URL; options: GenericRuntimeOptions };

type FieldKind = "bool" | "string" | "uint32";
const RUNC_FIELDS: readonly [goName: string, field: keyof RuncOptions & string, kind: FieldKind][] = [
  ["NoPivotRoot", "noPivotRoot", "bool"],
  ["NoNewKeyring", "noNewKeyring", "bool"],
  ["ShimCgroup", "shimCgroup", "string"],
  ["IoUid", "ioUid", "uint32"],
  ["IoGid", "ioGid", "uint32"],
  ["BinaryName", "binaryName", "string"],
  ["Root", "root", "string"],
  ["CriuPath", "criuPath", "string"],
  ["SystemdCgroup", "systemdCgroup", "bool"],
  ["CriuImagePath", "criuImagePath", "string"],
  ["CriuWorkPath", "criuWorkPath", "string"],
];

/** The spellings go-toml v1 accepts for a struct field without a toml tag, in its order of preference. */
const keyVariants = (go: string): string[] => [go, go.toLowerCase(), go.toUpperCase(), go[0]!.toLowerCase() + go.slice(1)];

function decodeField(table: TomlTable, goName: string, kind: FieldKind, where: string, used: Set<string>): unknown {
  const present = [...new Set(keyVariants(goName))].filter((k) => Object.hasOwn(table, k));
  if (present.length === 0) return undefined;
  if (present.length > 1) throw new InvalidArgumentError(`${where}: ${present.join(" and ")} both set ${goName}`);
  const key = present[0]!;
  used.add(key);
  const v = table[key];
  const at = `${where}.${key}`;
  if (kind === "bool") return bool(v, at);
  if (kind === "string") return str(v, at);
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new InvalidArgumentError(`${at} must be an integer from 0 to 4294967295, got ${describe(v)}`);
  }
  return v;
}

/**
 * generateRuntimeOptions: null when the runtime has no options table; runc options (fields named as
 * containerd's Go struct, e.g. SystemdCgroup, BinaryName) for runc-like runtime types; otherwise the
 * generic options, whose ConfigBody is the whole table as TOML when no ConfigPath is given.
 */
export function generateRuntimeOptions(runtime: RuntimeEntry): GeneratedRuntimeOptions | null {
  const table = runtime.options;
  if (table === undefined) return null;
  const where = `[runtimes.${runtime.name}.options]`;
  const used = new Set<string>();
  if (RUNC_RUNTIME_TYPES.includes(runtime.type)) {
    const init: Record<string, unknown> = {};
    for (const [goName, field, kind] of RUNC_FIELDS) {
      const v = decodeField(table, goName, kind, where, used);
      if (v !== undefined) init[field] = v;
    }
    const unknown = Object.keys(table).filter((k) => !used.has(k));
    if (unknown.length > 0) {
      throw new InvalidArgumentError(
        `${where}: unknown runc option ${unknown.map((k) => JSON.stringify(k)).join(", ")} (known: ${RUNC_FIELDS.map((f) => f[0]).join(", ")})`,
      );
    }
    return { typeUrl: RUNC_OPTIONS_TYPE_URL, options: create(OptionsSchema, init) };
  }
  // Every other key belongs to the runtime's own config, carried in the body.
  const typeUrl = (decodeField(table, "TypeUrl", "string", where, used) as string | undefined) ?? "";
  const configPath = (decodeField(table, "ConfigPath", "string", where, used) as string | undefined) ?? "";
  const configBody = configPath === "" ? new TextEncoder().encode(marshalToml(table)) : new Uint8Array(0);
  return { typeUrl: GENERIC_OPTIONS_TYPE_URL, options: { typeUrl, configPath, configBody } };
}

/** The protobuf Any a shim's `start` reads on stdin (type URLs as containerd's typeurl registry names them). */
export function marshalRuntimeOptions(generated: GeneratedRuntimeOptions): Uint8Array {
  let value: Uint8Array;
  if (generated.typeUrl === RUNC_OPTIONS_TYPE_URL) {
    value = toBinary(OptionsSchema, generated.options);
  } else {
    const o = generated.options;
    const w = new BinaryWriter();
    if (o.typeUrl !== "") w.tag(1, WireType.LengthDelimited).string(o.typeUrl);
    if (o.configPath !== "") w.tag(2, WireType.LengthDelimited).string(o.configPath);
    if (o.configBody.length > 0) w.tag(3, WireType.LengthDelimited).bytes(o.configBody);
    value = w.finish();
  }
  return toBinary(AnySchema, create(AnySchema, { typeUrl: generated.typeUrl, value }));
}
