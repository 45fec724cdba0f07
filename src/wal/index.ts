// The write-ahead log. The byte format is specified in encoder.ts.

export { Wal, defaultSegmentSizeBytes, type WalLogger, type WalOptions, type WalOpenResult } from './wal';
export {
  ErrWalCorrupt,
  ErrWalExists,
  ErrWalIo,
  ErrWalNotFound,
  ErrWalSnapshotMismatch,
  ErrWalSnapshotNotFound,
} from './errors';
export { segmentFileName, parseSegmentFileName, type SegmentName } from './segment-name';
