//! Small rows per second committed through the store's writer (group commit, every write
//! acknowledged after its transaction commits) against a plain rusqlite loop doing the same
//! statements in one transaction — the fastest a single caller can go, and the bound the
//! writer's batching should approach.
//!
//! Both sides: the same tenant schema, WAL mode, synchronous=FULL, the same pre-encoded
//! records (~150-byte JSON, zstd-compressed before timing), the same SELECT-then-INSERT per
//! new record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gleaner::config::StoreConfig;
use gleaner::store::{encode_payload, CheckpointPolicy, RecordWrite, Store};
use gleaner::tenant::TenantId;
use rusqlite::params;

const N: usize = 5_000;
const CALLERS: usize = 64;

fn records() -> Vec<RecordWrite> {
    (0..N)
        .map(|i| {
            let fields = serde_json::json!({
                "id": i,
                "title": format!("Competency standard {i}"),
                "code": format!("ICT{:05}", i * 7),
                "status": if i % 3 == 0 { "current" } else { "superseded" },
                "updated": "2026-11-21",
            });
            RecordWrite {
                source: "registry".into(),
                key: format!("k{i:06}"),
                payload: encode_payload(&fields).unwrap(),
                seen_ms: 1_700_000_000_000,
            }
        })
        .collect()
}

fn fresh_store(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, Store, TenantId) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        data_dir: dir.path().to_path_buf(),
        ..StoreConfig::default()
    };
    let t = TenantId::parse("bench").unwrap();
    let store = rt.block_on(async {
        let s = Store::open(
            &cfg,
            CheckpointPolicy::Store {
                wal_bytes: 64 << 20,
            },
        )
        .await
        .unwrap();
        s.create_tenant(&t, "bench").await.unwrap();
        s
    });
    (dir, store, t)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let recs = Arc::new(records());
    let mut g = c.benchmark_group("store_small_rows");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));

    g.bench_function("writer_acknowledged_64_callers", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_dir, store, t) = fresh_store(&rt);
                let db = rt.block_on(store.tenant_db(&t)).unwrap();
                let started = Instant::now();
                rt.block_on(async {
                    let mut tasks = Vec::with_capacity(CALLERS);
                    for w in 0..CALLERS {
                        let (db, recs) = (db.clone(), Arc::clone(&recs));
                        tasks.push(tokio::spawn(async move {
                            for r in recs.iter().skip(w).step_by(CALLERS) {
                                db.put_record(r.clone()).await.unwrap();
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
                total += started.elapsed();
                drop(db);
                rt.block_on(store.close());
            }
            total
        })
    });

    // The harvest engine writes a page of records per operation; 16 callers each writing
    // 50-record pages is its shape.
    g.bench_function("writer_acknowledged_16_callers_pages_of_50", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_dir, store, t) = fresh_store(&rt);
                let db = rt.block_on(store.tenant_db(&t)).unwrap();
                let pages: Vec<Vec<RecordWrite>> = recs.chunks(50).map(<[_]>::to_vec).collect();
                let pages = Arc::new(pages);
                let started = Instant::now();
                rt.block_on(async {
                    let mut tasks = Vec::new();
                    for w in 0..16 {
                        let (db, pages) = (db.clone(), Arc::clone(&pages));
                        tasks.push(tokio::spawn(async move {
                            for p in pages.iter().skip(w).step_by(16) {
                                db.put_records(p.clone()).await.unwrap();
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
                total += started.elapsed();
                drop(db);
                rt.block_on(store.close());
            }
            total
        })
    });

    g.bench_function("rusqlite_loop_one_transaction", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (dir, store, _t) = fresh_store(&rt);
                rt.block_on(store.close());
                let mut conn = gleaner::store::bench_plain_tenant_connection(
                    &dir.path().join("tenants/bench.db"),
                )
                .unwrap();
                let started = Instant::now();
                let tx = conn.transaction().unwrap();
                for r in recs.iter() {
                    let exists: Option<i64> = tx
                        .prepare_cached("SELECT id FROM records WHERE source = ?1 AND key = ?2")
                        .unwrap()
                        .query_row(params![r.source, r.key], |row| row.get(0))
                        .ok();
                    assert!(exists.is_none());
                    tx.prepare_cached(
                        "INSERT INTO records (source, key, version, hash, payload, first_seen_ms,
                                              version_since_ms, last_seen_ms)
                         VALUES (?1, ?2, 1, ?3, ?4, ?5, ?5, ?5)",
                    )
                    .unwrap()
                    .execute(params![
                        r.source,
                        r.key,
                        &r.payload.hash[..],
                        r.payload.compressed,
                        r.seen_ms
                    ])
                    .unwrap();
                    // The full-text row the store writes with each record (its text is
                    // extracted at encode time, off the writer, on both sides).
                    tx.prepare_cached("INSERT INTO records_fts (rowid, text) VALUES (?1, ?2)")
                        .unwrap()
                        .execute(params![tx.last_insert_rowid(), r.payload.text()])
                        .unwrap();
                }
                tx.commit().unwrap();
                total += started.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
