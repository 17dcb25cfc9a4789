import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { parseArgs } from "../../src/cli/args.ts";
import { chooseConfigVersion, containerdMajor, containerdSection, declaredConfigVersion, versionFromOutput } from "../../src/cli/containerd-config.ts";
import { install } from "../../src/cli/install.ts";

const V2 = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.bunker]\n  runtime_type = "io.containerd.bunker.v1"\n';
const V3 = "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.bunker]\n  runtime_type = \"io.containerd.bunker.v1\"\n";

describe("containerd's config version for bunker's runtime section", () => {
  test("the two sections", () => {
    expect(containerdSection(2)).toBe(V2);
    expect(containerdSection(3)).toBe(V3);
  });

  test("`containerd --version` as 1.6 (Debian), 1.7 and 2.x print it", () => {
    expect(versionFromOutput("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n")).toBe("1.6.20~ds1");
    expect(versionFromOutput("containerd github.com/containerd/containerd v1.7.24 88bf19b2105c8b17560993bee28a01ddc2f97182\n")).toBe("v1.7.24");
    expect(versionFromOutput("containerd github.com/containerd/containerd/v2 v2.1.0 061792f0ecf3684fb30a3a0eb006799b8c6638a7\n")).toBe("v2.1.0");
    expect(versionFromOutput("")).toBeUndefined();
    expect(containerdMajor("1.6.20~ds1")).toBe(1);
    expect(containerdMajor("v2.1.0")).toBe(2);
    expect(() => containerdMajor("latest")).toThrow(InvalidArgumentError);
  });

  test("the flag, then the file's own version, then the installed containerd, then version 2", () => {
    const none = () => undefined;
    expect(chooseConfigVersion({ flag: "2.1", installed: () => "1.6.20" }).version).toBe(3);
    expect(chooseConfigVersion({ flag: "1.7", config: "version = 3\n" }).version).toBe(2);
    expect(chooseConfigVersion({ config: "# mine\nversion = 3\n[plugins]\n", installed: () => "1.7.0" })).toEqual({ version: 3, because: "the file declares version = 3" });
    expect(chooseConfigVersion({ config: "version = 2\n", installed: () => "v2.1.0" }).version).toBe(2);
    expect(chooseConfigVersion({ config: "", installed: () => "v2.1.0" })).toEqual({ version: 3, because: "containerd v2.1.0" });
    expect(chooseConfigVersion({ installed: () => "1.6.20~ds1" }).version).toBe(2);
    expect(chooseConfigVersion({ installed: none }).version).toBe(2);
    expect(() => chooseConfigVersion({ config: "version = 1\n", installed: none })).toThrow("version 1 is not supported");
    expect(declaredConfigVersion("[plugins]\nversion = 3\n")).toBeUndefined();
  });

  test("--containerd-version is parsed", () => {
    const p = parseArgs(["install", "--containerd-version", "2.1"]);
    expect(p.command).toMatchObject({ name: "install", containerdVersion: "2.1" });
  });
});

describe("bunker install prints or writes the section for the containerd at hand", () => {
  let dir: string;
  let source: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-install-"));
    source = join(dir, "built-bunker");
    writeFileSync(source, "#!/bin/sh\n");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("containerd 1.6/1.7: the version-2 path", () => {
    const lines = install({ prefix: join(dir, "p"), installedContainerd: () => "1.6.20~ds1" }, source, true);
    expect(lines.join("\n")).toContain(`# containerd config.toml (version 2, containerd 1.6.20~ds1): add, then restart containerd\n${V2.trimEnd()}`);
  });

  test("containerd 2.x: the version-3 path", () => {
    const lines = install({ prefix: join(dir, "p"), installedContainerd: () => "v2.1.0" }, source, true);
    expect(lines.join("\n")).toContain(`# containerd config.toml (version 3, containerd v2.1.0): add, then restart containerd\n${V3.trimEnd()}`);
    expect(lines.join("\n")).not.toContain("io.containerd.grpc.v1.cri");
  });

  test("into a version-3 config file, once (either quoting counts as present)", () => {
    const file = join(dir, "config.toml");
    writeFileSync(file, "version = 3\n");
    install({ prefix: join(dir, "p"), containerdConfig: file, installedContainerd: () => "1.7.0" }, source, true);
    expect(readFileSync(file, "utf8")).toBe(`version = 3\n\n${V3}`);
    const again = install({ prefix: join(dir, "p"), containerdConfig: file }, source, true);
    expect(again.at(-1)).toContain("already has");
    writeFileSync(file, `version = 3\n${V3.replaceAll("'", '"')}`);
    expect(install({ prefix: join(dir, "p"), containerdConfig: file }, source, true).at(-1)).toContain("already has");
  });

  test("a bad --containerd-version installs nothing", () => {
    expect(() => install({ prefix: join(dir, "p"), containerdVersion: "next" }, source, true)).toThrow(InvalidArgumentError);
    expect(existsSync(join(dir, "p"))).toBe(false);
  });
});
