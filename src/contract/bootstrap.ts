// What containerd writes to the `start` action's stdin, in either of its two forms, reduced to the
// runtime options (a protobuf Any) that `start` reads its group from.
//
// containerd up to 2.2 writes the runtime options themselves: a bare google.protobuf.Any
// {type_url = 1, value = 2} (or nothing). containerd 2.3+ (pkg/shim/util.go Command) writes a
// containerd.runtime.bootstrap.v1.BootstrapParams instead: instance_id = 1, namespace = 2,
// log_level = 3 (an enum, the only varint), containerd_version = 4, the ttrpc/grpc addresses = 5/6,
// containerd_binary = 7, repeated Extension{Any value = 1} extensions = 8 (the runtime options are
// one of them), optional socket_dir = 9. Every version still accepts a plain address on stdout (its
// parseStartResponse falls back to one when the output is no BootstrapResult), so `start` keeps
// answering that, with task API v2: answering BootstrapResult{version: 3} would break 1.6/1.7.
//
// The two are told apart by structure, without descriptors (start runs once per container and must
// not load them): an Any has only fields 1 and 2, both length-delimited; containerd always fills
// BootstrapParams' version, addresses and binary, so any field from 3 up means BootstrapParams.
// Fields above 9 are allowed beside those (a later containerd may add some: protobuf ignores
// unknown fields) but never alone, and a field of the wrong wire type is an error, so text or other
// garbage on stdin fails with a clear message instead of silently losing the `group` option.
import { InvalidArgumentError } from "../errdefs.ts";
import { Reader, WireError } from "../ttrpc/wire-decode.ts";

/** The runtime options types whose Extension `start` prefers (CRI's generic one, then runc's). */
const RUNTIME_OPTIONS_TYPES = ["runtimeoptions.v1.Options", "containerd.runc.v1.Options"];

const LOG_LEVEL_FIELD = 3;
const EXTENSIONS_FIELD = 8;
const LAST_KNOWN_FIELD = 9;
/** containerd's LOG_LEVEL_DEBUG: at or below it, the shim is asked for debug logs. */
export const BOOTSTRAP_LOG_LEVEL_DEBUG = -4;

export interface StartInput {
  /** "any": containerd ≤ 2.2's bare Any (or empty stdin); "bootstrap": 2.3+'s BootstrapParams. */
  form: "any" | "bootstrap";
  /** The runtime options as an encoded Any; empty when there are none. */
  options: Uint8Array;
  /** BootstrapParams' fields (empty strings and 0 when the form is "any"). */
  instanceId: string;
  namespace: string;
  logLevel: number;
  containerdVersion: string;
  ttrpcAddress: string;
  grpcAddress: string;
  containerdBinary: string;
  /** Where containerd wants the socket; undefined when it leaves the choice to the shim. */
  socketDir: string | undefined;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

function fail(why: string): never {
  throw new InvalidArgumentError(`start: stdin is neither containerd's runtime options (a protobuf Any) nor its BootstrapParams: ${why}`);
}

interface RawField {
  n: number;
  wireType: number;
  /** The bytes of a length-delimited field, else undefined. */
  bytes?: Uint8Array;
  varint?: number;
}

function fieldsOf(buf: Uint8Array): RawField[] {
  const r = new Reader(buf);
  const out: RawField[] = [];
  while (!r.done) {
    const t = r.tag();
    const f: RawField = { n: t >>> 3, wireType: t & 7 };
    if (f.wireType === 2) f.bytes = r.bytes();
    else if (f.wireType === 0) f.varint = r.varint();
    else r.skip(f.wireType);
    out.push(f);
  }
  return out;
}

function text(f: RawField): string {
  try {
    return decoder.decode(f.bytes);
  } catch {
    return fail(`field ${f.n} is not UTF-8 text`);
  }
}

/** The type URL of an encoded Any, with any "host/" prefix removed. */
function anyTypeName(any: Uint8Array): string {
  const url = fieldsOf(any).findLast((f) => f.n === 1 && f.wireType === 2);
  if (!url) return "";
  const s = text(url);
  return s.slice(s.lastIndexOf("/") + 1);
}

/** The runtime options among the extensions: a known options type first, else the first one. */
function pickOptions(extensions: Uint8Array[]): Uint8Array {
  for (const type of RUNTIME_OPTIONS_TYPES) {
    const hit = extensions.find((e) => anyTypeName(e) === type);
    if (hit) return hit;
  }
  return extensions[0] ?? new Uint8Array(0);
}

/** A start input with only its form and options known (the other fields come from a BootstrapParams). */
function emptyInput(form: StartInput["form"], options: Uint8Array): StartInput {
  return { form, options, instanceId: "", namespace: "", logLevel: 0, containerdVersion: "", ttrpcAddress: "", grpcAddress: "", containerdBinary: "", socketDir: undefined };
}

function bootstrap(fields: RawField[]): StartInput {
  const input = emptyInput("bootstrap", new Uint8Array(0));
  const extensions: Uint8Array[] = [];
  for (const f of fields) {
    if (f.n > LAST_KNOWN_FIELD) continue;
    if (f.n === LOG_LEVEL_FIELD) {
      if (f.wireType !== 0) fail(`BootstrapParams.log_level has wire type ${f.wireType}, want 0`);
      // an open enum (int32): negative levels travel sign-extended, which Reader.varint returns as negative
      input.logLevel = f.varint!;
      continue;
    }
    if (f.wireType !== 2) fail(`BootstrapParams field ${f.n} has wire type ${f.wireType}, want 2`);
    if (f.n === EXTENSIONS_FIELD) {
      const value = fieldsOf(f.bytes!).findLast((e) => e.n === 1 && e.wireType === 2);
      if (value) extensions.push(value.bytes!);
      continue;
    }
    const s = text(f);
    if (f.n === 1) input.instanceId = s;
    else if (f.n === 2) input.namespace = s;
    else if (f.n === 4) input.containerdVersion = s;
    else if (f.n === 5) input.ttrpcAddress = s;
    else if (f.n === 6) input.grpcAddress = s;
    else if (f.n === 7) input.containerdBinary = s;
    else if (f.n === 9) input.socketDir = s;
  }
  input.options = pickOptions(extensions);
  return input;
}

/** Reads start's stdin in either form; InvalidArgumentError for anything else. */
export function parseStartInput(stdin: Uint8Array): StartInput {
  const plain = emptyInput("any", stdin);
  if (stdin.length === 0) return plain;
  let fields: RawField[];
  try {
    fields = fieldsOf(stdin);
    for (const f of fields) if (f.n === EXTENSIONS_FIELD && f.wireType === 2) fieldsOf(f.bytes!);
  } catch (err) {
    if (err instanceof WireError) fail(err.message);
    throw err;
  }
  if (fields.some((f) => f.n >= LOG_LEVEL_FIELD && f.n <= LAST_KNOWN_FIELD)) return bootstrap(fields);
  if (fields.some((f) => f.n > LAST_KNOWN_FIELD)) fail(`only unknown fields (${fields.map((f) => f.n).join(", ")})`);
  for (const f of fields) if (f.wireType !== 2) fail(`Any field ${f.n} has wire type ${f.wireType}, want 2`);
  const url = fields.findLast((f) => f.n === 1);
  if (url) text(url);
  return plain;
}
