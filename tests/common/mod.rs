//! Test harness for the black-box tests: a real `hubctl serve` child process on port 0
//! with its own config directory (`process`), a small MCP client over real HTTP with
//! ureq (`client`), a sessionless 2026-07-28 client (`modern`), raw HTTP/1.1 for
//! bodies ureq will not send (`raw`), checks shared by several test files (`checks`),
//! the dashboard as a browser sees it (`ui`), a WebDriver client for headless
//! Chromium (`webdriver`, used by path), steps of the task workflow (`workflow`,
//! used by path), a throwaway PostgreSQL server (`postgres`, used by path), and a round-robin TCP
//! proxy in front of cluster nodes (`proxy`, used by path, and by `process` in the
//! PostgreSQL suite's proxy mode).
//! Tests talk to the hub the way users do: nothing here reaches into the crate.
#![allow(dead_code, unused_imports)] // each test file uses a different part of the harness

mod checks;
mod client;
mod modern;
pub(crate) mod postgres;
mod process;
pub(crate) mod proxy;
mod raw;
mod ui;
pub(crate) mod webdriver;
pub(crate) mod workflow;

pub(crate) use checks::*;
pub(crate) use client::*;
pub(crate) use modern::*;
pub(crate) use process::*;
pub(crate) use raw::*;
pub(crate) use ui::*;

use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_hubctl");
/// What a well-behaved Streamable HTTP client sends on POST.
pub(crate) const ACCEPT: &str = "application/json, text/event-stream";
/// The protocol revisions the hub supports, newest first.
pub(crate) const VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
pub(crate) const LATEST: &str = "2025-11-25";

/// The token of a test agent in the agents.env written by [`config_dir`].
pub(crate) fn token(agent: &str) -> String {
    format!("tok-{agent}-0123456789abcdef")
}

/// `Bearer <token of agent>`.
pub(crate) fn bearer(agent: &str) -> String {
    format!("Bearer {}", token(agent))
}

/// Write agents.env (tokens from [`token`]) and config.yaml into a fresh directory.
pub(crate) fn config_dir(agents: &[&str], config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write_agents(dir.path(), agents);
    std::fs::write(dir.path().join("config.yaml"), config).expect("write config");
    dir
}

/// agents.env with one `id=token` line per agent and a comment line.
pub(crate) fn write_agents(dir: &Path, agents: &[&str]) {
    let mut env = String::from("# test agents\n");
    for a in agents {
        env.push_str(&format!("{a}={}\n", token(a)));
    }
    write_private(&dir.join("agents.env"), &env);
}

pub(crate) fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// File permission bits.
pub(crate) fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Poll `f` until it returns `Some`, or give up after `timeout`.
pub(crate) fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
