import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, NotFoundError } from "../../src/errdefs.ts";
import { canConnect, goClean, goJoin, isSocket, readAddress, removeSocket, socketAddress, socketPath, writeAddress } from "../../src/contract/address.ts";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

describe("socket address", () => {
  test("Go path.Clean and filepath.Join", () => {
    expect(goClean("")).toBe(".");
    expect(goClean("/a//b/./c/..")).toBe("/a/b");
    expect(goClean("/../a")).toBe("/a");
    expect(goClean("a/../..")).toBe("..");
    expect(goClean("/")).toBe("/");
    expect(goJoin("/run/containerd/containerd.sock", "default", "c1")).toBe("/run/containerd/containerd.sock/default/c1");
    expect(goJoin("", "ns", "g")).toBe("ns/g");
    expect(goJoin("/a/", "ns/", "x/../g")).toBe("/a/ns/g");
  });

  test("sha256 of address/namespace/group under /run/containerd/s (util_unix.go SocketAddress)", () => {
    const addr = socketAddress("/run/containerd/containerd.sock", "default", "redis");
    expect(addr).toBe(`unix:///run/containerd/s/${sha("/run/containerd/containerd.sock/default/redis")}`);
    expect(socketAddress("/x//y/", "ns", "g", "/tmp/r/")).toBe(`unix:///tmp/r/s/${sha("/x/y/ns/g")}`);
    expect(() => socketAddress("/a", "", "g")).toThrow(InvalidArgumentError);
  });

  test("socketPath refuses non-unix and over-long addresses", () => {
    expect(socketPath("unix:///run/x")).toBe("/run/x");
    expect(() => socketPath("/run/x")).toThrow(InvalidArgumentError);
    expect(() => socketPath("unix:///" + "a".repeat(120))).toThrow("too long");
  });
});

describe("address files and sockets", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-addr-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("writeAddress is atomic and readAddress reads it back", () => {
    writeFileSync(join(dir, ".address"), "junk from a crashed writer");
    writeAddress(dir, "unix:///run/containerd/s/abc");
    expect(readFileSync(join(dir, "address"), "utf8")).toBe("unix:///run/containerd/s/abc");
    expect(readdirSync(dir).sort()).toEqual(["address"]);
    expect(readAddress(dir)).toBe("unix:///run/containerd/s/abc");
  });

  test("readAddress of a missing or empty file is NotFound", () => {
    expect(() => readAddress(dir)).toThrow(NotFoundError);
    writeFileSync(join(dir, "address"), "");
    expect(() => readAddress(dir)).toThrow(NotFoundError);
  });

  test("canConnect tells a live socket from a stale one, removeSocket removes only sockets", async () => {
    const path = join(dir, "s.sock");
    const address = `unix://${path}`;
    expect(await canConnect(address)).toBe(false);
    const server = Bun.listen({ unix: path, socket: { data() {} } });
    try {
      expect(isSocket(path)).toBe(true);
      expect(await canConnect(address)).toBe(true);
    } finally {
      server.stop(true);
    }
    // Bun removes the path on stop; a stale socket file is what a SIGKILLed shim leaves
    if (!existsSync(path)) {
      const stale = Bun.spawnSync(["python3", "-c", `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(path)})`]);
      expect(stale.exitCode).toBe(0);
    }
    expect(isSocket(path)).toBe(true);
    expect(await canConnect(address)).toBe(false);
    removeSocket(address);
    expect(existsSync(path)).toBe(false);
    writeFileSync(path, "not a socket");
    removeSocket(address);
    expect(existsSync(path)).toBe(true);
  });
});
