// containerd's identifier rule, applied to container ids and namespaces before any path is built
// from them: it rules out "..", "/", NUL and anything a filesystem or a shell could misread.
import { InvalidArgumentError } from "./errdefs.ts";

export const MAX_IDENTIFIER_LENGTH = 76;
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;

export function validateIdentifier(value: string, what = "identifier"): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new InvalidArgumentError(`${what} must not be empty`);
  }
  if (value.length > MAX_IDENTIFIER_LENGTH) {
    throw new InvalidArgumentError(`${what} ${JSON.stringify(value.slice(0, 20) + "…")} is longer than ${MAX_IDENTIFIER_LENGTH} characters`);
  }
  if (!IDENTIFIER.test(value)) {
    throw new InvalidArgumentError(`${what} ${JSON.stringify(value)} must match ${IDENTIFIER.source}`);
  }
  return value;
}

/**
 * Names bunker's --root and --state use for subsystems beside the per-namespace dirs
 * (<state>/runc now; <root>/containers, content, snapshots, networks, init as they come): a namespace of
 * one of these names would share a folder with that subsystem, so none may be named like one.
 */
export const RESERVED_NAMESPACES: readonly string[] = ["runc", "containers", "content", "snapshots", "networks", "init"];

/** A container namespace: an identifier that is not one of the reserved subsystem names. */
export function validateNamespace(value: string): string {
  validateIdentifier(value, "namespace");
  if (RESERVED_NAMESPACES.includes(value)) {
    throw new InvalidArgumentError(`namespace ${JSON.stringify(value)} is reserved: bunker keeps its own ${value} state under that name`);
  }
  return value;
}
