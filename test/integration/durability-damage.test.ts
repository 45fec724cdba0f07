// Durability, issue #4: damage on a stopped single member's volume. Each case starts a real bin/etcd, writes, stops
// it, damages one file, and starts it again: the process must exit non-zero with an error that names the damaged
// file and the byte offset, and never start serving with fewer entries than it acknowledged.
//
// Cases: a bit flipped in the payload or the header of a WAL record that is not the last; the newest snapshot
// marker (member/snap/*.snap) truncated or bit-flipped; a whole WAL segment zeroed (the first of two, and the only
// one); a large region in the middle of a segment zeroed; and the last records of the WAL zeroed, which looks like
// the end of the log (a preallocated segment reads back as zeroes) and must be caught by comparing with the backend.

import t, { type Test } from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { readFrame } from '../../src/wal/decoder';
import { RecordType } from '../../src/wal/encoder';
import { ProcessCluster, RevisionMonitor, WriteLoad } from '../helpers/process-cluster';

interface WalRecord {
  offset: number;
  end: number;
  type: RecordType;
}

/** The records of a WAL segment, in order (the segment must be undamaged). */
async function walRecords(file: string): Promise<WalRecord[]> {
  const buf = await fs.readFile(file);
  const out: WalRecord[] = [];
  let offset = 0;
  let seed = 0;
  let first = true;
  for (;;) {
    const r = readFrame(buf, offset, seed);
    if (r.kind === 'end') break;
    if (r.kind === 'damage') throw new Error(`${file} is already damaged at ${offset}: ${r.reason}`);
    if (first && r.type !== RecordType.Crc) throw new Error(`${file} does not start with a CRC record`);
    first = false;
    out.push({ offset, end: r.end, type: r.type });
    seed = r.crc;
    offset = r.end;
  }
  return out;
}

async function walSegments(dataDir: string): Promise<string[]> {
  const dir = path.join(dataDir, 'member', 'wal');
  return (await fs.readdir(dir)).filter((f) => f.endsWith('.wal')).sort().map((f) => path.join(dir, f));
}

async function flipBit(file: string, offset: number, bit = 0): Promise<void> {
  const fh = await fs.open(file, 'r+');
  try {
    const one = Buffer.alloc(1);
    await fh.read(one, 0, 1, offset);
    one[0] = one[0]! ^ (1 << bit);
    await fh.write(one, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

async function zeroRange(file: string, start: number, end: number): Promise<void> {
  const fh = await fs.open(file, 'r+');
  try {
    await fh.write(Buffer.alloc(end - start), 0, end - start, start);
  } finally {
    await fh.close();
  }
}

/**
 * Starts a single member, acknowledges `writes` Puts, stops it with SIGTERM, runs `damage` on its data dir, starts
 * it again and checks that it refuses: a non-zero exit whose output names the file and the offset `damage` returns.
 */
async function damageCase(
  t: Test,
  opts: { extraArgs?: string[]; writes?: number; valueBytes?: number; writers?: number },
  damage: (dataDir: string) => Promise<{ file: string; offset: number; what: string }>,
): Promise<void> {
  const c = await ProcessCluster.start(t, { size: 1, prefix: 'tsetcd-damage-', extraArgs: opts.extraArgs ?? [] });
  const load = new WriteLoad(() => c.endpoints, new RevisionMonitor(), {
    writers: opts.writers ?? 8,
    maxWrites: opts.writes ?? 300,
    valueBytes: opts.valueBytes,
    timeoutMs: 10000,
  }).start();
  await load.done();
  t.equal(load.acked.size, opts.writes ?? 300, `${load.acked.size} writes acknowledged before the damage`);
  await c.stopAll();
  t.equal(c.procs[0]!.proc.exitCode, 0, 'the member stopped cleanly');

  const { file, offset, what } = await damage(c.dataDirs[0]!);
  t.comment(`damage: ${what} (${path.relative(c.dataDirs[0]!, file)} at offset ${offset})`);
  const p = c.spawn(0);
  const code = await p.exited;
  const out = p.output();
  t.not(code, 0, `bin/etcd exits non-zero after ${what} (exit ${code})`);
  t.notOk(out.includes('ready to serve client requests'), 'it never served clients');
  const fatal = out.split('\n').filter((l) => l.includes('"level":"fatal"') || l.includes('"level":"error"'));
  t.ok(fatal.length > 0, 'it logged a fatal error');
  const named = fatal.find((l) => l.includes(file) && l.includes(`offset ${offset}`));
  t.ok(named, `the error names ${path.basename(file)} and offset ${offset}`, { found: fatal.map((l) => l.slice(0, 600)) });
}

t.test('WAL: a bit flipped in the payload of a record in the middle', async (t) => {
  await damageCase(t, {}, async (dir) => {
    const [seg] = await walSegments(dir);
    const recs = await walRecords(seg!);
    const entries = recs.filter((r) => r.type === RecordType.Entry);
    t.ok(entries.length > 300, `${entries.length} entry records`);
    const victim = entries[Math.floor(entries.length / 2)]!;
    t.ok(victim.offset < recs[recs.length - 1]!.offset, 'the damaged record is not the last one');
    await flipBit(seg!, victim.offset + 12 + 2, 3);
    return { file: seg!, offset: victim.offset, what: 'a bit flip in a middle record payload' };
  });
});

t.test('WAL: a bit flipped in the length field of a record in the middle', async (t) => {
  await damageCase(t, {}, async (dir) => {
    const [seg] = await walSegments(dir);
    const recs = await walRecords(seg!);
    const victim = recs[Math.floor(recs.length / 3)]!;
    await flipBit(seg!, victim.offset + 2, 6); // length += 2^22: past the end of the file unless checked
    return { file: seg!, offset: victim.offset, what: 'a bit flip in a middle record length' };
  });
});

t.test('snapshot marker: the newest member/snap/*.snap truncated', async (t) => {
  await damageCase(t, { extraArgs: ['--snapshot-count', '50'] }, async (dir) => {
    const snapDir = path.join(dir, 'member', 'snap');
    const markers = (await fs.readdir(snapDir)).filter((f) => f.endsWith('.snap')).sort();
    t.ok(markers.length >= 2, `snapshot markers were written (${markers.join(' ')})`);
    const newest = path.join(snapDir, markers[markers.length - 1]!);
    await fs.truncate(newest, 13);
    return { file: newest, offset: 13, what: 'a truncated snapshot marker' };
  });
});

t.test('snapshot marker: a bit flipped in the newest member/snap/*.snap', async (t) => {
  await damageCase(t, { extraArgs: ['--snapshot-count', '50'] }, async (dir) => {
    const snapDir = path.join(dir, 'member', 'snap');
    const markers = (await fs.readdir(snapDir)).filter((f) => f.endsWith('.snap')).sort();
    const newest = path.join(snapDir, markers[markers.length - 1]!);
    await flipBit(newest, 27, 0);
    return { file: newest, offset: 12, what: 'a bit flip in a snapshot marker' };
  });
});

t.test('WAL: the only segment zeroed', async (t) => {
  await damageCase(t, {}, async (dir) => {
    const segs = await walSegments(dir);
    t.equal(segs.length, 1, 'one segment');
    const size = (await fs.stat(segs[0]!)).size;
    await zeroRange(segs[0]!, 0, size);
    return { file: segs[0]!, offset: 0, what: 'a zeroed segment' };
  });
});

t.test('WAL: a large region in the middle of a segment zeroed', async (t) => {
  await damageCase(t, {}, async (dir) => {
    const [seg] = await walSegments(dir);
    const recs = await walRecords(seg!);
    const from = recs[Math.floor(recs.length / 4)]!;
    const to = recs[Math.floor((3 * recs.length) / 4)]!;
    await zeroRange(seg!, from.offset, to.end);
    return { file: seg!, offset: from.offset, what: `${to.end - from.offset} bytes zeroed in the middle of the segment` };
  });
});

t.test('WAL: the last records zeroed (looks like the end of the log)', async (t) => {
  await damageCase(t, {}, async (dir) => {
    const [seg] = await walSegments(dir);
    const recs = await walRecords(seg!);
    const from = recs[recs.length - 40]!;
    await zeroRange(seg!, from.offset, recs[recs.length - 1]!.end);
    return { file: seg!, offset: from.offset, what: 'the last 40 records zeroed' };
  });
});

t.test('WAL: the first of two segments zeroed', async (t) => {
  // 1 MiB values: the WAL cuts its 64 MiB segment after about 64 writes.
  await damageCase(t, { writes: 80, writers: 2, valueBytes: 1 << 20 }, async (dir) => {
    const segs = await walSegments(dir);
    t.ok(segs.length >= 2, `${segs.length} segments`);
    const size = (await fs.stat(segs[0]!)).size;
    await zeroRange(segs[0]!, 0, size);
    return { file: segs[0]!, offset: 0, what: 'the first segment zeroed' };
  });
});
