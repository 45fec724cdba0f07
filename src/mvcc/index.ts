// The MVCC storage engine's public surface (used by src/server).

export * from './types';
export {
  ErrCanceled,
  ErrClosed,
  ErrCompacted,
  ErrEmptyWatcherRange,
  ErrFutureRev,
  ErrSnapshotCorrupt,
  ErrWatcherDuplicateID,
  ErrWatcherNotExist,
  mvccError,
  mvccErrorMessages,
} from './errors';
export { MvccStore, type AuxReader, type HashByRevResult, type MvccLogger, type MvccOptions, type TxnWrite } from './kvstore';
export { defaultWatchLimits, type WatchLimits, type WatchOptions, type WatchResponse, type WatchStream } from './watchable-store';
