use clap::Parser;
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
