// Go's path.Clean and path.Join (= filepath.Join on Linux), lexical and exact: containerd hashes
// and compares paths built this way (the shim socket address, CRI root dirs, mount destinations),
// so ours must give the same strings. Shared by the shim and the CRI helpers; kept tiny because the
// shim's start action imports it.

/** Go's path.Clean: the shortest lexically equivalent path ("" becomes "."). */
export function goClean(path: string): string {
  if (path === "") return ".";
  const rooted = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(part);
  }
  const joined = out.join("/");
  if (rooted) return "/" + joined;
  return joined === "" ? "." : joined;
}

/** Go's path.Join: empty elements are skipped, the result is cleaned. */
export function goJoin(...elems: string[]): string {
  const parts = elems.filter((e) => e !== "");
  return parts.length === 0 ? "" : goClean(parts.join("/"));
}
