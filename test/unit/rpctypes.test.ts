// Pins the wire error catalog to etcd 3.4.23's rpctypes/error.go, byte for byte: Go clients match errors by
// message text, so a changed message silently breaks their error handling.

import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { catalog } from '../../src/api/rpctypes';

const golden = fs
  .readFileSync(path.join(__dirname, '..', '..', '..', 'test', 'golden', 'etcd-3.4.23-rpctypes.tsv'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => l.split('\t') as [string, string, string]);

const goCodes: Record<string, number> = {
  InvalidArgument: status.INVALID_ARGUMENT,
  OutOfRange: status.OUT_OF_RANGE,
  ResourceExhausted: status.RESOURCE_EXHAUSTED,
  NotFound: status.NOT_FOUND,
  FailedPrecondition: status.FAILED_PRECONDITION,
  Canceled: status.CANCELLED,
  PermissionDenied: status.PERMISSION_DENIED,
  Unauthenticated: status.UNAUTHENTICATED,
  Unavailable: status.UNAVAILABLE,
  DataLoss: status.DATA_LOSS,
};

t.equal(golden.length, 52, 'the golden list is complete');
for (const [name, code, message] of golden) {
  const e = catalog[name];
  t.ok(e, `${name} is in the catalog`);
  if (!e) continue;
  t.equal(e.details, message, `${name} message`);
  t.equal(e.code, goCodes[code], `${name} code`);
}
