// The fault-test checkers (issue #7): pure functions over recorded data, no I/O, no clocks. See ../README.md.

export * from './history';
export { apply, EtcdState, type KeyState, step } from './model';
export { type Budget, checkWgl, type Model, type TimedOperation, type WglResult } from './wgl';
export { checkLinearizable, etcdModel, type LinearizabilityReport } from './linearizable';
export { patchHistory, type PatchReport } from './patch';
export { checkPerKey, type RegisterReport } from './register';
export { type CommittedEvent, type CommittedRevision, committedFromWatch, Replay, type ReplayEvent } from './replay';
export { checkRevisionOracle, type OracleReport, type OracleViolation, type OracleViolationKind } from './revision-oracle';
export * from './watch';
export * from './convergence';
export * from './lease';
export * from './server-logs';
