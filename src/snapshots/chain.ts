// OCI chain IDs (image-spec config.md "Layer ChainID"): the name of a stack of layers, so that two
// images sharing their bottom layers share those committed snapshots. chainID(L0) = diffID(L0),
// chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)), the same rule as containerd's
// identity.ChainID. Digests are checked against the OCI descriptor grammar here once, because a chain
// ID becomes a file name in the snapshot store's index. Hashed with Bun.CryptoHasher, not node:crypto:
// loading node:crypto (and the stream modules under it) cost every `run IMAGE` ~5 ms.
import { InvalidArgumentError } from "../errdefs.ts";

/** `algorithm:encoded` as OCI's descriptor grammar allows (sha256 and sha512 hex are what images use). */
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

/** Throws InvalidArgumentError unless `digest` is a well-formed digest (what = "chain ID", "diff ID"). */
export function validateDigest(digest: string, what = "digest"): void {
  if (typeof digest !== "string" || digest.length > 255 || !DIGEST.test(digest)) {
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(digest)}: want algorithm:hex, e.g. sha256:<64 hex digits>`);
  }
  const [algorithm, encoded] = digest.split(":", 2) as [string, string];
  const want = HEX_LENGTH[algorithm];
  if (want !== undefined && (encoded.length !== want || !/^[0-9a-f]+$/.test(encoded))) {
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(digest)}: ${algorithm} wants ${want} lower-case hex digits`);
  }
}

/** The chain ID of every prefix of the layer stack: result[i] names layers 0..i (what unpack commits). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const [i, diffId] of diffIds.entries()) {
    validateDigest(diffId, `diff ID of layer ${i}`);
    const previous = out[i - 1];
    out.push(previous === undefined ? diffId : `sha256:${new Bun.CryptoHasher("sha256").update(`${previous} ${diffId}`).digest("hex")}`);
  }
  return out;
}

/** The chain ID of the whole stack (the image's top snapshot); an image has at least one layer. */
export function chainId(diffIds: readonly string[]): string {
  if (diffIds.length === 0) throw new InvalidArgumentError("an image needs at least one layer to have a chain ID");
  return chainIds(diffIds).at(-1) as string;
}
