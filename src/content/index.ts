// src/content: the content store (`<root>/content`, an OCI image layout) and the OCI types it shares
// with the registry client and the image store.
export * from "./digest.ts";
export * from "./oci.ts";
export * from "./store.ts";
export * from "./names.ts";
export { acquireLock, tryLock, type HeldLock } from "../sys/filelock.ts";
