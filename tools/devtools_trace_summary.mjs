// Parse a Chrome trace with Chrome DevTools' own trace engine (npm @paulirish/trace_engine,
// the Performance panel's parser) and print what it made of it as JSON: its tracks (process,
// thread, name, number of slices) and its warnings. Used by tests/test_chrome_trace_devtools.py.
//
//   node tools/devtools_trace_summary.mjs TRACE.json ENGINE_DIR   (ENGINE_DIR: npm --prefix)
import fs from 'node:fs';
import path from 'node:path';
import {pathToFileURL} from 'node:url';

const [tracePath, engineDir] = process.argv.slice(2);
const entry = path.join(engineDir, 'node_modules/@paulirish/trace_engine/models/trace/trace.js');
const Trace = await import(pathToFileURL(entry).href);
// The engine measures layout with DOMRect, which Node lacks; nothing here draws.
globalThis.DOMRect ??= class { constructor(x = 0, y = 0, width = 0, height = 0) { Object.assign(this, {x, y, width, height}); } };

const document = JSON.parse(fs.readFileSync(tracePath, 'utf8'));
const model = Trace.TraceModel.Model.createWithAllHandlers();
await model.parse(document.traceEvents ?? document);
const data = model.parsedTrace().data;
const tracks = [];
for (const [pid, process] of data.Renderer.processes) {
  for (const [tid, thread] of process.threads) {
    tracks.push({pid: Number(pid), tid: Number(tid), name: thread.name ?? null, slices: thread.entries.length});
  }
}
const warnings = [...(data.Warnings.perWarning?.keys() ?? [])];
console.log(JSON.stringify({tracks, warnings}));
