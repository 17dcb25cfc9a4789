// The reply of a shim's `-info` flag: containerd.types.RuntimeInfo (api/types/introspection.proto:
// name = 1, version = 2 {version = 1, revision = 2}, options = 3 (Any), features = 4 (Any),
// annotations = 5 (map<string, string>)), marshalled to stdout. containerd 2.x runs
// `<shim> -info` with the runtime options (an encoded Any, or nothing) on stdin: CRI to learn
// whether a runtime handler supports user namespaces and recursive read-only mounts, the task
// manager before a task with idmap mounts. `features` is the OCI runtime's features document
// (`runc features`): not a protobuf message, so typeurl marshals it as JSON under the URL containerd
// registers for runtime-spec's features.Features (core/runtime/typeurl.go: path.Join of
// "types.containerd.io", "opencontainers/runtime-spec", the spec's major version, "features",
// "Features"). Encoded by hand (wire.ts): `-info` must not pay for loading descriptors.
import { encodeMessage, type Field } from "../ttrpc/wire.ts";

/** typeurl's URL for github.com/opencontainers/runtime-spec/specs-go/features.Features. */
export const FEATURES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

export interface RuntimeInfo {
  name: string;
  version: { version: string; revision: string };
  /** The runtime options the shim read, as an encoded Any (containerd echoes what it sent); empty: none. */
  options?: Uint8Array;
  /** The OCI runtime's features document; undefined when the runtime cannot say (runc.v2 leaves it out then). */
  features?: unknown;
  annotations?: Record<string, string>;
}

const encoder = new TextEncoder();
const str = (n: number, s: string): Field => ({ n, bytes: encoder.encode(s) });

/** RuntimeInfo as Go's proto.Marshal writes it (fields in number order, map entries sorted by key). */
export function encodeRuntimeInfo(info: RuntimeInfo): Uint8Array {
  const fields: Field[] = [str(1, info.name), { n: 2, message: encodeMessage([str(1, info.version.version), str(2, info.version.revision)]) }];
  if (info.options && info.options.length > 0) fields.push({ n: 3, message: info.options });
  if (info.features !== undefined) {
    const json = JSON.stringify(info.features);
    fields.push({ n: 4, message: encodeMessage([str(1, FEATURES_TYPE_URL), str(2, json)]) });
  }
  for (const key of Object.keys(info.annotations ?? {}).sort()) {
    fields.push({ n: 5, message: encodeMessage([str(1, key), str(2, info.annotations![key]!)]) });
  }
  return encodeMessage(fields);
}
