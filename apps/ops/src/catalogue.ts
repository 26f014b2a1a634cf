import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';

/** What is known about one backup; stored as `<id>.json` next to `<id>.dump`. */
export interface BackupManifest {
  id: string;
  file: string;
  database: string;
  /** `safety`: taken by a restore just before it replaced `database`; kept by its own rule. */
  kind?: 'regular' | 'safety';
  /** For a safety backup: which restore made it, in words and by job id. */
  label?: string;
  restoreJobId?: string;
  /** When the dump's snapshot was taken: rows committed later are not in it. */
  snapshotAt?: string;
  /** pg_database_size at the snapshot, for the free-space estimate of the next backup. */
  databaseSizeBytes?: number;
  serverVersion: string;
  pgDumpVersion: string;
  latestMigration: { version: number; name: string } | null;
  format: 'custom';
  compression: number;
  tables: Record<string, number>;
  totalRows: number;
  sizeBytes: number;
  sha256: string;
  createdAt: string;
  durationMs: number;
  /** Set by a verify job, and by every restore of this backup (`via: "restore"`). */
  verification?: Verification;
  offsite?: { bucket: string; key: string; uploadedAt: string; checksumVerified: boolean };
  /** Why the off-site copy failed (the local backup is still complete). */
  offsiteError?: string;
}

export interface Verification {
  ok: boolean;
  /** What proved it: a verify job (scratch database) or a restore (into its target). */
  via?: 'verify' | 'restore';
  jobId?: string;
  target?: string;
  verifiedAt: string;
  durationMs: number;
  checksumOk: boolean;
  tablesChecked: number;
  rowsChecked: number;
  indexesChecked: number;
  problems: string[];
}

/** Backup ids are generated here and are the only names a request can use to reach a file. */
export const BACKUP_ID_PATTERN = /^\d{8}T\d{6}Z-[0-9a-f]{8}$/;

export function newBackupId(now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

/** A manifest file that cannot be read as one: skipped by listings, reported by health. */
export interface BrokenManifest {
  file: string;
  error: string;
}

export class BrokenManifestError extends Error {
  constructor(file: string, reason: string) {
    super(
      `manifest ${file} is unreadable (${reason}); the backup is skipped until it is repaired or deleted`,
    );
    this.name = 'BrokenManifestError';
  }
}

/** The fields everything else relies on; a manifest without them is broken. */
function checkManifest(value: unknown, id: string): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const m = value as Record<string, unknown>;
  for (const key of ['id', 'file', 'database', 'createdAt', 'sha256'] as const) {
    if (typeof m[key] !== 'string') return `"${key}" is missing or not a string`;
  }
  if (m.id !== id) return `"id" is ${JSON.stringify(m.id)}, not the file's name`;
  if (Number.isNaN(Date.parse(m.createdAt as string))) return '"createdAt" is not a date';
  if (typeof m.tables !== 'object' || m.tables === null) return '"tables" is missing';
  return null;
}

export class InvalidBackupIdError extends Error {
  constructor(id: string) {
    super(`"${id.slice(0, 80)}" is not a backup id (expected like 20261126T031500Z-1a2b3c4d)`);
    this.name = 'InvalidBackupIdError';
  }
}

/**
 * The backup directory. Every path is built from a validated id and checked to stay inside
 * the directory, so nothing a request sends can name a file elsewhere.
 */
export class BackupCatalogue {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  async ensureDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
  }

  dumpPath(id: string): string {
    return this.inside(`${this.checkId(id)}.dump`);
  }

  manifestPath(id: string): string {
    return this.inside(`${this.checkId(id)}.json`);
  }

  partialPath(id: string): string {
    return this.inside(`.${this.checkId(id)}.dump.partial`);
  }

  checkId(id: string): string {
    if (!BACKUP_ID_PATTERN.test(id)) throw new InvalidBackupIdError(id);
    return id;
  }

  /** The manifest, null when there is none; BrokenManifestError when it cannot be read. */
  async get(id: string): Promise<BackupManifest | null> {
    const path = this.manifestPath(id);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return null;
      throw error;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new BrokenManifestError(`${id}.json`, (error as Error).message);
    }
    const problem = checkManifest(value, id);
    if (problem) throw new BrokenManifestError(`${id}.json`, problem);
    return value as BackupManifest;
  }

  /** Newest first; unreadable manifests are skipped. */
  async list(): Promise<BackupManifest[]> {
    return (await this.scan()).backups;
  }

  /** Every readable manifest (newest first) and every broken one with the reason. */
  async scan(): Promise<{ backups: BackupManifest[]; broken: BrokenManifest[] }> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return { backups: [], broken: [] };
      throw error;
    }
    const backups: BackupManifest[] = [];
    const broken: BrokenManifest[] = [];
    for (const name of names) {
      const m = /^(.+)\.json$/.exec(name);
      if (!m || !BACKUP_ID_PATTERN.test(m[1]!)) continue;
      try {
        const manifest = await this.get(m[1]!);
        if (manifest) backups.push(manifest);
      } catch (error) {
        broken.push({ file: name, error: (error as Error).message });
      }
    }
    backups.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
    return { backups, broken };
  }

  /** Partial files (dumps being written, manifests being replaced) in the directory. */
  async partialFiles(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((n) => n.startsWith('.') && n.endsWith('.partial'));
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return [];
      throw error;
    }
  }

  /** True when `path` is a file of this directory (a scratch entry may only name those). */
  contains(path: string): boolean {
    return resolve(path).startsWith(this.dir + sep);
  }

  /** Written to a temporary file, fsynced and renamed, so a reader never sees half a manifest. */
  async write(manifest: BackupManifest): Promise<void> {
    const target = this.manifestPath(manifest.id);
    const tmp = this.inside(`.${manifest.id}.json.${randomBytes(3).toString('hex')}.partial`);
    const handle = await open(tmp, 'w', 0o640);
    try {
      await handle.writeFile(`${JSON.stringify(manifest, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, target);
    await this.syncDir();
  }

  /** Read-change-write; the manifest must exist and be readable. */
  async update(id: string, change: (m: BackupManifest) => void): Promise<BackupManifest> {
    const manifest = await this.get(id);
    if (!manifest) throw new Error(`backup ${id} not found`);
    change(manifest);
    await this.write(manifest);
    return manifest;
  }

  /** Removes the dump first, then the manifest, so a listed backup always has its file. */
  async delete(id: string): Promise<boolean> {
    const existed = await this.get(id).then(
      (m) => m !== null,
      () => true,
    );
    await rm(this.dumpPath(id), { force: true });
    await rm(this.manifestPath(id), { force: true });
    await this.syncDir();
    return existed;
  }

  async syncDir(): Promise<void> {
    const handle = await open(this.dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  private inside(name: string): string {
    const path = resolve(join(this.dir, name));
    if (!path.startsWith(this.dir + sep)) throw new InvalidBackupIdError(name);
    return path;
  }
}

export interface RetentionPolicy {
  keepDays: number;
  /** Keep at most this many (0 = no count limit). */
  keepCount: number;
  /** Safety backups (taken by restores) are kept this many days, whatever the count. */
  safetyKeepDays: number;
}

/**
 * Which backups retention removes, per database: regular backups older than `keepDays` or
 * beyond the newest `keepCount` of their database, but never a database's newest backup nor its
 * newest verified one; safety backups once older than `safetyKeepDays`, never the newest one of
 * a database. Backups of one database never push out another's.
 */
export function retentionVictims(
  backups: BackupManifest[],
  policy: RetentionPolicy,
  now = new Date(),
): BackupManifest[] {
  const groups = new Map<string, BackupManifest[]>();
  for (const b of backups) {
    const key = `${b.database ?? ''}\u0000${b.kind === 'safety' ? 'safety' : 'regular'}`;
    const list = groups.get(key) ?? [];
    list.push(b);
    groups.set(key, list);
  }
  const victims: BackupManifest[] = [];
  for (const group of groups.values()) {
    const sorted = [...group].sort(
      (a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id),
    );
    const safety = sorted[0]?.kind === 'safety';
    const newestVerified = sorted.find((b) => b.verification?.ok);
    const keepDays = safety ? policy.safetyKeepDays : policy.keepDays;
    const cutoff = now.getTime() - keepDays * 86_400_000;
    for (const [rank, b] of sorted.entries()) {
      if (rank === 0 || b === newestVerified) continue;
      const tooOld = new Date(b.createdAt).getTime() < cutoff;
      const tooMany = !safety && policy.keepCount > 0 && rank >= policy.keepCount;
      if (tooOld || tooMany) victims.push(b);
    }
  }
  return victims.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
}
