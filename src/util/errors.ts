// Domain errors: typed, with a stable `code` and an optional `cause`, branded with Symbol.for so that a check
// works across module copies (style.md, "Errors: three kinds, never mixed"). Programmer errors are assert()
// failures instead; wire errors live in src/api/rpctypes.ts.

const kDomainError = Symbol.for('tsetcd.DomainError');

export class DomainError extends Error {
  readonly [kDomainError] = true;
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = code;
  }
}

export function isDomainError(err: unknown, code?: string): err is DomainError {
  return (
    typeof err === 'object' &&
    err !== null &&
    (err as Record<symbol, unknown>)[kDomainError] === true &&
    (code === undefined || (err as DomainError).code === code)
  );
}
