// The CRI client the tests drive containerd with, as kubelet does: RuntimeService and ImageService
// (runtime.v1) on containerd's own gRPC socket, every call typed by the generated api.proto. One
// HTTP/2 connection carries both services, as kubelet's does when both endpoints are one socket.
import { ImageService, RuntimeService } from "../../../src/gen/k8s/cri/v1/api_pb.ts";
import { GrpcChannel, serviceClient } from "./grpc.ts";

export { GrpcError } from "./grpc.ts";

export class CriClient {
  readonly runtime;
  readonly images;
  private readonly channel: GrpcChannel;

  constructor(socketPath: string) {
    this.channel = new GrpcChannel(socketPath);
    this.runtime = serviceClient(this.channel, RuntimeService);
    this.images = serviceClient(this.channel, ImageService);
  }

  close(): void {
    this.channel.close();
  }
}
