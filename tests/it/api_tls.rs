//! TLS from PEM files, and a certificate replaced on disk while the server runs: new
//! connections get the new certificate without a restart; a broken replacement is ignored.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

fn write_cert(dir: &Path, name: &str) -> String {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let pem = ck.cert.pem();
    // Write to temporary names and rename, as a deploy tool would, so the server never
    // reads half a file.
    let (c, k) = (
        dir.join(format!("{name}.crt.tmp")),
        dir.join(format!("{name}.key.tmp")),
    );
    std::fs::write(&c, &pem).unwrap();
    std::fs::write(&k, ck.signing_key.serialize_pem()).unwrap();
    std::fs::rename(&c, dir.join("cert.pem")).unwrap();
    std::fs::rename(&k, dir.join("key.pem")).unwrap();
    pem
}

fn client_trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_and_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let first = write_cert(&tls, "a");
    let cfg = format!(
        "[http]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_reload_secs = 1\n",
        tls.join("cert.pem").display(),
        tls.join("key.pem").display()
    );
    let srv = start(dir.path(), &cfg);
    let url = format!("https://localhost:{}/v1/tenants", srv.addr.port());
    let r = client_trusting(&first)
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("strict-transport-security"));
    // Plain HTTP on the TLS port gets nowhere.
    assert!(client().get(srv.url("/healthz")).send().await.is_err());

    let second = write_cert(&tls, "b");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = client_trusting(&second)
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(Instant::now() < deadline, "new certificate never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        client_trusting(&first).get(&url).send().await.is_err(),
        "old certificate still served"
    );

    // A broken key file is ignored: the server keeps the working certificate.
    std::fs::write(tls.join("key.pem"), "not a key").unwrap();
    eventually(
        Duration::from_secs(15),
        "the broken key file to be noticed",
        || async {
            if srv
                .drain_log()
                .iter()
                .any(|l| l.contains("keeping the previous certificate"))
            {
                Ok(())
            } else {
                Err("no \"keeping the previous certificate\" in the log".into())
            }
        },
    )
    .await;
    let r = client_trusting(&second)
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
