//! `gleaner demo`: everything on loopback, no network needed.
//!
//! Serves the bundled sample site, creates the `demo` tenant with four sources (the JSP
//! registry as listing + detail pages with its session cookie, its sitemap, its RSS feed
//! and its OAuth2 JSON API), harvests them with progress bars, then serves the Gleaner API
//! with a freshly generated admin token, printed once with commands to try.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use rand::Rng;

use super::cli;
use super::harvest::{describe, ensure_tenant, open, run_with_progress};
use super::CommandError;
use crate::app::AppError;
use crate::config::{Config, Secret};
use crate::harvest::source::SourceDef;
use crate::tenant::TenantId;

/// The demo's source definitions for a sample site at `site`.
pub fn definitions(site: SocketAddr) -> Vec<String> {
    vec![
        format!(
            r##"
id = "registry"
kind = "html"
schedule = "1h"
freshness = "1d"
start_urls = ["http://{site}/registry/list.jsp?page=1"]
[politeness]
min_delay = "0s"
[scope]
max_depth = 0
max_pages = 100000
[next]
selector = "a.next"
[extract]
record = "tr.result"
key = {{ field = "code" }}
[extract.fields.code]
selector = "td.code"
[extract.fields.title]
selector = "td.title"
[extract.fields.status]
selector = "td.status"
[extract.fields.released]
selector = "td.released"
type = "date"
format = "[year]-[month]-[day]"
[extract.detail]
link = "td.code a"
[extract.detail.fields.sector]
selector = "#sector"
[extract.detail.fields.fee_eur]
selector = "#fee"
regex = "(\\d+)"
type = "integer"
[extract.detail.fields.description]
selector = "#description"
"##
        ),
        format!(
            r##"
id = "sitemap"
kind = "sitemap"
sitemaps = ["http://{site}/sitemap.xml"]
max_urls = 100000
[auth]
type = "headers"
headers = {{ Cookie = "JSESSIONID=Sdemo" }}
[extract]
record = "dl.standard"
key = {{ field = "code" }}
[extract.fields.code]
selector = "#code"
[extract.fields.sector]
selector = "#sector"
[extract.fields.status]
selector = "#status"
"##
        ),
        format!(
            r##"
id = "feed"
kind = "feed"
schedule = "15m"
feeds = ["http://{site}/feed.xml"]
"##
        ),
        format!(
            r##"
id = "api"
kind = "json"
url = "http://{site}/api/v1/standards"
records = "$.items[*]"
key = {{ field = "code" }}
params = {{ limit = "200" }}
pagination = {{ type = "cursor", path = "$.next_token", param = "next_token" }}
[auth]
type = "oauth2_client_credentials"
token_url = "http://{site}/oauth/token"
client_id = "{id}"
client_secret = "secret:demo-client"
"##,
            id = crate::demo::CLIENT_ID
        ),
    ]
}

/// Binds the API's address now and keeps it bound through the harvest: a port picked and
/// released here could be taken meanwhile as the local port of one of the harvest's own
/// outgoing connections (port 0 and outgoing connections draw from the same range).
/// Connections that arrive before the API serves wait in the listen backlog.
fn bind_api(listen: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), AppError> {
    let bind = |source| AppError::Bind {
        addr: listen,
        source,
    };
    let l = std::net::TcpListener::bind(listen).map_err(bind)?;
    let addr = l.local_addr().map_err(bind)?;
    Ok((l, addr))
}

/// `gleaner demo`.
pub async fn demo(mut cfg: Config, entities: u32, show_progress: bool) -> Result<(), CommandError> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| CommandError::Io(format!("cannot start the sample site: {e}")))?;
    let site = l
        .local_addr()
        .map_err(|e| CommandError::Io(e.to_string()))?;
    tokio::spawn(async move {
        let _ = axum::serve(l, crate::demo::router(entities)).await;
    });
    // The sample site is on loopback, which harvests may not reach by default.
    cfg.harvest.allow_private_targets = true;
    let (api_listener, api_addr) = bind_api(cfg.http.listen)?;
    cfg.http.listen = api_addr;
    let token = match cfg.admin_token()? {
        Some(t) => t,
        None => {
            let bytes: [u8; 24] = rand::rng().random();
            Secret::new(hex::encode(bytes))
        }
    };
    cfg.http.admin_token = Some(token.clone());
    cfg.http.admin_token_file = None;

    println!("sample site (a national registry, {entities} standards) on http://{site}/");
    let tenant = TenantId::parse("demo").map_err(|e| CommandError::Usage(e.to_string()))?;
    let (store, h) = open(&cfg).await?;
    let result = async {
        ensure_tenant(&store, &tenant).await?;
        store
            .tenant_db(&tenant)
            .await?
            .put_secret("demo-client", crate::demo::CLIENT_SECRET)
            .await?;
        let mut ids = Vec::new();
        for text in definitions(site) {
            let def =
                SourceDef::parse_toml(&text).map_err(|e| CommandError::Usage(e.to_string()))?;
            h.put_source(&tenant, &def).await?;
            ids.push(def.id().to_string());
        }
        for id in &ids {
            let s = run_with_progress(&h, &tenant, id, show_progress).await?;
            print!("{}", describe(&s));
        }
        Ok::<_, CommandError>(())
    }
    .await;
    store.close().await;
    result?;

    let api = format!("http://{}", cfg.http.listen);
    let t = token.expose();
    println!(
        r#"
Gleaner API on {api} — admin token (shown once): {t}

Try:
  export GLEANER_TOKEN={t}
  curl -s -H "Authorization: Bearer $GLEANER_TOKEN" {api}/v1/tenants/demo/sources
  curl -s -H "Authorization: Bearer $GLEANER_TOKEN" {api}/v1/tenants/demo/sources/registry/runs
  # run again: every page answers 304 Not Modified, every record is unchanged
  curl -s -X POST -H "Authorization: Bearer $GLEANER_TOKEN" {api}/v1/tenants/demo/sources/registry/runs
  # change the site (every 7th title edited, the last 3 entries removed), then run again
  curl -s -X POST http://{site}/_control/revision/1
  curl -s -X POST -H "Authorization: Bearer $GLEANER_TOKEN" {api}/v1/tenants/demo/sources/registry/runs
  curl -s {api}/metrics | grep gleaner_harvest
  sqlite3 {db} 'select key, version, removed_run from records where source = "registry" and (version > 1 or removed_run is not null)'

Ctrl-C stops the demo; its data stays in {data}.
"#,
        db = cfg.store.data_dir.join("tenants/demo.db").display(),
        data = cfg.store.data_dir.display(),
    );
    crate::app::serve_on(cfg, Some(api_listener)).await?;
    Ok(())
}

#[derive(Args)]
pub struct DemoArgs {
    /// Registry entries on the sample site (50 per listing page).
    #[arg(long, default_value_t = 3000)]
    entities: u32,
    /// Address of the Gleaner API (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Data directory of the demo.
    #[arg(long, default_value = "./gleaner-demo", value_name = "DIR")]
    data_dir: PathBuf,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

pub fn run(config: Option<&Path>, args: DemoArgs) -> ExitCode {
    let o = crate::config::Overrides {
        listen: Some(args.listen),
        data_dir: Some(args.data_dir.clone()),
        ..crate::config::Overrides::default()
    };
    let mut cfg = match cli::load(config, &o) {
        Ok(c) => c,
        Err(code) => return code,
    };
    cfg.log.level = "warn".into();
    let _tracing = crate::telemetry::init_tracing(&cfg.log);
    cli::finish(cli::runtime().block_on(demo(cfg, args.entities, !args.quiet)))
}
