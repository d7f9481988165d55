//! `hubctl install-service --dry-run`: the rendered units name the real binary and
//! the hub's directories, nothing is written, and systemd accepts the system unit.

mod common;

use common::hubctl_cmd;
use std::path::Path;

fn dry_run(home: &Path, extra: &[&str]) -> String {
    let out = hubctl_cmd(home)
        .args(["install-service", "--dry-run"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn nothing_written(home: &Path) {
    let left: Vec<_> = std::fs::read_dir(home).unwrap().collect();
    assert!(left.is_empty(), "dry run wrote under HOME: {left:?}");
}

/// The unit part of the output: from `[Unit]` to the `WantedBy=` line.
fn unit_text(out: &str) -> String {
    let start = out.find("[Unit]").expect("a unit");
    let rest = &out[start..];
    let end = rest.find("WantedBy=").expect("an [Install] section");
    let line_end = rest[end..].find('\n').map_or(rest.len(), |i| end + i + 1);
    rest[..line_end].to_string()
}

#[test]
fn user_dry_run_names_binary_and_directories() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path().canonicalize().unwrap();
    let out = dry_run(&h, &[]);
    let bin = Path::new(env!("CARGO_BIN_EXE_hubctl"))
        .canonicalize()
        .unwrap();
    assert!(
        out.contains(&format!("ExecStart={} serve", bin.display())),
        "{out}"
    );
    let cfg = h.join(".config/agent-hub");
    let data = h.join(".local/share/agent-hub");
    assert!(
        out.contains(&format!(
            "ReadWritePaths={} {}",
            cfg.display(),
            data.display()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("AGENT_HUB_DB={}", data.join("hub.db").display())));
    assert!(
        out.contains("systemctl --user daemon-reload && systemctl --user enable --now agent-hub")
    );
    assert!(out.contains("loginctl enable-linger"), "{out}");
    nothing_written(&h);

    // --config-dir and --db are what the unit serves.
    let out = dry_run(
        &h,
        &["--config-dir", "/srv/hub/cfg", "--db", "/srv/hub/data/x.db"],
    );
    assert!(
        out.contains("ReadWritePaths=/srv/hub/cfg /srv/hub/data\n"),
        "{out}"
    );
    nothing_written(&h);
}

#[test]
fn system_dry_run_verifies() {
    let home = tempfile::tempdir().unwrap();
    let out = dry_run(home.path(), &["--system", "--service-user", "root"]);
    assert!(
        out.contains("/etc/systemd/system/agent-hub.service"),
        "{out}"
    );
    assert!(out.contains("User=root\n"), "{out}");
    assert!(out.contains("ReadWritePaths=/etc/agent-hub /var/lib/agent-hub /run/agent-hub\n"));
    assert!(out.contains("systemctl daemon-reload && systemctl enable --now agent-hub"));
    nothing_written(home.path());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent-hub.service");
    std::fs::write(&file, unit_text(&out)).unwrap();
    match std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
    {
        Err(e) => println!("skipped systemd-analyze verify: {e}"),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            if err.contains("Failed to initialize manager") || err.contains("bus") {
                println!("skipped systemd-analyze verify (environment): {err}");
            } else {
                assert!(o.status.success() && err.trim().is_empty(), "{err}");
            }
        }
    }
}
