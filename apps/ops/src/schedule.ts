import { Cron } from 'croner';
import { JobConflictError } from './jobs.ts';
import { NotFound, type Ops } from './ops.ts';

export interface ScheduleConfig {
  backup: string | null;
  verify: string | null;
  maintenance: string | null;
  partitions: string | null;
  retention: string | null;
}

/**
 * The built-in schedule (UTC cron expressions from env). A tick whose job is still running
 * from the last tick is skipped, not queued.
 */
export function startSchedule(
  ops: Ops,
  config: ScheduleConfig,
  log: (level: 'info' | 'warn' | 'error', msg: string, extra?: object) => void,
) {
  const tasks: Record<keyof ScheduleConfig, () => Promise<unknown>> = {
    backup: () => ops.startBackup('schedule'),
    verify: () => ops.startVerify('schedule'),
    maintenance: async () => {
      const vacuum = await ops.startMaintenance('schedule', 'vacuum');
      await vacuum.done;
      return ops.startMaintenance('schedule', 'analyze');
    },
    partitions: () => ops.startPartitionUpkeep('schedule'),
    retention: () => ops.startRetention('schedule'),
  };
  const crons: Cron[] = [];
  for (const [name, pattern] of Object.entries(config) as [keyof ScheduleConfig, string | null][]) {
    if (!pattern) continue;
    crons.push(
      new Cron(pattern, { name, timezone: 'UTC', protect: true }, async () => {
        try {
          await tasks[name]();
          log('info', `scheduled ${name} started`);
        } catch (error) {
          if (error instanceof JobConflictError || error instanceof NotFound) {
            log('info', `scheduled ${name} skipped: ${error.message}`);
          } else log('error', `scheduled ${name} failed to start`, { err: error });
        }
      }),
    );
  }
  return {
    next: () => Object.fromEntries(crons.map((c) => [c.name, c.nextRun()?.toISOString() ?? null])),
    stop: () => {
      for (const c of crons) c.stop();
    },
  };
}
