// A containerd Events service that records what a shim forwards (the shim's TTRPC_ADDRESS
// side), for tests that drive a shim directly without containerd.
import { Events } from "../../src/gen/containerd/services/events/ttrpc/v1/events_pb.ts";
import type { Server } from "../../src/ttrpc/server.ts";

export interface ForwardedEvent {
  topic: string;
  typeUrl: string;
  value: Uint8Array;
}

/** Registers Events.Forward on `server`, appending each envelope to `into` in arrival order. */
export function recordForwardedEvents(server: Server, into: ForwardedEvent[]): void {
  server.register(Events, {
    forward(req) {
      const e = req.envelope!;
      into.push({ topic: e.topic, typeUrl: e.event!.typeUrl, value: e.event!.value });
    },
  });
}
