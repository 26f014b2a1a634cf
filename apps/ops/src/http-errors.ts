import { HttpError, httpErrors } from '@spywatcher/service';
import { BrokenManifestError, InvalidBackupIdError } from './catalogue.ts';
import { JobConflictError } from './jobs.ts';
import { UnknownTableError } from './maintenance.ts';
import { BackupInUseError, NotFound } from './ops.ts';
import { RestoreRefusedError } from './restore.ts';

/** Maps the ops domain's errors to the one HTTP error shape; anything else stays a 500. */
export function toHttpError(error: unknown): unknown {
  if (error instanceof JobConflictError) {
    return new HttpError(
      409,
      'JOB_RUNNING',
      error.message,
      error.runningJobId ? { jobId: error.runningJobId, url: `/v1/jobs/${error.runningJobId}` } : undefined,
    );
  }
  if (error instanceof RestoreRefusedError) {
    if (error.code === 'NOT_FOUND') return httpErrors.notFound(error.message);
    if (error.code === 'INVALID_TARGET') return httpErrors.badRequest(error.message);
    if (error.code === 'TARGET_NOT_ALLOWED') return new HttpError(403, error.code, error.message);
    return new HttpError(409, 'CONFIRMATION_REQUIRED', error.message);
  }
  if (error instanceof InvalidBackupIdError || error instanceof UnknownTableError)
    return httpErrors.badRequest(error.message);
  if (error instanceof NotFound) return httpErrors.notFound(error.message);
  if (error instanceof BrokenManifestError) return new HttpError(422, 'BROKEN_MANIFEST', error.message);
  if (error instanceof BackupInUseError) return httpErrors.conflict(error.message);
  return error;
}

export async function mapErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw toHttpError(error);
  }
}
