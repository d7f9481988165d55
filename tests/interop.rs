//! Interop with clients we did not write: the official MCP Python SDK from PyPI, 2.x
//! (handshake, pinned to 2026-07-28, and auto mode, which must end up on 2026-07-28)
//! and the newest 1.x (handshake only, which must end up on the handshake). Each is
//! installed by this test into its own venv under `target/` on first use. Fails (does
//! not skip) when Python or PyPI is unavailable, since then nothing was checked.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The SDK 2.x release (speaks 2026-07-28) and the newest 1.x (handshake only).
const SDK_2: &str = "2.3.0";
const SDK_1: &str = "1.30.0";

fn venv(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join(name)
}

fn python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

fn sdk_installed(venv: &Path, version: &str) -> bool {
    Command::new(python(venv))
        .args([
            "-c",
            &format!("import mcp, importlib.metadata as m; assert m.version('mcp') == '{version}'"),
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A venv named `name` holding `mcp==version`, installed on first use.
fn ensure_sdk(name: &str, version: &str) -> PathBuf {
    let venv = venv(name);
    if sdk_installed(&venv, version) {
        return venv;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status();
    assert!(
        matches!(made, Ok(s) if s.success()),
        "python3 -m venv failed: {made:?}"
    );
    let out = Command::new(python(&venv))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            &format!("mcp=={version}"),
        ])
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip install mcp=={version} into {} failed (is the package registry reachable?); \
         this test needs the official MCP Python SDK and fails rather than skip:\n{}",
        venv.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        sdk_installed(&venv, version),
        "mcp {version} not importable after install"
    );
    venv
}

/// Run `tests/interop/<script>` with the venv's Python against a fresh hub of alice
/// and bob; it must print INTEROP OK. Returns the hub for further checks.
fn run_script(venv: &Path, script: &str) -> Hub {
    let hub = Hub::start(&["alice", "bob"], "");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let out = Command::new(python(venv))
        .arg(&script)
        .arg(&hub.url)
        .arg(token("alice"))
        .arg(token("bob"))
        .output()
        .expect("run the SDK client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("INTEROP OK"),
        "SDK client failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    hub
}

#[test]
fn official_python_sdk_2_handshake_modern_and_auto() {
    let venv = ensure_sdk("interop-venv", SDK_2);
    let hub = run_script(&venv, "mcp_sdk_client.py");
    // What the SDK did is visible to the operator (the last run was in auto mode).
    let alice = hub.operator_agent("alice");
    assert_eq!(alice["name"], "Alice (auto)");
}

#[test]
fn official_python_sdk_1_stays_on_the_handshake() {
    let venv = ensure_sdk("interop-venv-1x", SDK_1);
    let hub = run_script(&venv, "mcp_sdk1_client.py");
    assert_eq!(hub.operator_agent("alice")["name"], "Alice (SDK 1.x)");
}
