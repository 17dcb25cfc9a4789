// Image helpers of containerd's CRI server that need no image store: the repo digest and tag an
// image is listed under, references split into tags and digests, and the user an image runs as.
import { parseAnyReference, parseDigest, type Reference } from "../registry/reference.ts";
import { parseInt64 } from "../gostd.ts";
import { InvalidArgumentError } from "../errdefs.ts";

/**
 * getRepoDigestAndTag: the tag is the reference itself when it is tagged; the repo digest is the
 * reference when it carries a digest, otherwise name@digest, except for schema1 images, whose
 * content digest is not a repo digest (a schema1 manifest is rewritten when pulled).
 */
export function getRepoDigestAndTag(namedRef: Reference, digest: string, schema1: boolean): { repoDigest: string; repoTag: string } {
  if (!namedRef.named) throw new InvalidArgumentError(`reference ${namedRef.toString()} has no name`);
  let repoTag = "", repoDigest = "";
  if (namedRef.isTagged) repoTag = namedRef.toString();
  if (namedRef.isCanonical) repoDigest = namedRef.toString();
  else if (!schema1) repoDigest = `${namedRef.name}@${parseDigest(digest)}`;
  return { repoDigest, repoTag };
}

/** parseImageReferences: references that parse, split into repo tags and repo digests; the rest are dropped. */
export function parseImageReferences(refs: readonly string[]): { tags: string[]; digests: string[] } {
  const tags: string[] = [], digests: string[] = [];
  for (const ref of refs) {
    let parsed: Reference;
    try {
      parsed = parseAnyReference(ref);
    } catch {
      continue;
    }
    if (parsed.isCanonical) digests.push(parsed.toString());
    else if (parsed.isTagged) tags.push(parsed.toString());
  }
  return { tags, digests };
}

/**
 * getUserFromImage: the image's `User` as a numeric uid or a user name. Only the part before the
 * first `:` counts (a group is ignored); a decimal that fits int64 is a uid, anything else a name.
 */
export function getUserFromImage(user: string): { uid: bigint | null; username: string } {
  if (user === "") return { uid: null, username: "" };
  const first = user.split(":")[0] ?? "";
  const uid = parseInt64(first);
  return uid === null ? { uid: null, username: first } : { uid, username: "" };
}
