//! Runs the sandbox by hand: `cargo run -p bol-sandbox --example sandbox -- --fbr 120 --time-scale 60`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: bol_sandbox::SandboxArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bol_sandbox::run(Cli::parse().args).await
}
