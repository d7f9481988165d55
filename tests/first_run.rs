//! First start with no config at all (generated agents.env, operator.token and
//! config.yaml, client snippets on stdout), reuse on the second start, default
//! locations, and `hubctl connect`.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn no_ws(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The agent lines (`id=token`) of an agents.env text.
fn agent_lines(env: &str) -> Vec<(String, String)> {
    env.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("line {l:?}"));
            (k.trim().to_string(), v.trim().trim_matches('"').to_string())
        })
        .collect()
}

/// Start `serve --print-tokens` for a config dir that does not exist yet; returns the
/// hub once the whole banner (both snippets) is printed.
fn first_start(root: &Path, cfg: &Path) -> (Running, String) {
    first_start_with(root, cfg, &["--print-tokens"], "bearer_token_env_var")
}

/// Start `serve` with `extra` arguments for a config dir that does not exist yet;
/// returns the hub once stdout shows `until`.
fn first_start_with(root: &Path, cfg: &Path, extra: &[&str], until: &str) -> (Running, String) {
    let mut args = os_args(&[
        &"serve",
        &"--host",
        &"127.0.0.1",
        &"--port",
        &"0",
        &"--config-dir",
        &cfg,
        &"--db",
        &root.join("hub.db"),
    ]);
    args.extend(extra.iter().map(Into::into));
    let r = spawn(root, &args, &[]).unwrap_or_else(|e| panic!("first start failed: {e:?}"));
    let banner = r.out.wait_stdout(until, Duration::from_secs(10));
    (r, banner)
}

/// stdout here is a pipe, as under a service manager: no token is printed, only where
/// it is and how to get the client configuration.
#[test]
fn first_start_prints_no_token_when_stdout_is_not_a_terminal() {
    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("hub-config");
    let (r, banner) = first_start_with(root.path(), &cfg, &[], "hubctl connect agent-1");
    let env = std::fs::read_to_string(cfg.join("agents.env")).unwrap();
    let (_, tok) = &agent_lines(&env)[0];
    assert!(!banner.contains(tok.as_str()), "{banner}");
    assert!(!banner.contains("Bearer"), "{banner}");
    assert!(
        banner.contains(&cfg.join("agents.env").display().to_string()),
        "{banner}"
    );
    assert!(banner.contains("--print-tokens"), "{banner}");
    r.stop();
}

#[test]
fn first_start_creates_config_and_prints_snippets() {
    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("hub-config");
    let (r, banner) = first_start(root.path(), &cfg);
    let url = r.url.clone();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
        "{url}"
    );
    assert!(
        banner
            .lines()
            .any(|l| l == format!("agent-hub listening on {url}")),
        "{banner}"
    );
    // Files and permissions.
    assert_eq!(mode(&cfg), 0o700, "config dir");
    assert_eq!(mode(&cfg.join("agents.env")), 0o600, "agents.env");
    assert_eq!(mode(&cfg.join("operator.token")), 0o600, "operator.token");
    let config = std::fs::read_to_string(cfg.join("config.yaml")).expect("config.yaml");
    assert!(config.contains('#'), "a commented config.yaml: {config}");
    let env = std::fs::read_to_string(cfg.join("agents.env")).unwrap();
    let agents = agent_lines(&env);
    assert_eq!(agents.len(), 1, "{env}");
    let (id, tok) = &agents[0];
    assert_eq!(id, "agent-1");
    assert!(
        tok.len() >= 20 && !tok.contains(char::is_whitespace),
        "{tok:?}"
    );
    let op = std::fs::read_to_string(cfg.join("operator.token")).unwrap();
    assert!(op.ends_with('\n') && op.trim().len() >= 20, "{op:?}");
    assert_ne!(op.trim(), tok);
    // Snippets: Claude Code (.mcp.json) and Codex (config.toml).
    let flat = no_ws(&banner);
    assert!(flat.contains("\"type\":\"http\""), "{banner}");
    assert!(flat.contains(&format!("\"url\":\"{url}\"")), "{banner}");
    assert!(
        flat.contains(&format!("\"Authorization\":\"Bearer{tok}\"")),
        "headers.Authorization with the token: {banner}"
    );
    assert!(flat.contains("[mcp_servers.agent-hub]"), "{banner}");
    assert!(flat.contains(&format!("url=\"{url}\"")), "{banner}");
    assert!(flat.contains("bearer_token_env_var="), "{banner}");
    // The generated token is an agent's.
    let c = Client::connect(&url, tok, LATEST);
    assert_eq!(c.call("hub_status", json!({}))["ok"], true);
    assert_eq!(c.call("agent_heartbeat", json!({}))["agent_id"], "agent-1");
    r.stop();
}

#[test]
fn second_start_reuses_the_files_unchanged() {
    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("hub-config");
    let (r, _) = first_start(root.path(), &cfg);
    r.stop();
    let read = |f: &str| std::fs::read_to_string(cfg.join(f)).unwrap();
    let before = (
        read("agents.env"),
        read("operator.token"),
        read("config.yaml"),
    );
    let tok = agent_lines(&before.0)[0].1.clone();
    let again = spawn(
        root.path(),
        &os_args(&[
            &"serve",
            &"--port",
            &"0",
            &"--config-dir",
            &cfg,
            &"--db",
            &root.path().join("hub.db"),
        ]),
        &[],
    )
    .unwrap_or_else(|e| panic!("second start failed: {e:?}"));
    let after = (
        read("agents.env"),
        read("operator.token"),
        read("config.yaml"),
    );
    assert_eq!(before, after, "files rewritten on the second start");
    let banner = again
        .out
        .wait_stdout("hubctl connect", Duration::from_secs(5));
    assert!(
        !banner.contains(&tok),
        "tokens are printed on the first start only: {banner}"
    );
    assert_eq!(mode(&cfg.join("agents.env")), 0o600);
    let c = Client::connect(&again.url, &tok, LATEST);
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
    again.stop();
}

#[test]
fn operator_token_is_created_when_missing() {
    let dir = config_dir(&["alice"], "");
    assert!(!dir.path().join("operator.token").exists());
    let hub = Hub::start_in(dir);
    let p = hub.path().join("operator.token");
    assert_eq!(mode(&p), 0o600);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.ends_with('\n') && !text.trim().is_empty(), "{text:?}");
    // agents.env was not touched.
    assert_eq!(
        agent_lines(&std::fs::read_to_string(hub.path().join("agents.env")).unwrap()),
        vec![("alice".to_string(), token("alice"))]
    );
    let v = hub.operator_get("/operator/agents");
    assert_eq!(v["ok"], true);
}

#[test]
fn connect_prints_the_snippets_of_one_agent() {
    let hub = Hub::start(&["alice", "bob"], "");
    let out = hubctl_cmd(hub.dir.path())
        .args(["connect", "bob", "--config-dir"])
        .arg(hub.dir.path())
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.contains(&token("bob")), "bob's token: {s}");
    assert!(!s.contains(&token("alice")), "not alice's: {s}");
    assert!(s.contains("http://127.0.0.1:") && s.contains("/mcp"), "{s}");
    let flat = no_ws(&s);
    assert!(flat.contains("\"type\":\"http\""), "{s}");
    assert!(flat.contains("[mcp_servers.agent-hub]"), "{s}");
    assert!(flat.contains("bearer_token_env_var="), "{s}");
    let out = hubctl_cmd(hub.dir.path())
        .args(["connect", "nobody", "--config-dir"])
        .arg(hub.dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "unknown agent must fail");
    assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty());
}

/// Without --config-dir and --db, the XDG (else HOME) locations are used.
#[test]
fn default_paths_follow_xdg_and_home() {
    let home = tempfile::tempdir().unwrap();
    let r = spawn(home.path(), &os_args(&[&"serve", &"--port", &"0"]), &[])
        .unwrap_or_else(|e| panic!("{e:?}"));
    let cfg = home.path().join(".config/agent-hub");
    assert_eq!(mode(&cfg), 0o700);
    assert!(cfg.join("agents.env").exists() && cfg.join("operator.token").exists());
    assert!(home.path().join(".local/share/agent-hub/hub.db").exists());
    r.stop();
    let xdg = home.path().join("xdgconf");
    let data = home.path().join("xdgdata");
    let r = spawn(
        home.path(),
        &os_args(&[&"serve", &"--port", &"0"]),
        &[
            ("XDG_CONFIG_HOME", xdg.to_str().unwrap()),
            ("XDG_DATA_HOME", data.to_str().unwrap()),
        ],
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(xdg.join("agent-hub/agents.env").exists());
    assert!(data.join("agent-hub/hub.db").exists());
    r.stop();
}
