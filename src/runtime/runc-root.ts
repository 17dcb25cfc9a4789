// Whose runc state is whose. runc keeps a container's state under <root>/<id>, and the runc shims
// (ours, containerd's) default that root to /run/containerd/runc/<ns>: two bunkers with their own
// --state, or a bunker and a containerd, that used one namespace shared one runc root, so a second
// `victim` failed with "already exists" and its rollback's `runc delete --force` SIGKILLed the
// first owner's container. bunker's manager gives runc-type shims a root of its own (under
// --state) through containerd.runc.v1.Options.root, the field containerd's CRI sets per runtime
// handler; options that already name a root are left as they are.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import { RUNC_OPTIONS_TYPE_URL, RUNC_RUNTIME_TYPES } from "../contract/runtime.ts";
import { OptionsSchema } from "../gen/containerd/runc/v1/options_pb.ts";

/** `options` with runc's root set to `root` when the runtime takes runc options and none names a root. */
export function withRuncRoot(runtime: string, options: Any | undefined, root: string): Any | undefined {
  if (!RUNC_RUNTIME_TYPES.includes(runtime)) return options;
  // The bare type name, as containerd's CRI and the runtime config send it: the Go shims' typeurl
  // registry (containerd 1.6) knows containerd.runc.v1.Options, not type.googleapis.com/...
  if (options === undefined) return create(AnySchema, { typeUrl: RUNC_OPTIONS_TYPE_URL, value: toBinary(OptionsSchema, create(OptionsSchema, { root })) });
  if (options.typeUrl.slice(options.typeUrl.lastIndexOf("/") + 1) !== RUNC_OPTIONS_TYPE_URL) return options;
  const o = fromBinary(OptionsSchema, options.value);
  if (o.root !== "") return options;
  o.root = root;
  return { ...options, value: toBinary(OptionsSchema, o) };
}
