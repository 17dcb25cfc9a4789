// The image config → spec rules of containerd's WithImageConfigArgs/WithUser, as docker users know them.
import { describe, expect, test } from "bun:test";
import { applyEnv, applyUser, imageProcess, resolveUser } from "../../src/oci/image-config.ts";
import { DEFAULT_PATH_ENV, generateSpec } from "../../src/oci/spec.ts";

const passwd = ["root:x:0:0:root:/root:/bin/sh", "# a comment", "daemon:x:1:1:daemon:/usr/sbin:/bin/false", "app:x:1000:1000:App:/home/app:/bin/sh", "broken line"].join("\n");
const group = ["root:x:0:", "daemon:x:1:", "app:x:1000:", "wheel:x:10:app,root", "audio:x:29:app", "staff:x:50:daemon"].join("\n");

describe("imageProcess", () => {
  const cfg = { Entrypoint: ["/entry.sh"], Cmd: ["serve", "--port", "80"], Env: ["PATH=/opt/bin:/bin", "LANG=C"], WorkingDir: "/srv" };

  test("args are Entrypoint + Cmd, or Entrypoint + the user's args", () => {
    expect(imageProcess(cfg, { args: [] }).args).toEqual(["/entry.sh", "serve", "--port", "80"]);
    expect(imageProcess(cfg, { args: ["sh", "-c", "true"] }).args).toEqual(["/entry.sh", "sh", "-c", "true"]);
  });

  test("--entrypoint replaces Entrypoint and drops Cmd; an empty one clears it", () => {
    expect(imageProcess(cfg, { args: [], entrypoint: "/bin/sh" }).args).toEqual(["/bin/sh"]);
    expect(imageProcess(cfg, { args: ["-c", "id"], entrypoint: "/bin/sh" }).args).toEqual(["/bin/sh", "-c", "id"]);
    expect(imageProcess(cfg, { args: ["/bin/true"], entrypoint: "" }).args).toEqual(["/bin/true"]);
  });

  test("no command at all is a clear error", () => {
    expect(() => imageProcess({}, { args: [] })).toThrow("no command specified");
    expect(() => imageProcess({ Cmd: ["x"] }, { args: [], entrypoint: "" })).toThrow("no command specified");
  });

  test("env: the image's, PATH by default, -e replaces, appends, and a bare KEY removes", () => {
    expect(imageProcess({ Cmd: ["x"] }, { args: [] }).env).toEqual([DEFAULT_PATH_ENV]);
    expect(imageProcess({ Cmd: ["x"], Env: null }, { args: [] }).env).toEqual([DEFAULT_PATH_ENV]);
    expect(imageProcess(cfg, { args: [], env: ["LANG=en_US", "A=1", "PATH", "B="] }).env).toEqual(["LANG=en_US", "A=1", "B="]);
    expect(() => applyEnv([], ["=x"])).toThrow("has no name");
    expect(applyEnv(["AB=1", "A=2"], ["A"])).toEqual(["AB=1"]);
  });

  test("cwd: -w, else WorkingDir, else /; relative is refused", () => {
    expect(imageProcess(cfg, { args: [] }).cwd).toBe("/srv");
    expect(imageProcess(cfg, { args: [], cwd: "/tmp" }).cwd).toBe("/tmp");
    expect(imageProcess({ Cmd: ["x"] }, { args: [] }).cwd).toBe("/");
    expect(() => imageProcess(cfg, { args: [], cwd: "rel" })).toThrow("must be absolute");
  });
});

describe("resolveUser", () => {
  test("a name takes its uid, primary gid and the groups listing it", () => {
    expect(resolveUser("app", passwd, group)).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 29], home: "/home/app" });
  });
  test("uid, uid:gid, name:group, uid:group", () => {
    expect(resolveUser("1", passwd, group)).toEqual({ uid: 1, gid: 1, additionalGids: [50], home: "/usr/sbin" });
    expect(resolveUser("4242", passwd, group)).toEqual({ uid: 4242, gid: 0, additionalGids: [] });
    expect(resolveUser("4242:77", undefined, undefined)).toEqual({ uid: 4242, gid: 77, additionalGids: [] });
    expect(resolveUser("app:wheel", passwd, group)).toEqual({ uid: 1000, gid: 10, additionalGids: [29], home: "/home/app" });
    expect(resolveUser("1000:audio", passwd, group).gid).toBe(29);
    expect(resolveUser("", passwd, group)).toEqual({ uid: 0, gid: 0, additionalGids: [], home: "/root" });
  });
  test("unknown names and bad forms are clear errors", () => {
    expect(() => resolveUser("nobody", passwd, group)).toThrow("unable to find user nobody");
    expect(() => resolveUser("app", undefined, group)).toThrow("unable to find user app");
    expect(() => resolveUser("app:nogroup", passwd, group)).toThrow("unable to find group nogroup");
    expect(() => resolveUser("a:b:c", passwd, group)).toThrow("must be user[:group]");
    expect(() => resolveUser("app:", passwd, group)).toThrow("must be user[:group]");
    expect(() => resolveUser("99999999999", passwd, group)).toThrow("out of range");
  });
  test("applyUser sets the spec's user, additional gids and HOME unless the env has one", () => {
    const spec = generateSpec({ namespace: "default", id: "x", args: ["sh"] });
    applyUser(spec, resolveUser("app", passwd, group));
    expect(spec.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 29] });
    expect(spec.process.env).toContain("HOME=/home/app");
    const withHome = generateSpec({ namespace: "default", id: "x", args: ["sh"], env: ["HOME=/x"] });
    applyUser(withHome, resolveUser("0", passwd, group));
    expect(withHome.process.env.filter((e) => e.startsWith("HOME="))).toEqual(["HOME=/x"]);
  });
});
