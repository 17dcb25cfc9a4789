// The library's typed errors. Everything below the library already throws src/errdefs.ts classes
// (and the ttrpc client turns a daemon's status codes back into them), so NotFound, AlreadyExists
// and the rest are those very classes under Testcontainers-style short names: `instanceof` works
// the same embedded or against a daemon. What only the library knows adds three: Timeout (a wait
// ran out; carries the container's last log lines), ImagePullError (the image could not be had),
// ContainerExitError (the container ended while we waited for it to be ready). Messages stay one
// line; the log lines ride on a field, not in the message.
import {
  AlreadyExistsError,
  BunkerError,
  Code,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  errorMessage,
} from "../errdefs.ts";

export {
  AlreadyExistsError as AlreadyExists,
  BunkerError,
  FailedPreconditionError as FailedPrecondition,
  InvalidArgumentError as InvalidArgument,
  NotFoundError as NotFound,
  UnavailableError as Unavailable,
};

/** A wait (waitFor, stop) ran out of time. `logs`: the container's last log lines then. */
export class Timeout extends DeadlineExceededError {
  constructor(message: string, readonly logs: string[] = [], options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The image could not be found locally or pulled (`image` names it as the caller did). */
export class ImagePullError extends BunkerError {
  override readonly code: Code;
  constructor(readonly image: string, cause: unknown) {
    const why = oneLine(errorMessage(cause));
    // the store's messages usually name the image already: say it once
    super(why.includes(image) ? why : `image ${image}: ${why}`, { cause });
    // keep the underlying kind (NotFound for an unknown image) for callers that switch on codes
    this.code = cause instanceof BunkerError ? cause.code : Code.Unknown;
  }

  /** The image is nowhere to be had (unknown locally with pull "never", or unknown to the registry). */
  get notFound(): boolean {
    return this.code === Code.NotFound;
  }
}

/** The container exited before it was ready. */
export class ContainerExitError extends BunkerError {
  constructor(readonly id: string, readonly exitCode: number, readonly logs: string[] = []) {
    super(`container ${id} exited with code ${exitCode} before it was ready`);
  }
}

/** Messages are one line: a multi-line cause is folded (its first line is the useful one). */
export function oneLine(message: string): string {
  const first = message.split("\n").map((l) => l.trim()).filter(Boolean);
  return first.length <= 1 ? (first[0] ?? message) : `${first[0]} (…)`;
}

/** The error a pull/lookup of `image` ends in: NotFound/InvalidArgument of the reference stay as they are. */
export function imageError(image: string, err: unknown): Error {
  if (err instanceof InvalidArgumentError) return err;
  return new ImagePullError(image, err);
}
