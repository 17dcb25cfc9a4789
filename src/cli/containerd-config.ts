// The runtime section `bunker install` prints or adds to containerd's config.toml, in the config
// version the installed containerd reads. containerd 1.6/1.7 read version 2, where CRI's runtimes
// live under [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.NAME]; containerd 2.x reads
// version 3, where the CRI plugin was split and the runtimes moved to
// [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.NAME] (containerd 2.x migrates a
// version-2 file at load, but a version-2 section appended to a version-3 file is simply unused).
//
// Which one: --containerd-version if given, else the `version = N` the config file being edited
// declares (its own words win over the binary's: the file is what containerd will parse), else
// `containerd --version` (containerd 2.x prints "containerd github.com/containerd/containerd/v2
// v2.1.0 <rev>", 1.x "containerd github.com/containerd/containerd 1.6.20~ds1 <rev>"), else version 2.
import { InvalidArgumentError } from "../errdefs.ts";
import { BUNKER_RUNTIME } from "../contract/runtime.ts";

export type ConfigVersion = 2 | 3;

const HEADERS: Record<ConfigVersion, string> = {
  2: '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.bunker]',
  3: "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.bunker]",
};

export function sectionHeader(version: ConfigVersion): string {
  return HEADERS[version];
}

/** The runtime section that makes containerd's CRI use bunker's shim, in the given config version. */
export function containerdSection(version: ConfigVersion): string {
  return `${HEADERS[version]}\n  runtime_type = "${BUNKER_RUNTIME}"\n`;
}

/** Whether a config already has bunker's section (either TOML quoting of the plugin name). */
export function hasSection(config: string, version: ConfigVersion): boolean {
  const header = HEADERS[version];
  const other = header.includes("'") ? header.replaceAll("'", '"') : header.replaceAll('"', "'");
  return config.includes(header) || config.includes(other);
}

/** The major version of a containerd version string ("2.1.0", "v1.7.24", "1.6.20~ds1"). */
export function containerdMajor(version: string): number {
  const m = /^v?(\d+)\.\d+/.exec(version.trim());
  if (!m) throw new InvalidArgumentError(`not a containerd version: ${JSON.stringify(version)} (want e.g. 1.7 or 2.1.0)`);
  return Number(m[1]);
}

/** The version in `containerd --version`'s output; undefined when it has none. */
export function versionFromOutput(output: string): string | undefined {
  const fields = output.trim().split(/\s+/);
  return fields.find((f) => /^v?\d+\.\d+/.test(f));
}

/** The `version = N` a config.toml declares at top level; undefined when it declares none. */
export function declaredConfigVersion(config: string): number | undefined {
  for (const line of config.split("\n")) {
    if (/^\s*\[/.test(line)) return undefined;
    const m = /^\s*version\s*=\s*(\d+)\s*(?:#.*)?$/.exec(line);
    if (m) return Number(m[1]);
  }
  return undefined;
}

export const configVersionOf = (major: number): ConfigVersion => (major >= 2 ? 3 : 2);

/** `containerd --version` of the containerd on PATH; undefined when there is none or it fails. */
export function installedContainerdVersion(): string | undefined {
  const containerd = Bun.which("containerd", { PATH: `${process.env.PATH ?? ""}:/usr/local/bin:/usr/bin` });
  if (!containerd) return undefined;
  try {
    const r = Bun.spawnSync([containerd, "--version"], { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
    return r.success ? versionFromOutput(r.stdout.toString()) : undefined;
  } catch {
    return undefined;
  }
}

export interface ConfigVersionChoice {
  version: ConfigVersion;
  /** Why, for the printed comment ("containerd 2.1.0", "--containerd-version 1.7", ...). */
  because: string;
}

/** Which config version to write (see the header for the order). */
export function chooseConfigVersion(o: { flag?: string; config?: string; installed?: () => string | undefined }): ConfigVersionChoice {
  if (o.flag !== undefined) return { version: configVersionOf(containerdMajor(o.flag)), because: `--containerd-version ${o.flag}` };
  if (o.config !== undefined) {
    const declared = declaredConfigVersion(o.config);
    if (declared === 2 || declared === 3) return { version: declared, because: `the file declares version = ${declared}` };
    if (declared !== undefined) throw new InvalidArgumentError(`containerd config version ${declared} is not supported (want 2 or 3)`);
  }
  const installed = (o.installed ?? installedContainerdVersion)();
  if (installed !== undefined) return { version: configVersionOf(containerdMajor(installed)), because: `containerd ${installed}` };
  return { version: 2, because: "no containerd found: pass --containerd-version for 2.x" };
}
