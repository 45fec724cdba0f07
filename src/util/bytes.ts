// Byte helpers for keys: keys are compared bytewise (Buffer.compare), never as JavaScript strings.

/**
 * The smallest key greater than every key with the given prefix (clientv3.GetPrefixRangeEnd): increment
 * the last byte below 0xff and drop what follows. A prefix of only 0xff bytes has no end: returns the
 * from-key marker `\0`.
 */
export function prefixEnd(prefix: Buffer): Buffer {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const b = prefix[i]!;
    if (b < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i] = b + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}
