//! `hubctl`: see [`agent_hub::cli`].

use clap::Parser;

fn main() {
    let cli = agent_hub::cli::Cli::parse();
    if let Err(e) = agent_hub::cli::run(cli) {
        eprintln!("hubctl: {e}");
        std::process::exit(1);
    }
}
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Freed memory goes back to the OS within a second, also when the hub is idle
/// (jemalloc's background thread).
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
