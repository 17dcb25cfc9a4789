// Error classes shared by every layer, and their one mapping to and from gRPC status codes
// (containerd's errdefs). Handlers throw these; only the ttrpc server boundary turns them into codes.

export const Code = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

export class BunkerError extends Error {
  readonly code: Code = Code.Unknown;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class NotFoundError extends BunkerError { override readonly code = Code.NotFound; }
export class AlreadyExistsError extends BunkerError { override readonly code = Code.AlreadyExists; }
export class InvalidArgumentError extends BunkerError { override readonly code = Code.InvalidArgument; }
export class FailedPreconditionError extends BunkerError { override readonly code = Code.FailedPrecondition; }
export class UnavailableError extends BunkerError { override readonly code = Code.Unavailable; }
export class NotImplementedError extends BunkerError { override readonly code = Code.Unimplemented; }
export class CanceledError extends BunkerError { override readonly code = Code.Canceled; }
export class DeadlineExceededError extends BunkerError { override readonly code = Code.DeadlineExceeded; }
export class ResourceExhaustedError extends BunkerError { override readonly code = Code.ResourceExhausted; }
export class PermissionDeniedError extends BunkerError { override readonly code = Code.PermissionDenied; }
export class UnknownError extends BunkerError { override readonly code = Code.Unknown; }

const byCode = new Map<number, new (message: string) => BunkerError>([
  [Code.Canceled, CanceledError],
  [Code.InvalidArgument, InvalidArgumentError],
  [Code.DeadlineExceeded, DeadlineExceededError],
  [Code.NotFound, NotFoundError],
  [Code.AlreadyExists, AlreadyExistsError],
  [Code.PermissionDenied, PermissionDeniedError],
  [Code.ResourceExhausted, ResourceExhaustedError],
  [Code.FailedPrecondition, FailedPreconditionError],
  [Code.Unimplemented, NotImplementedError],
  [Code.Unavailable, UnavailableError],
]);

/** The status code an error travels as; anything that is not one of ours is Unknown. */
export function toCode(err: unknown): Code {
  if (err instanceof BunkerError) return err.code;
  if (err instanceof Error && err.name === "AbortError") return Code.Canceled;
  if (err instanceof Error && err.name === "TimeoutError") return Code.DeadlineExceeded;
  return Code.Unknown;
}

/** The typed error for a status received from a peer. */
export function fromCode(code: number, message: string): BunkerError {
  const Cls = byCode.get(code) ?? UnknownError;
  return new Cls(message);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export const isNotFound = (err: unknown): boolean => err instanceof NotFoundError;
export const isAlreadyExists = (err: unknown): boolean => err instanceof AlreadyExistsError;
