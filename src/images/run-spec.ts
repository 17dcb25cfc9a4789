// The OCI spec of a container made from an image: bunker's defaults (oci/spec.ts) with the image's
// config applied as containerd's WithImageConfigArgs and WithUser do (oci/image-config.ts). The
// user is resolved against the image's own /etc/passwd and /etc/group, read through a momentary
// view, only when it names someone: root (no User) and a numeric uid:gid need no file. The run
// flags (oci/run-options.ts, resolved) go on last, so --init wraps the image's own command.
import { applyUser, type ImageConfig, type ImageRunOptions, imageProcess, resolveUser } from "../oci/image-config.ts";
import { applyRunOptions, type RunSpecFlags, type RunSpecOptions } from "../oci/run-options.ts";
import { generateSpec, mergeEnv, type OciSpec, type SpecOptions } from "../oci/spec.ts";
import type { StoredImage } from "./image.ts";
import type { ImageStore } from "./store.ts";

const NUMERIC_USER_AND_GROUP = /^[0-9]+:[0-9]+$/;

export async function imageSpec(store: ImageStore, img: StoredImage, base: Omit<SpecOptions, "args" | "env" | "cwd">, o: ImageRunOptions, runOptions?: RunSpecOptions): Promise<OciSpec> {
  return await configSpec(img.configJson.config ?? {}, (path) => store.readRootfsFile(img, path), base, o, runOptions);
}

/**
 * The same from the config alone: `readRootfsFile` reads a file of the image's root filesystem, and
 * is called only for a user given by name (the run cache's path has no StoredImage, only the config).
 */
export async function configSpec(
  config: ImageConfig,
  readRootfsFile: (path: string) => Promise<string | undefined>,
  base: Omit<SpecOptions, "args" | "env" | "cwd">,
  o: ImageRunOptions,
  runOptions?: RunSpecOptions,
): Promise<OciSpec> {
  const proc = imageProcess(config, o);
  const spec = generateSpec({ ...base, args: proc.args, env: proc.env, cwd: proc.cwd });
  // The image's env is the whole env (imageProcess already gave it PATH when the image set none):
  // generateSpec's default PATH would bring back a PATH that `-e PATH` removed.
  spec.process.env = mergeEnv(base.terminal ? ["TERM=xterm"] : [], proc.env);
  const user = o.user ?? config.User ?? "";
  if (user !== "") {
    const files = NUMERIC_USER_AND_GROUP.test(user)
      ? { passwd: undefined, group: undefined }
      : { passwd: await readRootfsFile("/etc/passwd"), group: await readRootfsFile("/etc/group") };
    applyUser(spec, resolveUser(user, files.passwd, files.group));
  }
  return runOptions ? applyRunOptions(spec, runOptions) : spec;
}

export type { RunSpecFlags, RunSpecOptions };

/**
 * `run`'s spec flags resolved against the host (oci/run-resolve.ts, loaded only then), for image
 * runs by callers that stand above images/ but not above oci/ (the executor); `root` is where
 * --init's binary is written (the store's --root).
 */
export async function resolveRunSpec(flags: RunSpecFlags, root: string): Promise<RunSpecOptions> {
  const { resolveRunOptions } = await import("../oci/run-resolve.ts");
  return resolveRunOptions(flags, { root });
}

/** The stop signal the image asks for (docker's StopSignal), for stop and rm -f. */
export function imageStopSignal(img: StoredImage): string | undefined {
  return configStopSignal(img.configJson.config ?? {});
}

export function configStopSignal(config: ImageConfig): string | undefined {
  return config.StopSignal || undefined;
}
