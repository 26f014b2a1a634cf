/**
 * Prints a drill's one JSON line — its headline fields first (null for a phase that never ran),
 * then `targets_met`, `safety_met` and the rest of the report — and sets the exit code. CI runs
 * `--quick` on a shared, busy machine: there only a safety failure fails the run (no timing
 * assertion in CI), and the timing targets are in the JSON; a full run is judged on every target.
 */
export function finishDrill(
  report: Record<string, unknown>,
  o: { headline: readonly string[]; safe: boolean; met: boolean; quick: boolean },
): void {
  const first = Object.fromEntries(o.headline.map((key) => [key, report[key] ?? null]));
  console.log(JSON.stringify({ ...first, targets_met: o.met, safety_met: o.safe, ...report }));
  if (!(o.quick ? o.safe : o.met)) process.exitCode = 1;
}
