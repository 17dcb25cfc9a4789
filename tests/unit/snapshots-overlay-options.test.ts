// The overlay mount's data string: absolute while it fits one page, relative to the common dir
// (containerd's compactLowerdirOption) past that, and the 500-lower-dir limit named in the error.
import { expect, test } from "bun:test";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { commonDir, MAX_MOUNT_DATA, OVERLAY_MAX_LOWER_DIRS, overlayMountPlan } from "../../src/snapshots/overlay-options.ts";

const STORE = "/var/lib/bunker/snapshots/overlayfs";
const stack = (top: number, n: number) => Array.from({ length: n }, (_, i) => `${STORE}/${top - i}/fs`);

test("short stacks keep absolute paths (what mountinfo shows), upper and work first like containerd", () => {
  const plan = overlayMountPlan({ upper: `${STORE}/9/fs`, work: `${STORE}/9/work`, lowers: stack(3, 3) });
  expect(plan).toEqual({ data: `workdir=${STORE}/9/work,upperdir=${STORE}/9/fs,lowerdir=${STORE}/3/fs:${STORE}/2/fs:${STORE}/1/fs` });
});

test("extra options (index=off) lead the string", () => {
  expect(overlayMountPlan({ upper: "/s/2/fs", work: "/s/2/work", lowers: ["/s/1/fs"], extra: ["index=off"] }).data).toBe("index=off,workdir=/s/2/work,upperdir=/s/2/fs,lowerdir=/s/1/fs");
});

test("130 layers under a long store root go relative to the store, from inside it", () => {
  const lowers = stack(130, 130);
  expect(lowers.join(":").length).toBeGreaterThan(MAX_MOUNT_DATA);
  const plan = overlayMountPlan({ upper: `${STORE}/131/fs`, work: `${STORE}/131/work`, lowers });
  expect(plan.chdir).toBe(STORE);
  expect(plan.data.startsWith("workdir=131/work,upperdir=131/fs,lowerdir=130/fs:129/fs:")).toBe(true);
  expect(plan.data.endsWith(":2/fs:1/fs")).toBe(true);
  expect(plan.data.length).toBeLessThanOrEqual(MAX_MOUNT_DATA);
});

test("500 layers with four-digit numbers still fit a page; 501 are refused naming OVL_MAX_STACK", () => {
  const plan = overlayMountPlan({ upper: `${STORE}/2001/fs`, work: `${STORE}/2001/work`, lowers: stack(2000, OVERLAY_MAX_LOWER_DIRS) });
  expect(plan.data.length).toBeLessThanOrEqual(MAX_MOUNT_DATA);
  expect(() => overlayMountPlan({ upper: `${STORE}/600/fs`, work: `${STORE}/600/work`, lowers: stack(501, 501) })).toThrow(
    "image has 501 layers; overlayfs stacks at most 500 lower directories (the kernel's OVL_MAX_STACK)",
  );
});

test("options too long even when relative are refused with their size", () => {
  const lowers = Array.from({ length: 500 }, (_, i) => `${STORE}/${100000 + i}/fs`);
  expect(() => overlayMountPlan({ upper: `${STORE}/1/fs`, work: `${STORE}/1/work`, lowers })).toThrow(/take \d+ bytes even relative to \/var\/lib\/bunker\/snapshots\/overlayfs; mount\(2\) takes at most 4095/);
});

test("paths overlayfs cannot carry, relative paths and empty stacks are refused", () => {
  expect(() => overlayMountPlan({ upper: "/a:b/fs", work: "/w", lowers: ["/l"] })).toThrow(/contains ':', ','/);
  expect(() => overlayMountPlan({ upper: "/u", work: "/w,x", lowers: ["/l"] })).toThrow(InvalidArgumentError);
  expect(() => overlayMountPlan({ upper: "u", work: "/w", lowers: ["/l"] })).toThrow(/is not absolute/);
  expect(() => overlayMountPlan({ upper: "/u", work: "/w", lowers: [] })).toThrow(/at least one lower dir/);
});

test("commonDir is the deepest dir containing every path, never one of the paths itself", () => {
  expect(commonDir(["/a/b/1/fs", "/a/b/2/fs", "/a/b/3/work"])).toBe("/a/b");
  expect(commonDir(["/a/b", "/a/b/c"])).toBe("/a");
  expect(commonDir(["/x/1", "/y/2"])).toBe("/");
});
