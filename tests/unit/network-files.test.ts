// The generated /etc files (docker's and nerdctl's rules): hosts with the localhost block, extra
// hosts and the container's own addresses; resolv.conf from the host's minus loopback nameservers,
// with --dns overrides and the fallback; hostname limits; and their atomic writing.
import { afterAll, expect, test } from "bun:test";
import * as fs from "node:fs";
import { join } from "node:path";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { defaultHostname, FALLBACK_NAMESERVERS, hostResolvConf, hostsFile, parseAddHost, resolvConf, validateHostname, writeEtcFiles } from "../../src/network/etc-files.ts";

const tmp = fs.mkdtempSync("/tmp/bunker-network-files-");
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test("hosts: localhost block, then --add-host entries, then the container's addresses with its hostname", () => {
  expect(hostsFile("web", ["10.14.0.2", "fd00::2"], [{ host: "db", ip: "10.14.0.9" }])).toBe([
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
    "10.14.0.9\tdb",
    "10.14.0.2\tweb",
    "fd00::2\tweb",
    "",
  ].join("\n"));
});

test("--add-host NAME:IP, IPv6 and host-gateway included; bad forms refused", () => {
  expect(parseAddHost("db:10.0.0.5")).toEqual({ host: "db", ip: "10.0.0.5" });
  expect(parseAddHost("v6:fd00::1")).toEqual({ host: "v6", ip: "fd00::1" });
  expect(parseAddHost("v6b:[fd00::2]")).toEqual({ host: "v6b", ip: "fd00::2" });
  expect(parseAddHost("gw:host-gateway", "10.14.0.1")).toEqual({ host: "gw", ip: "10.14.0.1" });
  expect(() => parseAddHost("gw:host-gateway")).toThrow(/host-gateway has no address/);
  for (const bad of ["db", "db:", ":1.2.3.4", "db:1.2.3", "bad_name:1.2.3.4", "db:10.0.0.256"]) expect(() => parseAddHost(bad)).toThrow(InvalidArgumentError);
});

test("resolv.conf: the host's minus 127.0.0.0/8 and ::1 nameservers; search, options and other lines kept", () => {
  const host = "# generated\nnameserver 127.0.0.53\nnameserver 127.1.2.3\nnameserver ::1\nnameserver 192.168.1.1\nnameserver fd00::53\nsearch corp.example\noptions edns0 trust-ad\nsortlist 10.0.0.0\n";
  expect(resolvConf(host)).toBe("search corp.example\nnameserver 192.168.1.1\nnameserver fd00::53\noptions edns0 trust-ad\nsortlist 10.0.0.0\n");
});

test("resolv.conf: with only local nameservers left, docker's fallback servers", () => {
  expect(resolvConf("nameserver 127.0.0.1\n")).toBe(FALLBACK_NAMESERVERS.map((s) => `nameserver ${s}\n`).join(""));
  expect(resolvConf("")).toBe("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
});

test("resolv.conf: --dns, --dns-search and --dns-option replace the host's lines of their kind", () => {
  const host = "nameserver 192.168.1.1\nsearch a.example\noptions ndots:2\n";
  expect(resolvConf(host, { nameservers: ["1.1.1.1"], search: ["b.example", "c.example"], options: ["ndots:5"] }))
    .toBe("search b.example c.example\nnameserver 1.1.1.1\noptions ndots:5\n");
  expect(resolvConf(host, { nameservers: ["127.0.0.1"] })).toBe("search a.example\nnameserver 127.0.0.1\noptions ndots:2\n");
  expect(() => resolvConf(host, { nameservers: ["dns.example"] })).toThrow(/--dns "dns.example" is not an IP address/);
});

test("the host's file is read through systemd-resolved's upstream list when it points at the stub", () => {
  const stub = join(tmp, "stub.conf");
  const upstream = join(tmp, "upstream.conf");
  fs.writeFileSync(stub, "nameserver 127.0.0.53\noptions edns0\n");
  fs.writeFileSync(upstream, "nameserver 10.0.0.53\n");
  expect(hostResolvConf(stub, upstream)).toBe("nameserver 10.0.0.53\n");
  expect(hostResolvConf(stub, join(tmp, "absent"))).toBe("nameserver 127.0.0.53\noptions edns0\n");
  expect(hostResolvConf(join(tmp, "absent"))).toBe("");
});

test("hostnames: the id's first 12 characters by default (76-character ids too); sethostname's 64-character limit", () => {
  const longId = "a".repeat(76);
  expect(defaultHostname(longId)).toBe("aaaaaaaaaaaa");
  expect(defaultHostname("web_1.x")).toBe("web-1-x");
  expect(validateHostname("h".repeat(64))).toBe("h".repeat(64));
  expect(() => validateHostname("h".repeat(65))).toThrow(/at most 64 characters/);
  for (const bad of ["", "-lead", "trail-", "under_score", "a..b"]) expect(() => validateHostname(bad)).toThrow(InvalidArgumentError);
});

test("writeEtcFiles writes the three files (and replaces them whole on a rewrite)", () => {
  const dir = join(tmp, "c1");
  const paths = writeEtcFiles(dir, { hostname: "web", ips: ["10.14.0.2"], extraHosts: [{ host: "db", ip: "10.14.0.3" }], hostResolv: "nameserver 127.0.0.1\nnameserver 10.0.0.53\n" });
  expect(paths).toEqual({ hosts: join(dir, "hosts"), hostname: join(dir, "hostname"), resolvConf: join(dir, "resolv.conf") });
  expect(fs.readFileSync(paths.hostname, "utf8")).toBe("web\n");
  expect(fs.readFileSync(paths.resolvConf, "utf8")).toBe("nameserver 10.0.0.53\n");
  expect(fs.readFileSync(paths.hosts, "utf8")).toEndWith("10.14.0.3\tdb\n10.14.0.2\tweb\n");
  expect(fs.statSync(paths.hosts).mode & 0o777).toBe(0o644);
  writeEtcFiles(dir, { hostname: "web2", ips: [], hostResolv: "" });
  expect(fs.readFileSync(paths.hostname, "utf8")).toBe("web2\n");
  expect(fs.readdirSync(dir).sort()).toEqual(["hostname", "hosts", "resolv.conf"]);
  expect(() => writeEtcFiles(join(tmp, "c2"), { hostname: "bad_name", ips: [] })).toThrow(InvalidArgumentError);
  expect(fs.existsSync(join(tmp, "c2"))).toBe(false);
});
