// bun:ffi's cc() does not work in a --compile binary; ours ships libbunker.so embedded through an
// import attribute. This proves the compiled binary dlopens the embedded copy and calls into it.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describeWith } from "../support/require.ts";

describeWith([], "native library in a compiled binary", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync("/tmp/bunker-compiled-");
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test("bun build --compile embeds libbunker.so and the binary calls it", async () => {
    const sysDir = resolve(import.meta.dir, "../../src/sys");
    writeFileSync(
      join(dir, "entry.ts"),
      [
        `import { sys } from ${JSON.stringify(join(sysDir, "index.ts"))};`,
        `import { nativeLibraryPath } from ${JSON.stringify(join(sysDir, "ffi.ts"))};`,
        "sys().setSubreaper(true);",
        "console.log(JSON.stringify({ lib: nativeLibraryPath, subreaper: sys().isSubreaper() }));",
      ].join("\n"),
    );
    const build = Bun.spawn([process.execPath, "build", "--compile", join(dir, "entry.ts"), "--outfile", join(dir, "entry")], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, , stderr] = await Promise.all([build.exited, new Response(build.stdout).text(), new Response(build.stderr).text()]);
    expect({ code, stderr }).toMatchObject({ code: 0 });
    // Run from elsewhere: the binary must not need native/ next to it.
    const run = Bun.spawn([join(dir, "entry")], { cwd: "/", stdout: "pipe", stderr: "pipe" });
    const [rc, out, err] = await Promise.all([run.exited, new Response(run.stdout).text(), new Response(run.stderr).text()]);
    expect({ rc, err }).toEqual({ rc: 0, err: "" });
    const result = JSON.parse(out) as { lib: string; subreaper: boolean };
    expect(result.subreaper).toBe(true);
    expect(result.lib).toStartWith("/$bunfs/");
  }, 60_000);
});
