import { jetstreamManager } from '@nats-io/jetstream';
import { ensureDeadLetterStream, ensureEventStream } from '@spywatcher/events';
import { type ConsumerOptions, type IngestConsumer, startConsumer } from './consumer.ts';

/** The consumer's options plus the stream settings applied before it starts. */
export interface IngestPipelineOptions extends ConsumerOptions {
  duplicateWindowMs: number;
  maxAgeMs: number;
}

/** Creates or updates the streams, then starts the durable consumer. */
export async function startIngestPipeline(o: IngestPipelineOptions): Promise<IngestConsumer> {
  const jsm = await jetstreamManager(o.nc);
  await ensureEventStream(jsm, o.names, { duplicateWindowMs: o.duplicateWindowMs, maxAgeMs: o.maxAgeMs });
  await ensureDeadLetterStream(jsm, o.names);
  return startConsumer(o);
}
