// Server-level domain errors (etcd's etcdserver/errors.go), raised by the server core and mapped to wire
// errors in v3rpc/errors.ts.

import { DomainError } from '../util/errors';

export const ErrTimeout = 'ErrTimeout';
export const ErrStopped = 'ErrStopped';
export const ErrNoLeader = 'ErrNoLeader';
export const ErrRequestTooLarge = 'ErrRequestTooLarge';
export const ErrTooManyRequests = 'ErrTooManyRequests';
export const ErrNoSpace = 'ErrNoSpace';
export const ErrCorrupt = 'ErrCorrupt';
export const ErrNotLeader = 'ErrNotLeader';
export const ErrProposalDropped = 'ErrProposalDropped';

export function serverError(code: string, message: string): DomainError {
  return new DomainError(code, message);
}
