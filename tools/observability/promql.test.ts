import { describe, expect, it } from 'vitest';
import { metricNames } from './promql.ts';

describe('metricNames', () => {
  it('finds the metrics of an expression and nothing else', () => {
    expect(
      metricNames(
        'sum by (job, instance) (pg_pool_connections{state="active"}) / on (job, instance) max by (job, instance) (pg_pool_max_connections) >= 0.9',
      ).sort(),
    ).toEqual(['pg_pool_connections', 'pg_pool_max_connections']);
    expect(
      metricNames(
        'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{route=~"/v1/.*"}[$__rate_interval])))',
      ),
    ).toEqual(['http_request_duration_seconds_bucket']);
    expect(
      metricNames(
        'sum(ingest_consumer_pending) > 0 and on () (sum(rate(ingest_events_received_total{source="nats"}[5m])) or on () vector(0)) == 0',
      ).sort(),
    ).toEqual(['ingest_consumer_pending', 'ingest_events_received_total']);
    expect(metricNames('max(spywatcher_db_xid_age) > 1e+09 offset 5m')).toEqual(['spywatcher_db_xid_age']);
    expect(metricNames('route:http_request_duration_seconds:p95_5m{job="search"} > 0.05')).toEqual([
      'route:http_request_duration_seconds:p95_5m',
    ]);
    expect(
      metricNames('spywatcher_disk_paths unless on (instance, path) spywatcher_disk_size_bytes').sort(),
    ).toEqual(['spywatcher_disk_paths', 'spywatcher_disk_size_bytes']);
  });
});
