// Task Stats for the runc shim: a container's cgroup metrics read straight from the cgroup files
// (no runc or other process per call), packed the way containerd's shim packs them
// (typeurl.MarshalAny: the bare full name, "io.containerd.cgroups.v1.Metrics" / "...v2.Metrics",
// which is what `ctr task metrics` and the CRI plugin unpack).
//
//   readStats(cg: Cgroup, opts?): Stats              { version: 1, metrics } | { version: 2, metrics }, plus `any`
//   statsAny(cg: Cgroup, opts?): Any                 just the Any, for StatsResponse{ stats }
//
// Wiring (Task.Stats): resolve the cgroup once at Create (cgroupOfPid(initPid) in cgroup.ts), then
//   return { stats: statsAny(container.cgroup) };
// NotFoundError "cgroup does not exist" when runc already removed it (containerd answers the same).
import type { Any } from "@bufbuild/protobuf/wkt";
import { type Metrics as V1Metrics, MetricsSchema as V1MetricsSchema } from "../gen/cgroups/v1/metrics_pb.ts";
import { type Metrics as V2Metrics, MetricsSchema as V2MetricsSchema } from "../gen/cgroups/v2/metrics_pb.ts";
import { packAny } from "../ttrpc/any.ts";
import { type Cgroup, requireCgroup } from "./cgroup.ts";
import { readV1Metrics, type V1Options } from "./stats-v1.ts";
import { readV2Metrics } from "./stats-v2.ts";

export type Stats = { version: 1; metrics: V1Metrics; any: Any } | { version: 2; metrics: V2Metrics; any: Any };

export const V1_METRICS_TYPE_URL = V1MetricsSchema.typeName; // "io.containerd.cgroups.v1.Metrics"
export const V2_METRICS_TYPE_URL = V2MetricsSchema.typeName; // "io.containerd.cgroups.v2.Metrics"

export function readStats(cg: Cgroup, opts: V1Options = {}): Stats {
  requireCgroup(cg);
  if (cg.version === 2) {
    const metrics = readV2Metrics(cg);
    return { version: 2, metrics, any: packAny(V2MetricsSchema, metrics) };
  }
  const metrics = readV1Metrics(cg, opts);
  return { version: 1, metrics, any: packAny(V1MetricsSchema, metrics) };
}

export function statsAny(cg: Cgroup, opts: V1Options = {}): Any {
  return readStats(cg, opts).any;
}
