// Go's path.Clean and path.Join (= filepath.Join on Linux), lexical and exact: containerd hashes
// and compares paths built this way (the shim socket address, CRI root dirs, mount destinations),
// so ours must give the same strings. Shared by the shim and the CRI helpers; kept tiny because the
// shim's start action imports it, and the start path uses these instead of node:path (evaluating
// that module costs a compiled binary ~0.7 ms of CPU, paid once per pod).

const SLASH = 0x2f;

/** Go's path.Clean: the shortest lexically equivalent path ("" becomes "."). */
export function goClean(path: string): string {
  if (path === "") return ".";
  const rooted = path.charCodeAt(0) === SLASH;
  const out: string[] = [];
  // by hand, not split/filter: the start action runs these once, and the first call of each
  // array/string builtin JSC implements in JS costs it ~1 ms of compilation (a cpu profile of start)
  for (let from = 0; from <= path.length; ) {
    let to = path.indexOf("/", from);
    if (to < 0) to = path.length;
    const part = path.slice(from, to);
    from = to + 1;
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

/** Go's path.Dir: all but the last element, cleaned ("." when there is no slash). */
export function goDir(path: string): string {
  return goClean(path.slice(0, path.lastIndexOf("/") + 1));
}

/** Go's path.Base: the last element, trailing slashes dropped ("/" for the root, "." for ""). */
export function goBase(path: string): string {
  if (path === "") return ".";
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === SLASH) end--;
  if (end === 0) return "/";
  return path.slice(path.lastIndexOf("/", end - 1) + 1, end);
}

/** Go's path.Join: empty elements are skipped, the result is cleaned. */
export function goJoin(...elems: string[]): string {
  let joined = "";
  for (const e of elems) if (e !== "") joined = joined === "" ? e : `${joined}/${e}`;
  return joined === "" ? "" : goClean(joined);
}
