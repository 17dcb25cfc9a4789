// The layering of docs/architecture.md, checked: every relative import between src/ folders must be
// an edge this table allows (imports point down). A new edge means a design decision: make it here
// and in the document together, or move the code.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";

const SRC = join(import.meta.dir, "../../src");

/** The single files at src/ (errdefs, identifiers, proc, gopath, gostd, version, native, idle): everyone's base. */
const BASE = "(base)";

const ALLOWED: Record<string, string[]> = {
  [BASE]: [],
  gen: [],
  sys: [],
  ttrpc: [],
  contract: ["ttrpc"],
  oci: [],
  runc: ["oci"],
  linux: ["gen", "sys", "ttrpc"],
  stdio: ["oci", "sys"],
  config: ["contract", "gen"],
  shim: ["contract", "gen", "sys", "ttrpc"],
  "shims/bunker": ["contract", "gen", "linux", "oci", "runc", "shim", "stdio", "sys", "ttrpc"],
  containers: [],
  runtime: ["containers", "contract", "gen", "oci", "ttrpc"],
  api: ["containers", "contract", "gen", "oci", "runtime", "sys", "ttrpc"],
  executor: ["api", "config", "contract", "gen", "images", "network", "runtime", "sys", "ttrpc"],
  archive: ["sys"],
  content: ["sys"],
  registry: ["content"],
  snapshots: ["linux", "sys"],
  network: ["containers", "sys"],
  images: ["archive", "containers", "content", "oci", "registry", "snapshots", "sys"],
  cri: ["config", "registry"],
  lib: ["api", "config", "containers", "contract", "executor", "gen", "images", "network", "oci", "registry", "runtime", "sys", "ttrpc"],
  cli: ["api", "archive", "config", "containers", "content", "contract", "executor", "gen", "images", "network", "oci", "registry", "runtime", "shims/bunker", "sys", "ttrpc"],
};

function folderOf(file: string): string | undefined {
  const rel = relative(SRC, file);
  if (rel.startsWith("..")) return undefined; // package.json and the like
  const parts = rel.split("/");
  if (parts.length === 1) return BASE;
  if (parts[0] === "shims") return `shims/${parts[1]}`;
  if (parts[0] === "google") return "gen";
  return parts[0]!;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => join(e.parentPath, e.name));
}

const IMPORT = /(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;

test("every folder of src/ is in the layer table", () => {
  const folders = new Set(sources(SRC).map((f) => folderOf(f)!));
  expect([...folders].filter((f) => !(f in ALLOWED))).toEqual([]);
});

test("imports between src/ folders point down (docs/architecture.md)", () => {
  const violations: string[] = [];
  for (const file of sources(SRC)) {
    const from = folderOf(file)!;
    for (const m of readFileSync(file, "utf8").matchAll(IMPORT)) {
      const to = folderOf(normalize(join(dirname(file), m[1]!)));
      if (to === undefined || to === from || to === BASE) continue;
      if (!(ALLOWED[from] ?? []).includes(to)) violations.push(`${relative(SRC, file)} -> ${m[1]} (${from} may not import ${to})`);
    }
  }
  expect(violations).toEqual([]);
});

test("the base files import no folder but gen", () => {
  const base = sources(SRC).filter((f) => folderOf(f) === BASE);
  const bad = base.flatMap((f) => [...readFileSync(f, "utf8").matchAll(IMPORT)].map((m) => folderOf(normalize(join(dirname(f), m[1]!)))).filter((t) => t !== undefined && t !== BASE && t !== "gen"));
  expect(bad).toEqual([]);
});
