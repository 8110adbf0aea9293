//! The bundled sample site behaves like the sites it imitates: sessions, redirects,
//! windows-1252, ETags, OAuth2-protected JSON API with next_token pagination.

use gleaner::demo;

async fn serve(entities: u32) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, demo::router(entities)).await.unwrap() });
    addr
}

#[tokio::test]
async fn session_cookie_charset_etag_and_api() {
    let addr = serve(300).await;
    let base = format!("http://{addr}");
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // No session: detail pages bounce to the first listing.
    let r = plain
        .get(format!("{base}/registry/detail.jsp?id=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // The listing sets the session; with it the detail page is served in windows-1252.
    let r = plain
        .get(format!("{base}/registry/list.jsp?page=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("JSESSIONID="));
    assert_eq!(
        r.headers()["content-type"],
        "text/html; charset=windows-1252"
    );
    let etag = r.headers()["etag"].clone();
    let body = r.bytes().await.unwrap();
    let (text, _, bad) = encoding_rs::WINDOWS_1252.decode(&body);
    assert!(!bad);
    assert!(text.contains("Page 2 of 6") && text.contains("list.jsp?page=3"));
    let r = plain
        .get(format!("{base}/registry/detail.jsp?id=3"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert!(body.contains(&0x80), "euro sign as windows-1252 byte 0x80");
    // Conditional GET.
    let r = plain
        .get(format!("{base}/registry/list.jsp?page=2"))
        .header("cookie", &cookie)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // A new revision changes ETags.
    plain
        .post(format!("{base}/_control/revision/1"))
        .send()
        .await
        .unwrap();
    let r = plain
        .get(format!("{base}/registry/list.jsp?page=2"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // OAuth2 client credentials, then next_token pagination to the end.
    let r = plain
        .get(format!("{base}/api/v1/standards"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let tok: serde_json::Value = plain
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("client_secret", demo::CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok = tok["access_token"].as_str().unwrap().to_owned();
    let mut next: Option<String> = None;
    let mut n = 0;
    loop {
        let mut req = plain
            .get(format!("{base}/api/v1/standards?limit=100"))
            .bearer_auth(&tok);
        if let Some(t) = &next {
            req = req.query(&[("next_token", t)]);
        }
        let page: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
        n += page["items"].as_array().unwrap().len();
        match page["next_token"].as_str() {
            Some(t) => next = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(n, 297, "revision 1 removed 3 entries");

    // Sitemap index → gzipped sitemap with detail URLs.
    let idx = plain
        .get(format!("{base}/sitemap.xml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(idx.contains("/sitemaps/sitemap-1.xml.gz"));
    let gz = plain
        .get(format!("{base}/sitemaps/sitemap-1.xml.gz"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
}

#[test]
fn static_export_writes_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let site = demo::Site::new(120);
    let pages = demo::export_static(&site, dir.path(), "http://127.0.0.1:1").unwrap();
    assert_eq!(pages, 3 + 120);
    let p = std::fs::read(dir.path().join("registry/list/1.html")).unwrap();
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(&p);
    assert!(text.contains("/registry/detail/1.html"));
    assert!(dir.path().join("sitemaps/sitemap-1.xml.gz").exists());
}
