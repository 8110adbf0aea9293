//! The `gleaner` binary: parses the command line and hands it to `gleaner::commands`, which
//! runs the command and returns its exit code (see `gleaner::error::ErrorKind::exit_code`).

use std::process::ExitCode;

use clap::Parser;

// Allocation-heavy paths (pages of records, JSON bodies, parsed HTML) spent a tenth of their
// CPU in glibc's malloc bookkeeping under load; see Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    gleaner::commands::run(gleaner::commands::Cli::parse())
}
