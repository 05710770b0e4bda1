/** One curve of a line chart. */
export interface Series {
  label: string;
  points: [number, number][];
  /** Draw markers at the points instead of a line (sparse series such as valid loss). */
  markers?: boolean;
  /** Draw faintly (raw, noisy series behind a smoothed one). */
  faint?: boolean;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** An exponential moving average of a series (for a readable training-loss line over noisy steps). */
export function smooth(points: [number, number][], alpha = 0.1): [number, number][] {
  let acc: number | undefined;
  return points.map(([x, y]) => {
    acc = acc === undefined ? y : acc + alpha * (y - acc);
    return [x, acc];
  });
}

/** A self-contained SVG line chart with axes, ticks, a grid and a legend. Series colours repeat by index (faint ones share their successor's colour). */
export function lineChartSvg(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const W = 760,
    H = 440,
    L = 70,
    R = 190,
    T = 40,
    B = 50;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs, 0), Math.max(...xs, 1)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (!Number.isFinite(y0)) [y0, y1] = [0, 1];
  const pad = (y1 - y0) * 0.05 || 0.5;
  y0 -= pad;
  y1 += pad;
  const px = (x: number) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const py = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${(L + W - R) / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  for (const t of niceTicks(y0, y1, 6)) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${L - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`);
  }
  for (const t of niceTicks(x0, x1, 8)) {
    out.push(`<line x1="${px(t).toFixed(1)}" x2="${px(t).toFixed(1)}" y1="${T}" y2="${H - B}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${px(t).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${t}</text>`);
  }
  out.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  let legendY = T + 8;
  let color = 0;
  series.forEach((s) => {
    const c = COLORS[color % COLORS.length];
    if (!s.faint) color++;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (pts.length === 0) return;
    if (s.markers) {
      for (const [x, y] of pts)
        out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3.5" fill="${c}" stroke="white"/>`);
    } else {
      const d = pts.map(([x, y], i) => `${i ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join('');
      out.push(
        `<path d="${d}" fill="none" stroke="${c}" stroke-width="${s.faint ? 1 : 2}" stroke-opacity="${s.faint ? 0.3 : 1}"/>`,
      );
    }
    if (s.faint) return;
    out.push(
      s.markers
        ? `<circle cx="${W - R + 22}" cy="${legendY - 4}" r="3.5" fill="${c}"/>`
        : `<line x1="${W - R + 12}" x2="${W - R + 32}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="${c}" stroke-width="2"/>`,
    );
    out.push(`<text x="${W - R + 38}" y="${legendY}">${esc(s.label)}</text>`);
    legendY += 18;
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
