// A private containerd with its CRI plugin on, for driving bunker's shim the way kubelet does
// (issue #19). Two runtime handlers, as a cluster's RuntimeClasses would name them: `bunker`
// (io.containerd.bunker.v1, our shim, grouped one per pod by io.kubernetes.cri.sandbox-id) and
// `runc` (io.containerd.runc.v2, Debian's Go shim: the reference every case is also run against).
// The default handler is chosen per environment; pods may still name either.
//
// The config keys are the ones this machine needs (issue #19, "Facts found"): no CAP_SYS_RESOURCE
// for the sandbox's oom_score_adj -998 (restrict_oom_score_adj), netns pins under the private state
// dir, a streaming server on 127.0.0.1 with a kernel-chosen port, CNI from Debian's
// containernetworking-plugins with a config dir and host-local lease dir of the test's own. The
// sandbox and workload images are built offline from busybox-static and imported with `ctr`, so
// nothing is pulled. Every pod gets a cgroup parent under one per-environment root, so stop() can
// remove every cgroup the environment made (containerd 1.6 leaves the parents on cgroup v1).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { startContainerd, type TestContainerd } from "../containerd.ts";
import type { ContainerdBuild } from "../containerd-versions.ts";
import { endShims, shimPath } from "../shim-env.ts";
import { removeAtEnd } from "../cleanup.ts";
import { configVersionOf } from "../../../src/cli/containerd-config.ts";
import { CriClient } from "./client.ts";

export const PAUSE_IMAGE = "bunker.test/cri/pause:1";
export const BUSYBOX_IMAGE = "bunker.test/cri/busybox:1";
export const BUNKER_RUNTIME_TYPE = "io.containerd.bunker.v1";
export const RUNC_RUNTIME_TYPE = "io.containerd.runc.v2";
/**
 * The RuntimeClass handlers every environment has: bunker (one shim per pod, as CRI groups), runc.v2,
 * and bunker-shared: bunker with the handler option `group = "namespace"`, every pod of the handler
 * in one shim process (in the options table on containerd 1.7+, which passes it as config_body; in a
 * ConfigPath file on 1.6, which passes only the path); bunker-spare: bunker with `spare = true`, a
 * warm spare serve process taking each new pod's socket (src/shim/spare.ts), passed the same ways.
 */
export type Handler = "bunker" | "runc" | "bunker-shared" | "bunker-spare";

/** The handlers that are bunker with one handler option, and that option's TOML line. */
const OPTION_HANDLERS: Record<string, string> = { "bunker-shared": 'group = "namespace"', "bunker-spare": "spare = true" };

/** The ConfigPath file of an option handler (what containerd 1.6 passes instead of the table). */
const handlerConfigPath = (dir: string, name: string): string => join(dir, `${name}.toml`);
const NAMESPACE = "k8s.io";
const REPO = resolve(import.meta.dir, "../../..");

export interface CriEnvOptions {
  /** The handler a pod with no runtime_handler gets (the cluster's default RuntimeClass). */
  defaultHandler: Handler;
  /** A CNI bridge network (bridge + host-local + loopback) on this /24 prefix, e.g. "10.88.7". */
  bridgeSubnet?: string;
  /** Run containerd in this process's network namespace (`nsenter --net=/proc/PID/ns/net`). */
  netnsPid?: number;
  /** The containerd build (tests/support/containerd-versions.ts); default the one on PATH. */
  build?: ContainerdBuild;
}

let imagesBuilt: { pause: string; busybox: string } | undefined;

/** The pause and workload image archives (built once per test process). */
export function criImageArchives(): { pause: string; busybox: string } {
  if (imagesBuilt) return imagesBuilt;
  const dir = mkdtempSync("/tmp/bunker-cri-images-");
  removeAtEnd(dir);
  const build = (out: string, name: string, cmd: string[]) => {
    const r = Bun.spawnSync([process.execPath, join(REPO, "scripts/busybox-image.ts"), out, name, ...cmd], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`busybox-image.ts ${name} failed: ${r.stderr.toString()}`);
    return out;
  };
  // The sandbox's one process only waits to be killed (containerd stops a sandbox with SIGKILL), as
  // Kubernetes' pause does; busybox's sleep is enough for that.
  imagesBuilt = {
    pause: build(join(dir, "pause.tar"), PAUSE_IMAGE, ["sleep", "2147483647"]),
    busybox: build(join(dir, "busybox.tar"), BUSYBOX_IMAGE, ["sh"]),
  };
  return imagesBuilt;
}

/**
 * The CRI plugin's config. containerd 1.6/1.7 read version 2 (everything under io.containerd.grpc.v1.cri);
 * 2.x reads version 3, where the runtimes, CNI and sandbox settings moved to io.containerd.cri.v1.runtime
 * and the images to io.containerd.cri.v1.images: written in 2.x's own form, as a cluster's config is
 * (2.x would migrate version 2, but then the version 3 paths `bunker install` prints go untested).
 */
function criConfig(dir: string, opts: CriEnvOptions, version: 2 | 3): string {
  const q = (s: string) => JSON.stringify(s);
  const inline = opts.build !== undefined && (opts.build.major > 1 || Number(opts.build.line.split(".")[1]) >= 7);
  const grpc = 'plugins."io.containerd.grpc.v1.cri"';
  const runtime = version === 3 ? 'plugins."io.containerd.cri.v1.runtime"' : grpc;
  const images = version === 3 ? 'plugins."io.containerd.cri.v1.images"' : `${grpc}.containerd`;
  const lines = [
    `[${grpc}]`,
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    ...(version === 2 ? [`  sandbox_image = ${q(PAUSE_IMAGE)}`] : []),
    ...(version === 3 ? [`[${runtime}]`] : []),
    "  restrict_oom_score_adj = true",
    "  netns_mounts_under_state_dir = true",
    `[${runtime}.containerd]`,
    `  default_runtime_name = ${q(opts.defaultHandler)}`,
    `[${runtime}.containerd.runtimes.bunker]`,
    `  runtime_type = ${q(BUNKER_RUNTIME_TYPE)}`,
    `[${runtime}.containerd.runtimes.runc]`,
    `  runtime_type = ${q(RUNC_RUNTIME_TYPE)}`,
    ...Object.entries(OPTION_HANDLERS).flatMap(([name, option]) => [
      `[${runtime}.containerd.runtimes.${name}]`,
      `  runtime_type = ${q(BUNKER_RUNTIME_TYPE)}`,
      `[${runtime}.containerd.runtimes.${name}.options]`,
      // as the README tells operators: 1.7+ pass the table itself (config_body), 1.6 only a file
      inline ? `  ${option}` : `  ConfigPath = ${q(handlerConfigPath(dir, name))}`,
    ]),
    `[${runtime}.cni]`,
    version === 3 ? '  bin_dirs = ["/usr/lib/cni"]' : '  bin_dir = "/usr/lib/cni"',
    `  conf_dir = ${q(join(dir, "cni/net.d"))}`,
    ...(version === 3 ? [`[${images}]`, '  snapshotter = "overlayfs"', `[${images}.pinned_images]`, `  sandbox = ${q(PAUSE_IMAGE)}`] : []),
    "",
  ];
  if (version === 2) lines.splice(lines.indexOf(`[${runtime}.containerd]`) + 1, 0, '  snapshotter = "overlayfs"');
  return lines.join("\n");
}

/** A bridge conflist whose leases live under the environment's dir, never /var/lib/cni. */
function writeBridgeConfig(dir: string, subnet: string, bridge: string): void {
  const confDir = join(dir, "cni/net.d");
  mkdirSync(confDir, { recursive: true });
  const conflist = {
    cniVersion: "0.4.0",
    name: "bunker-cri-test",
    plugins: [
      {
        type: "bridge",
        bridge,
        isGateway: true,
        ipMasq: false,
        ipam: { type: "host-local", ranges: [[{ subnet: `${subnet}.0/24` }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: join(dir, "cni/ipam") },
      },
      { type: "loopback" },
    ],
  };
  writeFileSync(join(confDir, "10-bunker-cri-test.conflist"), JSON.stringify(conflist, null, 2));
}

export class CriEnv {
  readonly client: CriClient;
  /** Every pod's cgroup_parent lies under this (cgroupfs driver). */
  readonly cgroupRoot: string;
  readonly logRoot: string;

  constructor(
    readonly ctd: TestContainerd,
    readonly opts: CriEnvOptions,
    tag: string,
  ) {
    this.client = new CriClient(ctd.address);
    this.cgroupRoot = `/bunker-cri-${tag}`;
    this.logRoot = join(ctd.dir, "pod-logs");
  }

  /**
   * kill -9 containerd (by pid) and start it again with the same dirs; shims and pods keep running.
   * Returns how long the CRI plugin took to answer again after containerd's gRPC did (its recovery
   * connects to every pod's shim).
   */
  async restartContainerd(): Promise<number> {
    this.client.close();
    await this.ctd.restart();
    return await this.waitCriReady();
  }

  /** Waits until CRI answers Status (it says "server is not initialized yet" while it recovers). */
  async waitCriReady(timeoutMs = 30_000): Promise<number> {
    const started = Date.now();
    for (;;) {
      try {
        await this.client.runtime.status({}, { timeoutMs: 5_000 });
        return Date.now() - started;
      } catch (err) {
        if (Date.now() - started > timeoutMs) throw err;
        await Bun.sleep(50);
      }
    }
  }

  /** Removes every pod through CRI, ends every process of this containerd, removes its cgroups and dirs. */
  async stop(): Promise<void> {
    try {
      const pods = await this.client.runtime.listPodSandbox({}, { timeoutMs: 20_000 });
      for (const pod of pods.items) {
        await this.client.runtime.stopPodSandbox({ podSandboxId: pod.id }, { timeoutMs: 30_000 }).catch(() => undefined);
        await this.client.runtime.removePodSandbox({ podSandboxId: pod.id }, { timeoutMs: 30_000 }).catch(() => undefined);
      }
    } catch {
      // containerd is gone or broken: stop() below ends its processes by pid anyway
    }
    this.client.close();
    // BUNKER_CRI_LOG_DIR=<dir> keeps each containerd's log (what it said about the shims) past stop()
    const keep = process.env.BUNKER_CRI_LOG_DIR;
    if (keep) {
      mkdirSync(keep, { recursive: true });
      copyFileSync(this.ctd.logPath, join(keep, `containerd-${this.opts.defaultHandler}-${this.cgroupRoot.slice(12)}.log`));
    }
    await endShims(this.ctd).catch(() => undefined);
    await this.ctd.stop();
    deleteRuncStateUnder(this.ctd.dir);
    removeCgroupTree(this.cgroupRoot);
  }
}

/**
 * runc state the shims left in containerd's runc root for containers whose bundle was under `dir`
 * (runc.v2 leaves it when its shim is killed; containerd then no longer lists the container).
 */
function deleteRuncStateUnder(dir: string): void {
  const root = `/run/containerd/runc/${NAMESPACE}`;
  let ids: string[];
  try {
    ids = readdirSync(root);
  } catch {
    return;
  }
  for (const id of ids) {
    let state: string;
    try {
      state = readFileSync(join(root, id, "state.json"), "utf8");
    } catch {
      continue;
    }
    if (!state.includes(`"bundle=${dir}/`)) continue;
    Bun.spawnSync(["runc", "--root", root, "delete", "--force", id], { stdout: "ignore", stderr: "ignore" });
  }
}

/** rmdir a cgroup and its children under every v1 hierarchy (or the v2 one); the processes are gone by now. */
export function removeCgroupTree(path: string): void {
  const mounts = existsSync("/sys/fs/cgroup/cgroup.controllers")
    ? ["/sys/fs/cgroup"]
    : readdirSync("/sys/fs/cgroup").map((c) => join("/sys/fs/cgroup", c));
  const remove = (dir: string) => {
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) remove(join(dir, e));
    try {
      rmdirSync(dir);
    } catch {
      // busy (a process survived) or already gone: stop() reported survivors already
    }
  };
  for (const m of mounts) remove(join(m, path));
}

/** A containerd with CRI and both handlers, the two images imported into k8s.io. */
export async function startCriEnv(opts: CriEnvOptions): Promise<CriEnv> {
  const images = criImageArchives();
  const tag = randomBytes(4).toString("hex");
  const dir = mkdtempSync("/tmp/bunker-cri-");
  if (opts.bridgeSubnet) writeBridgeConfig(dir, opts.bridgeSubnet, `cri${tag}`);
  else mkdirSync(join(dir, "cni/net.d"), { recursive: true });
  for (const [name, option] of Object.entries(OPTION_HANDLERS)) writeFileSync(handlerConfigPath(dir, name), `${option}\n`);
  const configVersion = configVersionOf(opts.build?.major ?? 1);
  const ctd = await startContainerd({
    dir,
    cri: true,
    configVersion,
    extraConfig: criConfig(dir, opts, configVersion),
    path: await shimPath(),
    build: opts.build,
    env: { BUNKER_SHIM_LINGER_MS: "0" },
    wrap: opts.netnsPid === undefined ? undefined : ["nsenter", `--net=/proc/${opts.netnsPid}/ns/net`, "--"],
  });
  const env = new CriEnv(ctd, opts, tag);
  try {
    for (const archive of [images.pause, images.busybox]) {
      const r = await ctd.ctr(["-n", NAMESPACE, "images", "import", "--platform", "linux/amd64", archive]);
      if (r.code !== 0) throw new Error(`ctr images import ${archive}: ${r.stderr}`);
    }
    await env.waitCriReady();
  } catch (err) {
    await env.stop().catch(() => undefined);
    throw err;
  }
  return env;
}
