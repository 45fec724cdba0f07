// The run's picture: every operation as a dot at (call time, latency), coloured by outcome, over shaded fault
// windows. An SVG (timeline.svg), the same SVG inline in an HTML page (timeline.html) with the run's verdicts, and
// a PNG of it (timeline.png, rasterized by resvg; the hover details of the SVG are lost there).

import { Resvg } from '@resvg/resvg-js';
import type { FaultWindow } from './nemesis';
import type { HarnessOp } from './workload';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const COLOURS = { ok: '#2a9d3a', fail: '#d62728', indeterminate: '#9467bd' } as const;
const FAULT_COLOURS = ['#fdd49e', '#c6dbef', '#d9f0a3', '#fcc5c0', '#dadaeb', '#fee391'];

export function outcome(op: HarnessOp): keyof typeof COLOURS {
  if (op.output !== undefined) return 'ok';
  return op.input.type === 'range' ? 'fail' : 'indeterminate';
}

export function timelineSvg(ops: readonly HarnessOp[], windows: readonly FaultWindow[], title: string): string {
  const W = 1200;
  const H = 420;
  const left = 60;
  const right = 20;
  const top = 30;
  const bottom = 50;
  const ends = ops.map((o) => Number(o.ret === Infinity ? o.failedAt ?? o.call : o.ret));
  const tMax = Math.max(1, ...ends, ...windows.map((w) => w.end ?? w.start));
  const lat = ops.map((o, i) => Math.max(0.1, ends[i]! - Number(o.call)));
  const lMax = Math.max(10, ...lat);
  const x = (t: number) => left + (t / tMax) * (W - left - right);
  // Log scale for latency: 0.1 ms .. lMax.
  const lo = Math.log10(0.1);
  const hi = Math.log10(lMax * 1.2);
  const y = (l: number) => top + (1 - (Math.log10(l) - lo) / (hi - lo)) * (H - top - bottom);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${left}" y="18" font-size="13">${esc(title)}</text>`);
  const kinds = [...new Set(windows.map((w) => w.nemesis))];
  for (const w of windows) {
    const c = FAULT_COLOURS[kinds.indexOf(w.nemesis) % FAULT_COLOURS.length];
    const x0 = x(w.start);
    const x1 = x(w.end ?? tMax);
    parts.push(`<rect x="${x0.toFixed(1)}" y="${top}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${H - top - bottom}" fill="${c}" opacity="0.6"><title>${esc(`${w.nemesis}: ${w.detail}${w.error ? ` (${w.error})` : ''} [${(w.start / 1000).toFixed(2)}s – ${((w.end ?? tMax) / 1000).toFixed(2)}s]`)}</title></rect>`);
    parts.push(`<text x="${(x0 + 2).toFixed(1)}" y="${top + 10}" font-size="9" fill="#555">${esc(w.nemesis)}</text>`);
  }
  // Axes.
  parts.push(`<line x1="${left}" y1="${H - bottom}" x2="${W - right}" y2="${H - bottom}" stroke="#333"/>`);
  parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${H - bottom}" stroke="#333"/>`);
  const step = Math.max(1, Math.ceil(tMax / 1000 / 15));
  for (let s = 0; s * 1000 <= tMax; s += step) {
    parts.push(`<line x1="${x(s * 1000).toFixed(1)}" y1="${H - bottom}" x2="${x(s * 1000).toFixed(1)}" y2="${H - bottom + 4}" stroke="#333"/><text x="${x(s * 1000).toFixed(1)}" y="${H - bottom + 16}" text-anchor="middle">${s}s</text>`);
  }
  for (const l of [0.1, 1, 10, 100, 1000, 10000, 100000]) {
    if (l > lMax * 1.2) break;
    parts.push(`<line x1="${left - 4}" y1="${y(l).toFixed(1)}" x2="${W - right}" y2="${y(l).toFixed(1)}" stroke="#eee"/><text x="${left - 6}" y="${(y(l) + 4).toFixed(1)}" text-anchor="end">${l >= 1000 ? `${l / 1000}s` : `${l}ms`}</text>`);
  }
  parts.push(`<text x="${W / 2}" y="${H - 12}" text-anchor="middle">time since start (operation call)</text>`);
  parts.push(`<text x="14" y="${H / 2}" transform="rotate(-90 14 ${H / 2})" text-anchor="middle">latency (log)</text>`);
  ops.forEach((o, i) => {
    const oc = outcome(o);
    parts.push(`<circle cx="${x(o.call as number).toFixed(1)}" cy="${y(lat[i]!).toFixed(1)}" r="${oc === 'ok' ? 1.6 : 2.6}" fill="${COLOURS[oc]}" opacity="${oc === 'ok' ? 0.6 : 0.9}"/>`);
  });
  // Legend.
  let lx = W - right - 330;
  for (const [k, c] of Object.entries(COLOURS)) {
    parts.push(`<circle cx="${lx}" cy="14" r="4" fill="${c}"/><text x="${lx + 7}" y="18">${k}</text>`);
    lx += 100;
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** The SVG as a PNG at its own size, text in the system's fonts. */
export function timelinePng(svg: string): Buffer {
  return new Resvg(svg, { background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
}

export function timelineHtml(svg: string, summary: unknown): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>fault run</title>
<style>body{font-family:sans-serif;margin:20px} pre{background:#f6f6f6;padding:8px;overflow:auto;max-height:600px}</style></head>
<body>${svg}
<p>Dots: one per operation at its call time, height = latency (a failed request: time until its error). Green ok, red failed read, purple indeterminate write. Shaded: fault windows (hover for details).</p>
<h3>summary.json</h3><pre>${esc(JSON.stringify(summary, (_k, v) => (typeof v === 'bigint' ? String(v) : v === Infinity ? 'Infinity' : v), 2))}</pre>
</body></html>
`;
}
