use clap::Parser;

/// jemalloc returns memory that bursts (storms, checkpoints) used: with glibc's
/// per-thread arenas, RSS stayed at its peak long after.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = salve::cli::Cli::parse();
    match salve::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("salve: {err:#}");
            ExitCode::from(1)
        }
    }
}
