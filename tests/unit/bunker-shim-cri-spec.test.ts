// What CRI puts in a pod's bundles reaches runc untouched through bunker's shim, and the pod is
// grouped as runc.v2 groups it. CRI copies the pod annotations its handler's `pod_annotations`
// allows into each spec, beside io.kubernetes.cri.container-type ("sandbox" for the pause
// container, "container" for the workloads) and io.kubernetes.cri.sandbox-id (the sandbox's own
// id on the sandbox). runc.v2 treats the two types alike (its grouping reads only the sandbox id),
// and so does bunker: the shim reads the spec and never writes it. Pinned with the recording fake
// of the OciRuntime seam (no root, no runc).
import { afterAll, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bunkerGroup } from "../../src/contract/grouping.ts";
import { CreateTaskRequestSchema } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { OptionsSchema } from "../../src/gen/runtimeoptions/v1/api_pb.ts";
import type { Publisher } from "../../src/shim/publisher.ts";
import type { RuncOptions } from "../../src/shims/bunker/options.ts";
import { RuncTaskService } from "../../src/shims/bunker/service.ts";
import { FakeSyscalls } from "../../src/sys/index.ts";
import { packAny } from "../../src/ttrpc/any.ts";
import type { CallContext } from "../../src/ttrpc/server.ts";
import { FakeOciWorld } from "../support/fake-oci-runtime.ts";
import { testServeContext } from "../support/serve-context.ts";

const dir = mkdtempSync(join(tmpdir(), "bunker-cri-spec-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const call = {} as CallContext;
const POD = "f".repeat(64);

function service() {
  const publisher: Publisher = { publish: () => {}, flush: async () => {}, close() {} };
  let svc: RuncTaskService | undefined;
  const fake = new FakeSyscalls();
  const ctx = testServeContext({ fake, publisher, containerCount: () => svc?.containerCount() ?? 0, bundle: dir });
  const world = new FakeOciWorld(fake, ctx.monitor);
  const options: RuncOptions[] = [];
  svc = new RuncTaskService(ctx, fake, (o, b, ns) => (options.push(o), world.factory(o, b, ns)));
  return { impl: svc.impl, world, options };
}

/** A bundle as CRI writes it: the spec with CRI's annotations and the pod's allowed ones. */
function criBundle(id: string, type: "sandbox" | "container"): { path: string; spec: string } {
  const path = join(dir, id);
  mkdirSync(path, { recursive: true });
  const spec = JSON.stringify(
    {
      ociVersion: "1.0.2-dev",
      process: { args: type === "sandbox" ? ["/pause"] : ["sleep", "1"], cwd: "/" },
      linux: { namespaces: [{ type: "pid" }], cgroupsPath: `kubepods-besteffort-pod0f3a.slice:cri-containerd:${id}` },
      annotations: {
        "io.kubernetes.cri.container-type": type,
        "io.kubernetes.cri.sandbox-id": POD,
        "io.kubernetes.cri.sandbox-name": "web",
        "io.kubernetes.cri.sandbox-namespace": "default",
        // pod annotations the handler's pod_annotations let through
        "example.com/trace": "on",
        "io.containerd.bunker.v1.note": "kept",
      },
    },
    null,
    2,
  );
  writeFileSync(join(path, "config.json"), spec);
  return { path, spec };
}

test("the sandbox and a workload: spec untouched, options from the handler, one group", async () => {
  const { impl, world, options } = service();
  const handler = packAny(OptionsSchema, { configBody: new TextEncoder().encode("SystemdCgroup = true\n") });
  const sandbox = criBundle(POD, "sandbox");
  const workload = criBundle("c1", "container");
  for (const [id, b] of [[POD, sandbox], ["c1", workload]] as const) {
    await impl.create!(create(CreateTaskRequestSchema, { id, bundle: b.path, options: handler }), call);
    // runc gets the very bundle CRI wrote: annotations (pod ones included) byte for byte
    expect(world.containers.get(id)?.bundle).toBe(b.path);
    expect(readFileSync(join(b.path, "config.json"), "utf8")).toBe(b.spec);
  }
  expect(world.calls.filter((c) => c.startsWith("create"))).toEqual([`create ${POD}`, "create c1"]);
  // the handler's SystemdCgroup reached both runtimes (runc's --systemd-cgroup) and the delete action's options.json
  expect(options.map((o) => o.systemdCgroup)).toEqual([true, true]);
  expect(JSON.parse(readFileSync(join(workload.path, "options.json"), "utf8"))).toEqual({ systemd_cgroup: true });
  // start groups both into the pod's shim; a handler group overrides that for both alike
  const none = new Uint8Array();
  expect(bunkerGroup(POD, sandbox.path, none, {})).toBe(POD);
  expect(bunkerGroup("c1", workload.path, none, {})).toBe(POD);
  const perContainer = toBinary(AnySchema, packAny(OptionsSchema, { configBody: new TextEncoder().encode("group = 'container'\n") }));
  expect(bunkerGroup(POD, sandbox.path, perContainer, {})).toBe(POD);
  expect(bunkerGroup("c1", workload.path, perContainer, {})).toBe("c1");
  // the environment default does not split a pod
  expect(bunkerGroup("c1", workload.path, none, { BUNKER_SHIM_GROUP: "container" })).toBe(POD);
});
