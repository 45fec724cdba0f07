// Durability, issue #4: the disk under a member fails. A real bin/etcd runs with its data dir on a 32 MiB tmpfs; a
// filler file and the write load fill it until writes fail. The member must stop (it exits: the supervisor restarts
// it, as etcd's own fatal WAL errors do) with a log line that says "no space left on device", and after the filler
// is removed and the member restarted, every acknowledged write is there at its revision and the volume opens
// without damage. Then an injected fdatasync error on the WAL (an LD_PRELOAD shim, built with gcc): the member exits
// with the error logged, and a restart has every acknowledged write.

import t from 'tap';
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

t.test('disk full: the member exits with ENOSPC named; freed and restarted, every acknowledged write is there', async (t) => {
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
  const load = new WriteLoad(() => c.endpoints, monitor, { writers: 8, valueBytes: 4096, timeoutMs: 5000 }).start();
  t.teardown(() => load.stop());
  await waitForProgress(load, 300, 'before filling the disk');

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
/* Fails fdatasync/fsync on *.wal files with EIO after TSETCD_FAIL_WAL_SYNC_AFTER successful ones. */
static int calls;
static int should_fail(int fd) {
  const char *after = getenv("TSETCD_FAIL_WAL_SYNC_AFTER");
  if (after == NULL) return 0;
  char link[64], target[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 4) return 0;
  target[n] = 0;
  if (strcmp(target + n - 4, ".wal") != 0) return 0;
  return __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST) > atoi(after);
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

t.test('an injected fdatasync error on the WAL: the member exits; restarted, every acknowledged write is there', async (t) => {
  const build = await tempDir('tsetcd-fsync-shim-');
  t.teardown(() => fsp.rm(build, { recursive: true, force: true }));
  const so = path.join(build, 'failsync.so');
  try {
    await fsp.writeFile(path.join(build, 'failsync.c'), SHIM);
    execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-o', so, path.join(build, 'failsync.c'), '-ldl'], { stdio: 'pipe' });
  } catch (err) {
    t.plan(0, `skipped: cannot build the LD_PRELOAD shim with gcc: ${String((err as Error).message).split('\n')[0]}`);
    return;
  }
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
