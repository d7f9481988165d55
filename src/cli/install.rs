//! `hubctl install-service`: write a systemd unit for this binary and enable it.
//! [`render`] is pure (inputs → unit text, tested below); [`run`] resolves the
//! paths, creates directories, writes the file and calls `systemctl`.

use super::CliError;
use crate::config::{self, paths, settings};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the unit is installed and which manager runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `~/.config/systemd/user`, run by the user's manager (`systemctl --user`).
    User,
    /// `/etc/systemd/system`, run by PID 1 as `User=`.
    System,
}

/// Fixed directories of the system unit (systemd creates them, see [`render`]).
pub(crate) const SYSTEM_CONFIG_DIR: &str = "/etc/agent-hub";
/// The system unit's state directory (`StateDirectory=agent-hub`).
pub(crate) const SYSTEM_DATA_DIR: &str = "/var/lib/agent-hub";
/// The system unit's runtime directory (`RuntimeDirectory=agent-hub`).
pub(crate) const SYSTEM_RUNTIME_DIR: &str = "/run/agent-hub";
/// The unit's name.
pub(crate) const UNIT_NAME: &str = "agent-hub.service";

/// Everything the unit text depends on.
#[derive(Debug, Clone)]
pub(crate) struct UnitSpec {
    /// User or system unit.
    pub mode: Mode,
    /// The hubctl binary (absolute, canonical).
    pub exe: PathBuf,
    /// User unit: the config directory (system units use [`SYSTEM_CONFIG_DIR`]).
    pub config_dir: PathBuf,
    /// User unit: the database file (system units use `/var/lib/agent-hub/hub.db`).
    pub db: PathBuf,
    /// System unit: `User=`.
    pub service_user: String,
}

impl UnitSpec {
    /// The directory holding the database.
    pub(crate) fn data_dir(&self) -> PathBuf {
        match self.mode {
            Mode::System => PathBuf::from(SYSTEM_DATA_DIR),
            Mode::User => self
                .db
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/")),
        }
    }

    /// Directories the service writes: the only ones `ReadWritePaths=` names.
    pub(crate) fn writable_dirs(&self) -> Vec<PathBuf> {
        match self.mode {
            Mode::User => vec![self.config_dir.clone(), self.data_dir()],
            Mode::System => vec![
                PathBuf::from(SYSTEM_CONFIG_DIR),
                PathBuf::from(SYSTEM_DATA_DIR),
                PathBuf::from(SYSTEM_RUNTIME_DIR),
            ],
        }
    }
}

/// A path as one systemd word: `%` doubled (specifiers), quoted if it has
/// whitespace; characters systemd's quoting would change are refused.
fn word(p: &Path) -> Result<String, String> {
    let s = p
        .to_str()
        .ok_or_else(|| format!("{}: not UTF-8, cannot go in a unit file", p.display()))?;
    if !p.is_absolute() {
        return Err(format!("{s}: must be an absolute path"));
    }
    if s.chars()
        .any(|c| matches!(c, '"' | '\'' | '\\' | '$') || c.is_control())
    {
        return Err(format!(
            "{s}: quotes, backslashes, $ or control characters cannot go in a unit file"
        ));
    }
    let s = s.replace('%', "%%");
    Ok(if s.contains(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s
    })
}

/// `Environment=VAR=value`; systemd wants a quoted value quoted as a whole.
fn env_line(var: &str, value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(v) => format!("Environment=\"{var}={v}\"\n"),
        None => format!("Environment={var}={value}\n"),
    }
}

fn words(dirs: &[PathBuf]) -> Result<String, String> {
    Ok(dirs
        .iter()
        .map(|d| word(d))
        .collect::<Result<Vec<_>, _>>()?
        .join(" "))
}

/// The unit file's text.
pub(crate) fn render(spec: &UnitSpec) -> Result<String, String> {
    let exe = word(&spec.exe)?;
    let rw = words(&spec.writable_dirs())?;
    let mut u = String::new();
    u.push_str("# Written by `hubctl install-service`");
    u.push_str(match spec.mode {
        Mode::User => " (user unit).\n",
        Mode::System => " --system.\n",
    });
    u.push_str(
        "\n[Unit]\nDescription=agent-hub: MCP coordination server for AI agents\n\
         After=network.target\n\n[Service]\nType=simple\n",
    );
    match spec.mode {
        Mode::User => {
            let cfg = word(&spec.config_dir)?;
            let db = word(&spec.db)?;
            u.push_str(&format!("ExecStart={exe} serve\n"));
            // Pinned so that the unit serves what it was rendered for, whatever
            // XDG_* the user manager has.
            u.push_str(&env_line("AGENT_HUB_CONFIG_DIR", &cfg));
            u.push_str(&env_line("AGENT_HUB_DB", &db));
        }
        Mode::System => {
            if !valid_user_name(&spec.service_user) {
                return Err(format!("{:?}: not a valid user name", spec.service_user));
            }
            u.push_str(&format!("ExecStart={exe} serve\n"));
            u.push_str(&format!("User={}\n", spec.service_user));
            u.push_str(&format!(
                "Environment=AGENT_HUB_CONFIG_DIR={SYSTEM_CONFIG_DIR}\n\
                 Environment=AGENT_HUB_DB={SYSTEM_DATA_DIR}/hub.db\n"
            ));
            // systemd creates these before the sandbox is set up: State and Runtime
            // owned by User=, Configuration owned by root (systemd.exec(5)), so
            // the pre-start below hands it to User= (the first start writes
            // agents.env and operator.token there).
            u.push_str(
                "StateDirectory=agent-hub\nStateDirectoryMode=0700\n\
                 ConfigurationDirectory=agent-hub\nConfigurationDirectoryMode=0700\n\
                 RuntimeDirectory=agent-hub\nRuntimeDirectoryMode=0700\n",
            );
            u.push_str(&format!(
                "ExecStartPre=+/bin/chown {} {SYSTEM_CONFIG_DIR}\n",
                spec.service_user
            ));
        }
    }
    u.push_str(
        "Environment=RUST_LOG=info\n\
         # SIGTERM stops accepting requests and flushes every queued write before exiting.\n\
         KillSignal=SIGTERM\nTimeoutStopSec=15\n\
         # Every connection, GET stream and database connection is a file descriptor.\n\
         LimitNOFILE=65536\nRestart=on-failure\nRestartSec=2\n",
    );
    u.push_str("# Hardening: the hub writes only its config and data directories.\n");
    if spec.mode == Mode::User {
        // hubctl created these before writing the unit; the pre-start recreates
        // them if removed since (a missing ReadWritePaths= directory fails the
        // unit with 226/NAMESPACE).
        u.push_str(
            "# A user manager is unprivileged: per systemd.exec(5) (systemd 252),\n\
             # ProtectSystem=, PrivateTmp=, ReadWritePaths= and ProtectHome= need a\n\
             # mount namespace, which it can only set up inside a user namespace, hence\n\
             # PrivateUsers=true (needs unprivileged user namespaces in the kernel).\n\
             # ProtectHome= is left out: the hub's directories are in $HOME.\n\
             # hubctl created the directories; the pre-start recreates removed ones.\n",
        );
        u.push_str(&format!("ExecStartPre=+/bin/mkdir -p -m 0700 {rw}\n"));
        u.push_str("PrivateUsers=true\n");
    } else {
        // read-only, not yes: the binary may live in a home (~/.cargo/bin).
        u.push_str("ProtectHome=read-only\n");
    }
    u.push_str("NoNewPrivileges=true\nProtectSystem=strict\nPrivateTmp=true\n");
    u.push_str(&format!("ReadWritePaths={rw}\n"));
    u.push_str(match spec.mode {
        Mode::User => "\n[Install]\nWantedBy=default.target\n",
        Mode::System => "\n[Install]\nWantedBy=multi-user.target\n",
    });
    Ok(u)
}

/// A POSIX-ish user name (what `useradd` accepts), safe in a unit and a command.
fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `systemctl` commands that install and start the unit.
pub(crate) fn commands(mode: Mode) -> Vec<Vec<&'static str>> {
    let mut base = vec!["systemctl"];
    if mode == Mode::User {
        base.push("--user");
    }
    let cmd = |rest: &[&'static str]| base.iter().copied().chain(rest.iter().copied()).collect();
    vec![
        cmd(&["daemon-reload"]),
        cmd(&["enable", "--now", "agent-hub"]),
    ]
}

/// What to run to watch the service, and (user units) keep it running logged out.
fn afterwards(mode: Mode) -> String {
    match mode {
        Mode::User => "Check it:  systemctl --user status agent-hub\n\
                       Logs:      journalctl --user -u agent-hub -f\n\
                       Keep it running without a login session (and start it at boot):\n\
                       \x20          loginctl enable-linger $USER\n"
            .to_string(),
        Mode::System => "Check it:  systemctl status agent-hub\n\
                         Logs:      journalctl -u agent-hub -f\n\
                         Operator commands: hubctl --config-dir /etc/agent-hub hub (as root or the service user)\n"
            .to_string(),
    }
}

/// `hubctl install-service` options.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// A user unit in ~/.config/systemd/user (the default)
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// A system unit in /etc/systemd/system, run as --service-user, with its
    /// config in /etc/agent-hub and its database in /var/lib/agent-hub
    #[arg(long)]
    pub system: bool,
    /// Print the unit and the commands; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Replace an existing, different unit file
    #[arg(long)]
    pub force: bool,
    /// System unit: the user it runs as [default: the invoking user ($SUDO_USER, $USER)]
    #[arg(long, value_name = "NAME", requires = "system")]
    pub service_user: Option<String>,
    /// User unit: the database file [default: config.yaml `db`, else
    /// $XDG_DATA_HOME/agent-hub/hub.db or ~/.local/share/agent-hub/hub.db]
    #[arg(long, env = "AGENT_HUB_DB", value_name = "FILE")]
    pub db: Option<PathBuf>,
}

fn fail(msg: impl Into<String>) -> CliError {
    CliError::Api(msg.into())
}

fn absolute(p: &Path) -> Result<PathBuf, CliError> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()?.join(p))
}

/// The database a user unit serves: `--db`, else config.yaml's, else the default.
fn user_db(config_dir: &Path, db: Option<PathBuf>) -> Result<PathBuf, CliError> {
    let file = config_dir.join(paths::SETTINGS_FILE);
    let settings = match fs::read_to_string(&file) {
        Ok(text) => settings::parse(&file.display().to_string(), &text)?.0,
        // No config.yaml yet: the first start writes the template (no `db`).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => config::Settings::default(),
        Err(e) => return Err(config::ConfigError::io(&file, e).into()),
    };
    let db = config::resolve(None, None, db, (None, None, None), &settings)?.db;
    absolute(&db)
}

fn invoking_user() -> Option<String> {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
}

/// `systemctl` runs and talks to a manager (in containers it often does not).
fn systemctl_works(mode: Mode) -> Result<(), String> {
    let mut c = Command::new("systemctl");
    if mode == Mode::User {
        c.arg("--user");
    }
    // `is-system-running` exits non-zero for "degraded" too; only "offline" or
    // no answer means there is no manager to talk to.
    match c.arg("is-system-running").output() {
        Err(e) => Err(format!("cannot run systemctl: {e}")),
        Ok(o) => {
            let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
            if state.is_empty() || state == "offline" {
                Err(format!(
                    "no running service manager (systemctl says: {})",
                    if err.is_empty() { &state } else { &err }
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// `systemd-analyze verify` of a unit file: `Ok(None)` when fine, `Ok(Some(note))`
/// when fine with a remark (warnings, or checked another way) or not checkable,
/// `Err` with its complaints.
pub(crate) fn verify(file: &Path, mode: Mode) -> Result<Option<String>, String> {
    match analyze(file, mode == Mode::User) {
        Checked::Error(text) => Err(text),
        Checked::Ok(None) => Ok(None),
        Checked::Ok(Some(w)) => Ok(Some(format!("systemd-analyze verify warnings: {w}"))),
        Checked::Unavailable(why) if mode == Mode::User => {
            // No user manager (containers, ssh without a session): the system
            // manager's check still catches syntax errors and missing binaries.
            match analyze(file, false) {
                Checked::Ok(_) => Ok(Some(format!(
                    "systemd-analyze --user verify could not run ({why}); \
                     checked as a system unit instead: ok"
                ))),
                Checked::Error(text) => Err(text),
                Checked::Unavailable(why2) => Ok(Some(format!(
                    "not verified: systemd-analyze could not run ({why}; {why2})"
                ))),
            }
        }
        Checked::Unavailable(why) => Ok(Some(format!(
            "not verified: systemd-analyze could not run ({why})"
        ))),
    }
}

/// One `systemd-analyze verify` run.
enum Checked {
    /// Accepted, with its warnings if any.
    Ok(Option<String>),
    /// Rejected: its complaints.
    Error(String),
    /// Missing, or failed for reasons that say nothing about the unit.
    Unavailable(String),
}

fn analyze(file: &Path, user: bool) -> Checked {
    let mut c = Command::new("systemd-analyze");
    if user {
        c.arg("--user");
    }
    let out = match c.arg("verify").arg(file).output() {
        Ok(o) => o,
        Err(e) => return Checked::Unavailable(format!("systemd-analyze: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    // Environmental failures (no user manager, no bus) say nothing about the unit.
    let env = [
        "Failed to initialize manager",
        "Failed to lookup RuntimeDirectory",
        "bus",
        "XDG_RUNTIME_DIR",
        "Failed to setup working directory",
    ];
    if !out.status.success() && env.iter().any(|m| text.contains(m)) {
        return Checked::Unavailable(text.replace('\n', "; "));
    }
    match (out.status.success(), text.is_empty()) {
        (true, true) => Checked::Ok(None),
        (true, false) => Checked::Ok(Some(text)),
        (false, _) => Checked::Error(text),
    }
}

/// [`verify`] of `unit` written to a private temporary directory (the tool wants
/// the file named like the unit).
fn verify_text(unit: &str, mode: Mode) -> std::io::Result<Result<Option<String>, String>> {
    let dir = std::env::temp_dir().join(format!("agent-hub-verify-{}", std::process::id()));
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let file = dir.join(UNIT_NAME);
    let result = fs::write(&file, unit).map(|()| verify(&file, mode));
    let _ = fs::remove_dir_all(&dir);
    result
}

/// Run `hubctl install-service`.
pub(crate) fn run(
    config_dir: &Path,
    explicit_config: bool,
    args: InstallArgs,
) -> Result<(), CliError> {
    let mode = if args.system {
        Mode::System
    } else {
        Mode::User
    };
    let exe = std::env::current_exe()?.canonicalize()?;
    let spec = match mode {
        Mode::User => {
            let config_dir = absolute(config_dir)?;
            UnitSpec {
                mode,
                db: user_db(&config_dir, args.db)?,
                config_dir,
                exe,
                service_user: String::new(),
            }
        }
        Mode::System => {
            if explicit_config || args.db.is_some() {
                eprintln!(
                    "note: a system unit uses {SYSTEM_CONFIG_DIR} and {SYSTEM_DATA_DIR}/hub.db; \
                     --config-dir and --db are ignored"
                );
            }
            let service_user = match args.service_user.or_else(invoking_user) {
                Some(u) => u,
                None => return Err(fail("cannot tell who you are: pass --service-user NAME")),
            };
            UnitSpec {
                mode,
                exe,
                config_dir: PathBuf::from(SYSTEM_CONFIG_DIR),
                db: PathBuf::from(format!("{SYSTEM_DATA_DIR}/hub.db")),
                service_user,
            }
        }
    };
    if mode == Mode::System && spec.service_user != "root" && spec.exe.starts_with("/root") {
        eprintln!(
            "warning: {} is under /root, which {} cannot usually read (203/EXEC); \
             install hubctl somewhere like /usr/local/bin first",
            spec.exe.display(),
            spec.service_user
        );
    }
    let unit = render(&spec).map_err(fail)?;
    let target = match mode {
        Mode::User => paths::home_dir()?
            .join(".config/systemd/user")
            .join(UNIT_NAME),
        Mode::System => PathBuf::from("/etc/systemd/system").join(UNIT_NAME),
    };
    let cmds: Vec<String> = commands(mode).iter().map(|c| c.join(" ")).collect();
    if args.dry_run {
        println!("# {} (dry run: nothing written)\n{unit}", target.display());
        if mode == Mode::User {
            println!(
                "Would create (mode 0700): {}",
                words_display(&spec.writable_dirs())
            );
        }
        println!("Then run:\n  {}\n{}", cmds.join(" && "), afterwards(mode));
        return Ok(());
    }
    match fs::read_to_string(&target) {
        Ok(old) if old == unit => {}
        Ok(_) if !args.force => {
            return Err(fail(format!(
                "{} exists and differs; pass --force to replace it (or --dry-run to compare)",
                target.display()
            )))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(config::ConfigError::io(&target, e).into()),
    }
    if mode == Mode::User {
        // Before the unit: a ReadWritePaths= directory that is missing fails the
        // start with 226/NAMESPACE.
        for d in spec.writable_dirs() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(|e| config::ConfigError::io(&d, e))?;
        }
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| config::ConfigError::io(parent, e))?;
    }
    match verify_text(&unit, mode)? {
        Ok(None) => println!("systemd-analyze verify: ok"),
        Ok(Some(why)) => println!("{why}"),
        Err(complaints) => {
            return Err(fail(format!(
                "systemd-analyze verify rejects the unit:\n{complaints}"
            )))
        }
    }
    // Written beside it, then renamed: systemd never reads half a unit.
    let tmp = target.with_extension("service.tmp");
    fs::write(&tmp, &unit).map_err(|e| config::ConfigError::io(&tmp, e))?;
    fs::rename(&tmp, &target).map_err(|e| config::ConfigError::io(&target, e))?;
    println!("Wrote {}", target.display());
    match systemctl_works(mode) {
        Ok(()) => {
            for c in commands(mode) {
                println!("$ {}", c.join(" "));
                let status = Command::new(c[0]).args(&c[1..]).status()?;
                if !status.success() {
                    return Err(fail(format!("`{}` failed ({status})", c.join(" "))));
                }
            }
        }
        Err(why) => {
            println!(
                "Not started: {why}. Where systemd runs, run:\n  {}",
                cmds.join(" && ")
            );
        }
    }
    print!("{}", afterwards(mode));
    Ok(())
}

fn words_display(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: Mode) -> UnitSpec {
        UnitSpec {
            mode,
            exe: "/opt/hub bin/hubctl".into(),
            config_dir: "/home/u/.config/agent-hub".into(),
            db: "/home/u/.local/share/agent-hub/hub.db".into(),
            service_user: "hub".into(),
        }
    }

    fn lines(u: &str) -> Vec<&str> {
        u.lines().filter(|l| !l.starts_with('#')).collect()
    }

    /// Every absolute path a directive names (ExecStart's binary and hub.db aside)
    /// is a directory the service gets created for it.
    fn only_created_dirs(u: &str, created: &[&str]) {
        for l in lines(u) {
            if l.starts_with("ExecStart=") || l.starts_with("Environment=AGENT_HUB_DB=") {
                continue;
            }
            for w in l.split([' ', '=', '"']) {
                if w.starts_with('/') && !w.starts_with("/bin/") {
                    assert!(created.contains(&w), "{w} in {l:?} is not created first");
                }
            }
        }
    }

    #[test]
    fn user_unit() {
        let u = render(&spec(Mode::User)).unwrap();
        let l = lines(&u);
        for want in [
            "ExecStart=\"/opt/hub bin/hubctl\" serve",
            "Environment=AGENT_HUB_CONFIG_DIR=/home/u/.config/agent-hub",
            "Environment=AGENT_HUB_DB=/home/u/.local/share/agent-hub/hub.db",
            "LimitNOFILE=65536",
            "NoNewPrivileges=true",
            "ProtectSystem=strict",
            "PrivateTmp=true",
            "PrivateUsers=true",
            "ReadWritePaths=/home/u/.config/agent-hub /home/u/.local/share/agent-hub",
            "Restart=on-failure",
            "KillSignal=SIGTERM",
            "TimeoutStopSec=15",
            "WantedBy=default.target",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{u}");
        }
        assert!(!u.contains("User="), "{u}");
        only_created_dirs(
            &u,
            &[
                "/home/u/.config/agent-hub",
                "/home/u/.local/share/agent-hub",
            ],
        );
    }

    #[test]
    fn system_unit() {
        let u = render(&spec(Mode::System)).unwrap();
        let l = lines(&u);
        for want in [
            "ExecStart=\"/opt/hub bin/hubctl\" serve",
            "User=hub",
            "StateDirectory=agent-hub",
            "ConfigurationDirectory=agent-hub",
            "RuntimeDirectory=agent-hub",
            "Environment=AGENT_HUB_CONFIG_DIR=/etc/agent-hub",
            "Environment=AGENT_HUB_DB=/var/lib/agent-hub/hub.db",
            "ReadWritePaths=/etc/agent-hub /var/lib/agent-hub /run/agent-hub",
            "ProtectSystem=strict",
            "NoNewPrivileges=true",
            "LimitNOFILE=65536",
            "WantedBy=multi-user.target",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{u}");
        }
        assert!(
            !u.contains("/home/u"),
            "user paths leak into the system unit:\n{u}"
        );
        only_created_dirs(
            &u,
            &[SYSTEM_CONFIG_DIR, SYSTEM_DATA_DIR, SYSTEM_RUNTIME_DIR],
        );
    }

    #[test]
    fn awkward_paths() {
        let mut s = spec(Mode::User);
        s.config_dir = "/home/u/100%".into();
        let u = render(&s).unwrap();
        assert!(u.contains("AGENT_HUB_CONFIG_DIR=/home/u/100%%\n"), "{u}");
        s.config_dir = "/home/u/my hub".into();
        let u = render(&s).unwrap();
        assert!(
            u.contains("Environment=\"AGENT_HUB_CONFIG_DIR=/home/u/my hub\"\n"),
            "{u}"
        );
        assert!(u.contains("ReadWritePaths=\"/home/u/my hub\" "), "{u}");
        s.config_dir = "/home/u/a\"b".into();
        assert!(render(&s).is_err());
        s.config_dir = "relative".into();
        assert!(render(&s).is_err());
        let mut s = spec(Mode::System);
        s.service_user = "x; rm".into();
        assert!(render(&s).is_err());
    }
}
