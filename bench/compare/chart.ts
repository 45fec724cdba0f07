// A small SVG line chart (no dependencies): one line per server, x = client count (log scale), y = throughput.

import fs from 'node:fs';

export interface ChartSeries {
  name: string;
  points: Array<{ x: number; y: number; p99Ms?: number }>;
}

const colors: Record<string, string> = { ours: '#d9480f', etcd: '#1c7ed6' };

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderChart(series: ChartSeries[], opts: { title: string; xLabel: string; yLabel: string }): string {
  const width = 720;
  const height = 420;
  const m = { left: 80, right: 30, top: 50, bottom: 60 };
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const yMax = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.y))) * 1.05);
  const lx = (x: number): number => Math.log10(Math.max(x, 1));
  const x0 = lx(xs[0] ?? 1);
  const x1 = lx(xs[xs.length - 1] ?? 10);
  const px = (x: number): number => m.left + ((lx(x) - x0) / Math.max(x1 - x0, 1e-9)) * (width - m.left - m.right);
  const py = (y: number): number => height - m.bottom - (y / yMax) * (height - m.top - m.bottom);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">\n`;
  svg += `<rect width="${width}" height="${height}" fill="#fff"/>\n`;
  svg += `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(opts.title)}</text>\n`;
  for (let i = 0; i <= 5; i++) {
    const y = (yMax * i) / 5;
    svg += `<line x1="${m.left}" x2="${width - m.right}" y1="${py(y)}" y2="${py(y)}" stroke="#e9ecef"/>\n`;
    svg += `<text x="${m.left - 8}" y="${py(y) + 4}" text-anchor="end">${Math.round(y).toLocaleString('en-US')}</text>\n`;
  }
  for (const x of xs) {
    svg += `<line x1="${px(x)}" x2="${px(x)}" y1="${m.top}" y2="${height - m.bottom}" stroke="#f1f3f5"/>\n`;
    svg += `<text x="${px(x)}" y="${height - m.bottom + 18}" text-anchor="middle">${x}</text>\n`;
  }
  svg += `<line x1="${m.left}" x2="${width - m.right}" y1="${height - m.bottom}" y2="${height - m.bottom}" stroke="#495057"/>\n`;
  svg += `<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${height - m.bottom}" stroke="#495057"/>\n`;
  svg += `<text x="${(m.left + width - m.right) / 2}" y="${height - 18}" text-anchor="middle">${esc(opts.xLabel)} (log scale)</text>\n`;
  svg += `<text transform="translate(18 ${(m.top + height - m.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>\n`;
  series.forEach((s, i) => {
    const color = colors[s.name] ?? ['#2b8a3e', '#862e9c'][i % 2]!;
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    svg += `<polyline fill="none" stroke="${color}" stroke-width="2.5" points="${pts.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ')}"/>\n`;
    for (const p of pts) {
      svg += `<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="4" fill="${color}"><title>${esc(`${s.name}: ${p.x} clients, ${Math.round(p.y)} req/s${p.p99Ms !== undefined ? `, p99 ${p.p99Ms.toFixed(2)} ms` : ''}`)}</title></circle>\n`;
      svg += `<text x="${px(p.x).toFixed(1)}" y="${(py(p.y) - 9).toFixed(1)}" text-anchor="middle" fill="${color}" font-size="11">${Math.round(p.y).toLocaleString('en-US')}</text>\n`;
    }
    const ly = m.top + 6 + i * 18;
    svg += `<rect x="${m.left + 14}" y="${ly - 9}" width="14" height="4" fill="${color}"/><text x="${m.left + 34}" y="${ly - 3}">${esc(s.name)}</text>\n`;
  });
  svg += '</svg>\n';
  return svg;
}

export function writeChart(file: string, series: ChartSeries[], opts: { title: string; xLabel: string; yLabel: string }): void {
  fs.writeFileSync(file, renderChart(series, opts));
}
