// The Raft core's public surface: RawNode and the types the node loop, the WAL and the server need. The internal
// state machine (raft.ts), the log, the tracker and the quorum/confchange helpers are imported directly by tests.

export * from './types';
export * from './errors';
export { type Logger, discardLogger } from './logger';
export { type Storage, MemoryStorage } from './storage';
export { type RaftConfig, type SoftState, StateType, None } from './raft';
export { ReadOnlyOption, type ReadState } from './read-only';
export { ProgressStateType } from './tracker/progress';
export { ConfChangeError } from './confchange/confchange';
export { encodeConfChange, decodeConfChange } from './confchange/codec';
export { type Ready, type Status, type ProgressStatus, RawNode, SnapshotStatus, mustSync } from './raw-node';
export { noLimit, entrySizeBytes, payloadSizeBytes } from './util';
export * from './describe';
