// The WAL's domain errors. Codes are stable (callers match on them with isDomainError(err, code)); messages are for
// people and always name the file and, for damage, the byte offset.

import { DomainError } from '../util/errors';

/** The WAL's bytes are damaged or inconsistent in a way that is not a torn final write; nothing was truncated. */
export const ErrWalCorrupt = 'ErrWalCorrupt';
/** Wal.create was asked to create a WAL where one already exists (or the directory is not empty). */
export const ErrWalExists = 'ErrWalExists';
/** Wal.open found no segment, or no segment that can hold the requested snapshot's index (it was released). */
export const ErrWalNotFound = 'ErrWalNotFound';
/** Replay from the requested snapshot found no snapshot record with its index (etcd's ErrSnapshotNotFound). */
export const ErrWalSnapshotNotFound = 'ErrWalSnapshotNotFound';
/** The WAL's snapshot record at the requested index has a different term (etcd's ErrSnapshotMismatch). */
export const ErrWalSnapshotMismatch = 'ErrWalSnapshotMismatch';
/**
 * A write or sync of the WAL failed. The WAL is unusable afterwards: after a failed fdatasync the kernel may have
 * dropped the dirty pages, so retrying could report success for data that is not on disk. The cause is attached.
 */
export const ErrWalIo = 'ErrWalIo';

export function walCorrupt(file: string, offset: number, reason: string, cause?: unknown): DomainError {
  return new DomainError(ErrWalCorrupt, `wal: corrupt segment ${file} at offset ${offset}: ${reason}`, { cause });
}
