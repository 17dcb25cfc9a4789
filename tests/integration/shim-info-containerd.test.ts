// containerd 2.x itself running the shim's `-info` and decoding its answer: the introspection
// service's PluginInfo for the runtime v2 "task" plugin with a RuntimeRequest is the path CRI takes
// for a runtime handler (internal/cri/server/service.go introspectRuntimeFeatures) and the task
// manager takes before every task create from 2.2 on (loadShimInfo) and before one with idmap
// mounts: containerd execs `<shim> -info`, proto.Unmarshals stdout into RuntimeInfo and returns it
// in `extra`, or fails the call with the shim's stderr. runc.v2 of the same build answers the same
// question as the reference. (containerd 2.1's CRI asks only runc.v2 itself; main's asks any shim.)
//
// The gRPC call is made by hand over node:http2 on the unix socket (5-byte message prefix,
// grpc-status in the trailers), the messages encoded by field number (ttrpc/wire.ts).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import { encodeMessage } from "../../src/ttrpc/wire.ts";
import { delimitedFields } from "../../src/ttrpc/wire-decode.ts";
import { startContainerd, type TestContainerd } from "../support/containerd.ts";
import { CACHE_DIR, type ContainerdBuild } from "../support/containerd-versions.ts";
import { describeWith } from "../support/require.ts";
import { shimPath } from "../support/shim-env.ts";

const SID = join(CACHE_DIR, "sid");
const SID_CONTAINERD = join(SID, "usr/bin/containerd");

function sidBuild(): ContainerdBuild {
  const version = readFileSync(join(SID, "VERSION"), "utf8").trim();
  const [major = "0", minor = "0"] = version.split(".");
  return { line: `${major}.${minor}`, version, bin: join(SID, "usr/bin"), major: Number(major) };
}

const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b ?? new Uint8Array());

/** One unary gRPC call on containerd's socket: the reply's message bytes, or the grpc-status error. */
async function grpcCall(socket: string, path: string, message: Uint8Array): Promise<Uint8Array> {
  const client = http2.connect("http://localhost", { createConnection: () => net.connect(socket) });
  try {
    return await new Promise<Uint8Array>((resolve, reject) => {
      const req = client.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      // an error comes in the trailers, or alone in the headers (gRPC's trailers-only reply)
      const checkStatus = (t: http2.IncomingHttpHeaders) => {
        const status = Number(t["grpc-status"] ?? 0);
        if (status !== 0) reject(new Error(`grpc-status ${status}: ${decodeURIComponent(String(t["grpc-message"] ?? ""))}`));
      };
      req.on("response", checkStatus);
      req.on("trailers", checkStatus);
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        if (body.length < 5) return reject(new Error(`no gRPC message in the reply (${body.length} bytes)`));
        resolve(new Uint8Array(body.subarray(5, 5 + body.readUInt32BE(1))));
      });
      req.on("error", reject);
      const frame = Buffer.alloc(5 + message.length);
      frame.writeUInt32BE(message.length, 1);
      frame.set(message, 5);
      req.end(frame);
    });
  } finally {
    client.close();
  }
}

const enc = new TextEncoder();
/** PluginInfoRequest{type: io.containerd.runtime.v2, id: task, options: Any(RuntimeRequest{runtime_path})}. */
function runtimeInfoRequest(runtimePath: string): Uint8Array {
  const runtimeRequest = encodeMessage([{ n: 1, bytes: enc.encode(runtimePath) }]);
  const any = encodeMessage([{ n: 1, bytes: enc.encode("containerd.types.RuntimeRequest") }, { n: 2, bytes: runtimeRequest }]);
  return encodeMessage([{ n: 1, bytes: enc.encode("io.containerd.runtime.v2") }, { n: 2, bytes: enc.encode("task") }, { n: 3, message: any }]);
}

interface Decoded {
  name: string;
  featuresTypeUrl: string;
  features: Record<string, unknown>;
}

/** PluginInfoResponse.extra (an Any of RuntimeInfo) as containerd's CRI reads it. */
function decodeRuntimeInfo(reply: Uint8Array): Decoded {
  const extra = delimitedFields(delimitedFields(reply).get(2) ?? new Uint8Array());
  expect(text(extra.get(1))).toBe("containerd.types.RuntimeInfo");
  const info = delimitedFields(extra.get(2) ?? new Uint8Array());
  const features = delimitedFields(info.get(4) ?? new Uint8Array());
  return { name: text(info.get(1)), featuresTypeUrl: text(features.get(1)), features: JSON.parse(text(features.get(2)) || "null") as Record<string, unknown> };
}

describeWith(["root", "bin:runc", `bin:${SID_CONTAINERD}`], "containerd 2.x runs the shim's -info and reads its RuntimeInfo", () => {
  let ctd: TestContainerd;
  beforeAll(async () => {
    if (!existsSync(SID_CONTAINERD)) return;
    ctd = await startContainerd({ build: sidBuild(), path: await shimPath() });
  });
  afterAll(async () => {
    await ctd?.stop();
  });

  const PATH = "/containerd.services.introspection.v1.Introspection/PluginInfo";

  test("bunker: containerd accepts the answer; features are runc's, under the URL typeurl knows", async () => {
    const got = decodeRuntimeInfo(await grpcCall(ctd.address, PATH, runtimeInfoRequest("io.containerd.bunker.v1")));
    expect(got.name).toBe("io.containerd.bunker.v1");
    expect(got.featuresTypeUrl).toBe("types.containerd.io/opencontainers/runtime-spec/1/features/Features");
    expect(got.features).toEqual(JSON.parse(Bun.spawnSync(["runc", "features"]).stdout.toString()));
    // containerd logged no failure for it
    expect(readFileSync(ctd.logPath, "utf8")).not.toMatch(/failed to (run|unmarshal stdout from).*-info/);
  });

  test("runc.v2 of the same build, the reference, reports the same features document", async () => {
    const bunker = decodeRuntimeInfo(await grpcCall(ctd.address, PATH, runtimeInfoRequest("io.containerd.bunker.v1")));
    const runc = decodeRuntimeInfo(await grpcCall(ctd.address, PATH, runtimeInfoRequest("io.containerd.runc.v2")));
    expect(runc.name).toBe("io.containerd.runc.v2");
    expect(runc.featuresTypeUrl).toBe(bunker.featuresTypeUrl);
    // runc.v2 re-marshals runc's JSON through Go's features struct; the content is the same
    expect(runc.features.ociVersionMin).toBe(bunker.features.ociVersionMin);
    expect(runc.features.mountOptions).toEqual(bunker.features.mountOptions);
    expect((runc.features.linux as { namespaces?: unknown }).namespaces).toEqual((bunker.features.linux as { namespaces?: unknown }).namespaces);
  });

  test("a shim containerd cannot run fails the call (so the two passes above are containerd's word)", async () => {
    await expect(grpcCall(ctd.address, PATH, runtimeInfoRequest("io.containerd.nosuchshim.v1"))).rejects.toThrow(/grpc-status \d+/);
  });
});
