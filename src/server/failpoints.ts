// Test-only failpoints (etcd's gofail, reduced to what our tests need): no-ops unless enabled through the
// TSETCD_FAILPOINTS environment variable, read when a member starts. Off by default; never set in production.
//
//   TSETCD_FAILPOINTS="corruptKV"        every member started by this process
//   TSETCD_FAILPOINTS="corruptKV=m1"     only the member named m1 (an in-process cluster shares one environment)
//   several: separated by ';' or ','
//
// Failpoints:
//   corruptKV   the member stores every applied Put with the last byte of its value flipped, so its MVCC state
//               (and its HashKV) silently diverges from its peers' while revisions stay identical: what the
//               corruption check exists to catch.

export type FailpointName = 'corruptKV';

/** Whether failpoint `name` is enabled for the member named `memberName`. */
export function failpointEnabled(name: FailpointName, memberName: string, env: string | undefined = process.env.TSETCD_FAILPOINTS): boolean {
  if (env === undefined || env === '') return false;
  for (const term of env.split(/[;,]/)) {
    const [fp, arg] = term.trim().split('=', 2) as [string, string | undefined];
    if (fp !== name) continue;
    if (arg === undefined || arg === '' || arg === memberName) return true;
  }
  return false;
}

/** The corruptKV mutation: a copy of `value` with its last byte flipped (an empty value becomes one 0xff byte). */
export function corruptValue(value: Buffer): Buffer {
  if (value.length === 0) return Buffer.from([0xff]);
  const out = Buffer.from(value);
  out[out.length - 1] = out[out.length - 1]! ^ 0xff;
  return out;
}
