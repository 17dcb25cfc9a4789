// bunker installed as a dependency, as a user gets it (issue #20): the repo packed by `bun pm pack`,
// a fresh project outside the repo (`bun init -y`, `bun add <tarball>`), and a `bun test` file in
// that project. It proves what only an installed package can: the entry resolves through
// package.json "exports", the native core loads from native/prebuilt/ (the package ships no dev
// build), and the shim the embedded manager would start is the package's bin/ launcher, found
// with no selfDir, running with no bun on PATH. The library's own example joins this file later.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { removeAtEnd } from "../support/cleanup.ts";
import { type FreshProject, freshProject, packedTarball, runIn } from "../support/package.ts";
import { allProcs, cmdline, killSame, waitGone } from "../support/procs.ts";
import { describeWith } from "../support/require.ts";
import { copyRootfs } from "../support/rootfs.ts";

const CROSS_CC = process.arch === "arm64" ? "x86_64-linux-gnu-gcc" : "aarch64-linux-gnu-gcc";

// The project's own test: it may import only what a user can, plus the package's files by path for
// what the public entry does not expose (where the library came from, the shim resolution).
const USER_TEST = `
import { expect, test } from "bun:test";
import { join } from "node:path";
import * as entry from "bunker";

const pkg = join(import.meta.dir, "node_modules", "bunker");

test("the package's entry loads through its exports", () => {
  expect(Object.keys(entry).length).toBeGreaterThan(0);
});

test("the native core loads from the package's prebuilt library", async () => {
  const { sys } = await import(join(pkg, "src/sys/index.ts"));
  const { nativeLibraryPath } = await import(join(pkg, "src/sys/ffi.ts"));
  expect(nativeLibraryPath).toBe(join(pkg, "native", "prebuilt", "linux-" + process.arch, "libbunker.so"));
  const [a, b] = sys().socketpair();
  try {
    expect(sys().peerCred(a).pid).toBe(process.pid);
  } finally {
    sys().close(a);
    sys().close(b);
  }
});

test("the bunker shim resolves to the package's launcher, which runs with no bun on PATH", async () => {
  const { resolveShimBinary } = await import(join(pkg, "src/runtime/binary.ts"));
  const shim = resolveShimBinary("io.containerd.bunker.v1", { path: "", selfDir: "/nonexistent" });
  expect(shim).toBe(join(pkg, "bin", "containerd-shim-bunker-v1"));
  const p = Bun.spawnSync([shim, "-v"], { env: { PATH: "/usr/bin:/bin", BUNKER_BUN: process.execPath } });
  expect({ code: p.exitCode, stderr: p.stderr.toString() }).toEqual({ code: 0, stderr: "" });
  expect(p.stdout.toString()).toContain("Runtime:  io.containerd.bunker.v1");
});
`;

// A container through the embedded manager, as the library will run one, with no selfDir: the shim
// must be the package's launcher (its serve process runs the package's src/shims/bunker/bin.ts).
// The container waits for /go so that the shim is seen alive; the outer test ends what is left.
const USER_EMBEDDED_TEST = `
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const pkg = join(import.meta.dir, "node_modules", "bunker");
const dir = process.env.BUNKER_PACKAGE_TEST_DIR!;
const rootfs = process.env.BUNKER_PACKAGE_TEST_ROOTFS!;

function cmdlinesWith(text: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^[0-9]+$/.test(p))) {
    try {
      const cmd = readFileSync(join("/proc", pid, "cmdline"), "utf8").split("\\0").join(" ");
      if (cmd.includes(text)) out.push(cmd);
    } catch {}
  }
  return out;
}

test("the embedded manager starts the package's shim and runs a container", async () => {
  const { Executor, startEmbeddedRuntime } = await import(join(pkg, "src/executor/index.ts"));
  const { generateSpec } = await import(join(pkg, "src/oci/spec.ts"));
  const address = join(dir, "embedded.sock");
  const rt = await startEmbeddedRuntime({ root: join(dir, "root"), state: join(dir, "state"), address });
  const exited = Promise.withResolvers<string>();
  const exec = new Executor({ manager: rt.manager, namespace: "pkgtest", rootDir: join(dir, "executor"), exitHandler: { handleExitEvent: (id: string) => exited.resolve(id) } });
  let out = "";
  const said = Promise.withResolvers<void>();
  const spec = generateSpec({ namespace: "pkgtest", id: "hello", args: ["sh", "-c", "echo hello from the package; while [ ! -e /go ]; do sleep 0.05; done"] });
  try {
    await exec.create("hello", { ...spec, root: { path: rootfs, readonly: false } }, (chunk: Uint8Array | null) => {
      if (chunk) out += new TextDecoder().decode(chunk);
      if (out.includes("\\n")) said.resolve();
    }, null);
    await said.promise;
    expect(out).toBe("hello from the package\\n");
    const shims = cmdlinesWith(address).filter((c) => c.includes(" -socket "));
    expect(shims.length).toBe(1);
    expect(shims[0]).toContain(join(pkg, "src", "shims", "bunker", "bin.ts"));
    writeFileSync(join(rootfs, "go"), "");
    expect(await exited.promise).toBe("hello");
  } finally {
    await exec.close();
    rt.close();
  }
}, 60_000);
`;

// The 15 lines: an image, a published port waited on, exec with an exit code, cleanup by
// \`await using\`. Run in the project under \`unshare --net --mount\` (bridges, rules and pins die with
// it), embedded (no daemon), on a root and state of the test's own.
const USER_EXAMPLE = `
import { expect, test } from "bun:test";
import { bunker, Wait } from "bunker";

test("a web server from an image: a port to wait on, exec with an exit code, removed at the end", async () => {
  await bunker.loadImage(process.env.BUSYBOX_ARCHIVE!);
  await using web = await bunker.run("busybox", {
    cmd: ["httpd", "-f", "-p", "8080", "-h", "/etc"],
    ports: { 8080: 0 },
    waitFor: Wait.port(8080),
  });
  expect((await fetch(\`http://\${web.host}:\${web.port(8080)}/hostname\`)).status).toBe(200);
  const r = await web.exec(["sh", "-c", "echo hi; exit 3"]);
  expect([r.exitCode, r.stdout]).toEqual([3, "hi\\n"]);
});
`;

describeWith(["root", "bin:runc", "bin:make", "bin:cc", `bin:${CROSS_CC}`, "bin:tar"], "bunker as an installed package", () => {
  let tarball: string;
  let project: FreshProject;

  let scratch: string;

  beforeAll(async () => {
    tarball = await packedTarball();
    project = await freshProject(tarball);
    scratch = mkdtempSync("/tmp/bunker-package-run-");
    removeAtEnd(scratch);
  }, 300_000);

  afterAll(async () => {
    // what the embedded test's manager started and may have left (a lingering shim): by pid
    const left = allProcs().filter((p) => scratch !== undefined && cmdline(p.pid).includes(scratch));
    for (const p of left) killSame(p, "SIGKILL");
    await waitGone(left, 5_000);
  });

  test("the tarball ships the sources, launchers and both prebuilt architectures, and nothing of the repo's own", async () => {
    const r = await runIn("/", ["tar", "-tzvf", tarball]);
    expect(r.code).toBe(0);
    const entries = r.stdout.trim().split("\n").map((line) => ({ mode: line.split(/\s+/)[0]!, path: line.split(/\s+/).pop()! }));
    const paths = entries.map((e) => e.path);
    for (const want of [
      "package/package.json",
      "package/src/native.ts",
      "package/src/sys/ffi.ts",
      "package/native/prebuilt/linux-x64/libbunker.so",
      "package/native/prebuilt/linux-x64/bunker-init",
      "package/native/prebuilt/linux-arm64/libbunker.so",
      "package/native/prebuilt/linux-arm64/bunker-init",
      "package/bin/containerd-shim-bunker-v1",
      "package/bin/bunker",
    ]) {
      expect(paths).toContain(want);
    }
    for (const launcher of entries.filter((e) => e.path.startsWith("package/bin/"))) expect(launcher.mode).toStartWith("-rwx");
    expect(paths.filter((p) => /^package\/(tests|bench|dist|tools|proto|node_modules)\//.test(p) || p.endsWith("/libbunker.so") && !p.includes("/prebuilt/"))).toEqual([]);
  });

  test("a user's bun test imports bunker, loads the native core and runs the shim launcher", async () => {
    project.write("bunker-package.test.ts", USER_TEST);
    const r = await project.bunTest(["./bunker-package.test.ts"]);
    // bun test reports on stderr
    expect({ code: r.code, report: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stderr).toContain(" 3 pass");
    expect(r.stderr).toContain(" 0 fail");
  }, 180_000);

  test("a user's tsc type-checks code that imports bunker: the types come from the package's sources", async () => {
    project.write("uses-bunker.ts", 'import * as entry from "bunker";\nexport const names: string[] = Object.keys(entry);\n');
    // bun init's tsconfig and TypeScript, as a user has them; the project's own index.ts is checked too
    const r = await project.run([join(project.dir, "node_modules", ".bin", "tsc"), "--noEmit", "-p", "."], {}, 300_000);
    expect({ code: r.code, out: r.stdout + r.stderr }).toEqual({ code: 0, out: "" });
  }, 300_000);

  test("the bunker CLI runs from node_modules/.bin with the bun it is given, and says so when it has none", async () => {
    const cli = join(project.dir, "node_modules", ".bin", "bunker");
    const ok = await project.run([cli, "version"], { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", BUNKER_BUN: process.execPath });
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: "" });
    expect(ok.stdout).toStartWith("bunker 0.1.0\n");
    const none = await project.run([cli, "version"], { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", BUNKER_BUN: undefined });
    expect(none.code).toBe(127);
    expect(none.stderr.trim()).toBe("bunker: bun is not on PATH (or set BUNKER_BUN to it)");
  });

  test("a user's bun test runs a container through the embedded manager with the package's shim launcher", async () => {
    const rootfs = await copyRootfs(join(scratch, "rootfs"));
    project.write("bunker-embedded.test.ts", USER_EMBEDDED_TEST);
    // no bun on PATH: the manager hands the shim its own bun (BUNKER_BUN)
    const r = await project.bunTest(["./bunker-embedded.test.ts"], {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      BUNKER_PACKAGE_TEST_DIR: scratch,
      BUNKER_PACKAGE_TEST_ROOTFS: rootfs,
    });
    expect({ code: r.code, report: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stderr).toContain(" 1 pass");
  }, 180_000);

  test("the issue's 15-line example passes in a fresh project: image, port, exec exit code, nothing left", async () => {
    const archive = join(scratch, "busybox.tar");
    const built = Bun.spawnSync([process.execPath, join(import.meta.dir, "../../scripts/busybox-image.ts"), archive], { stderr: "pipe" });
    expect(built.exitCode).toBe(0);
    project.write("example.test.ts", USER_EXAMPLE);
    const dirs = { BUNKER_ROOT: join(scratch, "ex-root"), BUNKER_STATE: join(scratch, "ex-state"), BUNKER_ADDRESS: join(scratch, "ex.sock") };
    const r = await project.run(
      ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", process.execPath, "test", "--timeout", "120000", "./example.test.ts"],
      { ...dirs, BUSYBOX_ARCHIVE: archive, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
    );
    expect({ code: r.code, report: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stderr).toContain(" 1 pass");
    // the container, its layer and its network went with `await using`
    const cli = join(project.dir, "node_modules", ".bin", "bunker");
    const ps = await project.run([cli, "--root", dirs.BUNKER_ROOT, "--state", dirs.BUNKER_STATE, "--address", dirs.BUNKER_ADDRESS, "ps", "-a", "-q"], { BUNKER_BUN: process.execPath });
    expect({ code: ps.code, out: ps.stdout }).toEqual({ code: 0, out: "" });
    expect(readdirSync(join(dirs.BUNKER_ROOT, "containers")).length).toBe(0);
  }, 300_000);
});
