//! `hubctl`: run the hub (`serve`) and operate it. Operator commands talk to the
//! running server's operator API; they never open the database.

pub(crate) mod agent;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod connect;
pub(crate) mod db_lock;
pub(crate) mod discovery;
pub(crate) mod fill;
pub(crate) mod floor;
pub(crate) mod install;
pub(crate) mod messages;
pub(crate) mod operator;
pub(crate) mod serve;
pub(crate) mod tasks;
pub(crate) mod watch;

use crate::config::{self, paths, ConfigError};
use crate::store::StoreError;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use thiserror::Error;

/// The `hubctl` command line.
#[derive(Debug, Parser)]
#[command(
    name = "hubctl",
    version,
    about = "Agent Hub: an MCP server coordinating AI agents, and its operator CLI",
    // The doc comment above is for rustdoc, not for --help.
    long_about = None
)]
pub struct Cli {
    /// Directory holding agents.env, config.yaml and operator.token
    /// [default: $XDG_CONFIG_HOME/agent-hub or ~/.config/agent-hub]
    #[arg(long, global = true, env = "AGENT_HUB_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Host: where `serve` binds, and where the other commands find the hub
    /// [default: config.yaml host, else 127.0.0.1]
    #[arg(long, global = true, env = "AGENT_HUB_HOST")]
    pub host: Option<String>,

    /// Port: where `serve` binds (0 picks a free one), and where the other commands
    /// find the hub [default: config.yaml port, else 8765]
    #[arg(long, global = true, env = "AGENT_HUB_PORT")]
    pub port: Option<u16>,

    /// Base URL of a running hub for operator commands, e.g. http://127.0.0.1:8765
    /// (overrides --host/--port)
    #[arg(long, global = true)]
    pub url: Option<String>,

    /// Operator commands: print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,

    // clap takes `///` comments as help text; each variant's is the command's help.
    #[allow(missing_docs)]
    #[command(subcommand)]
    pub command: Command,
}

// clap takes `///` comments as help text; each variant's is the command's help.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub server (creates missing config on first start)
    Serve(ServeArgs),
    /// Print ready-to-paste client configuration (Claude Code, Codex) for an agent
    Connect {
        /// Agent id from agents.env
        agent_id: String,
    },
    /// The running server's state: version, uptime, address, database, durability,
    /// sessions, streams, the writer's queue and whether writes are saved
    Hub,
    /// Cluster mode (--store postgres://…): this node's role, the members and the
    /// shard map, as the database has them; `cluster move --to NODE` hands the
    /// shards to another node
    Cluster {
        #[command(subcommand)]
        action: Option<ClusterCommand>,
    },
    /// List agents with their registration and presence, a page at a time
    Agents(LogArgs),
    /// Approve a round awaiting approval: round and task become dispatched
    Approve {
        /// Round id (from list-rounds, or the dispatcher's round_plan_submit)
        round_id: String,
        /// Note recorded with the decision (several words allowed)
        note: Vec<String>,
    },
    /// Reject a round awaiting approval; the dispatcher can then submit a revised plan
    Reject {
        /// Round id
        round_id: String,
        /// Why (sent to the dispatcher; several words allowed)
        note: Vec<String>,
    },
    /// Close a task: open assignments are cancelled, later calls on it fail
    Close {
        /// Task id
        task_id: String,
    },
    /// Show a round and its assignments
    Status {
        /// Round id
        round_id: String,
    },
    /// List open tasks, newest first (--all: finished ones too), a page at a time
    ListTasks(PageArgs),
    /// List open rounds, newest first (--all: finished ones too), or one task's rounds
    ListRounds {
        /// Only the rounds of this task (all of them, in round order)
        task_id: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a task as a tree: rounds, assignments, handoffs
    Show {
        /// Task id
        task_id: String,
    },
    /// List held locks (key, holder, resource, expires in), newest first, a page at a time
    Locks(LogArgs),
    /// Force-release a lock (audited); the next waiter gets it
    Unlock {
        /// The lock's key, as `hubctl locks` shows it
        lock_key: String,
    },
    /// Delete the history the `retention:` policy of config.yaml names (never unread
    /// messages, open tasks or locks)
    Prune {
        /// Only count what would be deleted
        #[arg(long)]
        dry_run: bool,
    },
    /// Add, remove or rotate an agent in agents.env, then reload a running hub
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Replace the operator token (operator.token), then reload a running hub
    #[command(subcommand)]
    OperatorToken(OperatorTokenCommand),
    /// Re-read agents.env in the running hub (like SIGHUP): new agents work at once,
    /// removed or rotated tokens are refused; an invalid file changes nothing
    Reload,
    /// Rewrite the database without its free pages (writes wait while it runs)
    Vacuum,
    /// Write a consistent copy of the database to FILE while the hub serves (a plain
    /// copy of a WAL database is unsafe); FILE must not exist
    Backup {
        /// Where the copy goes (on the hub's machine)
        file: PathBuf,
    },
    /// The audit log, newest first, a page at a time, narrowed by entity, task,
    /// agent, kind or time; `--follow` then prints new events as they happen
    Audit(audit::AuditArgs),
    /// The operator's webhooks (`notify:` in config.yaml)
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// A live view of rounds awaiting approval, assignments with their leases and
    /// locks, redrawn as the hub reports changes (Ctrl-C to quit)
    Watch(watch::WatchArgs),
    /// Every message, newest first, a page at a time; or those delivered to one agent
    /// (--agent A) with its read state, only the unread ones with --unread
    Messages(messages::MessagesArgs),
    /// Remove the deliveries to an agent (from one sender with --from), read or
    /// unread, from its inbox and the database; the messages stay (audited)
    PurgeMessages {
        /// The agent whose deliveries go
        #[arg(long)]
        agent: String,
        /// Only the messages this agent sent
        #[arg(long)]
        from: Option<String>,
    },
    /// Load a throwaway hub (or, with --url U --live, a running one) over HTTP and
    /// print throughput and latency
    Bench(bench::BenchArgs),
    /// Fill a database with history for the benchmarks (docs/benchmarks.md)
    #[command(hide = true)]
    FillHistory(fill::FillArgs),
    /// The floor of this machine for benches/compare.sh: a bare handler answering a
    /// fixed JSON-RPC body
    #[command(hide = true)]
    Floor(floor::FloorArgs),
    /// Write a systemd unit for this binary (user unit, or --system) and enable it
    InstallService(install::InstallArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell), e.g.
    /// `hubctl completions bash > ~/.local/share/bash-completion/completions/hubctl`
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// `hubctl agent ...`: edits of agents.env (locked, atomic), then a reload.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Add an agent with a new token and print its client configuration
    Add {
        /// Agent id: 1-64 characters of A-Z a-z 0-9 . _ -
        name: String,
        /// Capabilities to record for it (comma-separated; needs a running hub)
        #[arg(long, value_delimiter = ',')]
        capabilities: Vec<String>,
    },
    /// Remove an agent: its token is refused and its sessions closed (its inbox is kept)
    Remove {
        /// Agent id
        name: String,
    },
    /// Give an agent a new token: the old one is refused and its sessions closed
    Rotate {
        /// Agent id
        name: String,
    },
}

/// `hubctl notify ...`.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a signed test notification to every webhook of `notify:` now, and
    /// print what each answered (exits non-zero if one failed or none is set)
    Test,
}

/// `hubctl cluster ...`.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Hand every shard of the serving node to another live node (a switchover,
    /// say before maintenance of the serving node's machine): the serving node
    /// drains its calls, moves the leases in one step and forwards from then on.
    /// No call fails behind gateways or a balancer. Shards move together: one node
    /// serves them all in this release
    Move {
        /// The node id (`--node-id`) to serve from now on
        #[arg(long)]
        to: String,
        /// With cluster_placement: spread, the shard to move (repeat for more):
        /// it is pinned to NODE, which serves it while it is a live member, until
        /// `hubctl cluster unpin`. Not with standby placement (every shard moves)
        #[arg(long = "shard", value_name = "N")]
        shards: Vec<u16>,
    },
    /// With cluster_placement: spread, give pinned shards back to rendezvous
    /// hashing (they move at the next lease round if another node wins them)
    Unpin {
        /// The shard to unpin (repeat for more)
        #[arg(long = "shard", value_name = "N", required_unless_present = "all")]
        shards: Vec<u16>,
        /// Every pinned shard
        #[arg(long, conflicts_with = "shards")]
        all: bool,
    },
}

/// `hubctl operator-token ...`.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum OperatorTokenCommand {
    /// Write a new operator token; a running hub refuses the old one at once
    Rotate,
}

/// The paging options of every list command.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Include history (completed and closed tasks, finished rounds)
    #[arg(long)]
    pub all: bool,
    /// Rows per page (1-1000)
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Start after this point (the `next page` cursor of the previous page)
    #[arg(long)]
    pub cursor: Option<String>,
}

/// The paging options of the lists without history (agents, locks) and of the log
/// commands (audit, messages).
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Rows per page (1-1000)
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Start after this point (the `next page` cursor of the previous page)
    #[arg(long)]
    pub cursor: Option<String>,
}

/// `hubctl serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// SQLite database file [default: $XDG_DATA_HOME/agent-hub/hub.db or ~/.local/share/agent-hub/hub.db]
    #[arg(long, env = "AGENT_HUB_DB", value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Where to store: `sqlite` (the --db file) or postgres://USER@HOST:PORT/DB for
    /// cluster mode; the password comes from PGPASSWORD or a PGPASSFILE, never the URL
    /// [default: sqlite]
    #[arg(long, env = "AGENT_HUB_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Cluster mode: this node's name; a second live node with the same name is
    /// refused [default: the host name]
    #[arg(long, env = "AGENT_HUB_NODE_ID", value_name = "ID", value_parser = crate::config::parse_node_id_arg)]
    pub node_id: Option<String>,
    /// Cluster mode: `standby` (one node serves, the others forward) or `spread`
    /// (each node serves the shards rendezvous hashing gives it); wins over
    /// `cluster_placement` in config.yaml [default: standby]
    #[arg(long, env = "AGENT_HUB_CLUSTER_PLACEMENT", value_name = "PLACEMENT", value_parser = ["standby", "spread"])]
    pub cluster_placement: Option<String>,
    /// On a first start, print the generated token in the client snippets even when
    /// stdout is not a terminal (a log file or a service manager would keep it)
    #[arg(long)]
    pub print_tokens: bool,
}

/// Where a running hub is: `--url`, else host and port as `serve` would use them.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) url: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
}

/// Why a `hubctl` command failed; printed as one line, with exit status 1.
#[allow(missing_docs)] // Each variant's #[error] text is its documentation.
#[derive(Debug, Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Server(#[from] std::io::Error),
    #[error(
        "another agent-hub server{} is serving {db} (lock file {lock}); stop it first or use another --db",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    DbInUse {
        pid: Option<u32>,
        db: String,
        lock: String,
    },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot reach the hub at {url} ({detail}); start it with `hubctl serve`, or pass --url"
    )]
    Unreachable { url: String, detail: String },
    #[error("{0}")]
    Api(String),
    #[error("agent {id} is not in {file}; agents there: {known}")]
    UnknownAgent {
        id: String,
        file: String,
        known: String,
    },
}

impl Cli {
    /// Whether this runs the server (which must survive clients that hang up).
    pub fn is_serve(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }

    /// The config directory: `--config-dir`, else the XDG default.
    pub fn config_dir(&self) -> Result<PathBuf, ConfigError> {
        match &self.config_dir {
            Some(d) => Ok(d.clone()),
            None => paths::default_config_dir(),
        }
    }
}

/// Base URL of the hub serving config directory `dir`: with no `--url`, `--host` or
/// `--port`, the one its discovery file names if that hub answers (so `--port 0`
/// and a port changed in config.yaml after start are found); else [`base_url`].
pub(crate) fn hub_url(
    dir: &std::path::Path,
    target: &Target,
    settings: &config::Settings,
) -> String {
    let explicit = target.url.is_some() || target.host.is_some() || target.port.is_some();
    if !explicit {
        if let Some(url) = discovery::live_url(dir) {
            return url;
        }
    }
    base_url(target, settings)
}

/// Base URL (no trailing `/mcp`) of the hub for operator commands.
pub(crate) fn base_url(target: &Target, settings: &config::Settings) -> String {
    if let Some(u) = &target.url {
        let u = u.trim_end_matches('/');
        return u.strip_suffix("/mcp").unwrap_or(u).to_string();
    }
    let host = target
        .host
        .clone()
        .or_else(|| settings.host.clone())
        .unwrap_or_else(|| config::DEFAULT_HOST.to_string());
    // A server bound to every interface is reached through loopback.
    let host = match host.as_str() {
        "0.0.0.0" => "127.0.0.1".to_string(),
        "::" => "[::1]".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    };
    let port = target
        .port
        .or(settings.port)
        .unwrap_or(config::DEFAULT_PORT);
    format!("http://{host}:{port}")
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    // Needs no config directory: it only prints.
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory;
        clap_complete::generate(shell, &mut Cli::command(), "hubctl", &mut std::io::stdout());
        return Ok(());
    }
    let explicit_config = cli.config_dir.is_some();
    let dir = cli.config_dir()?;
    let target = Target {
        url: cli.url.clone(),
        host: cli.host.clone(),
        port: cli.port,
    };
    let json = cli.json;
    match cli.command {
        Command::Serve(args) => serve::run(&dir, target.host, target.port, args),
        Command::Connect { agent_id } => connect::run(&dir, &agent_id, &target),
        Command::Agents(page) => operator::agents(&dir, &target, &page, json),
        Command::Hub => operator::hub(&dir, &target, json),
        Command::Cluster { action: None } => operator::cluster(&dir, &target, json),
        Command::Cluster {
            action: Some(ClusterCommand::Move { to, shards }),
        } => operator::cluster_move(&dir, &target, &to, &shards, json),
        Command::Cluster {
            action: Some(ClusterCommand::Unpin { shards, all }),
        } => operator::cluster_unpin(&dir, &target, (!all).then_some(&shards[..]), json),
        Command::Approve { round_id, note } => {
            tasks::decide(&dir, &target, &round_id, &note.join(" "), true, json)
        }
        Command::Reject { round_id, note } => {
            tasks::decide(&dir, &target, &round_id, &note.join(" "), false, json)
        }
        Command::Close { task_id } => tasks::close(&dir, &target, &task_id, json),
        Command::Status { round_id } => tasks::status(&dir, &target, &round_id, json),
        Command::ListTasks(page) => tasks::list_tasks(&dir, &target, &page, json),
        Command::ListRounds { task_id, page } => {
            tasks::list_rounds(&dir, &target, task_id.as_deref(), &page, json)
        }
        Command::Locks(page) => tasks::locks(&dir, &target, &page, json),
        Command::Unlock { lock_key } => tasks::unlock(&dir, &target, &lock_key, json),
        Command::Bench(args) => bench::run(&dir, &target, args, json),
        Command::Prune { dry_run } => tasks::prune(&dir, &target, dry_run, json),
        Command::Vacuum => tasks::vacuum(&dir, &target, json),
        Command::Backup { file } => tasks::backup(&dir, &target, &file, json),
        Command::Reload => operator::reload(&dir, &target, json),
        Command::OperatorToken(OperatorTokenCommand::Rotate) => {
            agent::rotate_operator_token(&dir, &target)
        }
        Command::Agent(AgentCommand::Add { name, capabilities }) => {
            agent::add(&dir, &target, &name, &capabilities)
        }
        Command::Agent(AgentCommand::Remove { name }) => agent::remove(&dir, &target, &name),
        Command::Agent(AgentCommand::Rotate { name }) => agent::rotate(&dir, &target, &name),
        Command::Audit(args) => audit::run(&dir, &target, &args, json),
        Command::Watch(args) => watch::run(&dir, &target, &args),
        Command::Notify(NotifyCommand::Test) => operator::notify_test(&dir, &target, json),
        Command::Messages(args) => messages::messages(&dir, &target, &args, json),
        Command::PurgeMessages { agent, from } => {
            messages::purge(&dir, &target, &agent, from.as_deref(), json)
        }
        Command::FillHistory(args) => fill::run(&dir, args),
        Command::Floor(args) => floor::run(args),
        Command::InstallService(args) => install::run(&dir, explicit_config, args),
        Command::Completions { .. } => Ok(()), // answered above
        Command::Show { task_id } => tasks::show(&dir, &target, &task_id, json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn base_url_precedence() {
        let s = config::Settings::default();
        let t = |url: Option<&str>, host: Option<&str>, port| Target {
            url: url.map(String::from),
            host: host.map(String::from),
            port,
        };
        assert_eq!(base_url(&t(None, None, None), &s), "http://127.0.0.1:8765");
        assert_eq!(
            base_url(&t(Some("http://h:1/mcp/"), None, None), &s),
            "http://h:1"
        );
        assert_eq!(
            base_url(&t(None, Some("0.0.0.0"), Some(9)), &s),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            base_url(&t(None, Some("::1"), Some(9)), &s),
            "http://[::1]:9"
        );
    }
}
