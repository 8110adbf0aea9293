//! `gleaner sample-site serve / export`: the bundled sample site (`crate::demo`) over HTTP
//! or as static files, for demos and benchmarks.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::cli;

#[derive(Subcommand)]
pub enum SampleSiteCommand {
    /// Serve the site over HTTP until Ctrl-C.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
        /// Registry entries (50 per listing page).
        #[arg(long, default_value_t = 5000)]
        entities: u32,
    },
    /// Write the site as static files (for nginx), with links in /registry/detail/N.html form.
    Export {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = 20000)]
        entities: u32,
        /// Base URL written into the sitemap and feed.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        base: String,
    },
}

pub fn run(c: SampleSiteCommand) -> ExitCode {
    match c {
        SampleSiteCommand::Export {
            out,
            entities,
            base,
        } => export(&out, entities, &base),
        SampleSiteCommand::Serve { listen, entities } => serve(listen, entities),
    }
}

fn export(out: &std::path::Path, entities: u32, base: &str) -> ExitCode {
    let site = crate::demo::Site::new(entities);
    match crate::demo::export_static(&site, out, base) {
        Ok(pages) => {
            println!("wrote {pages} HTML pages under {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "gleaner: cannot write the sample site under {}: {e}",
                out.display()
            );
            ExitCode::from(3)
        }
    }
}

fn serve(listen: std::net::SocketAddr, entities: u32) -> ExitCode {
    cli::runtime().block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("gleaner: cannot listen on {listen}: {e}");
                return ExitCode::from(3);
            }
        };
        println!("sample site on http://{listen}/ ({entities} entries); Ctrl-C stops it");
        let app = crate::demo::router(entities);
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gleaner: sample site failed: {e}");
                ExitCode::from(1)
            }
        }
    })
}
