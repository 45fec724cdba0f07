// Durable directory entries: after creating, renaming or deleting a file, fsync its directory so that the change
// survives a power loss (the WAL's segments, snapshot markers, received snapshot databases).

import fs from 'node:fs/promises';

/** Makes a directory's entries (created, renamed or deleted files) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
