//! Disk full: `gleaner serve` on a small tmpfs data directory (8 MiB) whose space a filler
//! file mostly takes; record writes fill the rest. While the disk is full every answer to a
//! write is the JSON error with 507 or 503 + `Retry-After` (never a 500, never a crash),
//! reads keep working, and every database passes `integrity_check`. Then the filler is
//! deleted and writes succeed again from the same process — no restart — and every write
//! acknowledged before, during and after is there, also after a clean stop.
//!
//! Mounting needs root (CI runs as root). Without it the test says loudly that it skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{self, integrity, open_ro};
use rand::{Rng, SeedableRng};

const TENANT: &str = "full";
const SOURCE: &str = "fill";

/// A tmpfs mounted for the test's lifetime; unmounted (lazily, so a stray open file cannot
/// keep it) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root".into());
        }
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    fn free_bytes(&self) -> u64 {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
        s.f_bavail as u64 * s.f_frsize as u64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `size` bytes of zeros (tmpfs allocates them) into `path`, stopping early and
/// quietly when the disk fills.
fn fill(path: &Path, size: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        if f.write_all(&block[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
}

/// One write request's outcome.
enum Outcome {
    Acked(Vec<String>),
    /// A clean refusal: status and `error.code`.
    Refused(u16, String),
}

struct Writer {
    client: reqwest::Client,
    url: String,
    rng: rand::rngs::StdRng,
    n: usize,
    /// The data directory, which no answer may name.
    data: String,
}

impl Writer {
    /// Pushes 20 records of ~2 KB of random (incompressible) text each.
    async fn push(&mut self) -> Outcome {
        let keys: Vec<String> = (0..20).map(|j| format!("k{}-{j}", self.n)).collect();
        self.n += 1;
        let recs: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                let body: String = (0..2048)
                    .map(|_| char::from(b'a' + self.rng.random_range(0..26u8)))
                    .collect();
                serde_json::json!({"source": SOURCE, "key": k, "fields": {"body": body}})
            })
            .collect();
        let r = self
            .client
            .post(&self.url)
            .bearer_auth(support::ADMIN_TOKEN)
            .json(&serde_json::json!({ "records": recs }))
            .send()
            .await
            .expect("the server answers while the disk is full");
        let status = r.status().as_u16();
        if status == 200 {
            return Outcome::Acked(keys);
        }
        let retry = r.headers().get("retry-after").cloned();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = r.text().await.unwrap_or_default();
        assert!(
            status == 507 || (status == 503 && retry.is_some()),
            "a write on a full disk answered {status} (retry-after {retry:?}): {body}"
        );
        assert!(
            ctype.starts_with("application/json"),
            "{status} has content-type {ctype:?}: {body}"
        );
        assert!(
            !body.contains(&self.data),
            "the answer names a file: {body}"
        );
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{status} body is not JSON ({e}): {body}"));
        let code = v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{status} body lacks error.code: {body}"))
            .to_owned();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{status} body lacks error.message: {body}"
        );
        Outcome::Refused(status, code)
    }
}

fn stored_keys(db: &Path) -> std::collections::HashSet<String> {
    let c = open_ro(db);
    let mut st = c
        .prepare("SELECT key FROM records WHERE source = ?1")
        .unwrap();
    st.query_map([SOURCE], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn assert_all_ok(data: &Path, ctx: &str) {
    for db in [
        data.join("control.db"),
        data.join("tenants").join(format!("{TENANT}.db")),
    ] {
        assert_eq!(integrity(&db), "ok", "{ctx}: {} corrupt", db.display());
    }
}

#[test]
fn full_disk_gives_clean_errors_and_recovers_without_restart() {
    full_disk(false);
}

/// The same with replication on: its staging files live in the data directory too, so it
/// runs out of space alongside the writes, and once space returns the replica must catch up
/// to exactly the local databases.
#[test]
fn full_disk_with_replication_recovers_and_the_replica_catches_up() {
    full_disk(true);
}

fn full_disk(replicate: bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fs = match Tmpfs::mount(&data, "8m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "\n!!!!!!!! SKIPPED disk_full: {why}; this test needs root to mount a tmpfs !!!!!!!!\n"
            );
            return;
        }
    };
    let replica_root = dir.path().join("replica");
    let replica_url = format!("file://{}", replica_root.display());
    let mut env = vec![("GLEANER_HTTP__ADMIN_TOKEN", support::ADMIN_TOKEN)];
    env.extend(support::NO_RATE_LIMITS);
    if replicate {
        env.extend([
            ("GLEANER_REPLICATE__ENABLED", "true"),
            ("GLEANER_REPLICATE__URL", replica_url.as_str()),
            ("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "50"),
        ]);
    }
    let server = support::Server::start(&data, &[], &env);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = support::Api::new(&server);
    let client = api.c.clone();
    let tenant_db = data.join("tenants").join(format!("{TENANT}.db"));
    let mut acked: Vec<String> = Vec::new();
    let mut refusals: Vec<(u16, String)> = Vec::new();
    let filler = data.join("filler");
    let data_str = data.to_str().unwrap();

    rt.block_on(async {
        api.create_tenant(TENANT).await;
        let mut w = Writer {
            client: client.clone(),
            url: server.url(&format!("/v1/tenants/{TENANT}/records")),
            rng: rand::rngs::StdRng::seed_from_u64(19),
            n: 0,
            data: data_str.to_owned(),
        };
        // Leave about 1.5 MiB for the writes to fill.
        fill(&filler, fs.free_bytes().saturating_sub(1536 * 1024));
        eprintln!("disk_full: {} bytes free after the filler", fs.free_bytes());

        // Fill: write until refused, then keep writing; every refusal is checked in push.
        let mut requests = 0;
        while refusals.len() < 20 {
            requests += 1;
            assert!(
                requests < 500,
                "500 writes and the disk is not full ({} bytes free)",
                fs.free_bytes()
            );
            match w.push().await {
                Outcome::Acked(k) => acked.extend(k),
                Outcome::Refused(s, c) => refusals.push((s, c)),
            }
        }
        eprintln!(
            "disk_full: {} records acknowledged, then refusals {:?}; {} bytes free",
            acked.len(),
            refusals.iter().take(3).collect::<Vec<_>>(),
            fs.free_bytes()
        );
        assert!(
            !acked.is_empty(),
            "nothing was written before the disk filled"
        );

        // While full: creating a tenant (a new database file) is refused as cleanly, and
        // reads still answer.
        let another = serde_json::json!({ "id": "another" });
        let r = api.admin("POST", "/v1/tenants", Some(&another)).await;
        let s = r.status().as_u16();
        let retry = r.headers().contains_key("retry-after");
        let body = r.text().await.unwrap();
        assert!(
            s == 507 || (s == 503 && retry),
            "tenant creation on a full disk answered {s}: {body}"
        );
        assert!(!body.contains(data_str), "the answer names a file: {body}");
        assert!(
            !data.join("tenants").join("another.db").exists(),
            "a refused tenant creation left its database file behind"
        );
        let r = api
            .admin(
                "GET",
                &format!("/v1/tenants/{TENANT}/records?limit=5"),
                None,
            )
            .await;
        assert_eq!(r.status().as_u16(), 200, "reads fail on a full disk");
        if replicate {
            // The variant means something only if shipping met the full disk too.
            let errors = support::eventually(
                Duration::from_secs(20),
                "replication to fail on the full disk (else the variant tests nothing)",
                || async {
                    let m = api.text("/metrics").await;
                    let errors: f64 = m
                        .lines()
                        .find_map(|l| l.strip_prefix("gleaner_replication_sync_errors_total "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0.0);
                    if errors > 0.0 {
                        Ok(errors)
                    } else {
                        Err("no replication sync error".into())
                    }
                },
            )
            .await;
            eprintln!("disk_full: {errors} replication sync errors while full");
        }
        let r = api.send("GET", "/healthz", None, None).await;
        assert_eq!(r.status().as_u16(), 200, "the process is not alive");
    });
    assert_all_ok(&data, "while full");
    let have = stored_keys(&tenant_db);
    assert!(
        acked.iter().all(|k| have.contains(k)),
        "an acknowledged write is missing while the disk is full"
    );

    // Space returns: the same process takes writes again.
    std::fs::remove_file(&filler).unwrap();
    rt.block_on(async {
        let mut w = Writer {
            client: client.clone(),
            url: server.url(&format!("/v1/tenants/{TENANT}/records")),
            rng: rand::rngs::StdRng::seed_from_u64(20),
            n: 100_000,
            data: data_str.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match w.push().await {
                Outcome::Acked(k) => {
                    acked.extend(k);
                    eprintln!("disk_full: space freed; write attempt {attempts} succeeded");
                    break;
                }
                Outcome::Refused(s, c) => assert!(
                    Instant::now() < deadline,
                    "writes still refused ({s} {c}) 30 s after space returned"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for _ in 0..5 {
            match w.push().await {
                Outcome::Acked(k) => acked.extend(k),
                Outcome::Refused(s, c) => panic!("a write after recovery was refused: {s} {c}"),
            }
        }
        api.create_tenant("another").await;
    });
    assert_all_ok(&data, "after recovery");
    let have = stored_keys(&tenant_db);
    let missing = acked.iter().filter(|k| !have.contains(*k)).count();
    assert_eq!(missing, 0, "acknowledged writes missing after recovery");
    assert!(server.stop().success(), "clean stop after recovery failed");
    assert_all_ok(&data, "after the clean stop");
    let have = stored_keys(&tenant_db);
    assert!(acked.iter().all(|k| have.contains(k)));
    if replicate {
        // The clean stop shipped the last frames: each replica restores to its local database.
        for (name, local) in [
            ("control", data.join("control.db")),
            ("tenants/full", tenant_db.clone()),
            ("tenants/another", data.join("tenants").join("another.db")),
        ] {
            let out = dir.path().join(format!("{}.db", name.replace('/', "-")));
            support::gleaner_restore(
                &support::Backend::File(replica_root.join(name)),
                &["--quiet"],
                &out,
            )
            .unwrap_or_else(|e| panic!("restore of the {name} replica: {e}"));
            assert_eq!(integrity(&out), "ok", "restored {name}");
            assert_eq!(
                support::content(&out),
                support::content(&local),
                "the {name} replica did not catch up after the disk-full episode"
            );
        }
    }
    eprintln!(
        "disk_full (replication {}) passed: {} records acknowledged in all, {} refusals on the full disk (all 503/507 JSON)",
        if replicate { "on" } else { "off" },
        acked.len(),
        refusals.len()
    );
}
