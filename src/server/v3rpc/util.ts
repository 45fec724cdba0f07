// Glue between grpc-js handlers and async service code: errors are mapped once (errors.ts).

import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { toGrpcError } from './errors';

export type UnaryHandler<Req, Res> = (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>;

export function unary<Req, Res>(logger: Logger, fn: UnaryHandler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request, call).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toGrpcError(err, logger) as grpc.ServiceError),
    );
  };
}
