import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TaskExitSchema, TaskStartSchema } from "../../src/gen/containerd/events/task_pb.ts";
import { Events } from "../../src/gen/containerd/services/events/ttrpc/v1/events_pb.ts";
import { RemotePublisher } from "../../src/shim/publisher.ts";
import { Server } from "../../src/ttrpc/server.ts";
import { listenUnix, type UnixListener } from "../../src/ttrpc/unix.ts";

interface Got {
  topic: string;
  namespace: string;
  typeUrl: string;
  value: Uint8Array;
  metaNs: string | undefined;
}

async function eventsServer(path: string, got: Got[], fail = { n: 0 }): Promise<{ server: Server; listener: UnixListener }> {
  const server = new Server();
  server.register(Events, {
    forward(req, ctx) {
      if (fail.n > 0) {
        fail.n--;
        throw new Error("not now");
      }
      const e = req.envelope!;
      got.push({ topic: e.topic, namespace: e.namespace, typeUrl: e.event!.typeUrl, value: e.event!.value, metaNs: ctx.namespace });
    },
  });
  const listener = await listenUnix(server, path);
  return { server, listener };
}

describe("events publisher", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-pub-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("forwards envelopes in order with containerd's bare type URLs and the namespace", async () => {
    const path = join(dir, "events.sock");
    const got: Got[] = [];
    const { server, listener } = await eventsServer(path, got);
    const pub = new RemotePublisher(path, "ns1");
    try {
      pub.publish("/tasks/start", TaskStartSchema, { containerId: "c", pid: 5 });
      for (let i = 0; i < 50; i++) pub.publish("/tasks/exit", TaskExitSchema, { containerId: "c", id: "c", pid: 5, exitStatus: i });
      await pub.flush();
      expect(got.length).toBe(51);
      expect(got[0]).toMatchObject({ topic: "/tasks/start", namespace: "ns1", typeUrl: "containerd.events.TaskStart", metaNs: "ns1" });
      expect(got.slice(1).map((g) => fromBinary(TaskExitSchema, g.value).exitStatus)).toEqual([...Array(50).keys()]);
      expect(got[1]!.typeUrl).toBe("containerd.events.TaskExit");
    } finally {
      pub.close();
      listener.close();
      server.close();
    }
  });

  test("retries the head event and keeps order; reconnects when containerd comes back", async () => {
    const path = join(dir, "events.sock");
    const got: Got[] = [];
    const fail = { n: 2 };
    let srv = await eventsServer(path, got, fail);
    const pub = new RemotePublisher(path, "ns", { backoffMs: 10 });
    try {
      pub.publish("/tasks/start", TaskStartSchema, { containerId: "a", pid: 1 });
      pub.publish("/tasks/exit", TaskExitSchema, { containerId: "a", id: "a", pid: 1, exitStatus: 3 });
      await pub.flush();
      expect(got.map((g) => g.topic)).toEqual(["/tasks/start", "/tasks/exit"]);
      // containerd restarts: the connection breaks, the next event goes over a new one
      srv.listener.close();
      srv.server.close();
      srv = await eventsServer(path, got);
      pub.publish("/tasks/exit", TaskExitSchema, { containerId: "b", id: "b", pid: 2, exitStatus: 0 });
      await pub.flush();
      expect(got.map((g) => g.topic)).toEqual(["/tasks/start", "/tasks/exit", "/tasks/exit"]);
    } finally {
      pub.close();
      srv.listener.close();
      srv.server.close();
    }
  });

  test("an event that keeps failing is evicted, later ones still go", async () => {
    const path = join(dir, "events.sock");
    const got: Got[] = [];
    const fail = { n: 3 };
    const { server, listener } = await eventsServer(path, got, fail);
    const errors: string[] = [];
    const log = { warn() {}, error: (_: object, msg: string) => errors.push(msg) };
    const pub = new RemotePublisher(path, "ns", { backoffMs: 5, maxAttempts: 3, log });
    try {
      pub.publish("/tasks/start", TaskStartSchema, { containerId: "lost", pid: 1 });
      pub.publish("/tasks/start", TaskStartSchema, { containerId: "kept", pid: 2 });
      await pub.flush();
      expect(errors).toEqual(["evicting event after repeated failures"]);
      expect(got.map((g) => fromBinary(TaskStartSchema, g.value).containerId)).toEqual(["kept"]);
    } finally {
      pub.close();
      listener.close();
      server.close();
    }
  });
});
