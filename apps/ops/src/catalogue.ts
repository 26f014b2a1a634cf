import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';

/** What is known about one backup; stored as `<id>.json` next to `<id>.dump`. */
export interface BackupManifest {
  id: string;
  file: string;
  database: string;
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
  /** Set by a verify job (or a restore drill). */
  verification?: Verification;
  offsite?: { bucket: string; key: string; uploadedAt: string; checksumVerified: boolean };
  /** Why the off-site copy failed (the local backup is still complete). */
  offsiteError?: string;
}

export interface Verification {
  ok: boolean;
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

  async get(id: string): Promise<BackupManifest | null> {
    try {
      return JSON.parse(await readFile(this.manifestPath(id), 'utf8')) as BackupManifest;
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return null;
      throw error;
    }
  }

  /** Newest first. */
  async list(): Promise<BackupManifest[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return [];
      throw error;
    }
    const out: BackupManifest[] = [];
    for (const name of names) {
      const m = /^(.+)\.json$/.exec(name);
      if (!m || !BACKUP_ID_PATTERN.test(m[1]!)) continue;
      const manifest = await this.get(m[1]!);
      if (manifest) out.push(manifest);
    }
    return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
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

  async update(id: string, change: (m: BackupManifest) => void): Promise<BackupManifest> {
    const manifest = await this.get(id);
    if (!manifest) throw new Error(`backup ${id} not found`);
    change(manifest);
    await this.write(manifest);
    return manifest;
  }

  /** Removes the dump first, then the manifest, so a listed backup always has its file. */
  async delete(id: string): Promise<boolean> {
    const existed = (await this.get(id)) !== null;
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
}

/**
 * Which backups retention removes: those older than `keepDays` or beyond the newest
 * `keepCount`, but never the newest backup nor the newest one that passed verification.
 */
export function retentionVictims(
  backups: BackupManifest[],
  policy: RetentionPolicy,
  now = new Date(),
): BackupManifest[] {
  const sorted = [...backups].sort(
    (a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id),
  );
  const newestVerified = sorted.find((b) => b.verification?.ok);
  const cutoff = now.getTime() - policy.keepDays * 86_400_000;
  return sorted.filter((b, rank) => {
    if (rank === 0 || b === newestVerified) return false;
    const tooOld = new Date(b.createdAt).getTime() < cutoff;
    const tooMany = policy.keepCount > 0 && rank >= policy.keepCount;
    return tooOld || tooMany;
  });
}
