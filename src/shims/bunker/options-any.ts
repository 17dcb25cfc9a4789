// Runtime options from a CreateTaskRequest's Any (serve side only: it loads generated descriptors):
// containerd.runc.v1.Options as runc.v2 reads them, or, under CRI, the runtime handler's `options`
// table that CRI sends runtimes other than runc as runtimeoptions.v1.Options (handler-options.ts).
import { toBinary } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { OptionsSchema } from "../../gen/containerd/runc/v1/options_pb.ts";
import { runtimeConfigText } from "../../contract/start-options.ts";
import { anyIs, unpackAny } from "../../ttrpc/any.ts";
import { runcOptionsFromConfig } from "./handler-options.ts";
import { defaultOptions, type RuncOptions } from "./options.ts";

/**
 * Options from the request's Any. Empty means defaults; so does a type bunker has nothing to read
 * from. Undecodable runc options, or a handler table with a key of the wrong type, are InvalidArgument.
 */
export function optionsFromAny(any: Any | undefined): RuncOptions {
  if (!any) return defaultOptions();
  if (!anyIs(any, OptionsSchema)) {
    const config = runtimeConfigText(toBinary(AnySchema, any));
    return config ? runcOptionsFromConfig(config) : defaultOptions();
  }
  const o = unpackAny(any, OptionsSchema);
  return {
    binaryName: o.binaryName,
    root: o.root,
    systemdCgroup: o.systemdCgroup,
    criuPath: o.criuPath,
    noPivotRoot: o.noPivotRoot,
    noNewKeyring: o.noNewKeyring,
    ioUid: o.ioUid,
    ioGid: o.ioGid,
  };
}
