//! The store hooks the replicator relies on: exclusive jobs run with no write committing,
//! the read-snapshot holder stops other connections' checkpoints from passing it, the
//! observer hears about opens and about closes before the writer stops (while the database
//! still answers), and the WAL survives the close (PERSIST_WAL).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gleaner::config::StoreConfig;
use gleaner::store::{BoxFuture, CheckpointMode, CheckpointPolicy, Db, DbObserver, Store};
use gleaner::tenant::TenantId;

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

struct Obs(Arc<Recorder>);

impl DbObserver for Obs {
    fn opened(&self, db: &Db) {
        self.0.events.lock().unwrap().push(format!(
            "opened {}",
            db.path().file_name().unwrap().to_string_lossy()
        ));
    }

    fn closing(&self, db: Db) -> BoxFuture<()> {
        let rec = Arc::clone(&self.0);
        Box::pin(async move {
            // The writer must still be alive while the observer ships the tail.
            let alive = db.ping().await.is_ok();
            rec.events.lock().unwrap().push(format!(
                "closing {} alive={alive}",
                db.path().file_name().unwrap().to_string_lossy()
            ));
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_behave() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        data_dir: dir.path().to_path_buf(),
        ..StoreConfig::default()
    };
    let rec = Arc::new(Recorder::default());
    let obs: Arc<dyn DbObserver> = Arc::new(Obs(Arc::clone(&rec)));
    let store = Arc::new(
        Store::open_with(&cfg, CheckpointPolicy::External, Some(obs))
            .await
            .unwrap(),
    );
    let t = TenantId::parse("acme").unwrap();
    store.create_tenant(&t, "Acme").await.unwrap();

    // Exclusive: a write queued while the job runs commits only after it.
    let control = store.control().clone();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (sending_tx, sending_rx) = std::sync::mpsc::channel();
    let job = tokio::spawn({
        let control = control.clone();
        async move {
            control
                .exclusive(move || {
                    started_tx.send(()).unwrap();
                    // Hold until the write below is on its way, however late its task
                    // runs; then a grace for it to reach the writer's queue, which the
                    // store does not expose to wait on.
                    sending_rx
                        .recv_timeout(Duration::from_secs(30))
                        .expect("the write task never ran");
                    std::thread::sleep(Duration::from_millis(300));
                    (Instant::now(), Some(CheckpointMode::Passive))
                })
                .await
                .unwrap()
        }
    });
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    let s2 = Arc::clone(&store);
    let write = tokio::spawn(async move {
        sending_tx.send(()).unwrap();
        s2.create_tenant(&TenantId::parse("beta").unwrap(), "Beta")
            .await
            .unwrap();
        Instant::now()
    });
    let (job_end, ck) = job.await.unwrap();
    let write_end = write.await.unwrap();
    assert!(
        write_end >= job_end,
        "a write committed during the exclusive job"
    );
    let ck = ck.expect("checkpoint requested").unwrap();
    assert_eq!(ck.mode, CheckpointMode::Passive);

    // The holder: another connection's TRUNCATE checkpoint cannot finish.
    store
        .create_tenant(&TenantId::parse("gamma").unwrap(), "Gamma")
        .await
        .unwrap();
    let path = dir.path().join("control.db");
    let p = path.clone();
    let busy: i64 = tokio::task::spawn_blocking(move || {
        let c = rusqlite::Connection::open(&p).unwrap();
        c.busy_timeout(Duration::from_millis(200)).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        busy, 1,
        "an outside TRUNCATE checkpoint passed the replication snapshot"
    );

    store.close().await;
    let ev = rec.events.lock().unwrap().clone();
    assert!(ev.contains(&"opened control.db".to_string()), "{ev:?}");
    assert!(ev.contains(&"opened acme.db".to_string()), "{ev:?}");
    assert!(
        ev.contains(&"closing acme.db alive=true".to_string()),
        "{ev:?}"
    );
    assert!(
        ev.contains(&"closing control.db alive=true".to_string()),
        "{ev:?}"
    );
    // PERSIST_WAL: the WAL is still there after the last connection closed.
    assert!(dir.path().join("control.db-wal").exists());
}
