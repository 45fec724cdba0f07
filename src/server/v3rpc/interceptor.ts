// The checks every client RPC passes before its handler runs (etcd v3rpc/interceptor.go newUnaryInterceptor,
// newStreamInterceptor and monitorLeader), applied to every service of the client gRPC server:
//
//   1. A learner serves only what needs no quorum: Maintenance.Status and serializable KV.Range (etcd
//      isRPCSupportedForLearner); any other unary RPC, and every stream, fails with "etcdserver: rpc not
//      supported for learner". A member that is not yet in its own membership (joining) is not a learner yet.
//   2. A request whose metadata carries hasleader=true (clientv3.WithRequireLeader; kube-apiserver's watches)
//      fails with "etcdserver: no leader" while this member knows no leader.
//   3. A stream opened with hasleader=true is cancelled with "etcdserver: no leader" once the member has had no
//      leader for maxNoLeaderCnt (3) consecutive checks, one per election timeout: etcd is conservative there,
//      since re-opening a stream costs more than refusing a request.

import type * as grpc from '@grpc/grpc-js';
import * as rpc from '../../api/rpctypes';

/** etcd rpctypes.MetadataRequireLeaderKey and MetadataHasLeader. */
export const METADATA_REQUIRE_LEADER_KEY = 'hasleader';
export const METADATA_HAS_LEADER = 'true';
/** etcd maxNoLeaderCnt. */
const MAX_NO_LEADER_CNT = 3;

/** What the checks need to know about the member. */
export interface InterceptedMember {
  /** The leader this member knows of; 0n when none. */
  leader(): bigint;
  /** Whether this member is in the membership as a learner. */
  isLearner(): boolean;
}

type Handler = (...args: any[]) => unknown;
type AnyStream = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/** Mirrors etcd v3rpc/util.go isRPCSupportedForLearner. */
function isRpcSupportedForLearner(path: string, req: unknown): boolean {
  if (path === '/etcdserverpb.Maintenance/Status') return true;
  if (path === '/etcdserverpb.KV/Range') return (req as { serializable?: boolean } | null)?.serializable === true;
  return false;
}

function requiresLeader(md: grpc.Metadata): boolean {
  // etcd reads only the first value of the key, and compares it exactly.
  const v = md.get(METADATA_REQUIRE_LEADER_KEY);
  return v.length > 0 && v[0] === METADATA_HAS_LEADER;
}

export class Interceptor {
  /** Open streams that asked for a leader (etcd streamsMap). */
  private readonly streams = new Set<AnyStream>();
  private noLeaderCnt = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly member: InterceptedMember,
    electionTimeoutMs: number,
  ) {
    this.timer = setInterval(() => this.monitorLeader(), electionTimeoutMs);
    this.timer.unref();
  }

  /** The service implementation `impl` (of `def`) with the checks in front of every method. */
  wrap(def: grpc.ServiceDefinition, impl: Record<string, Handler>): grpc.UntypedServiceImplementation {
    const out: Record<string, Handler> = {};
    for (const [name, handler] of Object.entries(impl)) {
      const m = def[name];
      if (!m) throw new Error(`no method ${name} in the service definition`);
      out[name] = m.responseStream ? this.wrapStream(m.path, handler) : this.wrapUnary(m.path, handler);
    }
    return out as grpc.UntypedServiceImplementation;
  }

  close(): void {
    clearInterval(this.timer);
    this.streams.clear();
  }

  /** Unary and client-streaming methods: the error goes to the callback. */
  private wrapUnary(path: string, handler: Handler): Handler {
    return (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      if (this.member.isLearner() && !isRpcSupportedForLearner(path, call.request)) return callback(rpc.ErrGPRCNotSupportedForLearner);
      if (requiresLeader(call.metadata) && this.member.leader() === 0n) return callback(rpc.ErrGRPCNoLeader);
      return handler(call, callback);
    };
  }

  /** Server-streaming and bidirectional methods: the error ends the stream with its status. */
  private wrapStream(_path: string, handler: Handler): Handler {
    return (call: AnyStream) => {
      if (this.member.isLearner()) {
        call.emit('error', rpc.ErrGPRCNotSupportedForLearner); // learners serve no stream RPC
        return;
      }
      if (requiresLeader(call.metadata)) {
        if (this.member.leader() === 0n) {
          call.emit('error', rpc.ErrGRPCNoLeader);
          return;
        }
        this.streams.add(call);
        const forget = () => this.streams.delete(call);
        call.once('close', forget);
        call.once('finish', forget);
        call.once('cancelled', forget);
        call.once('error', forget);
      }
      return handler(call);
    };
  }

  /** etcd monitorLeader: one check per election timeout. */
  private monitorLeader(): void {
    if (this.member.leader() === 0n) this.noLeaderCnt++;
    else this.noLeaderCnt = 0;
    if (this.noLeaderCnt < MAX_NO_LEADER_CNT) return;
    const streams = [...this.streams];
    this.streams.clear();
    for (const s of streams) s.emit('error', rpc.ErrGRPCNoLeader);
  }
}
