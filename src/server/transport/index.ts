// The Raft peer transport's public surface. peer-transport.ts holds the design notes; frame.ts and handshake.ts
// specify the bytes on the wire.

export { PeerTransport, type PeerAdmission, type TransportOptions } from './peer-transport';
export {
  ERROR_TEXT,
  ErrHandshake,
  ErrMemberRemoved,
  ErrPeerUnreachable,
  ErrSnapshotFailed,
  ErrTransportStopped,
  PROTOCOL_VERSION,
  TransportError,
  TransportErrorCode,
  idString,
} from './handshake';
export { DEFAULT_MAX_FRAME_BYTES, ErrFrameTooLarge, ErrFrameType, ErrUnexpectedFrame, FrameError } from './frame';
