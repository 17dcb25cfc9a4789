// The shim's socket address and the files that carry it. The hash must be bit-for-bit containerd's
// (runtime/v2/shim/util_unix.go SocketAddress): sha256 of filepath.Join(address, namespace, group),
// printed as lowercase hex under /run/containerd/s, so a grouped address is stable across calls.
import { lstatSync, mkdirSync, openSync, closeSync, readFileSync, renameSync, unlinkSync, writeSync, fsyncSync } from "node:fs";
import { InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { goBase, goClean, goDir, goJoin } from "../gopath.ts";
import { ADDRESS_FILE } from "./bundle.ts";

export { goClean, goJoin } from "../gopath.ts";

export const SOCKET_ROOT = "/run/containerd";
/** sun_path is 108 bytes; containerd refuses paths above 106 to keep the NUL and a margin. */
export const SOCKET_PATH_LIMIT = 106;

export function socketAddress(containerdAddress: string, namespace: string, group: string, root = SOCKET_ROOT): string {
  if (namespace === "") throw new InvalidArgumentError("namespace is required to compute a shim socket address");
  // Bun.CryptoHasher, not node:crypto: loading that module costs the start action ~10 ms
  const digest = new Bun.CryptoHasher("sha256").update(goJoin(containerdAddress, namespace, group)).digest("hex");
  return `unix://${goJoin(root, "s")}/${digest}`;
}

/** The filesystem path of a `unix://` address; abstract sockets are not used by bunker. */
export function socketPath(address: string): string {
  if (!address.startsWith("unix://")) {
    throw new InvalidArgumentError(`shim address ${JSON.stringify(address)} is not a unix:// address`);
  }
  const path = address.slice("unix://".length);
  if (path.length > SOCKET_PATH_LIMIT) {
    throw new InvalidArgumentError(`${JSON.stringify(path)}: unix socket path too long (> ${SOCKET_PATH_LIMIT})`);
  }
  return path;
}

export function isSocket(path: string): boolean {
  try {
    // no ENOENT thrown for the usual answer (a new pod's group has no socket): building the
    // exception is most of the call's cost, and the start action asks once per pod
    return lstatSync(path, { throwIfNoEntry: false })?.isSocket() ?? false;
  } catch {
    return false;
  }
}

/** Removes the socket file of an address if it is a socket; anything else there is left alone. */
export function removeSocket(address: string): void {
  const path = socketPath(address);
  if (!isSocket(path)) return;
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** True when something accepts connections on the address (containerd's CanConnect, 100 ms). */
export async function canConnect(address: string, timeoutMs = 100): Promise<boolean> {
  const path = socketPath(address);
  if (!isSocket(path)) return false;
  return await new Promise<boolean>((resolvePromise) => {
    let done = false;
    const finish = (ok: boolean, sock?: { end(): void }): void => {
      if (done) {
        sock?.end();
        return;
      }
      done = true;
      clearTimeout(timer);
      sock?.end();
      resolvePromise(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    Bun.connect({
      unix: path,
      socket: {
        open: (s) => finish(true, s),
        data: () => {},
        error: () => finish(false),
        connectError: () => finish(false),
      },
    }).catch(() => finish(false));
  });
}

export function ensureSocketDir(address: string): void {
  mkdirSync(goDir(socketPath(address)), { recursive: true, mode: 0o700 });
}

/** Writes `address` (or any small file) the way containerd's WriteAddress does: `.name` then rename. */
export function writeFileAtomic(path: string, content: string): void {
  const abs = path.startsWith("/") ? goClean(path) : goJoin(process.cwd(), path);
  const tmp = goJoin(goDir(abs), `.${goBase(abs)}`);
  try {
    // a leftover from a crashed writer would make O_EXCL fail forever; looked for first, so the
    // usual case (none) throws nothing
    if (lstatSync(tmp, { throwIfNoEntry: false })) unlinkSync(tmp);
  } catch {}
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, abs);
}

export function writeAddress(bundle: string, address: string): void {
  writeFileAtomic(goJoin(bundle, ADDRESS_FILE), address);
}

export function readAddress(bundle: string): string {
  let data: string;
  try {
    data = readFileSync(goJoin(bundle, ADDRESS_FILE), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError(`no shim address in ${bundle}`);
    throw err;
  }
  if (data.length === 0) throw new NotFoundError(`no shim address in ${bundle}`);
  return data;
}
