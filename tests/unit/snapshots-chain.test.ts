// Chain IDs (OCI image-spec "Layer ChainID") and the digest check the store's index relies on.
// Expected values were computed independently with Python's hashlib.
import { expect, test } from "bun:test";
import { chainId, chainIds, validateDigest } from "../../src/snapshots/chain.ts";
import { InvalidArgumentError } from "../../src/errdefs.ts";

const A = `sha256:${"a".repeat(64)}`;
const B = `sha256:${"b".repeat(64)}`;
const C = `sha256:${"c".repeat(64)}`;

test("chainID(L0) is L0's diff ID; each next is sha256 of the previous chain ID, a space and the diff ID", () => {
  expect(chainIds([A, B, C])).toEqual([
    A,
    "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c",
    "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588",
  ]);
  expect(chainId([A, B, C])).toBe("sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588");
  expect(chainId([A])).toBe(A);
});

test("order matters: the same layers stacked differently get different chain IDs", () => {
  expect(chainId([A, B])).not.toBe(chainId([B, A]));
});

test("an empty stack and malformed diff IDs are refused with the layer named", () => {
  expect(() => chainId([])).toThrow(InvalidArgumentError);
  expect(() => chainIds([A, "sha256:xyz"])).toThrow('invalid diff ID of layer 1 "sha256:xyz": sha256 wants 64 lower-case hex digits');
  expect(() => chainIds([A.toUpperCase()])).toThrow(InvalidArgumentError);
  expect(() => chainIds(["a".repeat(64)])).toThrow(/want algorithm:hex/);
});

test("validateDigest accepts the OCI grammar (other algorithms too) and refuses path tricks", () => {
  expect(() => validateDigest(A)).not.toThrow();
  expect(() => validateDigest(`sha512:${"0".repeat(128)}`)).not.toThrow();
  expect(() => validateDigest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8")).not.toThrow();
  for (const bad of ["", "sha256:", ":abc", "sha256:../../etc", "sha256:a/b", `sha256:${"a".repeat(64)}\n`, `x:${"a".repeat(300)}`]) {
    expect(() => validateDigest(bad, "chain ID")).toThrow(/invalid chain ID/);
  }
});
