// src/registry: the OCI distribution client (pull side), its auth and credentials, platform choice,
// image references, and fetchImage, which pulls an image into the content store.
export * from "./reference.ts";
export * from "./auth.ts";
export * from "./credentials.ts";
export * from "./platform.ts";
export * from "./client.ts";
export * from "./pull.ts";
