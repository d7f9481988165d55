//! `hubctl`: see [`agent_hub::cli`].

use clap::Parser;

fn main() {
    let cli = agent_hub::cli::Cli::parse();
    if let Err(e) = agent_hub::cli::run(cli) {
        eprintln!("hubctl: {e}");
        std::process::exit(1);
    }
}
