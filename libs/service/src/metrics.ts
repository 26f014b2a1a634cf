import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { withTimeout } from './readiness.ts';

/**
 * One registry per service instance (no global default registry), so tests can build many
 * apps in one process and each /metrics shows only its own numbers.
 */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Request duration by method, route pattern and status (route patterns keep cardinality bounded). */
export function instrumentHttp(app: FastifyInstance, registry: Registry): void {
  const histogram = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration in seconds by method, route and status code',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    histogram.observe(
      { method: request.method, route, status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
}

/**
 * Wraps a query that several gauges read when Prometheus scrapes, so one scrape runs it once.
 * A query that fails or takes longer than `timeoutMs` gives `fallback` (the gauges then show no
 * samples; `pg_up` tells why) instead of failing the whole scrape.
 */
export function oncePerScrape<T>(load: () => Promise<T>, fallback: T, timeoutMs = 2000): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= withTimeout(load(), timeoutMs, 'metrics query')
      .catch(() => fallback)
      .finally(() => {
        setTimeout(() => {
          pending = undefined;
        }, 100).unref();
      });
    return pending;
  };
}

export { Counter, Gauge, Histogram, Registry };
