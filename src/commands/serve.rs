//! `gleaner serve`: the server, until SIGTERM or SIGINT (start-up and shutdown order are
//! `app`'s).

use std::path::Path;
use std::process::ExitCode;

use super::cli::{self, ServeArgs};

pub fn run(config: Option<&Path>, args: ServeArgs) -> ExitCode {
    let cfg = match cli::load(config, &args.overrides()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _tracing = crate::telemetry::init_tracing(&cfg.log);
    match cli::runtime().block_on(crate::app::serve(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "gleaner stopped with an error");
            cli::fail(&e, e.kind())
        }
    }
}
