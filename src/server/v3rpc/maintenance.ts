// etcdserverpb.Maintenance (etcd v3rpc/maintenance.go) and etcdserverpb.Cluster for one member.

import { createHash } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { EtcdServer } from '../etcd-server';
import type { AlarmRequest } from '../../api/types';
import { num } from '../apply';
import { unary } from './util';
import { toGrpcError } from './errors';
import * as rpc from '../../api/rpctypes';
import { ALARM_NAMES } from '../maintenance/health';

export function maintenanceService(srv: EtcdServer, logger: Logger) {
  return {
    Alarm: unary(logger, async (r: AlarmRequest) => {
      // etcd sends every alarm request, GET included, through the log.
      const res = await srv.propose({ alarm: { action: r.action, memberID: String(r.memberID), alarm: r.alarm } });
      if (res.kind !== 'alarm') throw new Error('unexpected apply result for alarm');
      return { header: srv.header(0), alarms: res.alarms };
    }),
    Status: unary(logger, async () => {
      const st = srv.raftStatus();
      const errors: string[] = [];
      if (st.lead === 0n) errors.push('etcdserver: no leader');
      for (const a of srv.applier.listAlarms()) errors.push(`memberID:${a.memberID} alarm:${ALARM_NAMES[a.alarm] ?? a.alarm} `);
      return {
        header: srv.header(0),
        version: srv.version(),
        dbSize: await srv.store.dbSize(),
        leader: st.lead.toString(),
        raftIndex: st.commit,
        raftTerm: st.term,
        raftAppliedIndex: srv.applied.index,
        errors,
        dbSizeInUse: await srv.store.dbSizeInUse(),
        isLearner: srv.cluster.members.get(srv.memberId)?.isLearner ?? false,
      };
    }),
    Defragment: unary(logger, async () => {
      // Reads and writes on this member go on during the defragmentation (maintenance/index.ts).
      await srv.maintenance.defrag();
      return { header: srv.header(0) };
    }),
    Hash: unary(logger, async () => {
      return { header: srv.header(0), hash: await srv.store.hash() };
    }),
    HashKV: unary(logger, async (r: { revision: string }) => {
      const h = await srv.store.hashByRev(num(r.revision));
      return { header: srv.header(0), hash: h.hash, compact_revision: h.compactRev, hash_revision: h.rev };
    }),
    Snapshot: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      void (async () => {
        try {
          // etcd appends the sha256 of the snapshot so `etcdctl snapshot restore` can verify it.
          const sha = createHash('sha256');
          for await (const chunk of srv.store.snapshot()) {
            sha.update(chunk);
            if (call.cancelled) return;
            if (!call.write({ header: srv.header(0), remaining_bytes: 1, blob: chunk })) {
              await new Promise<void>((res) => call.once('drain', res));
            }
          }
          call.write({ header: srv.header(0), remaining_bytes: 0, blob: sha.digest() });
          call.end();
        } catch (err) {
          call.emit('error', toGrpcError(err, logger));
        }
      })();
    },
    MoveLeader: unary(logger, async (r: { targetID: string }) => {
      await srv.moveLeader(BigInt(r.targetID));
      return { header: srv.header(0) };
    }),
  };
}

export function clusterService(srv: EtcdServer, logger: Logger) {
  const list = () =>
    [...srv.cluster.members.values()]
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((m) => ({ ID: m.id.toString(), name: m.name, peerURLs: m.peerUrls, clientURLs: m.clientUrls, isLearner: m.isLearner }));
  return {
    MemberList: unary(logger, async (r: { linearizable?: boolean }) => {
      if (r.linearizable) await srv.linearizableReadNotify();
      return { header: srv.header(0), members: list() };
    }),
    MemberAdd: unary(logger, async (r: { peerURLs: string[]; isLearner: boolean }) => {
      const urls = parsePeerUrls(r.peerURLs);
      const m = await srv.addMember(urls, r.isLearner);
      return {
        header: srv.header(0),
        member: { ID: m.id.toString(), name: '', peerURLs: m.peerUrls, clientURLs: [], isLearner: m.isLearner },
        members: list(),
      };
    }),
    MemberRemove: unary(logger, async (r: { ID: string }) => {
      await srv.removeMember(BigInt(r.ID));
      return { header: srv.header(0), members: list() };
    }),
    MemberUpdate: unary(logger, async (r: { ID: string; peerURLs: string[] }) => {
      await srv.updateMember(BigInt(r.ID), parsePeerUrls(r.peerURLs));
      return { header: srv.header(0), members: list() };
    }),
    MemberPromote: unary(logger, async (r: { ID: string }) => {
      await srv.promoteMember(BigInt(r.ID));
      return { header: srv.header(0), members: list() };
    }),
  };
}

/** etcd types.NewURLs: every peer URL must parse as http(s)/unix(s) with a host; else ErrGRPCMemberBadURLs. */
function parsePeerUrls(urls: string[]): string[] {
  if (urls.length === 0) throw rpc.ErrGRPCMemberBadURLs;
  return urls.map((u) => {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw rpc.ErrGRPCMemberBadURLs;
    }
    if (!['http:', 'https:', 'unix:', 'unixs:'].includes(url.protocol) || url.host === '' || (url.pathname !== '' && url.pathname !== '/')) {
      throw rpc.ErrGRPCMemberBadURLs;
    }
    return u;
  });
}

export function authService(srv: EtcdServer, logger: Logger) {
  return {
    AuthStatus: unary(logger, async () => ({ header: srv.header(0), enabled: false, authRevision: 0 })),
    Authenticate: unary(logger, async () => {
      throw rpc.ErrGRPCAuthNotEnabled;
    }),
  };
}

