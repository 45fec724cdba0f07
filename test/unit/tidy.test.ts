// Architecture rules, checked on the source (TigerBeetle's tidy): the Raft core and MVCC stay free of clocks,
// timers, randomness, process access and I/O, so that a seeded simulation can drive them; imports point inward.

import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';

const root = path.join(__dirname, '..', '..', '..');

function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...files(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

const forbidden = [
  /\bDate\b/,
  /\bsetTimeout\b|\bsetInterval\b|\bsetImmediate\b/,
  /\bperformance\b/,
  /Math\.random/,
  /\bprocess\./,
  /from ['"](node:)?(fs|net|http2?|dgram|child_process|fs\/promises)['"]/,
];

for (const dir of ['src/raft', 'src/mvcc']) {
  for (const f of files(dir)) {
    const lines = fs.readFileSync(path.join(root, f), 'utf8').split('\n');
    lines.forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '');
      for (const re of forbidden) if (re.test(code)) t.fail(`${f}:${i + 1} uses ${re}: inject it instead`);
    });
  }
}

const layers: Record<string, string[]> = {
  'src/raft': ['src/util', 'src/raft'],
  'src/util': ['src/util'],
  'src/api': ['src/api'],
  'src/wal': ['src/wal', 'src/raft', 'src/util'],
  'src/mvcc': ['src/mvcc', 'src/util'],
  'src/lease': ['src/lease', 'src/mvcc', 'src/util'],
};
for (const [dir, allowed] of Object.entries(layers)) {
  for (const f of files(dir)) {
    const src = fs.readFileSync(path.join(root, f), 'utf8');
    for (const m of src.matchAll(/from ['"](\.[^'"]+)['"]/g)) {
      const target = path.relative(root, path.resolve(path.join(root, path.dirname(f)), m[1]!));
      const ok = allowed.some((a) => target === a || target.startsWith(a + '/'));
      if (!ok) t.fail(`${f} imports ${target}: ${dir} may import only ${allowed.join(', ')}`);
    }
  }
}
t.pass('tidy');
