//! Interop with a client we did not write: the official MCP Python SDK (`mcp` 2.x from
//! PyPI), installed by this test into a venv under `target/` on first use. Fails (does
//! not skip) when Python or PyPI is unavailable, since then nothing was checked.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const MCP_VERSION: &str = "2.3.0";

fn venv() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("interop-venv")
}

fn python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

fn sdk_installed(venv: &Path) -> bool {
    Command::new(python(venv))
        .args([
            "-c",
            &format!(
                "import mcp, importlib.metadata as m; assert m.version('mcp') == '{MCP_VERSION}'"
            ),
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn ensure_sdk() -> PathBuf {
    let venv = venv();
    if sdk_installed(&venv) {
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
            &format!("mcp=={MCP_VERSION}"),
        ])
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip install mcp=={MCP_VERSION} into {} failed (is the package registry reachable?); \
         this test needs the official MCP Python SDK and fails rather than skip:\n{}",
        venv.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        sdk_installed(&venv),
        "mcp {MCP_VERSION} not importable after install"
    );
    venv
}

#[test]
fn official_python_sdk_lists_and_calls_tools() {
    let venv = ensure_sdk();
    let hub = Hub::start(&["alice", "bob"], "");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/mcp_sdk_client.py");
    let out = Command::new(python(&venv))
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
    // What the SDK did is visible to the operator.
    let alice = hub.operator_agent("alice");
    assert_eq!(alice["name"], "Alice (Python SDK)");
}
