// Byte-count progress for pack, unpack, push and pull ("unpacking 120.0 / 512.0 MiB (23%)"),
// throttled: a terminal redraws at most 5 times a second, a log gets a line every 10%.
import type { Progress } from './progress.js';

const MiB = 1024 * 1024;

export function byteProgress(
  progress: Progress,
  label: string,
  interactive: boolean,
): (doneBytes: number, totalBytes: number | undefined) => void {
  let lastAt = 0;
  let lastTenth = -1;
  return (done, total) => {
    const now = Date.now();
    const tenth = total ? Math.floor((10 * done) / total) : Math.floor(done / (256 * MiB));
    if (interactive ? now - lastAt < 200 && done !== total : tenth === lastTenth) return;
    lastAt = now;
    lastTenth = tenth;
    const of = total ? ` / ${(total / MiB).toFixed(1)} MiB (${Math.floor((100 * done) / total)}%)` : ' MiB';
    progress.step(`${label} ${(done / MiB).toFixed(1)}${of}`);
  };
}
