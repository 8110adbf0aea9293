//! Every metric Gleaner exports: names, descriptions and bucket layouts.
//!
//! Names follow `gleaner_<what>_<unit>[_total]`. Labels are bounded: HTTP routes are the
//! matched route templates (never raw paths), statuses are numbers, databases are `control`
//! or `tenant` — never a tenant id, URL or record key.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

pub const HTTP_REQUESTS_TOTAL: &str = "gleaner_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "gleaner_http_request_duration_seconds";
pub const HTTP_CONNECTIONS_OPEN: &str = "gleaner_http_connections_open";
pub const STORE_OPEN_TENANT_DBS: &str = "gleaner_store_open_tenant_databases";
pub const STORE_WRITER_BATCH_SIZE: &str = "gleaner_store_writer_batch_size";
pub const STORE_COMMIT_DURATION_SECONDS: &str = "gleaner_store_commit_duration_seconds";
pub const STORE_WRITES_TOTAL: &str = "gleaner_store_writes_total";
pub const STORE_CHECKPOINTS_TOTAL: &str = "gleaner_store_checkpoints_total";
pub const BUILD_INFO: &str = "gleaner_build_info";
pub const REPLICATION_LAG_SECONDS: &str = "gleaner_replication_lag_seconds";
pub const REPLICATION_LAST_SHIPPED_TXID: &str = "gleaner_replication_last_shipped_txid";
pub const REPLICATION_UPLOADED_BYTES_TOTAL: &str = "gleaner_replication_uploaded_bytes_total";
pub const REPLICATION_UPLOADED_OBJECTS_TOTAL: &str = "gleaner_replication_uploaded_objects_total";
pub const REPLICATION_UPLOAD_ERRORS_TOTAL: &str = "gleaner_replication_upload_errors_total";
pub const REPLICATION_UPLOAD_DURATION_SECONDS: &str = "gleaner_replication_upload_duration_seconds";
pub const REPLICATION_CHECKPOINT_DURATION_SECONDS: &str =
    "gleaner_replication_checkpoint_duration_seconds";
pub const REPLICATION_WAL_BYTES: &str = "gleaner_replication_wal_bytes";
pub const REPLICATION_DATABASES: &str = "gleaner_replication_databases";
pub const REPLICATION_SYNC_ERRORS_TOTAL: &str = "gleaner_replication_sync_errors_total";
pub const REPLICATION_VERIFY_TOTAL: &str = "gleaner_replication_verify_total";
pub const REPLICATION_VERIFY_LAST_SUCCESS_SECONDS: &str =
    "gleaner_replication_verify_last_success_timestamp_seconds";
pub const REPLICATION_VERIFY_OLDEST_AGE: &str = "gleaner_replication_verify_oldest_age_seconds";
pub const REPLICATION_VERIFY_FAILED_DATABASES: &str = "gleaner_replication_verify_failed_databases";
pub const AUDIT_SUPPRESSED_TOTAL: &str = "gleaner_audit_suppressed_total";
pub const AUDIT_CHECKPOINT_SEQ: &str = "gleaner_audit_checkpoint_seq";
pub const AUDIT_CHECKPOINT_ENTRIES: &str = "gleaner_audit_checkpoint_entries";
pub const AUTH_FAILURES_TOTAL: &str = "gleaner_auth_failures_total";
pub const RATE_LIMITED_TOTAL: &str = "gleaner_rate_limited_total";
pub const HARVEST_FETCHES_TOTAL: &str = "gleaner_harvest_fetches_total";
pub const HARVEST_BYTES_TOTAL: &str = "gleaner_harvest_bytes_total";
pub const HARVEST_NOT_MODIFIED_TOTAL: &str = "gleaner_harvest_not_modified_total";
pub const HARVEST_ROBOTS_BLOCKED_TOTAL: &str = "gleaner_harvest_robots_blocked_total";
pub const HARVEST_RETRIES_TOTAL: &str = "gleaner_harvest_retries_total";
pub const HARVEST_SESSION_RENEWALS_TOTAL: &str = "gleaner_harvest_session_renewals_total";
pub const HARVEST_HOST_WAIT_SECONDS: &str = "gleaner_harvest_host_wait_seconds";
pub const HARVEST_RECORDS_TOTAL: &str = "gleaner_harvest_records_total";
pub const PUSH_REFUSED_TOTAL: &str = "gleaner_push_refused_total";
pub const HARVEST_RUN_DURATION_SECONDS: &str = "gleaner_harvest_run_duration_seconds";
pub const HARVEST_RUNS_TOTAL: &str = "gleaner_harvest_runs_total";
pub const HARVEST_STALE_SOURCES: &str = "gleaner_harvest_stale_sources";
pub const HARVEST_EMPTY_RUNS_TOTAL: &str = "gleaner_harvest_empty_runs_total";
/// Complete runs held as `anomalous` by the anomaly guard, by `rule` (removed, dropped).
pub const HARVEST_ANOMALOUS_RUNS_TOTAL: &str = "gleaner_harvest_anomalous_runs_total";

/// Latency buckets (seconds) shared by every `_seconds` histogram.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Writes per committed transaction.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

pub(super) fn describe_all() {
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by route and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time from request head to response head, by route."
    );
    describe_gauge!(HTTP_CONNECTIONS_OPEN, "HTTP connections being served.");
    describe_gauge!(STORE_OPEN_TENANT_DBS, "Tenant databases currently open.");
    describe_histogram!(
        STORE_WRITER_BATCH_SIZE,
        "Writes grouped into one committed transaction, by database class."
    );
    describe_histogram!(
        STORE_COMMIT_DURATION_SECONDS,
        Unit::Seconds,
        "Time to run and commit one batched transaction, by database class."
    );
    describe_counter!(STORE_WRITES_TOTAL, "Writes by database class and outcome.");
    describe_counter!(STORE_CHECKPOINTS_TOTAL, "WAL checkpoints run by the store.");
    describe_gauge!(
        AUDIT_CHECKPOINT_SEQ,
        "Sequence number of the newest audit entry in the signed checkpoint; an external \
         anchor: it never decreases unless the audit log was rolled back."
    );
    describe_gauge!(
        AUDIT_CHECKPOINT_ENTRIES,
        "Audit entries, all chains, in the signed checkpoint; never decreases."
    );
    describe_counter!(
        AUDIT_SUPPRESSED_TOTAL,
        "Audit entries for failed requests not written because of the per-address throttle."
    );
    describe_counter!(
        PUSH_REFUSED_TOTAL,
        "Signed pushes refused before anything was stored, by reason (missing, malformed, mismatch, stale, replayed, replay_full)."
    );
    describe_counter!(
        AUTH_FAILURES_TOTAL,
        "Requests refused for authentication or authorization, by reason."
    );
    describe_counter!(
        RATE_LIMITED_TOTAL,
        "Requests refused by a rate limit, by scope (credential, tenant, or address for failed authentications)."
    );
    describe_gauge!(BUILD_INFO, "Always 1; labels carry the version.");
    describe_replication();
    describe_harvest();
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

fn describe_replication() {
    describe_gauge!(
        REPLICATION_LAG_SECONDS,
        Unit::Seconds,
        "Largest age of an unshipped commit over all replicated databases (0 when all shipped)."
    );
    describe_gauge!(
        REPLICATION_LAST_SHIPPED_TXID,
        "Last TXID shipped for control.db (db=control) or the replicated database (db=external)."
    );
    describe_counter!(
        REPLICATION_UPLOADED_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes of L0 files uploaded."
    );
    describe_counter!(
        REPLICATION_UPLOADED_OBJECTS_TOTAL,
        "LTX objects uploaded (L0, compactions, snapshots)."
    );
    describe_counter!(
        REPLICATION_UPLOAD_ERRORS_TOTAL,
        "Uploads that failed after every retry."
    );
    describe_histogram!(
        REPLICATION_UPLOAD_DURATION_SECONDS,
        Unit::Seconds,
        "Time to upload one L0 file, retries included."
    );
    describe_histogram!(
        REPLICATION_CHECKPOINT_DURATION_SECONDS,
        Unit::Seconds,
        "Time the replicator's checkpoints took, by mode."
    );
    describe_gauge!(
        REPLICATION_WAL_BYTES,
        Unit::Bytes,
        "Largest WAL over all replicated databases."
    );
    describe_gauge!(REPLICATION_DATABASES, "Databases being replicated.");
    describe_counter!(
        REPLICATION_SYNC_ERRORS_TOTAL,
        "Syncs that failed (capture, upload or checkpoint)."
    );
    describe_counter!(
        REPLICATION_VERIFY_TOTAL,
        "Scheduled replica verifications, by outcome (ok, failed, unavailable)."
    );
    describe_gauge!(
        REPLICATION_VERIFY_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest last good verification over every database (since start-up until one full rotation is done)."
    );
    describe_gauge!(
        REPLICATION_VERIFY_FAILED_DATABASES,
        "Databases whose last scheduled verification failed (per-database detail on /readyz)."
    );
    describe_gauge!(
        REPLICATION_VERIFY_LAST_SUCCESS_SECONDS,
        Unit::Seconds,
        "Unix time of the last successful scheduled verification."
    );
}

fn describe_harvest() {
    describe_counter!(
        HARVEST_FETCHES_TOTAL,
        "URLs fetched, by outcome (ok, not_modified, error, robots_blocked)."
    );
    describe_counter!(
        HARVEST_BYTES_TOTAL,
        Unit::Bytes,
        "Response body bytes received by harvests, after decompression."
    );
    describe_counter!(
        HARVEST_NOT_MODIFIED_TOTAL,
        "Conditional requests answered 304 Not Modified."
    );
    describe_counter!(
        HARVEST_ROBOTS_BLOCKED_TOTAL,
        "URLs not fetched because robots.txt disallows them."
    );
    describe_counter!(
        HARVEST_SESSION_RENEWALS_TOTAL,
        "Times a run renewed a site's session after a page showed it lost."
    );
    describe_counter!(
        HARVEST_RETRIES_TOTAL,
        "Harvest requests repeated after a transient failure or a 401."
    );
    describe_histogram!(
        HARVEST_HOST_WAIT_SECONDS,
        Unit::Seconds,
        "Time a request waited for its host's politeness (slot, delay, Retry-After)."
    );
    describe_counter!(
        HARVEST_RECORDS_TOTAL,
        "Harvested records by change (new, changed, unchanged, removed)."
    );
    describe_histogram!(
        HARVEST_RUN_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of harvest runs."
    );
    describe_counter!(
        HARVEST_RUNS_TOTAL,
        "Finished harvest runs by outcome (succeeded, partial, failed, interrupted, paused)."
    );
    describe_counter!(
        HARVEST_EMPTY_RUNS_TOTAL,
        "Full harvest runs that succeeded but found no records (a wrong path, credential or site change)."
    );
    describe_counter!(
        HARVEST_ANOMALOUS_RUNS_TOTAL,
        "Complete harvest runs held as anomalous (their removals wait for an operator), by rule (removed, dropped)."
    );
    // Exported at 0 from the start: the alert's `increase()` needs a sample before the
    // first held run to see it.
    for rule in ["removed", "dropped"] {
        ::metrics::counter!(HARVEST_ANOMALOUS_RUNS_TOTAL, "rule" => rule).increment(0);
    }
    describe_gauge!(
        HARVEST_STALE_SOURCES,
        "Sources whose last successful run is older than their freshness threshold."
    );
}
