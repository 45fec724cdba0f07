// The power-loss shim (test/helpers/powerloss.ts) itself: writes that were never synced are undone even when the
// file was reached through a path that a later rename changed. The WAL is built in member/wal.tmp/ and that
// directory is renamed to wal/ with the segment still open, so without following renames a member's whole first
// lifetime of WAL writes escaped power loss (found by the F5 power-loss nemesis: "0 unsynced writes undone" while the
// WAL was held between write and fdatasync).

import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { powerLoss } from '../helpers/powerloss';

const SHIM = path.join(__dirname, '..', 'helpers', 'powerloss.js');

t.test('F5 power loss undoes unsynced writes made through a handle opened before a directory rename', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsetcd-shim-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const data = path.join(root, 'data');
  const journal = path.join(root, 'journal');
  const script = `
    const fs = require('node:fs'); const fsp = require('node:fs/promises'); const path = require('node:path');
    (async () => {
      const dir = path.join(${JSON.stringify(data)}, 'wal');
      fs.mkdirSync(dir + '.tmp', { recursive: true });
      const h = await fsp.open(path.join(dir + '.tmp', 'seg'), 'w');
      await h.write(Buffer.from('AAAA'), 0, 4, 0);
      await h.datasync();
      await h.write(Buffer.from('BBBB'), 0, 4, 4);
      await fsp.rename(dir + '.tmp', dir);
      await h.write(Buffer.from('CCCC'), 0, 4, 8);
      process.exit(0); // no sync: as if killed here
    })();`;
  const r = spawnSync(process.execPath, ['--require', SHIM, '-e', script], {
    env: { ...process.env, TSETCD_POWERLOSS_JOURNAL: journal, TSETCD_POWERLOSS_ROOT: data },
    encoding: 'utf8',
  });
  t.equal(r.status, 0, r.stderr);
  const seg = path.join(data, 'wal', 'seg');
  t.equal(fs.readFileSync(seg, 'utf8'), 'AAAABBBBCCCC', 'before the power loss every write is in the page cache');
  const report = powerLoss(journal, data, () => 0);
  t.equal(report.undoneWrites, 2, 'both unsynced writes undone');
  t.equal(report.undoneBytes, 8 - 1, 'their bytes, less the 1 B of the torn last write that reached the disk');
  t.equal(report.tornFile, seg, 'the torn write is reported under the file\'s current name');
  t.equal(fs.readFileSync(seg, 'utf8'), 'AAAA', 'only the synced write survives');
});
