// MVCC domain errors. Each is a DomainError `code` (stable, matched by src/server's single domain -> wire map);
// the messages are etcd's mvcc error texts (go.etcd.io/etcd/mvcc/kvstore.go, watcher.go), which the server
// prefixes with "etcdserver: " where etcd does.

import { DomainError } from '../util/errors';

export const ErrCompacted = 'ErrCompacted';
export const ErrFutureRev = 'ErrFutureRev';
export const ErrCanceled = 'ErrCanceled';
export const ErrClosed = 'ErrClosed';
export const ErrWatcherNotExist = 'ErrWatcherNotExist';
export const ErrEmptyWatcherRange = 'ErrEmptyWatcherRange';
export const ErrWatcherDuplicateID = 'ErrWatcherDuplicateID';
export const ErrSnapshotCorrupt = 'ErrSnapshotCorrupt';

/** etcd's exact message for every code above. */
export const mvccErrorMessages: Readonly<Record<string, string>> = {
  [ErrCompacted]: 'mvcc: required revision has been compacted',
  [ErrFutureRev]: 'mvcc: required revision is a future revision',
  [ErrCanceled]: 'mvcc: watcher is canceled',
  [ErrClosed]: 'mvcc: closed',
  [ErrWatcherNotExist]: 'mvcc: watcher does not exist',
  [ErrEmptyWatcherRange]: 'mvcc: watcher range is empty',
  [ErrWatcherDuplicateID]: 'mvcc: duplicate watch ID provided on the WatchStream',
  [ErrSnapshotCorrupt]: 'mvcc: snapshot stream is corrupt',
};

export function mvccError(code: string, cause?: unknown): DomainError {
  const message = mvccErrorMessages[code];
  if (message === undefined) throw new Error(`unknown mvcc error code ${code}`);
  return new DomainError(code, message, cause === undefined ? undefined : { cause });
}
