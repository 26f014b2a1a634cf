import { readFileSync } from 'node:fs';
import { type ConnectionOptions, credsAuthenticator } from '@nats-io/transport-node';

/** The NATS settings every service reads (see the root README, Configuration). */
export interface NatsSettings {
  NATS_URL: string;
  NATS_USER: string;
  NATS_PASSWORD: string;
  NATS_TOKEN: string;
  NATS_CREDS: string;
}

/** The servers of a comma-separated NATS_URL, trimmed. */
function splitServers(list: string): string[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A NATS server URL without its user information (which the client would otherwise ignore). */
function withoutUserinfo(server: string): { server: string; user?: string; pass?: string } {
  try {
    const u = new URL(server.includes('://') ? server : `nats://${server}`);
    if (!u.username && !u.password) return { server };
    const user = decodeURIComponent(u.username);
    const pass = u.password ? decodeURIComponent(u.password) : undefined;
    u.username = '';
    u.password = '';
    return { server: u.toString().replace(/\/$/, ''), user, pass };
  } catch {
    return { server };
  }
}

/**
 * A comma-separated list of server URLs as it may be logged: passwords and tokens (a user
 * part without a password is a token) become `***`.
 */
export function redactServers(list: string): string {
  return splitServers(list)
    .map((server) => {
      const { user, pass } = withoutUserinfo(server);
      if (user === undefined) return server;
      return server.replace(
        /\/\/[^@/]*@/,
        pass === undefined ? '//***@' : `//${encodeURIComponent(user)}:***@`,
      );
    })
    .join(',');
}

/**
 * The connection options for NATS from the settings: the servers without user information, and
 * the credentials from NATS_CREDS (a creds file: JWT and NKEY seed), NATS_TOKEN,
 * NATS_USER/NATS_PASSWORD or, when none of them is set, the user information of the URL.
 * `inboxPrefix` keeps a client's replies under `_INBOX.<name>.`, which nats.conf lets only
 * that user read.
 */
export function natsConnectionOptions(settings: NatsSettings, name: string): ConnectionOptions {
  const parsed = splitServers(settings.NATS_URL).map(withoutUserinfo);
  const servers = parsed.map((p) => p.server);
  const inboxPrefix = `_INBOX.${name}`;
  if (settings.NATS_CREDS) {
    const creds = readFileSync(settings.NATS_CREDS);
    return { servers, inboxPrefix, authenticator: credsAuthenticator(creds) };
  }
  if (settings.NATS_TOKEN) return { servers, inboxPrefix, token: settings.NATS_TOKEN };
  if (settings.NATS_USER) {
    return { servers, inboxPrefix, user: settings.NATS_USER, pass: settings.NATS_PASSWORD };
  }
  const fromUrl = parsed.find((p) => p.user !== undefined);
  if (!fromUrl) return { servers, inboxPrefix };
  if (fromUrl.pass === undefined) return { servers, inboxPrefix, token: fromUrl.user };
  return { servers, inboxPrefix, user: fromUrl.user, pass: fromUrl.pass };
}
