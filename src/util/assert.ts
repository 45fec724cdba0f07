// Programmer-error assertions. They stay on in production and are never caught: a failed assertion means
// the process's state can no longer be trusted, so it ends (TigerBeetle's rule, style.md).

export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionError(message);
}
