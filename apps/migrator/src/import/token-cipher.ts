import { createCipheriv, createDecipheriv, createHmac, hkdfSync } from 'node:crypto';

/**
 * AES-256-GCM for the legacy OAuth tokens kept in `users`. A stored value is
 * `enc:v1:<key id>:<iv>:<ciphertext and tag>` (base64url), so the key that decrypts it is named
 * by the value itself and keys can be rotated (`nx run migrator:tokens`). The IV is derived from
 * the token (HMAC-SHA-256 under a key of its own), so the same token under the same key always
 * encrypts the same way: a repeated import finds the row unchanged and verification compares
 * ciphertexts. That reveals only whether two stored tokens are equal.
 */
export interface TokenCipher {
  /** Id of the key new values are encrypted with. */
  readonly currentKeyId: string;
  encrypt(token: string): string;
  decrypt(value: string): string;
  /** The key id of an encrypted value, or null when the value is not one (a token in clear). */
  keyIdOf(value: string): string | null;
}

const PREFIX = 'enc:v1:';
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

interface DerivedKey {
  aes: Buffer;
  iv: Buffer;
}

function derive(master: Buffer): DerivedKey {
  const part = (info: string) => Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), info, 32));
  return { aes: part('spywatcher oauth token aes-256-gcm'), iv: part('spywatcher oauth token iv') };
}

/**
 * Parses TOKEN_ENCRYPTION_KEYS: comma-separated `<id>:<32 bytes in base64>`; the first key
 * encrypts, every key decrypts. Throws naming the entry that is wrong.
 */
export function parseTokenKeys(raw: string, name = 'TOKEN_ENCRYPTION_KEYS'): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  const entries = raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  entries.forEach((entry, i) => {
    const at = entry.indexOf(':');
    const id = at > 0 ? entry.slice(0, at) : '';
    const key = Buffer.from(entry.slice(at + 1), 'base64');
    if (!KEY_ID.test(id) || key.length !== 32) {
      throw new Error(
        `${name} entry ${i + 1} must be "<id>:<32 random bytes in base64>" (id of letters, digits, "_", "-"), e.g. k1:$(openssl rand -base64 32)`,
      );
    }
    if (keys.has(id)) throw new Error(`${name} names key "${id}" twice`);
    keys.set(id, key);
  });
  return keys;
}

/** A cipher over the keys of TOKEN_ENCRYPTION_KEYS (the first encrypts); null without keys. */
export function createTokenCipher(keys: Map<string, Buffer>): TokenCipher | null {
  const [first] = keys.keys();
  if (first === undefined) return null;
  const derived = new Map([...keys].map(([id, key]) => [id, derive(key)]));
  const current = derived.get(first)!;

  const keyIdOf = (value: string) => {
    if (!value.startsWith(PREFIX)) return null;
    return value.slice(PREFIX.length).split(':')[0] ?? null;
  };

  return {
    currentKeyId: first,
    keyIdOf,
    encrypt(token) {
      const iv = createHmac('sha256', current.iv).update(token).digest().subarray(0, 12);
      const cipher = createCipheriv('aes-256-gcm', current.aes, iv);
      const body = Buffer.concat([cipher.update(token, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${PREFIX}${first}:${iv.toString('base64url')}:${body.toString('base64url')}`;
    },
    decrypt(value) {
      const [id, iv, body] = value.startsWith(PREFIX) ? value.slice(PREFIX.length).split(':') : [];
      const key = id === undefined ? undefined : derived.get(id);
      if (!key || iv === undefined || body === undefined) {
        throw new Error(
          id === undefined
            ? 'not an encrypted token'
            : `token encrypted with key "${id}", which TOKEN_ENCRYPTION_KEYS does not hold`,
        );
      }
      const bytes = Buffer.from(body, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', key.aes, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(bytes.subarray(bytes.length - 16));
      return Buffer.concat([
        decipher.update(bytes.subarray(0, bytes.length - 16)),
        decipher.final(),
      ]).toString('utf8');
    },
  };
}
