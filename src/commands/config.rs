//! `gleaner config check [--print]`: loads and validates the configuration the way `serve`
//! would, so a wrong key or value is found before a restart.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::cli::{self, ServeArgs};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration; exit 2 with a message naming the source, key
    /// and expected value if it is wrong.
    Check {
        /// Print the effective configuration (secrets redacted) as TOML.
        #[arg(long)]
        print: bool,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

pub fn run(config: Option<&Path>, c: ConfigCommand) -> ExitCode {
    let ConfigCommand::Check { print, serve } = c;
    let cfg = match cli::load(config, &serve.overrides()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = cfg.admin_token() {
        eprintln!("gleaner: configuration error: {e}");
        return cli::exit_code(e.kind());
    }
    if print {
        match toml::to_string_pretty(&cfg) {
            Ok(s) => print!("{s}"),
            Err(e) => {
                eprintln!("gleaner: cannot print configuration: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        println!("configuration OK");
    }
    ExitCode::SUCCESS
}
