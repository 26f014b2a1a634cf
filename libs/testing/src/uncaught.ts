/** What reached the process as an uncaught exception or an unhandled rejection. */
export interface UncaughtRecorder {
  errors: unknown[];
  stop: () => void;
}

/**
 * Records uncaught exceptions and unhandled rejections until stop(): a test that provokes a fault
 * asserts the list is empty (in a service either would end the process).
 */
export function recordUncaught(): UncaughtRecorder {
  const errors: unknown[] = [];
  const record = (error: unknown) => {
    errors.push(error);
  };
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  return {
    errors,
    stop: () => {
      process.off('uncaughtException', record);
      process.off('unhandledRejection', record);
    },
  };
}
