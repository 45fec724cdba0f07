// The Raft core's logger: injected through RaftConfig.logger (etcd keeps a package-level default; we keep none).
// Messages follow etcd raft's wording, with member IDs in hex, so that logs can be compared with etcd's.

/** Receives the core's log lines. Implementations must not call back into the core. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** A logger that drops everything; the default when RaftConfig.logger is not given. */
export const discardLogger: Logger = Object.freeze({
  debug(): void {},
  info(): void {},
  warn(): void {},
  error(): void {},
});
