// Storage and membership nemeses (faults.md §6.5 F5, F14, F18):
//
//   power-loss       SIGKILL one member (or, in a quarter of the cycles, all three), turn its data dir into what
//                    power loss at that instant leaves (test/helpers/powerloss.ts: unsynced writes undone, the last
//                    one torn, LevelDB's unsynced log tail dropped), restart it. The members of such a run start
//                    under the shim (powerLoss). C7: it must restart.
//   disk-corruption  SIGKILL one member and damage its files while it is down: truncate 1–1024 B at the WAL's tail,
//                    zero the 512-B sector holding the end of the last record, flip a bit in a record in the middle
//                    of the WAL, or flip a bit in the newest snapshot marker (member/snap/*.snap). Tail damage is
//                    mostly a real torn write (see `torn` below): the member must repair it (once) and rejoin; on
//                    durable records it may also fail-stop naming the lost entries. Damage in the middle or in a
//                    marker must make it refuse to start (faults.md §4.5, C7); starting and serving after it is an
//                    anomaly. A member that does not come back is healed by replacing it (FaultCluster.replace).
//   member-replace   MemberRemove a random member, wipe its data dir, MemberAdd the same peer URL (as a voter, or as
//                    a learner that is then promoted), start it with --initial-cluster-state existing.
//
// The WAL layout these edits rely on: member/wal/<seq>-<index>.wal segments, preallocated with zeroes; records are
// 8-byte-aligned frames (src/wal/encoder.ts), read here with the server's own decoder to find record boundaries.

import fs from 'node:fs';
import path from 'node:path';
import { readFrame } from '../../../src/wal/decoder';
import { parseSegmentFileName } from '../../../src/wal/segment-name';
import { Snapshotter } from '../../../src/server/snap';
import { powerLoss } from '../../helpers/powerloss';
import type { Nemesis } from './nemesis';
import type { Rng } from './rng';
import { sleep } from './cluster';

const READY = 'ready to serve client requests';

/** The frames of a segment file: [start, end) of every record, in order, up to the first damage or the zero tail. */
export function walFrames(buf: Buffer): Array<{ start: number; end: number }> {
  const out: Array<{ start: number; end: number }> = [];
  let offset = 0;
  let crc = 0;
  for (;;) {
    const r = readFrame(buf, offset, crc);
    if (r.kind !== 'frame') return out;
    out.push({ start: offset, end: r.end });
    crc = r.crc;
    offset = r.end;
  }
}

/** The newest WAL segment of a data dir. */
export function lastSegment(dataDir: string): string {
  const dir = path.join(dataDir, 'member', 'wal');
  const segs = fs.readdirSync(dir).flatMap((n) => {
    const s = parseSegmentFileName(n);
    return s ? [{ n, seq: s.seq }] : [];
  });
  if (segs.length === 0) throw new Error(`no WAL segment in ${dir}`);
  return path.join(dir, segs.sort((a, b) => b.seq - a.seq)[0]!.n);
}

export type Corruption = 'truncate-tail' | 'zero-last-sector' | 'flip-middle' | 'flip-snapshot';

/** Tail damage a crash could have left (the member must repair it and rejoin); the rest must stop the member. */
export const isTailDamage = (c: Corruption): boolean => c === 'truncate-tail' || c === 'zero-last-sector';

/** The newest snapshot marker (the one a start loads first), if any. */
export async function newestMarker(dataDir: string): Promise<string | undefined> {
  const s = new Snapshotter(path.join(dataDir, 'member', 'snap'));
  if (!fs.existsSync(s.dir)) return undefined;
  const m = (await s.list())[0];
  return m ? s.markerPath(m) : undefined;
}

function flipBit(file: string, offset: number, bit: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] = b[0]! ^ (1 << bit);
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Damages the stopped member's files; returns what was done. Tail damage with `torn` stays inside the last record
 * (the one written but not yet fdatasynced when the member was killed: a torn write); without it, it reaches up to
 * 1024 B back into records that were durable. The segment's first two records (CRC and metadata, synced before the
 * segment got its name) are never touched by tail damage.
 */
export function corrupt(dataDir: string, kind: Corruption, rng: Rng, opts: { marker?: string; torn?: boolean } = {}): string {
  if (kind === 'flip-snapshot') {
    const marker = opts.marker;
    if (!marker) throw new Error('no snapshot marker to corrupt');
    const size = fs.statSync(marker).size;
    const at = rng.int(0, size - 1);
    const bit = rng.int(0, 7);
    flipBit(marker, at, bit);
    return `flipped bit ${bit} of byte ${at} of ${path.basename(marker)} (${size} B)`;
  }
  const file = lastSegment(dataDir);
  const buf = fs.readFileSync(file);
  const frames = walFrames(buf);
  if (frames.length < 5) throw new Error(`${path.basename(file)} has only ${frames.length} records`);
  const last = frames[frames.length - 1]!;
  const floor = opts.torn ? last.start : frames[1]!.end;
  const end = last.end;
  const where = `${path.basename(file)} (${frames.length} records, ${end} B written, last record at ${last.start})`;
  if (kind === 'truncate-tail') {
    const n = Math.min(rng.int(1, 1024), end - floor);
    fs.truncateSync(file, end - n);
    return `truncated ${n} B at the tail of ${where}: the file now ends at ${end - n}`;
  }
  if (kind === 'zero-last-sector') {
    const sector = Math.floor((end - 1) / 512) * 512;
    const from = Math.max(floor, sector);
    const fd = fs.openSync(file, 'r+');
    try {
      fs.writeSync(fd, Buffer.alloc(sector + 512 - from), 0, sector + 512 - from, from);
    } finally {
      fs.closeSync(fd);
    }
    return `zeroed bytes ${from}..${sector + 511} (the sector holding the end of the last record${from > sector ? ', from that record on' : ''}) of ${where}`;
  }
  // A record in the middle: about half of the records follow it, so this cannot be a torn final write.
  const k = rng.int(Math.floor(frames.length / 3), Math.floor((2 * frames.length) / 3));
  const f = frames[k]!;
  const at = rng.int(f.start, f.end - 1);
  const bit = rng.int(0, 7);
  flipBit(file, at, bit);
  return `flipped bit ${bit} of byte ${at} (record ${k} of ${where}, bytes ${f.start}..${f.end - 1})`;
}

/** Why a member's process stopped, from its output: the fatal start error, or the assertion it died on. */
function refusalLine(output: string): string {
  const lines = output.split('\n');
  const fatal = lines.find((l) => l.includes('"level":"fatal"'));
  const m = fatal ? /"error":"((?:[^"\\]|\\.)*)"/.exec(fatal) : null;
  const why = m?.[1] ?? lines.find((l) => /^\w*(Error|Exception)\b/.test(l)) ?? lines.filter((l) => l.trim()).pop() ?? '';
  return why.slice(0, 300);
}

function tornRepair(output: string): string {
  const line = output.split('\n').find((l) => l.includes('truncating a torn record'));
  if (!line) return 'no repair needed (the damage left a clean end of records)';
  const dropped = /"droppedBytes":(\d+)/.exec(line)?.[1];
  const reason = /"reason":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1];
  return `repaired: torn record cut, ${dropped ?? '?'} B dropped (${reason ?? 'no reason logged'})`;
}

const powerLossNemesis: Nemesis = {
  name: 'power-loss',
  matrix: 'F5',
  powerLoss: true,
  async inject(ctx) {
    const { cluster, rng } = ctx;
    const victims = rng.next() < 0.25 ? [0, 1, 2] : [rng.int(0, 2)];
    // Half the time the cut comes while WAL bytes are written but not yet fdatasynced (held there by the failpoint),
    // so the WAL's own tail is undone and torn, not just LevelDB's; otherwise that window is too short to hit.
    const inSyncWindow = rng.next() < 0.5;
    if (inSyncWindow) {
      await Promise.all(victims.map((i) => cluster.failpoint(i, 'walBeforeSync', 'sleep(1000)')));
      await sleep(300);
    }
    await Promise.all(victims.map((i) => cluster.kill(i)));
    const undone = victims.map((i) => {
      const journal = cluster.powerLossJournal(i);
      if (!journal) throw new Error('the members run without the power-loss shim');
      const r = powerLoss(journal, cluster.dataDir(i), () => rng.next());
      const torn = r.tornFile ? `, last write to ${path.relative(cluster.dataDir(i), r.tornFile)} torn after ${r.tornKeptBytes} B` : '';
      return `${cluster.names[i]}: ${r.undoneWrites} unsynced writes undone (${r.undoneBytes} B)${torn}, ${r.leveldbLogsTruncated} LevelDB logs cut (${r.leveldbBytesDropped} B)`;
    });
    const anomalies: string[] = [];
    const r = {
      detail: `power loss on ${victims.map((i) => cluster.names[i]).join(',')}${inSyncWindow ? ' inside a WAL write→fdatasync window (walBeforeSync=sleep(1000))' : ''}: ${undone.join('; ')}`,
      anomalies,
      heal: async () => {
        await Promise.all(victims.map(async (i) => {
          try {
            await cluster.restart(i);
            r.detail += `; ${cluster.names[i]} restarted, ${tornRepair(cluster.procs[i]?.output() ?? '')}`;
          } catch (err: any) {
            anomalies.push(`C7: ${cluster.names[i]} did not restart after power loss: ${refusalLine(String(err?.message ?? err))}`);
          }
        }));
      },
    };
    return r;
  },
};

const diskCorruptionNemesis: Nemesis = {
  name: 'disk-corruption',
  matrix: 'F18',
  // Snapshots (and so markers to damage) within a short run.
  memberArgs: ['--snapshot-count', '100', '--experimental-snapshot-catchup-entries', '50'],
  // The refusals it expects: a fatal start error, or raft's fail-stop at the leader's first heartbeat.
  expectedLogLines: [/"msg":"discovery failed"/, /tocommit\(\d+\) is out of range \[lastIndex\(\d+\)\]/],
  async inject(ctx) {
    const { cluster, rng } = ctx;
    const i = rng.int(0, 2);
    const name = cluster.names[i]!;
    const wanted = rng.pick<Corruption>(['truncate-tail', 'zero-last-sector', 'flip-middle', 'flip-snapshot']);
    // Tail damage, three times in four, models a torn write: the member is killed while its last WAL write waits
    // for fdatasync (held by walBeforeSync), so the damaged record was never durable nor acknowledged, and the
    // member must repair it and rejoin. Otherwise it hits records that were durable, and maybe applied or
    // acknowledged to the leader. The member cannot tell that from a torn write, so it repairs; then stopping is
    // right too, as long as it says it lost log entries (faults.md §4.5: never go on silently without acknowledged
    // data): at start, because the backend applied more than the WAL now holds, or at the leader's first message,
    // raft's "tocommit(N) is out of range [lastIndex(M)]" (etcd-io/raft panics the same way). It needs replacing.
    const torn = isTailDamage(wanted) && rng.next() < 0.75;
    if (torn) {
      await cluster.failpoint(i, 'walBeforeSync', 'sleep(2000)');
      await sleep(300);
    }
    await cluster.kill(i);
    const marker = await newestMarker(cluster.dataDir(i));
    // No marker yet (no snapshot taken): damage the WAL's middle instead.
    const kind = wanted === 'flip-snapshot' && !marker ? 'flip-middle' : wanted;
    const did = corrupt(cluster.dataDir(i), kind, rng, { marker, torn });
    const anomalies: string[] = [];
    const p = cluster.spawn(i, 'existing');
    const outcome = await Promise.race([
      p.waitFor(READY, 60_000).then(() => 'ready' as const, () => 'exited' as const),
      p.exited.then(() => 'exited' as const),
    ]);
    let reaction: string;
    // A member that repaired its tail can still stop at the first message from the leader (raft's "tocommit(…) is
    // out of range [lastIndex(…)]") if the cut records were ones it had acknowledged; give it time to show that.
    const stayed = outcome === 'ready' && (await Promise.race([p.exited.then(() => false), sleep(3000).then(() => true)]));
    if (isTailDamage(kind)) {
      const why = refusalLine(p.output());
      if (stayed) reaction = `restarted and stayed up, ${tornRepair(p.output())}`;
      else reaction = `${outcome === 'ready' ? 'restarted, then stopped' : 'did not restart'} (${tornRepair(p.output())}): ${why}`;
      const failStop = !torn && /entries were lost from the WAL; refusing to start|tocommit\(\d+\) is out of range \[lastIndex\(\d+\)\]/.test(why);
      if (!stayed && !failStop) anomalies.push(`C7: ${name} did not rejoin after ${torn ? 'torn ' : 'durable '}${kind} (${did}): ${reaction}`);
    } else if (outcome === 'ready') {
      reaction = `STARTED AND SERVED (${tornRepair(p.output())})`;
      anomalies.push(`C7: ${name} started and served after ${kind} (${did}); it must refuse`);
    } else {
      reaction = `refused to start (exit ${p.proc.exitCode}): ${refusalLine(p.output())}`;
    }
    const r = {
      detail: `${torn ? 'torn ' : isTailDamage(kind) ? 'durable ' : ''}${kind} on ${name}: ${did}; ${reaction}`,
      anomalies,
      heal: async (): Promise<void> => {
        if (stayed && isTailDamage(kind)) return;
        // The member cannot (or must not) come back from its files: rebuild it from the others.
        await cluster.kill(i);
        const learner = rng.next() < 0.5;
        const { oldId, newId, notInSync } = await cluster.replace(i, learner);
        r.detail += `; healed by replacing it${learner ? ` via a learner (promotion refused as not in sync ${notInSync}×)` : ''}: ${oldId} -> ${newId}`;
      },
    };
    return r;
  },
};

const memberReplaceNemesis: Nemesis = {
  name: 'member-replace',
  matrix: 'F14',
  async inject(ctx) {
    const { cluster, rng } = ctx;
    const i = rng.int(0, 2);
    const learner = rng.next() < 0.5;
    const oldId = await cluster.removeMember(i);
    const r = {
      detail: `MemberRemove ${cluster.names[i]} (${oldId ?? 'not listed'}), data dir wiped; heal: MemberAdd ${learner ? 'as a learner, start, MemberPromote' : 'as a voter, start'}`,
      heal: async () => {
        const { id, notInSync } = await cluster.addMember(i, learner);
        r.detail += ` -> ${id}${learner ? `, promoted (refused as not in sync ${notInSync}× first)` : ''}, caught up`;
      },
    };
    return r;
  },
};

export const DISK_NEMESES: Nemesis[] = [powerLossNemesis, diskCorruptionNemesis, memberReplaceNemesis];
