// The timeline picture: the SVG shades every fault window and draws one dot per operation, and the PNG is that
// SVG rasterized at its size.

import t from 'tap';
import { timelinePng, timelineSvg } from './timeline';
import type { HarnessOp } from './workload';

const ops: HarnessOp[] = [
  { client: 0, input: { type: 'put', key: 'k/0', value: 'a' }, output: { revision: 2 }, call: 10, ret: 15 },
  { client: 1, input: { type: 'range', key: 'k/0' }, output: undefined, call: 20, ret: 30, error: 'unavailable' },
  { client: 2, input: { type: 'put', key: 'k/1', value: 'b' }, output: undefined, call: 25, ret: Infinity, failedAt: 1500 },
] as HarnessOp[];

t.test('svg: a dot per operation, coloured by outcome, and the fault windows', async (t) => {
  const svg = timelineSvg(ops, [{ nemesis: 'kill-leader', detail: 'kill -9 n1', start: 5, end: 800 }], 'title');
  t.equal((svg.match(/<circle /g) ?? []).length, ops.length + 3, 'three operations plus three legend dots');
  t.match(svg, /#9467bd/, 'the indeterminate write is purple');
  t.match(svg, /kill-leader: kill -9 n1/, 'the fault window carries its detail');
});

t.test('png: the SVG rasterized at 1200×420', async (t) => {
  const png = timelinePng(timelineSvg(ops, [], 'title'));
  t.same([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  t.equal(png.readUInt32BE(16), 1200, 'width');
  t.equal(png.readUInt32BE(20), 420, 'height');
});
