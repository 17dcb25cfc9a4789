// Runtime options from a CreateTaskRequest's Any (serve side only: it loads generated descriptors).
import type { Any } from "@bufbuild/protobuf/wkt";
import { OptionsSchema } from "../../gen/containerd/runc/v1/options_pb.ts";
import { anyIs, unpackAny } from "../../ttrpc/any.ts";
import { defaultOptions, type RuncOptions } from "./options.ts";

/**
 * Options from the request's Any. Empty means defaults; so does another type (CRI sends
 * runtimeoptions.v1.Options to runtimes it does not know), which bunker has nothing to read from.
 * Undecodable runc options are InvalidArgument.
 */
export function optionsFromAny(any: Any | undefined): RuncOptions {
  if (!any || !anyIs(any, OptionsSchema)) return defaultOptions();
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

