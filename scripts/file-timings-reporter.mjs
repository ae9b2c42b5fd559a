// A node:test reporter that writes one line per test file: the seconds it took, slowest first.
// scripts/run-tests.mjs adds it beside the spec reporter, so a run says where its time went.
// Node 20 reports a file's events once the file is done, and the runner takes files one at a
// time, so a file took from the previous file's last event to its own last event (its process
// start, imports, hooks and tests).
import { performance } from 'node:perf_hooks';

export default async function* fileTimings(source) {
  const started = performance.now();
  const lastEvent = new Map();
  for await (const event of source) {
    const file = event.data?.file;
    if (file) lastEvent.set(file, performance.now());
  }
  let previous = started;
  const rows = [];
  for (const [file, at] of [...lastEvent].sort((a, b) => a[1] - b[1])) {
    rows.push([file, (at - previous) / 1000]);
    previous = at;
  }
  rows.sort((a, b) => b[1] - a[1]);
  for (const [file, s] of rows) yield `${s.toFixed(1).padStart(7)} s  ${file.replace(/^.*\/dist\//, 'dist/')}\n`;
}
