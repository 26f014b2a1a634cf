/**
 * How a Discord bot publishes SpyWatcher events. Run it against a local NATS:
 *
 *   node libs/events/examples/bot.ts            # publishes a few events of each kind
 *   INGEST_URL=http://127.0.0.1:3001 INGEST_TOKEN=<token> node libs/events/examples/bot.ts
 *                                               # …and posts one batch over HTTP with the typed client
 *
 * A real bot calls `createEvent` from its gateway handlers (messageCreate, typingStart,
 * presenceUpdate, guildMemberAdd, messageDelete, guildMemberUpdate) and hands the result to
 * the publisher. Keep the event object if you retry by hand: its id makes the retry a duplicate.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createIngestClient } from '@spywatcher/client';
import { createEvent, createPublisher, DEFAULT_NATS_NAMES, ensureEventStream } from '../src/index.ts';

const natsUser = process.env.NATS_USER;
const nc = await connect({
  servers: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  name: 'spywatcher-bot-example',
  // infra/nats/authorization.conf's bot user reads only its own inbox, where publish acks arrive
  ...(natsUser ? { user: natsUser, pass: process.env.NATS_PASSWORD, inboxPrefix: `_INBOX.${natsUser}` } : {}),
  maxReconnectAttempts: -1, // a bot keeps trying; the publisher retries meanwhile
});
const names = {
  prefix: process.env.NATS_SUBJECT_PREFIX ?? DEFAULT_NATS_NAMES.prefix,
  stream: process.env.NATS_STREAM ?? DEFAULT_NATS_NAMES.stream,
};
// ingest creates the stream on start; on a development NATS without users a bot may start first,
// so it makes sure the stream exists (the bot user of the shipped config may not).
if (!natsUser) await ensureEventStream(await jetstreamManager(nc), names);

const publisher = createPublisher({
  nc,
  names,
  maxInFlight: 256,
  retries: 5,
  onError: (f) => console.error(`could not publish ${f.type} ${f.id}: ${f.error.message}`),
});

const guild = '81384788765712384';
const channel = { channel_id: '81384788765712384', channel_name: 'general' };
const user = { user_id: '80351110224678912', username: 'wumpus' };

// Await each publish when you need to know it is in the stream…
const ack = await publisher.publish(
  createEvent('message', {
    message_id: '1178421398746210304',
    ...user,
    ...channel,
    guild_id: guild,
    content: 'hello <@80351110224678912> <:wave:112233445566778899> https://discord.com',
    attachment_count: 0,
    embed_count: 0,
  }),
);
console.log(`message stored in the stream at seq ${ack.seq} (duplicate: ${ack.duplicate})`);

// …or send and let the window bound what is in flight (failures go to onError).
await publisher.send(createEvent('typing', { ...user, ...channel, guild_id: guild }));
await publisher.send(
  createEvent('presence', { ...user, guild_id: guild, clients: ['desktop', 'mobile'], status: 'online' }),
);
await publisher.send(createEvent('join', { ...user, guild_id: guild, account_age_days: 1200 }));
await publisher.send(
  createEvent('deleted_message', { message_id: '1178421398746210304', ...user, ...channel, guild_id: guild }),
);
await publisher.send(
  createEvent('reaction_time', {
    observer_id: '80351110224678913',
    observer_name: 'clyde',
    actor_id: user.user_id,
    actor_name: user.username,
    channel_id: channel.channel_id,
    guild_id: guild,
    delta_ms: 850,
  }),
);
await publisher.send(
  createEvent('role_change', {
    ...user,
    guild_id: guild,
    added_roles: ['81384788765712385'],
    removed_roles: [],
  }),
);
await publisher.flush();
console.log(publisher.stats());
await nc.drain();

// Without NATS access a bot posts the same events to ingest over HTTP. The client is generated
// from ingest's OpenAPI document (@spywatcher/client): the path, the body and the answer are typed.
if (process.env.INGEST_URL) {
  const ingest = createIngestClient({ baseUrl: process.env.INGEST_URL, token: process.env.INGEST_TOKEN });
  const { data, error, response } = await ingest.POST('/v1/events', {
    body: [createEvent('join', { ...user, guild_id: guild, account_age_days: 1200 })],
  });
  if (data)
    console.log(`over HTTP: ${data.stored} stored, ${data.duplicate} duplicate, ${data.rejected} rejected`);
  else console.error(`ingest answered ${response.status}: ${error?.error.message ?? 'no body'}`);
}
