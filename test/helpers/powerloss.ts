// A power-loss storage shim for tests. A member started with
//   NODE_OPTIONS="--require <this file>"  TSETCD_POWERLOSS_JOURNAL=<journal path>  TSETCD_POWERLOSS_ROOT=<data dir>
// records, before every write it makes under the data dir, what the bytes were before (a pre-image), and every
// fsync/fdatasync that made a file durable. After the process is killed (SIGKILL: the page cache keeps everything, as
// if the machine stayed up), powerLoss() turns the data dir into what a machine that lost power at that instant
// could have on disk:
//   - JavaScript file I/O (the WAL, snapshot markers): every write after a file's last sync is undone, newest first,
//     file sizes included; the very last write made is torn instead (a prefix of it survives);
//   - LevelDB (native I/O the shim cannot see): after every sync:true batch the shim records the size of the
//     database's write-ahead log (*.log); power loss truncates that log to the recorded size, and a newer log to
//     nothing. Data LevelDB had moved into table files is kept (LevelDB syncs tables itself), so what is lost is
//     exactly a suffix of the unsynced batches.
// Directory operations (create, rename, unlink) are taken as durable at once: the code under test always syncs the
// directory after them, and the shim does not model their loss. Renames are journaled only so that writes through a
// handle opened before a rename are undone in the file's new place.

import fs from 'node:fs';
import path from 'node:path';

type JournalRecord =
  | { k: 'w'; f: string; pos: number; pre: string; size: number; len: number }
  | { k: 't'; f: string; size: number; pre: string; to: number }
  | { k: 's'; f: string }
  | { k: 'r'; from: string; to: string }
  | { k: 'ldb'; dir: string; logs: Record<string, number> };

function install(journalPath: string, root: string): void {
  const jfd = fs.openSync(journalPath, 'a');
  const log = (r: JournalRecord): void => {
    fs.writeSync(jfd, JSON.stringify(r) + '\n');
  };
  const under = (f: string): boolean => path.resolve(f).startsWith(path.resolve(root) + path.sep);
  const sizeOf = (f: string): number => {
    try {
      return fs.statSync(f).size;
    } catch {
      return -1;
    }
  };
  const readRange = (f: string, pos: number, len: number): Buffer => {
    const size = sizeOf(f);
    if (size <= pos) return Buffer.alloc(0);
    const n = Math.min(len, size - pos);
    const buf = Buffer.alloc(n);
    const fd = fs.openSync(f, 'r');
    try {
      fs.readSync(fd, buf, 0, n, pos);
    } finally {
      fs.closeSync(fd);
    }
    return buf;
  };
  const beforeWrite = (f: string, pos: number, len: number): void => {
    log({ k: 'w', f, pos, pre: readRange(f, pos, len).toString('base64'), size: sizeOf(f), len });
  };

  const openFiles = new Set<{ f: string }>();
  const origOpen = fs.promises.open;
  (fs.promises as { open: typeof fs.promises.open }).open = async function open(file: fs.PathLike, flags?: string | number, mode?: fs.Mode) {
    const opened = path.resolve(String(file));
    const existed = sizeOf(opened);
    const h = await origOpen.call(fs.promises, file, flags, mode);
    if (!under(opened)) return h;
    // The file's current path: a rename of it or of a directory above it moves it (see rename below).
    const st = { f: opened };
    openFiles.add(st);
    const close = h.close.bind(h);
    (h as unknown as { close: unknown }).close = () => {
      openFiles.delete(st);
      return close();
    };
    // Opening with 'w' truncates: that is a write too.
    if (existed > 0 && typeof flags === 'string' && flags.startsWith('w')) log({ k: 't', f: opened, size: existed, pre: readRange(opened, 0, existed).toString('base64'), to: 0 });
    const write = h.write.bind(h) as (...a: unknown[]) => Promise<{ bytesWritten: number }>;
    (h as unknown as { write: unknown }).write = (buf: Buffer, offset?: number, length?: number, position?: number) => {
      const len = length ?? buf.length - (offset ?? 0);
      beforeWrite(st.f, position ?? sizeOf(st.f), len);
      return write(buf, offset, length, position);
    };
    const writeFile = h.writeFile.bind(h);
    (h as unknown as { writeFile: unknown }).writeFile = (data: Buffer) => {
      beforeWrite(st.f, 0, data.length);
      return writeFile(data);
    };
    const truncate = h.truncate.bind(h);
    (h as unknown as { truncate: unknown }).truncate = (len = 0) => {
      const size = sizeOf(st.f);
      log({ k: 't', f: st.f, size, pre: len < size ? readRange(st.f, len, size - len).toString('base64') : '', to: len });
      return truncate(len);
    };
    for (const name of ['datasync', 'sync'] as const) {
      const orig = h[name].bind(h);
      (h as unknown as Record<string, unknown>)[name] = async () => {
        await orig();
        log({ k: 's', f: st.f });
      };
    }
    return h;
  };

  // Renames: a handle keeps writing to a file after it (or its directory: the WAL is built in wal.tmp/) was renamed.
  // Open handles follow the rename here; powerLoss() applies it to the records journaled before it.
  const origRename = fs.promises.rename;
  (fs.promises as { rename: typeof fs.promises.rename }).rename = async function rename(from: fs.PathLike, to: fs.PathLike) {
    await origRename.call(fs.promises, from, to);
    const f = path.resolve(String(from));
    if (!under(f)) return;
    const dest = path.resolve(String(to));
    log({ k: 'r', from: f, to: dest });
    for (const st of openFiles) if (st.f === f || st.f.startsWith(f + path.sep)) st.f = dest + st.f.slice(f.length);
  };

  // LevelDB: after a sync batch, everything LevelDB wrote so far is durable; remember the size of its log.
  const { ClassicLevel } = require('classic-level') as { ClassicLevel: { prototype: { batch: (...a: unknown[]) => Promise<void>; location: string } } };
  const origBatch = ClassicLevel.prototype.batch;
  ClassicLevel.prototype.batch = function batch(this: { location: string }, ...args: unknown[]) {
    const opts = args[1] as { sync?: boolean } | undefined;
    const p = origBatch.apply(this, args) as Promise<void> | undefined;
    if (!Array.isArray(args[0]) || !opts?.sync || !under(this.location) || p === undefined) return p as Promise<void>;
    const dir = path.resolve(this.location);
    return p.then(() => {
      const logs: Record<string, number> = {};
      for (const name of fs.readdirSync(dir)) if (name.endsWith('.log')) logs[name] = sizeOf(path.join(dir, name));
      log({ k: 'ldb', dir, logs });
    });
  };
}

if (process.env.TSETCD_POWERLOSS_JOURNAL && process.env.TSETCD_POWERLOSS_ROOT) {
  install(process.env.TSETCD_POWERLOSS_JOURNAL, process.env.TSETCD_POWERLOSS_ROOT);
}

/** What powerLoss() did, for the test's log. */
export interface PowerLossReport {
  undoneWrites: number;
  /** Bytes of new data the undone writes had put there (what the power cut took back). */
  undoneBytes: number;
  tornFile: string | null;
  tornKeptBytes: number;
  leveldbLogsTruncated: number;
  leveldbBytesDropped: number;
}

/**
 * Turns the data dir of a killed member into what power loss at that instant could leave (see the top of this
 * file), then empties the journal so the next run starts a fresh one. `rand` picks how much of the last write
 * survives.
 */
export function powerLoss(journalPath: string, root?: string, rand: () => number = Math.random): PowerLossReport {
  const text = fs.existsSync(journalPath) ? fs.readFileSync(journalPath, 'utf8') : '';
  const records = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as JournalRecord);
  // Each record's file where it is now: the renames journaled after the record, applied in order.
  const renames = records.flatMap((r, i) => (r.k === 'r' ? [{ i, from: r.from, to: r.to }] : []));
  for (const [i, r] of records.entries()) {
    if (r.k !== 'w' && r.k !== 't' && r.k !== 's') continue;
    for (const m of renames) {
      if (m.i > i && (r.f === m.from || r.f.startsWith(m.from + path.sep))) r.f = m.to + r.f.slice(m.from.length);
    }
  }
  const report: PowerLossReport = { undoneWrites: 0, undoneBytes: 0, tornFile: null, tornKeptBytes: 0, leveldbLogsTruncated: 0, leveldbBytesDropped: 0 };

  // Per file: the records after its last sync are undone, newest first.
  const lastSync = new Map<string, number>();
  records.forEach((r, i) => {
    if (r.k === 's') lastSync.set(r.f, i);
  });
  let lastWrite = -1;
  records.forEach((r, i) => {
    if (r.k === 'w' && i > (lastSync.get(r.f) ?? -1)) lastWrite = i;
  });
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i]!;
    if (r.k !== 'w' && r.k !== 't') continue;
    if (i <= (lastSync.get(r.f) ?? -1) || !fs.existsSync(r.f)) continue;
    const fd = fs.openSync(r.f, 'r+');
    try {
      if (r.k === 'w') {
        const pre = Buffer.from(r.pre, 'base64');
        let keep = 0;
        if (i === lastWrite && r.len > 1) {
          // Torn: the first `keep` bytes of the new data reached the disk, the rest did not.
          keep = 1 + Math.floor(rand() * (r.len - 1));
          report.tornFile = r.f;
          report.tornKeptBytes = keep;
        }
        report.undoneBytes += r.len - keep;
        if (pre.length > keep) fs.writeSync(fd, pre, keep, pre.length - keep, r.pos + keep);
        if (r.size >= 0) {
          const size = fs.fstatSync(fd).size;
          const restored = Math.max(r.size, keep > 0 ? r.pos + keep : 0);
          if (size > restored) fs.ftruncateSync(fd, restored);
        }
      } else {
        fs.ftruncateSync(fd, r.size);
        const pre = Buffer.from(r.pre, 'base64');
        if (pre.length > 0) fs.writeSync(fd, pre, 0, pre.length, r.to);
      }
      report.undoneWrites++;
    } finally {
      fs.closeSync(fd);
    }
  }

  // LevelDB: the last synced size of each database's log; newer logs lose everything, and so does every log of a
  // database under the data dir that never had a sync batch.
  const lastLdb = new Map<string, Record<string, number>>();
  for (const r of records) if (r.k === 'ldb') lastLdb.set(r.dir, r.logs);
  if (root !== undefined) {
    const walk = (dir: string): void => {
      for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
        if (!ent.isDirectory()) continue;
        const sub = path.join(dir, ent.name);
        if (fs.existsSync(path.join(sub, 'CURRENT')) && !lastLdb.has(sub)) lastLdb.set(sub, {});
        walk(sub);
      }
    };
    walk(path.resolve(root));
  }
  for (const [dir, logs] of lastLdb) {
    if (!fs.existsSync(dir)) continue;
    const recordedNumbers = Object.keys(logs).map((n) => parseInt(n, 10));
    const newestRecorded = recordedNumbers.length > 0 ? Math.max(...recordedNumbers) : -1;
    for (const name of fs.readdirSync(dir)) {
      if (!name.endsWith('.log')) continue;
      const file = path.join(dir, name);
      const size = fs.statSync(file).size;
      const recorded = logs[name];
      const target = recorded !== undefined ? recorded : parseInt(name, 10) > newestRecorded ? 0 : size;
      if (size > target) {
        fs.truncateSync(file, target);
        report.leveldbLogsTruncated++;
        report.leveldbBytesDropped += size - target;
      }
    }
  }
  fs.writeFileSync(journalPath, '');
  return report;
}
