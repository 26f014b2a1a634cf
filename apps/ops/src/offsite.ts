import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { BackupManifest } from './catalogue.ts';

export interface OffsiteConfig {
  endpoint?: string;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  /** Credentials; when absent the SDK's default chain (AWS_ACCESS_KEY_ID, profiles, roles) applies. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Read the object back and compare its sha256 with the manifest. */
  verify: boolean;
  /** Multipart part size (S3's minimum is 5 MiB); files larger than one part go up in parts. */
  partSizeBytes?: number;
  /** A request whose socket stays silent this long fails (a stalled endpoint), default 30 s. */
  stallTimeoutMs?: number;
  /** Off-site copies are deleted by retention once older than this many days. */
  keepDays?: number;
}

export interface Offsite {
  upload(
    path: string,
    manifest: BackupManifest,
    signal?: AbortSignal,
  ): Promise<NonNullable<BackupManifest['offsite']>>;
  remove(manifest: BackupManifest, signal?: AbortSignal): Promise<void>;
  /**
   * Off-site retention, its own rule: deletes copies under the prefix older than `keepDays`,
   * except the keys in `keep` (copies of backups still kept locally).
   */
  applyRetention(keep: Set<string>, signal?: AbortSignal): Promise<string[]>;
}

/** Rejects as soon as `signal` aborts (the SDK's own abort can leave a stalled read pending). */
function abortable<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(new Error('the off-site copy was cancelled'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('the off-site copy was cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Off-site copies on S3-compatible storage: streamed multipart upload, then a checksum read-back. */
export function createOffsite(config: OffsiteConfig): Offsite {
  const client = new S3Client({
    region: config.region,
    endpoint: config.endpoint,
    forcePathStyle: config.forcePathStyle,
    credentials: config.credentials,
    // S3-compatible servers (MinIO, Ceph, s3rver) vary in support for the SDK's newer
    // trailing-checksum uploads; integrity is checked by our own sha256 read-back instead
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // a stalled endpoint must fail the request, not hold the job (and its cancel) forever
    requestHandler: { connectionTimeout: 5000, socketTimeout: config.stallTimeoutMs ?? 30_000 },
    maxAttempts: 2,
  });
  const prefix = config.prefix.replace(/\/?$/, '/').replace(/^\//, '');
  const keyOf = (m: BackupManifest) => `${prefix}${m.file}`;
  return {
    async upload(path, manifest, signal) {
      const key = keyOf(manifest);
      const body = createReadStream(path);
      const upload = new Upload({
        client,
        params: {
          Bucket: config.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/octet-stream',
          Metadata: { sha256: manifest.sha256, database: manifest.database },
        },
        partSize: config.partSizeBytes ?? 16 * 1024 * 1024,
        queueSize: 2,
      });
      const onAbort = () => {
        void upload.abort().catch(() => {});
        body.destroy();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await abortable(upload.done(), signal);
      } finally {
        signal?.removeEventListener('abort', onAbort);
        body.destroy();
      }
      if (config.verify) {
        const remote = await abortable(
          (async () => {
            const object = await client.send(new GetObjectCommand({ Bucket: config.bucket, Key: key }), {
              abortSignal: signal,
            });
            const hash = createHash('sha256');
            for await (const chunk of object.Body as Readable) hash.update(chunk as Buffer);
            return hash.digest('hex');
          })(),
          signal,
        );
        if (remote !== manifest.sha256) {
          await client.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: key })).catch(() => {});
          throw new Error(`off-site copy s3://${config.bucket}/${key} does not match the backup's sha256`);
        }
      }
      return {
        bucket: config.bucket,
        key,
        uploadedAt: new Date().toISOString(),
        checksumVerified: config.verify,
      };
    },
    async remove(manifest, signal) {
      if (!manifest.offsite) return;
      await abortable(
        client.send(new DeleteObjectCommand({ Bucket: manifest.offsite.bucket, Key: manifest.offsite.key }), {
          abortSignal: signal,
        }),
        signal,
      );
    },
    async applyRetention(keep, signal) {
      if (!config.keepDays) return [];
      const cutoff = Date.now() - config.keepDays * 86_400_000;
      const deleted: string[] = [];
      let token: string | undefined;
      do {
        const page = await abortable(
          client.send(
            new ListObjectsV2Command({ Bucket: config.bucket, Prefix: prefix, ContinuationToken: token }),
            { abortSignal: signal },
          ),
          signal,
        );
        for (const o of page.Contents ?? []) {
          if (!o.Key || keep.has(o.Key) || !o.Key.endsWith('.dump')) continue;
          if (!o.LastModified || o.LastModified.getTime() >= cutoff) continue;
          await abortable(
            client.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: o.Key }), {
              abortSignal: signal,
            }),
            signal,
          );
          deleted.push(o.Key);
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return deleted;
    },
  };
}
