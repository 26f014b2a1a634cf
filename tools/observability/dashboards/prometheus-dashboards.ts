import { type DashboardSpec, quantiles } from './grafana.ts';

const firing = (pattern: string) => ({
  title: 'Firing alerts',
  type: 'table' as const,
  w: 24,
  h: 5,
  prom: [{ expr: `ALERTS{alertstate="firing", alertname=~"${pattern}"}`, instant: true }],
});

export const ingestDashboard: DashboardSpec = {
  uid: 'spywatcher-ingest',
  title: 'SpyWatcher / Ingest',
  description:
    'Events through ingest: received, stored, duplicates, rejected, dead letters, consumer lag and append time.',
  panels: [
    {
      title: 'Waiting in JetStream',
      description: 'Messages in the stream not yet delivered to the ingest consumer',
      type: 'stat',
      w: 6,
      h: 4,
      thresholds: [
        [10_000, 'orange'],
        [100_000, 'red'],
      ],
      prom: [{ expr: 'sum(ingest_consumer_pending)', instant: true }],
    },
    {
      title: 'Delivered, not acked',
      type: 'stat',
      w: 6,
      h: 4,
      prom: [{ expr: 'sum(ingest_consumer_ack_pending)', instant: true }],
    },
    {
      title: 'Stored per second',
      type: 'stat',
      unit: 'ops',
      w: 6,
      h: 4,
      prom: [{ expr: 'sum(rate(ingest_events_stored_total[5m]))', instant: true }],
    },
    {
      title: 'Dead letters (1 h)',
      type: 'stat',
      w: 6,
      h: 4,
      thresholds: [[1, 'red']],
      prom: [{ expr: 'sum(increase(ingest_events_dead_total[1h])) or vector(0)', instant: true }],
    },
    {
      title: 'Received by type and source',
      unit: 'ops',
      stack: true,
      prom: [
        {
          expr: 'sum by (type, source) (rate(ingest_events_received_total[$__rate_interval]))',
          legend: '{{type}} ({{source}})',
        },
      ],
    },
    {
      title: 'Stored, duplicate, rejected',
      unit: 'ops',
      prom: [
        { expr: 'sum(rate(ingest_events_stored_total[$__rate_interval]))', legend: 'stored' },
        { expr: 'sum(rate(ingest_events_duplicate_total[$__rate_interval]))', legend: 'duplicate' },
        {
          expr: 'sum by (code) (rate(ingest_events_rejected_total[$__rate_interval]))',
          legend: 'rejected {{code}}',
        },
      ],
    },
    {
      title: 'Dead letters by type and reason',
      description: 'Published to spywatcher.dead.<type>, each with its reason',
      stack: true,
      prom: [
        {
          expr: 'sum by (type, reason) (increase(ingest_events_dead_total[$__rate_interval]))',
          legend: '{{type}} {{reason}}',
        },
      ],
    },
    {
      title: 'Consumer lag',
      prom: [
        { expr: 'sum(ingest_consumer_pending)', legend: 'pending' },
        { expr: 'sum(ingest_consumer_ack_pending)', legend: 'ack pending' },
      ],
    },
    {
      title: 'Consumer faults: redeliveries, stalls, dead letters by reason',
      description:
        'Messages delivered again (crashed instances, failed batches), stalls (15 s without storing while messages wait) and dead letters by reason',
      prom: [
        {
          expr: 'sum(increase(ingest_consumer_redeliveries_total[$__rate_interval]))',
          legend: 'redelivered',
        },
        { expr: 'sum(increase(ingest_consumer_stalls_total[$__rate_interval]))', legend: 'stalls' },
        {
          expr: 'sum by (reason) (increase(ingest_events_dead_total[$__rate_interval]))',
          legend: 'dead: {{reason}}',
        },
      ],
    },
    {
      title: 'Seconds since the consumer stored a batch',
      description: 'While messages wait for it (0 when none wait); IngestConsumerNoProgress fires at 60 s',
      unit: 's',
      prom: [{ expr: 'max by (instance) (ingest_consumer_seconds_since_progress)', legend: '{{instance}}' }],
    },
    {
      title: 'Append time per batch',
      unit: 's',
      prom: quantiles('ingest_append_duration_seconds', '', 'source', [0.5, 0.95, 0.99]),
    },
    {
      title: 'Batch size',
      prom: quantiles('ingest_batch_size', '', 'source', [0.5, 0.95]),
    },
    {
      title: 'POST /v1/events latency',
      unit: 's',
      prom: quantiles('http_request_duration_seconds', '{job="ingest", route="/v1/events"}'),
    },
    {
      title: 'POST /v1/events by status',
      unit: 'reqps',
      prom: [
        {
          expr: 'sum by (status_code) (rate(http_request_duration_seconds_count{job="ingest", route="/v1/events"}[$__rate_interval]))',
          legend: '{{status_code}}',
        },
      ],
    },
    firing('Ingest.*'),
  ],
};

export const projectionsDashboard: DashboardSpec = {
  uid: 'spywatcher-projections',
  title: 'SpyWatcher / Projections',
  description: 'How far each read model is behind the event log, what it applies and how often it fails.',
  panels: [
    {
      title: 'Seconds behind (now)',
      type: 'bargauge',
      unit: 's',
      w: 12,
      h: 6,
      thresholds: [
        [60, 'orange'],
        [900, 'red'],
      ],
      prom: [
        { expr: 'max by (projection) (projection_seconds_behind)', legend: '{{projection}}', instant: true },
      ],
    },
    {
      title: 'Events behind (now)',
      type: 'bargauge',
      w: 12,
      h: 6,
      prom: [
        { expr: 'max by (projection) (projection_events_behind)', legend: '{{projection}}', instant: true },
      ],
    },
    {
      title: 'Seconds behind',
      unit: 's',
      prom: [{ expr: 'max by (projection) (projection_seconds_behind)', legend: '{{projection}}' }],
    },
    {
      title: 'Events applied per second',
      unit: 'ops',
      stack: true,
      prom: [
        {
          expr: 'sum by (projection) (rate(projection_events_applied_total[$__rate_interval]))',
          legend: '{{projection}}',
        },
      ],
    },
    {
      title: 'Batch time p95',
      unit: 's',
      prom: quantiles('projection_batch_duration_seconds', '', 'projection', [0.95]),
    },
    {
      title: 'Failed runs',
      prom: [
        {
          expr: 'sum by (projection) (increase(projection_failures_total[$__rate_interval]))',
          legend: '{{projection}}',
        },
      ],
    },
    {
      title: 'Checkpoint positions',
      description: 'Position of the last event applied, by projection and event type',
      w: 24,
      prom: [
        {
          expr: 'max by (projection, type) (projection_checkpoint_position)',
          legend: '{{projection}} {{type}}',
        },
      ],
    },
    firing('Projection.*'),
  ],
};

export const searchDashboard: DashboardSpec = {
  uid: 'spywatcher-search',
  title: 'SpyWatcher / Search',
  description:
    'Message search and analytics latency against their targets (docs/benchmarks.md), traffic and errors.',
  panels: [
    {
      title: 'Message search latency',
      description: 'Targets: p95 <= 50 ms, p99 <= 150 ms',
      unit: 's',
      prom: quantiles('http_request_duration_seconds', '{job="search", route="/v1/search/messages"}'),
    },
    {
      title: 'Analytics p95 by endpoint',
      description: 'Target: p95 <= 100 ms',
      unit: 's',
      prom: [
        {
          expr: 'route:http_request_duration_seconds:p95_5m{job="search", route=~"/v1/analytics/.*"}',
          legend: '{{route}}',
        },
      ],
    },
    {
      title: 'Requests by route',
      unit: 'reqps',
      stack: true,
      prom: [
        {
          expr: 'sum by (route) (rate(http_request_duration_seconds_count{job="search", route=~"/v1/.*"}[$__rate_interval]))',
          legend: '{{route}}',
        },
      ],
    },
    {
      title: 'Errors by route and status',
      unit: 'reqps',
      prom: [
        {
          expr: 'sum by (route, status_code) (rate(http_request_duration_seconds_count{job="search", status_code=~"[45].."}[$__rate_interval]))',
          legend: '{{status_code}} {{route}}',
        },
      ],
    },
    {
      title: 'Timeline and context latency p95',
      unit: 's',
      prom: [
        {
          expr: 'route:http_request_duration_seconds:p95_5m{job="search", route=~"/v1/users/.*|/v1/messages/.*"}',
          legend: '{{route}}',
        },
      ],
    },
    {
      title: 'PostgreSQL pool of search',
      prom: [
        { expr: 'sum by (state) (pg_pool_connections{job="search"})', legend: '{{state}}' },
        { expr: 'max(pg_pool_max_connections{job="search"})', legend: 'pool size' },
      ],
    },
    firing('Search.*|Analytics.*'),
  ],
};

export const databaseDashboard: DashboardSpec = {
  uid: 'spywatcher-database',
  title: 'SpyWatcher / Database health',
  description:
    'The ops health report as gauges (connections, cache, wraparound, bloat, vacuum, partitions), long transactions, replication and disk.',
  panels: [
    {
      title: 'Database size',
      type: 'stat',
      unit: 'bytes',
      w: 4,
      h: 4,
      prom: [{ expr: 'max(spywatcher_db_size_bytes)', instant: true }],
    },
    {
      title: 'Connections in use',
      type: 'stat',
      unit: 'percentunit',
      w: 4,
      h: 4,
      thresholds: [
        [0.6, 'orange'],
        [0.8, 'red'],
      ],
      prom: [{ expr: 'sum(spywatcher_db_connections) / max(spywatcher_db_max_connections)', instant: true }],
    },
    {
      title: 'Cache hit ratio',
      type: 'stat',
      unit: 'percentunit',
      w: 4,
      h: 4,
      prom: [{ expr: 'max(spywatcher_db_cache_hit_ratio)', instant: true }],
    },
    {
      title: 'Transaction id age',
      type: 'stat',
      w: 4,
      h: 4,
      thresholds: [
        [500_000_000, 'orange'],
        [1_000_000_000, 'red'],
      ],
      prom: [{ expr: 'max(spywatcher_db_xid_age)', instant: true }],
    },
    {
      title: 'Critical findings',
      type: 'stat',
      w: 4,
      h: 4,
      thresholds: [[1, 'red']],
      prom: [{ expr: 'sum(spywatcher_db_health_findings{severity="critical"}) or vector(0)', instant: true }],
    },
    {
      title: 'PostgreSQL reachable',
      description: 'pg_up of each service',
      type: 'stat',
      w: 4,
      h: 4,
      thresholds: [[1, 'green']],
      prom: [{ expr: 'min(pg_up)', instant: true }],
    },
    {
      title: 'Health findings',
      type: 'table',
      w: 24,
      h: 6,
      prom: [{ expr: 'sum by (check, severity) (spywatcher_db_health_findings)', instant: true }],
    },
    { row: 'Sessions and transactions' },
    {
      title: 'Connections by state',
      stack: true,
      prom: [
        { expr: 'sum by (state) (spywatcher_db_connections)', legend: '{{state}}' },
        { expr: 'max(spywatcher_db_max_connections)', legend: 'max_connections' },
      ],
    },
    {
      title: 'Oldest open transaction by application',
      unit: 's',
      prom: [
        {
          expr: 'max by (application) (spywatcher_db_oldest_transaction_seconds)',
          legend: '{{application}}',
        },
      ],
    },
    {
      title: 'Long queries, idle in transaction, blocked',
      prom: [
        { expr: 'max(spywatcher_db_long_queries)', legend: 'long queries' },
        { expr: 'max(spywatcher_db_idle_in_transaction)', legend: 'idle in transaction' },
        { expr: 'max(spywatcher_db_blocked_sessions)', legend: 'blocked' },
      ],
    },
    {
      title: 'Service pools',
      prom: [{ expr: 'sum by (job, state) (pg_pool_connections)', legend: '{{job}} {{state}}' }],
    },
    { row: 'Vacuum, bloat, partitions' },
    {
      title: 'Table bloat (top 20)',
      type: 'bargauge',
      unit: 'bytes',
      prom: [
        {
          expr: 'topk(20, max by (table) (spywatcher_db_table_bloat_bytes))',
          legend: '{{table}}',
          instant: true,
        },
      ],
    },
    {
      title: 'Dead tuples (top 20)',
      type: 'bargauge',
      prom: [
        { expr: 'topk(20, max by (table) (spywatcher_db_dead_tuples))', legend: '{{table}}', instant: true },
      ],
    },
    {
      title: 'Partitions ahead',
      description: 'Future partitions present per event table (0 means writers create them on demand)',
      type: 'bargauge',
      prom: [{ expr: 'min by (table) (spywatcher_db_partitions_ahead)', legend: '{{table}}', instant: true }],
    },
    {
      title: 'Unused indexes, expired partitions',
      prom: [
        { expr: 'max(spywatcher_db_unused_indexes)', legend: 'unused indexes' },
        { expr: 'sum(spywatcher_db_partitions_expired)', legend: 'partitions past retention' },
      ],
    },
    { row: 'Replication and disk' },
    {
      title: 'Replication lag',
      unit: 's',
      prom: [
        { expr: 'max by (replica) (spywatcher_db_replication_lag_seconds)', legend: '{{replica}}' },
        { expr: 'max(spywatcher_db_replicas)', legend: 'standbys' },
      ],
    },
    {
      title: 'WAL not yet replayed, WAL kept by slots',
      unit: 'bytes',
      prom: [
        { expr: 'max by (replica) (spywatcher_db_replication_lag_bytes)', legend: 'lag {{replica}}' },
        { expr: 'max by (slot) (spywatcher_db_replication_slot_retained_bytes)', legend: 'slot {{slot}}' },
      ],
    },
    {
      title: 'Free disk',
      unit: 'percentunit',
      prom: [
        {
          expr: 'min by (path) (spywatcher_disk_free_bytes / spywatcher_disk_size_bytes)',
          legend: '{{path}}',
        },
      ],
    },
    {
      title: 'Database size',
      unit: 'bytes',
      prom: [{ expr: 'max(spywatcher_db_size_bytes)', legend: 'database' }],
    },
    firing(
      'Replication.*|Disk.*|LongTransaction.*|SessionsBlocked|TableBloat|TransactionIdWraparound|ConnectionsNearMax|DatabaseHealthCritical|PostgresUnreachable',
    ),
  ],
};

export const backupsDashboard: DashboardSpec = {
  uid: 'spywatcher-backups',
  title: 'SpyWatcher / Backups',
  description: 'Backup and restore-drill freshness, failed jobs and the space left for backups.',
  time: { from: 'now-7d', to: 'now' },
  panels: [
    {
      title: 'Newest backup',
      type: 'stat',
      unit: 's',
      w: 6,
      h: 5,
      thresholds: [
        [26 * 3600, 'orange'],
        [78 * 3600, 'red'],
      ],
      prom: [{ expr: 'max(spywatcher_backup_last_success_age_seconds)', instant: true }],
    },
    {
      title: 'Newest verified backup',
      type: 'stat',
      unit: 's',
      w: 6,
      h: 5,
      thresholds: [[192 * 3600, 'orange']],
      prom: [{ expr: 'max(spywatcher_backup_last_verified_age_seconds)', instant: true }],
    },
    {
      title: 'Last backup / restore drill failed',
      type: 'stat',
      w: 6,
      h: 5,
      thresholds: [[1, 'red']],
      prom: [
        { expr: 'max(spywatcher_ops_job_last_failed{kind="backup"})', legend: 'backup', instant: true },
        { expr: 'max(spywatcher_ops_job_last_failed{kind="verify"})', legend: 'verify', instant: true },
      ],
    },
    {
      title: 'Free space for backups',
      type: 'stat',
      unit: 'bytes',
      w: 6,
      h: 5,
      prom: [{ expr: 'min(spywatcher_disk_free_bytes{path=~".*backups.*"})', instant: true }],
    },
    {
      title: 'Backup age',
      unit: 's',
      prom: [
        { expr: 'max(spywatcher_backup_last_success_age_seconds)', legend: 'newest backup' },
        { expr: 'max(spywatcher_backup_last_verified_age_seconds)', legend: 'newest verified' },
      ],
    },
    {
      title: 'Failed jobs in the last 24 h by kind',
      stack: true,
      prom: [{ expr: 'max by (kind) (spywatcher_ops_jobs_failed_last_24h)', legend: '{{kind}}' }],
    },
    {
      title: 'Last success by kind',
      type: 'table',
      unit: 'dateTimeFromNow',
      prom: [
        {
          expr: 'max by (kind) (spywatcher_ops_job_last_success_timestamp_seconds) * 1000',
          instant: true,
        },
      ],
    },
    {
      title: 'Running jobs',
      stack: true,
      prom: [{ expr: 'max by (kind) (spywatcher_ops_jobs_running)', legend: '{{kind}}' }],
    },
    firing('Backup.*|OpsJobFailed'),
  ],
};

export const servicesDashboard: DashboardSpec = {
  uid: 'spywatcher-services',
  title: 'SpyWatcher / Services',
  description: 'The four services: up, dependencies, HTTP traffic and errors, event loop and memory.',
  panels: [
    {
      title: 'Up',
      type: 'stat',
      w: 12,
      h: 4,
      thresholds: [[1, 'green']],
      prom: [{ expr: 'up{job=~"ingest|search|migrator|ops"}', legend: '{{job}}', instant: true }],
    },
    {
      title: 'NATS connected',
      type: 'stat',
      w: 12,
      h: 4,
      thresholds: [[1, 'green']],
      prom: [{ expr: 'max by (job) (nats_connected)', legend: '{{job}}', instant: true }],
    },
    {
      title: 'HTTP requests by service',
      unit: 'reqps',
      stack: true,
      prom: [
        {
          expr: 'sum by (job) (rate(http_request_duration_seconds_count{route!~"/metrics|/health|/ready"}[$__rate_interval]))',
          legend: '{{job}}',
        },
      ],
    },
    {
      title: '5xx by service',
      unit: 'reqps',
      prom: [
        {
          expr: 'sum by (job) (rate(http_request_duration_seconds_count{status_code=~"5.."}[$__rate_interval]))',
          legend: '{{job}}',
        },
      ],
    },
    {
      title: 'Event loop lag p99',
      unit: 's',
      prom: [{ expr: 'max by (job) (nodejs_eventloop_lag_p99_seconds)', legend: '{{job}}' }],
    },
    {
      title: 'Resident memory',
      unit: 'bytes',
      prom: [{ expr: 'max by (job) (process_resident_memory_bytes)', legend: '{{job}}' }],
    },
    firing('.*'),
  ],
};

export const PROMETHEUS_DASHBOARDS = [
  servicesDashboard,
  ingestDashboard,
  projectionsDashboard,
  searchDashboard,
  databaseDashboard,
  backupsDashboard,
];
