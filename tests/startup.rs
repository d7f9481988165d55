//! Start-up: first run with no config at all, reuse on the second, config errors,
//! environment variables, `hubctl connect`.

mod support;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// `hubctl serve --port 0` with HOME set to `home` and no XDG or AGENT_HUB variables;
/// returns the stdout lines up to and including the last banner line, then kills it.
fn first_lines(home: &std::path::Path, extra: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--port", "0"])
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("AGENT_HUB_HOST")
        .env_remove("AGENT_HUB_PORT")
        .env_remove("AGENT_HUB_DB")
        .env_remove("AGENT_HUB_CONFIG_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut lines = Vec::new();
    // The banner ends with the connect hint or the last snippet line.
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = l.contains("client config: hubctl connect") || l.contains("do not commit them");
        lines.push(l);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_start_generates_config_and_prints_snippets() {
    let home = tempfile::tempdir().unwrap();
    let lines = first_lines(home.path(), &[]);
    let text = lines.join("\n");
    assert!(
        text.contains("agent-hub listening on http://127.0.0.1:"),
        "{text}"
    );
    let cfg = home.path().join(".config/agent-hub");
    assert_eq!(mode(&cfg), 0o700);
    assert_eq!(mode(&cfg.join("agents.env")), 0o600);
    assert_eq!(mode(&cfg.join("operator.token")), 0o600);
    assert!(cfg.join("config.yaml").exists());
    assert!(home.path().join(".local/share/agent-hub/hub.db").exists());
    let env = std::fs::read_to_string(cfg.join("agents.env")).unwrap();
    let token = env
        .lines()
        .find_map(|l| l.strip_prefix("agent-1="))
        .expect("agent-1 line");
    assert!(token.len() >= 32);
    // Claude Code and Codex snippets with the token.
    assert!(text.contains("\"type\": \"http\""), "{text}");
    assert!(text.contains(&format!("\"Authorization\": \"Bearer {token}\"")));
    assert!(text.contains("[mcp_servers.agent-hub]"));
    assert!(text.contains("bearer_token_env_var = \"AGENT_HUB_TOKEN\""));
    // Second start: nothing regenerated, no token printed.
    let again = first_lines(home.path(), &[]).join("\n");
    assert_eq!(
        std::fs::read_to_string(cfg.join("agents.env")).unwrap(),
        env
    );
    assert!(again.contains("hubctl connect"), "{again}");
    assert!(!again.contains(token));
    // hubctl connect prints them again.
    let out = Command::new(BIN)
        .args(["connect", "agent-1"])
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("AGENT_HUB_CONFIG_DIR")
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains(token) && s.contains("http://127.0.0.1:8765/mcp"),
        "{s}"
    );
    let out = Command::new(BIN)
        .args(["connect", "nobody"])
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("AGENT_HUB_CONFIG_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("agent-1"));
}

#[test]
fn xdg_and_env_vars_are_honoured() {
    let home = tempfile::tempdir().unwrap();
    let xdg = home.path().join("xdgconf");
    let data = home.path().join("xdgdata");
    let lines = first_lines(
        home.path(),
        &[
            ("XDG_CONFIG_HOME", xdg.to_str().unwrap()),
            ("XDG_DATA_HOME", data.to_str().unwrap()),
        ],
    );
    assert!(lines[0].starts_with("agent-hub listening on"));
    assert!(xdg.join("agent-hub/agents.env").exists());
    assert!(data.join("agent-hub/hub.db").exists());
    let cfg = home.path().join("envcfg");
    let db = home.path().join("env.db");
    let lines = first_lines(
        home.path(),
        &[
            ("AGENT_HUB_CONFIG_DIR", cfg.to_str().unwrap()),
            ("AGENT_HUB_DB", db.to_str().unwrap()),
        ],
    );
    assert!(lines[0].starts_with("agent-hub listening on"), "{lines:?}");
    assert!(cfg.join("agents.env").exists() && db.exists());
}

#[test]
fn flag_beats_env_beats_file() {
    let dir = config_dir(&["alice"], "port: 1\n");
    // config.yaml says port 1; AGENT_HUB_PORT=0 wins over it (and --port in spawn_serve
    // would win over both; here we check env over file by leaving the flag out).
    let mut child = Command::new(BIN)
        .args(["serve", "--host", "127.0.0.1"])
        .arg("--config-dir")
        .arg(dir.path())
        .env("AGENT_HUB_PORT", "0")
        .env("AGENT_HUB_DB", dir.path().join("x.db"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("agent-hub listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(
        !line.contains("127.0.0.1:1/"),
        "the env var beat the file: {line}"
    );
    assert!(dir.path().join("x.db").exists());
}

fn start_error(agents_env: &str, config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("agents.env"), agents_env);
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    match spawn_serve(dir.path(), &[]) {
        Ok((mut c, _)) => {
            let _ = c.kill();
            panic!("should not start");
        }
        Err(stderr) => stderr,
    }
}

#[test]
fn bad_config_stops_start_up_with_a_clear_message() {
    let e = start_error("alice=t1\nno-equals-sign\n", "");
    assert!(e.contains("agents.env:2"), "{e}");
    let e = start_error("alice=t1\nalice=t2\n", "");
    assert!(e.contains("agents.env:2") && e.contains("twice"), "{e}");
    let e = start_error("alice=t1\nbob=t1\n", "");
    assert!(e.contains("already used"), "{e}");
    let e = start_error("alice=t1\n", "max_rounds: -1\n");
    assert!(e.contains("max_rounds"), "{e}");
    let e = start_error("alice=t1\n", "durability: maybe\n");
    assert!(e.contains("durability"), "{e}");
}

#[test]
fn unknown_key_and_loose_permissions_are_warnings() {
    let dir = config_dir(&["alice"], "max_roundz: 4\n");
    std::fs::set_permissions(
        dir.path().join("agents.env"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    let mut child = cmd
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .arg("--config-dir")
        .arg(dir.path())
        .arg("--db")
        .arg(dir.path().join("hub.db"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("agent-hub listening on"));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `max_roundz`"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
}
