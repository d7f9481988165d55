//! `hubctl`: see [`agent_hub::cli`].

use clap::Parser;

fn main() {
    let cli = agent_hub::cli::Cli::parse();
    if !cli.is_serve() {
        // Printing commands end quietly when their reader goes away (`hubctl ...
        // | head`), as shell tools do, instead of panicking on a broken pipe. The
        // server keeps Rust's default (SIGPIPE ignored): a client that hangs up
        // must be an error on its socket, not the server's death.
        // SAFETY: setting a signal's disposition to its default, before any thread
        // of ours is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
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
