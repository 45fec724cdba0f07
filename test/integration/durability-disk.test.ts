// Durability, issue #4: the disk under a member fails. A real bin/etcd runs with its data dir on a 32 MiB tmpfs; a
// filler file and the write load fill it until writes fail. The member must stop (it exits: the supervisor restarts
// it, as etcd's own fatal WAL errors do) with a log line that says "no space left on device", and after the filler
// is removed and the member restarted, every acknowledged write is there at its revision and the volume opens
// without damage. Then, with an LD_PRELOAD shim built with gcc: an fdatasync error (EIO) on the WAL, and ENOSPC from
// the backend's (LevelDB's) writes: the member exits with the error logged, and a restart has every acknowledged
// write.

import t, { type Test } from 'tap';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { rawClient, tempDir } from '../helpers/member';
import { ProcessCluster, RevisionMonitor, WriteLoad, callWithDeadline, checkAcked, sleep, until, waitForProgress } from '../helpers/process-cluster';

/** Lines of `out` at level error or fatal. */
function errorLines(out: string): string[] {
  return out.split('\n').filter((l) => l.includes('"level":"error"') || l.includes('"level":"fatal"'));
}

// Which write fails first (the WAL or the backend, LevelDB) depends on timing; it is mostly the WAL here (the
// backend's turn is forced with the shim below).
for (const valueBytes of [4096, 65536]) t.test(`disk full (${valueBytes}-byte values): the member exits with ENOSPC named; freed and restarted, every acknowledged write is there`, async (t) => {
  const mnt = await tempDir('tsetcd-diskfull-mnt-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    await fsp.rm(mnt, { recursive: true, force: true });
    t.plan(0, `skipped: cannot mount a tmpfs (needs root and mount): ${String((err as Error).message).split('\n')[0]}`);
    return;
  }
  let c: ProcessCluster | undefined;
  t.teardown(async () => {
    await c?.destroy(); // the process must be gone before the unmount
    try {
      execFileSync('umount', [mnt], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', mnt], { stdio: 'pipe' });
    }
    await fsp.rm(mnt, { recursive: true, force: true });
  });
  c = await ProcessCluster.create(t, { size: 1, prefix: 'tsetcd-diskfull-', dataDirOf: (name) => path.join(mnt, name) });
  c.spawn(0, 'new');
  await c.waitReady(0);
  const monitor = new RevisionMonitor();
  const load = new WriteLoad(() => c.endpoints, monitor, { writers: 8, valueBytes, timeoutMs: 5000 }).start();
  t.teardown(() => load.stop());
  await waitForProgress(load, valueBytes > 10000 ? 100 : 300, 'before filling the disk');

  // Fill the file system: 1 MiB chunks, then 4 KiB ones, until ENOSPC.
  const filler = path.join(mnt, 'filler');
  const fd = fs.openSync(filler, 'w');
  let filled = 0;
  for (const size of [1 << 20, 4096]) {
    const chunk = Buffer.alloc(size, 0xaa);
    try {
      for (;;) filled += fs.writeSync(fd, chunk);
    } catch (err) {
      t.equal((err as NodeJS.ErrnoException).code, 'ENOSPC', `filler stopped by ENOSPC (chunk ${size})`);
    }
  }
  fs.closeSync(fd);
  t.comment(`filler: ${filled} bytes`);

  // The member's next WAL or backend write fails, and it exits.
  await until('the member to exit on the full disk', () => !c.isUp(0), 30000);
  const code = await c.procs[0]!.exited;
  t.not(code, 0, `the member exited non-zero (${code})`);
  const errors = errorLines(c.output(0));
  const noSpace = errors.find((l) => /no space left on device/i.test(l) && l.includes('ENOSPC'));
  t.ok(noSpace, 'an error line says no space left on device (ENOSPC)', { found: errors.map((l) => l.slice(0, 500)) });
  t.ok(noSpace && /"msg":"[^"]*no space left on device/i.test(noSpace), 'in its message, not only in the error detail');
  t.comment(`failed first: ${noSpace?.includes('"component":"wal"') ? 'the WAL' : 'the backend'}`);
  const kv = rawClient(c.endpoints[0]!, 'etcdserverpb', 'KV');
  const refused = await callWithDeadline(kv, 'Put', { key: Buffer.from('after-full'), value: Buffer.from('x') }, 2000).then(
    () => 'acknowledged',
    (err) => String(err.code),
  );
  kv.close();
  t.not(refused, 'acknowledged', 'it accepts no write');
  await load.stop();

  // Free the space and restart on the same volume.
  await fsp.rm(filler);
  await c.restart(0);
  const restartErrors = errorLines(c.output(0));
  t.same(restartErrors, [], 'the volume opens without errors');
  const repaired = c.output(0).split('\n').filter((l) => l.includes('truncating a torn record'));
  t.comment(repaired.length > 0 ? `the WAL's torn tail (an unacknowledged partial write) was repaired: ${repaired[0]!.slice(0, 300)}` : 'no torn tail to repair');
  await checkAcked(t, c, load, 'after freeing space');

  // It takes writes again, and a clean stop and start finds an undamaged volume (no repair the second time).
  const more = new WriteLoad(() => c.endpoints, monitor, { writers: 4, maxWrites: 100, prefix: 'more/' }).start();
  await more.done();
  t.equal(more.acked.size, 100, 'writes succeed after the restart');
  await c.stopAll();
  await c.restart(0);
  t.notOk(c.output(0).includes('truncating a torn record'), 'the second start repairs nothing');
  await checkAcked(t, c, load, 'after a clean restart');
  await checkAcked(t, c, more, 'after a clean restart (new writes)');
});

const SHIM = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/*
 * TSETCD_FAIL_WAL_SYNC_AFTER=n: fdatasync/fsync on *.wal files fail with EIO after n successful ones.
 * TSETCD_FAIL_DB_WRITE_AFTER=n: writes to files under /snap/db/ (the LevelDB backend) fail with ENOSPC after n.
 */
static int sync_calls, write_calls;
static int path_of(int fd, char *target, size_t size) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, size - 1);
  if (n < 0) return 0;
  target[n] = 0;
  return (int)n;
}
static int should_fail(int fd) {
  const char *after = getenv("TSETCD_FAIL_WAL_SYNC_AFTER");
  if (after == NULL) return 0;
  char target[4096];
  int n = path_of(fd, target, sizeof target);
  if (n < 4 || strcmp(target + n - 4, ".wal") != 0) return 0;
  return __atomic_add_fetch(&sync_calls, 1, __ATOMIC_SEQ_CST) > atoi(after);
}
/* LevelDB (classic-level) writes through stdio: fwrite_unlocked, which reports the error with errno. */
#undef fwrite_unlocked
static int db_write_fails(FILE *stream) {
  const char *after = getenv("TSETCD_FAIL_DB_WRITE_AFTER");
  if (after == NULL) return 0;
  char target[4096];
  if (path_of(fileno(stream), target, sizeof target) == 0 || strstr(target, "/snap/db/") == NULL) return 0;
  return __atomic_add_fetch(&write_calls, 1, __ATOMIC_SEQ_CST) > atoi(after);
}
size_t fwrite_unlocked(const void *ptr, size_t size, size_t n, FILE *stream) {
  static size_t (*real)(const void *, size_t, size_t, FILE *);
  if (real == NULL) real = (size_t (*)(const void *, size_t, size_t, FILE *))dlsym(RTLD_NEXT, "fwrite_unlocked");
  if (db_write_fails(stream)) { errno = ENOSPC; return 0; }
  return real(ptr, size, n, stream);
}
int fdatasync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  if (should_fail(fd)) { errno = EIO; return -1; }
  return real(fd);
}
int fsync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  if (should_fail(fd)) { errno = EIO; return -1; }
  return real(fd);
}
`;

/** Builds the LD_PRELOAD shim into a temp dir; null (and the test planned as skipped) if there is no gcc. */
async function buildShim(t: Test): Promise<string | null> {
  const build = await tempDir('tsetcd-fault-shim-');
  t.teardown(() => fsp.rm(build, { recursive: true, force: true }));
  const so = path.join(build, 'faults.so');
  try {
    execFileSync('gcc', ['--version'], { stdio: 'pipe' });
  } catch (err) {
    t.plan(0, `skipped: no gcc to build the LD_PRELOAD fault shim: ${String((err as Error).message).split('\n')[0]}`);
    return null;
  }
  await fsp.writeFile(path.join(build, 'faults.c'), SHIM);
  execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-o', so, path.join(build, 'faults.c'), '-ldl'], { stdio: 'pipe' });
  return so;
}

t.test('an injected fdatasync error on the WAL: the member exits; restarted, every acknowledged write is there', async (t) => {
  const so = await buildShim(t);
  if (so === null) return;
  const c = await ProcessCluster.create(t, { size: 1, prefix: 'tsetcd-fsync-' });
  c.spawn(0, 'new', { env: { LD_PRELOAD: so, TSETCD_FAIL_WAL_SYNC_AFTER: '400' } });
  await c.waitReady(0);
  const load = new WriteLoad(() => c.endpoints, new RevisionMonitor(), { writers: 4, timeoutMs: 5000 }).start();
  t.teardown(() => load.stop());
  await until('the member to exit on the failed fdatasync', () => !c.isUp(0), 30000);
  const code = await c.procs[0]!.exited;
  await load.stop();
  t.not(code, 0, `the member exited non-zero (${code})`);
  const errors = errorLines(c.output(0));
  t.ok(errors.some((l) => l.includes('EIO') && l.includes('fdatasync') && l.includes('.wal')), 'the error names EIO, fdatasync and the segment', {
    found: errors.map((l) => l.slice(0, 500)),
  });
  t.ok(load.acked.size > 50, `${load.acked.size} writes acknowledged before the failure`);
  await sleep(100);
  await c.restart(0);
  await checkAcked(t, c, load, 'after the restart');
});

t.test('ENOSPC from the backend (LevelDB) writes: the member exits naming it; restarted, every acknowledged write is there', async (t) => {
  const so = await buildShim(t);
  if (so === null) return;
  const c = await ProcessCluster.create(t, { size: 1, prefix: 'tsetcd-dbfull-' });
  c.spawn(0, 'new', { env: { LD_PRELOAD: so, TSETCD_FAIL_DB_WRITE_AFTER: '300' } });
  await c.waitReady(0);
  const load = new WriteLoad(() => c.endpoints, new RevisionMonitor(), { writers: 4, timeoutMs: 5000 }).start();
  t.teardown(() => load.stop());
  await until('the member to exit on the failed backend write', () => !c.isUp(0), 30000);
  const code = await c.procs[0]!.exited;
  await load.stop();
  t.not(code, 0, `the member exited non-zero (${code})`);
  const errors = errorLines(c.output(0));
  t.ok(
    errors.some((l) => l.includes('"component":"mvcc"') && /"msg":"[^"]*no space left on device \(ENOSPC\)/.test(l)),
    'an error line from the backend says no space left on device (ENOSPC)',
    { found: errors.map((l) => l.slice(0, 500)) },
  );
  t.ok(load.acked.size > 50, `${load.acked.size} writes acknowledged before the failure`);
  await c.restart(0);
  t.same(errorLines(c.output(0)), [], 'the volume opens without errors');
  await checkAcked(t, c, load, 'after the restart');
});
