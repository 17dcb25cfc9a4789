import { describe, expect, test } from "bun:test";
import { NotImplementedError } from "../../src/errdefs.ts";
import { mountAll, parseMountOptions } from "../../src/linux/mount.ts";
import { FakeSyscalls, SysError } from "../../src/sys/index.ts";

describe("rootfs mounts (containerd mount_linux.go)", () => {
  test("option table: flags set and cleared, unknown options become data", () => {
    expect(parseMountOptions(["ro", "nosuid", "nodev"])).toEqual({ flags: 0x1 | 0x2 | 0x4, data: "", loop: false });
    expect(parseMountOptions(["ro", "rw"]).flags).toBe(0);
    expect(parseMountOptions(["rbind"]).flags).toBe(0x1000 | 0x4000);
    expect(parseMountOptions(["workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2", "index=off"])).toEqual({
      flags: 0,
      data: "workdir=/w,upperdir=/u,lowerdir=/l1:/l2,index=off",
      loop: false,
    });
    // containerd 1.6's table has no bit for "defaults", so it is passed on as data
    expect(parseMountOptions(["defaults"]).data).toBe("defaults");
    expect(parseMountOptions(["loop"]).loop).toBe(true);
  });

  test("overlay is one mount with its options as data", () => {
    const fake = new FakeSyscalls();
    mountAll(fake, [{ type: "overlay", source: "overlay", options: ["lowerdir=/a:/b", "upperdir=/u", "workdir=/w"] }], "/b/rootfs");
    expect(fake.callsOf("mount")).toEqual([["overlay", "/b/rootfs", "overlay", 0, "lowerdir=/a:/b,upperdir=/u,workdir=/w"]]);
  });

  test("a read-only bind is a bind plus a read-only remount", () => {
    const fake = new FakeSyscalls();
    mountAll(fake, [{ type: "bind", source: "/snap/1/fs", options: ["ro", "rbind"] }], "/b/rootfs");
    expect(fake.callsOf("mount")).toEqual([
      ["/snap/1/fs", "/b/rootfs", "bind", 0x1 | 0x1000 | 0x4000, ""],
      ["", "/b/rootfs", "", 0x1 | 0x1000 | 0x4000 | 0x20, ""],
    ]);
  });

  test("a failure unmounts what was mounted and reports the kernel's error", () => {
    const fake = new FakeSyscalls();
    let n = 0;
    fake.on("mount", () => {
      if (++n === 2) throw SysError.of("mount", "EPERM", "/b/rootfs");
    });
    expect(() => mountAll(fake, [{ type: "bind", source: "/s", options: ["ro", "bind"] }], "/b/rootfs")).toThrow("EPERM");
    expect(fake.callsOf("unmountAll")).toEqual([["/b/rootfs"]]);
  });

  test("loop and helper mounts are refused clearly", () => {
    const fake = new FakeSyscalls();
    expect(() => mountAll(fake, [{ type: "ext4", source: "/img", options: ["loop"] }], "/t")).toThrow(NotImplementedError);
    expect(() => mountAll(fake, [{ type: "fuse.sshfs", source: "x", options: [] }], "/t")).toThrow(NotImplementedError);
    expect(() => mountAll(fake, [{ type: "", source: "x", options: [] }], "/t")).toThrow("has no type");
  });
});
