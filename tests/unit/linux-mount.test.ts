import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, rmdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NotImplementedError } from "../../src/errdefs.ts";
import { compactOverlayData, mountAll, parseMountOptions } from "../../src/linux/mount.ts";
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

describe("overlay options past a page (containerd's compactLowerdirOption)", () => {
  // the store must exist: the mount runs from inside it
  const base = mkdtempSync(join(tmpdir(), "bunker-mount-"));
  afterAll(() => rmSync(base, { recursive: true, force: true }));
  const store = `${base}/var/lib/bunker/snapshots/overlayfs`;
  mkdirSync(store, { recursive: true });
  const lowers = Array.from({ length: 150 }, (_, i) => `${store}/${i + 1}/fs`);
  const data = `workdir=${store}/900/work,upperdir=${store}/900/fs,lowerdir=${lowers.join(":")}`;

  test("options that fit stay absolute; longer ones go relative to the common dir", () => {
    expect(compactOverlayData("lowerdir=/a:/b,upperdir=/u,workdir=/w")).toEqual({ data: "lowerdir=/a:/b,upperdir=/u,workdir=/w" });
    expect(data.length).toBeGreaterThan(4096);
    const c = compactOverlayData(data);
    expect(c.chdir).toBe(store);
    expect(c.data.startsWith("workdir=900/work,upperdir=900/fs,lowerdir=1/fs:2/fs:")).toBe(true);
    expect(c.data.length).toBeLessThan(4096);
  });

  test("mountOne mounts a long overlay from inside the common dir, target absolute, and comes back", () => {
    const fake = new FakeSyscalls();
    const cwds: string[] = [];
    fake.on("mount", () => void cwds.push(process.cwd()));
    const before = process.cwd();
    mountAll(fake, [{ type: "overlay", source: "overlay", options: data.split(",") }], "rel/rootfs");
    expect(cwds).toEqual([realpathSync(store)]);
    expect(process.cwd()).toBe(before);
    expect(fake.callsOf("mount")[0]![1]).toBe(`${before}/rel/rootfs`);
  });

  test("a cwd removed meanwhile (a shim's first bundle) does not fail the mount: the process comes back to /", () => {
    const fake = new FakeSyscalls();
    const before = process.cwd();
    const gone = mkdtempSync(join(tmpdir(), "bunker-mount-cwd-"));
    process.chdir(gone);
    rmdirSync(gone);
    try {
      mountAll(fake, [{ type: "overlay", source: "overlay", options: data.split(",") }], "/abs/rootfs");
      expect(fake.callsOf("mount")).toHaveLength(1);
      expect(process.cwd()).toBe("/");
    } finally {
      process.chdir(before);
    }
  });
});
