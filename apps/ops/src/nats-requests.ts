import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { type NatsNames, subjects } from '@spywatcher/events';
import type { Auth, HttpError } from '@spywatcher/service';
import { toHttpError } from './http-errors.ts';
import { MAINTENANCE_KINDS, type MaintenanceKind } from './maintenance.ts';
import type { Ops, Started } from './ops.ts';

/** Scope a NATS request needs, as its HTTP route does (POST /v1/backups, /verify, /maintenance). */
const REQUEST_SCOPE = 'ops:write';

/**
 * NATS request-reply on `<prefix>.ops.>`: `ops.backup`, `ops.verify` ({"backupId"} or the
 * newest), `ops.maintenance` ({"kind", "tables", "dryRun"}). Each request carries an
 * `Authorization: Bearer <token>` header holding the ops:write scope, checked against the same
 * tokens as HTTP; the token's name is recorded as the job's requestedBy. The reply names the
 * job and the subject its progress is published on. Restores are HTTP-only: they need the
 * ops:restore scope and a typed confirmation, which a bus message cannot carry.
 */
export function serveOpsRequests(
  nats: NatsConnection,
  names: NatsNames,
  ops: Ops,
  auth: Auth,
  log?: (msg: string, err?: unknown) => void,
): Subscription {
  const s = subjects(names);
  const base = s.ops('');
  return nats.subscribe(s.allOps, {
    queue: 'spywatcher-ops',
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      const action = msg.subject.slice(base.length);
      if (action.startsWith('jobs.')) return;
      void handle(action, msg).catch((error) => log?.('ops request failed', error));
    },
  });

  async function handle(action: string, msg: Msg) {
    let who: string;
    try {
      who = auth.authorize(msg.headers?.get('Authorization') || undefined, REQUEST_SCOPE).name;
    } catch (error) {
      const refused = error as HttpError;
      return reply(msg, {
        ok: false,
        error: {
          code: refused.code,
          message: `${refused.message} (send it as the Authorization header of the NATS request)`,
        },
      });
    }
    let body: Record<string, unknown> = {};
    try {
      const text = msg.string().trim();
      if (text) body = JSON.parse(text);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
    } catch {
      return reply(msg, {
        ok: false,
        error: { code: 'BAD_REQUEST', message: 'the request body must be a JSON object' },
      });
    }
    try {
      let started: Started;
      if (action === 'backup') started = await ops.startBackup('nats', who);
      else if (action === 'verify') {
        started = await ops.startVerify(
          'nats',
          typeof body.backupId === 'string' ? body.backupId : undefined,
          who,
        );
      } else if (action === 'maintenance' || action.startsWith('maintenance.')) {
        const kind = (action.split('.')[1] ?? body.kind) as MaintenanceKind;
        if (!MAINTENANCE_KINDS.includes(kind)) {
          return reply(msg, {
            ok: false,
            error: { code: 'BAD_REQUEST', message: `kind must be one of ${MAINTENANCE_KINDS.join(', ')}` },
          });
        }
        const tables = Array.isArray(body.tables) ? body.tables.map(String) : undefined;
        if (body.dryRun === true)
          return reply(msg, { ok: true, plan: await ops.planMaintenance(kind, tables) });
        started = await ops.startMaintenance('nats', kind, tables, who);
      } else if (action === 'restore') {
        return reply(msg, {
          ok: false,
          error: {
            code: 'NOT_ALLOWED',
            message: 'restores are started over HTTP (POST /v1/restores, scope ops:restore)',
          },
        });
      } else {
        return reply(msg, {
          ok: false,
          error: {
            code: 'UNKNOWN_ACTION',
            message: `unknown ops action "${action}"; use backup, verify or maintenance`,
          },
        });
      }
      const { job } = started;
      return reply(msg, { ok: true, job, url: `/v1/jobs/${job.id}`, progressSubject: s.opsJob(job.id) });
    } catch (error) {
      const mapped = toHttpError(error) as {
        code?: string;
        message?: string;
        details?: unknown;
        statusCode?: number;
      };
      if (mapped && typeof mapped.statusCode === 'number' && mapped.statusCode < 500) {
        return reply(msg, {
          ok: false,
          error: { code: mapped.code, message: mapped.message, details: mapped.details },
        });
      }
      log?.('ops request failed', error);
      return reply(msg, {
        ok: false,
        error: { code: 'INTERNAL', message: 'internal error; see the ops service log' },
      });
    }
  }
}

function reply(msg: Msg, body: unknown) {
  msg.respond(JSON.stringify(body));
}
