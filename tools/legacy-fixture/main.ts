import { parseArgs } from 'node:util';
import { writeLegacyFixture } from './fixture.ts';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'legacy-fixture.sqlite' },
    rows: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '42' },
    months: { type: 'string', default: '3' },
    start: { type: 'string', default: '2024-01-01' },
    rejects: { type: 'boolean', default: false },
    oddities: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    'usage: node tools/legacy-fixture/main.ts [--out FILE] [--rows N] [--seed N] [--months N] [--start YYYY-MM-DD] [--rejects] [--oddities]\n',
  );
  process.exit(0);
}
const started = performance.now();
const summary = writeLegacyFixture({
  path: values.out,
  rows: Number(values.rows),
  seed: Number(values.seed),
  months: Number(values.months),
  start: new Date(`${values.start}T00:00:00Z`),
  rejects: values.rejects,
  oddities: values.oddities,
});
process.stdout.write(
  `${JSON.stringify({ ...summary, seconds: Math.round(performance.now() - started) / 1000 })}\n`,
);
