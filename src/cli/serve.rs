//! `hubctl serve`: load config (generating what is missing), lock the database (one
//! server per database, see [`db_lock`]), open the store, start the actors and the
//! HTTP server, print how to connect, and on a stop signal ([`signals`]) stop serving
//! and flush every queued write before exiting.

mod heal;
mod limits;
mod signals;

use super::{connect, db_lock, CliError, ServeArgs};
use crate::access_log;
use crate::actors::Hub;
use crate::auth::{token_hash_column, LiveTokens, TokenIndex};
use crate::config::{self, bootstrap, Durability, EnvFileRegistry, LogFormat};
use crate::domain::time::iso;
use crate::http::reload::Reloader;
use crate::http::state::HubSlot;
use crate::http::{self, AppState, Origins};
use crate::mcp::session::Sessions;
use crate::store::{Store, StoreOptions};
use chrono::Utc;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn init_tracing(format: LogFormat, log_level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    // Logs go to stderr; stdout carries only the start-up banner.
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(crate::log_filter::initial(log_level))
        .with_writer(std::io::stderr);
    // The two formats give handles of different types; one setter hides them.
    macro_rules! install {
        ($builder:expr) => {{
            let builder = $builder.with_filter_reloading();
            let handle = builder.reload_handle();
            crate::log_filter::install(Box::new(move |f: &str| {
                let filter = EnvFilter::try_new(f).map_err(|e| e.to_string())?;
                handle.reload(filter).map_err(|e| e.to_string())
            }));
            let _ = builder.try_init();
        }};
    }
    match format {
        LogFormat::Text => {
            install!(fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())))
        }
        LogFormat::Json => install!(fmt.json().with_ansi(false)),
    }
}

pub(crate) fn run(
    dir: &Path,
    host: Option<String>,
    port: Option<u16>,
    args: ServeArgs,
) -> Result<(), CliError> {
    // Config first: it says the log format (loading it logs nothing; its
    // warnings are collected and logged below).
    let loaded = bootstrap::prepare(dir, true)?;
    let placement = match args.cluster_placement.as_deref() {
        Some("spread") => Some(config::Placement::Spread),
        Some("standby") => Some(config::Placement::Standby),
        _ => None,
    };
    init_tracing(
        loaded.settings.log_format,
        loaded.settings.log_level.as_deref(),
    );
    if loaded.settings.access_log {
        access_log::start(loaded.settings.log_format);
    }
    limits::raise_open_files_logged();
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let endpoint = config::resolve(
        host,
        port,
        args.db,
        (args.store, args.node_id, placement),
        &loaded.settings,
    )?;
    // stdout that is not a terminal is usually kept (a log file, journald): a token
    // printed there outlives the session, so it is printed only when asked.
    let print_tokens = args.print_tokens || std::io::IsTerminal::is_terminal(&std::io::stdout());
    actix_rt::System::new().block_on(serve(loaded, endpoint, print_tokens))
}

async fn serve(
    loaded: bootstrap::Loaded,
    ep: config::Endpoint,
    print_tokens: bool,
) -> Result<(), CliError> {
    // Before the port: a second server on another port must not get as far as
    // answering /healthz. Held until this function returns, after the last write.
    // (On PostgreSQL the node registration refuses a second node of one id.)
    let _lock = match ep.store {
        None => Some(db_lock::acquire(&ep.db)?),
        Some(_) => None,
    };
    let live = Arc::new(config::LiveSettings::from_pointee(loaded.settings.clone()));
    // Those fixed at start (a reload changes only `live`).
    let settings = live.load_full();
    let agents: Vec<(String, String)> = loaded
        .agents
        .agents
        .iter()
        .map(|a| (a.id.clone(), token_hash_column(&a.token)))
        .collect();
    let opts = StoreOptions {
        durability: settings.durability,
        max_ops: settings.commit_batch_max_ops,
        window: Duration::from_millis(settings.commit_batch_window_ms),
    };
    let sessions = Sessions::new(
        Duration::from_secs(settings.session_idle_timeout_secs),
        settings.max_sessions_per_agent,
    );
    // Cluster mode: session ids any node can check, so that a session outlives the
    // node that opened it; node-to-node calls proven under the same key.
    let cluster_key = match ep.store {
        Some(_) => Some(bootstrap::cluster_key(&loaded.dir)?),
        None => None,
    };
    let sessions = Arc::new(match cluster_key {
        Some(key) => sessions.with_signer(crate::mcp::session_id::Signer::new(key)),
        None => sessions,
    });
    // The port opens first, so that loading a big database never means refused
    // connections: requests wait in the HubSlot until the hub is loaded.
    let listener = TcpListener::bind((ep.host.as_str(), ep.port)).map_err(|e| CliError::Bind {
        addr: format!("{}:{}", ep.host, ep.port),
        source: e,
    })?;
    let addr = listener.local_addr()?;
    let (fill, slot) = HubSlot::new();
    let instance = crate::domain::ids::random_hex(8);
    let tokens = Arc::new(LiveTokens::new(TokenIndex::new(
        &loaded.agents,
        &loaded.operator_token,
    )));
    let reloader = Arc::new(Reloader::new(
        Box::new(EnvFileRegistry::new(&loaded.dir)),
        loaded.dir.join(config::paths::OPERATOR_TOKEN_FILE),
        loaded.dir.join(config::paths::SETTINGS_FILE),
        live.clone(),
        tokens.clone(),
        sessions.clone(),
        slot.clone(),
    ));
    let webhooks = crate::notify::Webhooks::start(&settings.notify, &instance);
    let node_key =
        cluster_key.map(|k| Arc::new(http::gateway::node_auth::NodeKey::new(k, &ep.node_id)));
    let state = AppState {
        webhooks: webhooks.clone(),
        hub: slot.clone(),
        instance: instance.clone(),
        sessions: sessions.clone(),
        tokens,
        reloader: reloader.clone(),
        origins: Origins::new(
            settings.allowed_origins.as_deref(),
            addr.port(),
            settings.dashboard.public_origin(),
        ),
        max_body_bytes: settings.max_body_bytes,
        body_read_timeout: Duration::from_secs(settings.body_read_timeout_secs),
        max_batch_items: settings.max_batch_items,
        admission: Arc::new(http::admission::Admission::new(
            settings.max_in_flight,
            settings.max_in_flight_per_agent,
            settings.max_answer_bytes_in_flight_per_agent,
        )),
        sse_keepalive: Duration::from_secs(settings.sse_keepalive_secs),
        metrics_public: settings.metrics_public,
        url: http::server::mcp_url(addr),
        database: database_name(&ep),
        ui: http::ui::UiState::new(&settings.dashboard),
        cluster: Arc::default(),
        node_key: node_key.clone(),
        stopping: Arc::default(),
        settings: live.clone(),
    };
    let cluster = state.cluster.clone();
    let admission = state.admission.clone();
    let before_stop = {
        let (cluster, admission) = (cluster.clone(), state.admission.clone());
        let sessions = sessions.clone();
        let (stopping, drain) = (
            state.stopping.clone(),
            Duration::from_secs(settings.shutdown_drain_secs),
        );
        move || -> signals::BeforeStop {
            Box::pin(before_stop(
                cluster,
                admission,
                sessions.clone(),
                stopping,
                drain,
            ))
        }
    };
    let server = http::server::serve(
        state,
        listener,
        settings.max_connections,
        Duration::from_secs(settings.write_timeout_secs),
    )?;
    let handle = server.handle();
    signals::install(handle.clone(), reloader.clone(), Box::new(before_stop))?;
    // Polled from now on, on its own task: /healthz and /readyz answer while the
    // database loads (a Server does nothing until polled).
    let running = actix_rt::spawn(server);
    // Where operator commands given only --config-dir find this server.
    let config_dir = loaded.dir.clone();
    let found = super::discovery::Discovery {
        url: http::server::mcp_url(addr)
            .trim_end_matches("/mcp")
            .to_string(),
        pid: std::process::id(),
        instance: instance.clone(),
    };
    if let Err(e) = super::discovery::write(&config_dir, &found) {
        tracing::warn!(error = %e, dir = %config_dir.display(), "could not write the discovery file; hubctl needs --port or --url");
    }
    let now = iso(Utc::now());
    let opened = match &ep.store {
        None => {
            let db = ep.db.clone();
            let agents = agents.clone();
            tokio::task::spawn_blocking(move || Store::open(&db, opts, &agents, &now))
                .await
                .map_err(|_| CliError::Api("the database could not be opened".into()))
                .and_then(|r| r.map_err(CliError::from))
                .map(|(store, snapshot)| (store, Some(snapshot), None))
        }
        Some(url) => {
            let base = match &settings.advertise_url {
                Some(u) => u.clone(),
                None => {
                    if addr.ip().is_unspecified() {
                        tracing::warn!(%addr, "cluster mode, listening on every address without advertise_url: other nodes are told to forward to 127.0.0.1, which only works on one machine; set advertise_url");
                    }
                    http::server::mcp_url(addr)
                }
            };
            let timing = crate::store::pg::node::Timing {
                lease_ttl: Duration::from_secs(settings.cluster_lease_ttl_secs),
            };
            let placement = ep.placement;
            crate::store::pg::open::open(url, &ep.node_id, &base, timing, placement, opts)
                .await
                .map_err(CliError::from)
                .map(|o| (o.store, None, Some(o.node)))
        }
    };
    let (store, snapshot, node) = match opened {
        Ok(s) => s,
        Err(e) => {
            // Requests waiting for the hub get 503 at once; then the server stops.
            drop(fill);
            handle.stop(true).await;
            let _ = running.await;
            super::discovery::remove(&config_dir, &instance);
            return Err(e);
        }
    };
    let mut running = running;
    // The hub's store handle and its state: SQLite's from the open; in cluster mode
    // loaded once every shard is held (until then, the node stands by).
    let ((hub_store, snapshot), loaded_shards) = match (snapshot, &node) {
        (Some(s), _) => ((store.clone(), s), Vec::new()),
        (None, None) => return Err(CliError::Api("no store was opened".into())),
        (None, Some(node)) => {
            actix_rt::spawn(follow_registry(reloader.clone()));
            // Listening and answering 503 meanwhile, so the banner comes first.
            // PostgreSQL stores every write before answering (see `pg::open`).
            // Forwarding on before the banner: a client that read it may call at once.
            slot.set_guard(node.clone().guard());
            // A node moving shards between its hubs waits for the calls it serves.
            node.set_drain(Box::new(move || {
                let admission = admission.clone();
                Box::pin(
                    async move { admission.idle(crate::store::pg::node::HAND_OVER_WAIT).await },
                )
            }));
            let _ = cluster.set(node.clone());
            actix_rt::spawn(node.clone().keep());
            slot.set_standby(Some(TAKING_SHARDS.into()));
            let url = http::server::mcp_url(addr);
            print_banner(&loaded, &ep, &url, Durability::Durable, print_tokens);
            let mut roles = node.role();
            let activation = async {
                // The agents table is the registry from here on: this node's
                // agents.env brings the agents the cluster never had, then every
                // node follows it (`follow_registry`, a no-op until then).
                match reloader.use_table(node.pool().clone()).await {
                    Ok(added) if !added.is_empty() => tracing::info!(
                        ?added,
                        "agents of this node's agents.env added to the cluster's agents table"
                    ),
                    Ok(_) => {}
                    Err(e) => return Err(CliError::Api(format!("the agents table: {e}"))),
                }
                loop {
                    if roles.wait_for(|r| r.active).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    let started = std::time::Instant::now();
                    let shards = node.shards_to_load();
                    match crate::store::pg::open::activate(&store, &shards).await {
                        Ok(got) => {
                            crate::metrics::get().cluster_takeover(started.elapsed());
                            break Ok((got, shards.to_vec()));
                        }
                        // The writer is gone: nothing can be served.
                        Err(e @ crate::store::StoreError::Closed) => break Err(CliError::from(e)),
                        Err(e) => {
                            tracing::error!(error = %e, "could not load the live state; retrying in 1 s");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            };
            tokio::select! {
                got = activation => match got {
                    Ok(got) => got,
                    Err(e) => {
                        handle.stop(true).await;
                        let _ = running.await;
                        super::discovery::remove(&config_dir, &instance);
                        stop_store(&store, Some(node.as_ref())).await;
                        return Err(e);
                    }
                },
                stopped = &mut running => {
                    // Stopped while standing by.
                    super::discovery::remove(&config_dir, &instance);
                    stop_store(&store, Some(node.as_ref())).await;
                    return stopped
                        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                        .map_err(CliError::Server);
                }
            }
        }
    };
    let term = hub_store.term();
    if let Some(node) = node
        .as_ref()
        .filter(|n| n.placement() == config::Placement::Spread)
    {
        // The event stream shows every node's events: ids tagged unique, from
        // the first event on.
        store.events().set_node(node.id());
    }
    // The session store is the actors' way to push on agents' open GET streams.
    let hub = Hub::start(hub_store, snapshot, live.clone(), sessions.clone());
    // The agents table may have changed since the load (a reload from then on
    // syncs the hub itself).
    let held = match &node {
        Some(_) => Some(reloader.ready_to_fill(&hub).await),
        None => None,
    };
    if let Some(node) = &node {
        node.serving(term, loaded_shards);
    }
    let _ = fill.send(Some(hub.clone()));
    slot.set_standby(None);
    drop(held);
    // The slot owns it from here (a rebuild replaces it; none is kept alive here).
    drop(hub);
    actix_rt::spawn(webhooks.follow(store.events().subscribe_notable()));
    // Always running: a reload may set a policy later.
    actix_rt::spawn(apply_retention(fill.subscribe()));
    actix_rt::spawn(sweep_presence(fill.subscribe()));
    if let Some(node) = &node {
        actix_rt::spawn(prune_replies(
            store.clone(),
            reloader.clone(),
            fill.subscribe(),
        ));
        if node.placement() == config::Placement::Spread {
            actix_rt::spawn(take_outbox(fill.subscribe()));
            let relays = http::gateway::relay_events::Relays {
                node: node.clone(),
                key: node_key.clone(),
                bus: store.events().clone(),
                keepalive: Duration::from_secs(settings.sse_keepalive_secs),
            };
            actix_rt::spawn(http::gateway::relay_events::relay_events(relays));
        }
    }
    // Rebuilds the hub from disk around a storage fault, and in cluster mode around
    // a loss of the shards (it owns the slot from here).
    let cluster = node.as_ref().map(|n| heal::Cluster {
        node: n.clone(),
        slot: slot.clone(),
        reloader: reloader.clone(),
        sessions: sessions.clone(),
    });
    actix_rt::spawn(heal::supervise(store.clone(), fill, cluster));

    // Expired sessions are refused on lookup already; the sweep only frees memory.
    let sweep_every = Duration::from_secs(settings.session_idle_timeout_secs.clamp(1, 60));
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(sweep_every);
        loop {
            tick.tick().await;
            let n = sessions.sweep();
            if n > 0 {
                tracing::debug!(expired = n, "swept idle sessions");
            }
        }
    });

    if node.is_none() {
        print_banner(
            &loaded,
            &ep,
            &http::server::mcp_url(addr),
            settings.durability,
            print_tokens,
        );
    }
    // From here on tokens exist only as digests in the TokenIndex.
    drop(loaded);
    tracing::info!(%addr, db = %database_name(&ep), "serving");
    let result = running
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    super::discovery::remove(&config_dir, &instance);
    stop_store(&store, node.as_deref()).await;
    result.map_err(CliError::Server)
}

/// What a stop signal does before the port closes: answers ask clients to close
/// their connections and `/healthz` answers 503 (a load balancer's health check
/// stops sending here); a cluster node hands its shards over once its calls in
/// flight are answered (from then on it forwards what reaches it) and ends its
/// open streams (their clients, or gateways, open them again at the next node);
/// then `shutdown_drain_secs` pass.
async fn before_stop(
    cluster: Arc<std::sync::OnceLock<Arc<crate::store::pg::node::Node>>>,
    admission: Arc<http::admission::Admission>,
    sessions: Arc<crate::mcp::session::Sessions>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    drain: Duration,
) {
    stopping.store(true, std::sync::atomic::Ordering::Release);
    if let Some(node) = cluster.get().cloned() {
        node.hand_over(admission.idle(crate::store::pg::node::HAND_OVER_WAIT))
            .await;
        let streams = sessions.end_streams();
        if streams > 0 {
            tracing::info!(streams, "shards handed over: open GET streams ended");
        }
    }
    tokio::time::sleep(drain).await;
}

/// Cluster mode: while this node serves, delete the logged answers of forwarded
/// calls past their time (`request_log`, see `mcp::replay`) and the ended sessions
/// that have expired anyway (`revoked_sessions`), every minute.
async fn prune_replies(
    store: Store,
    reloader: Arc<Reloader>,
    hubs: tokio::sync::watch::Receiver<Option<Hub>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if hubs.borrow().is_none() {
            continue;
        }
        match store.prune_replies().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "pruned request_log"),
            Err(e) => tracing::warn!(error = %e, "could not prune request_log"),
        }
        match reloader.revoked().prune().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "pruned revoked_sessions"),
            Err(e) => tracing::warn!(error = %e, "could not prune revoked_sessions"),
        }
    }
}

/// Spread placement: how often a node looks for deliveries other nodes left in
/// the outbox for the agents it serves (the delay a message to an agent served
/// elsewhere may add).
const OUTBOX_POLL: Duration = Duration::from_millis(100);

/// Spread placement: take the deliveries other nodes left in the outbox for the
/// agents this node serves (see `actors::hub::outbox`), every [`OUTBOX_POLL`],
/// and read the count of stored tasks again every tenth time. A failure is
/// logged once a minute.
async fn take_outbox(hubs: tokio::sync::watch::Receiver<Option<Hub>>) {
    static FAILED: crate::log_limit::LogLimit = crate::log_limit::LogLimit::new(60_000);
    let mut round: u32 = 0;
    loop {
        tokio::time::sleep(OUTBOX_POLL).await;
        let Some(hub) = hubs.borrow().clone() else {
            continue;
        };
        // Once a second: the count of stored tasks, which every node changes.
        round = round.wrapping_add(1);
        if round.is_multiple_of(10) {
            if let Err(e) = hub.refresh_task_count().await {
                tracing::debug!(error = %e, "the count of stored tasks was not read");
            }
        }
        match hub.take_outbox().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(taken = n, "deliveries taken from the outbox"),
            Err(e) => {
                if FAILED.hit().is_some() {
                    tracing::warn!(error = %e, "could not take deliveries from the outbox");
                }
            }
        }
    }
}

/// Cluster mode: follow the agents table, checked every [`REGISTRY_POLL`] (a
/// change made at another node reaches this one within that). A failure is logged
/// once until the table can be read again.
async fn follow_registry(reloader: Arc<Reloader>) {
    let mut tick = tokio::time::interval(REGISTRY_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match reloader.follow(false).await {
            Ok(()) if failing => {
                tracing::info!("the agents table can be read again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::warn!(error = %e, "could not follow the agents table; retrying every second");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

/// How often a cluster node checks the agents table for changes.
const REGISTRY_POLL: Duration = Duration::from_secs(1);

/// Why a cluster node answers 503 before it holds its shards.
const TAKING_SHARDS: &str = "another node holds the shards, or this one is taking them over";

/// Flush every queued write and stop the writer; in cluster mode then leave, so
/// that the shards are free at once (for a restart or a standby).
async fn stop_store(store: &Store, node: Option<&crate::store::pg::node::Node>) {
    tracing::info!("stopping: flushing queued writes");
    // Off the runtime's thread: a second stop signal must still be handled meanwhile.
    let flushing = store.clone();
    if tokio::task::spawn_blocking(move || flushing.shutdown())
        .await
        .is_err()
    {
        tracing::error!("flushing queued writes failed");
    }
    if let Some(node) = node {
        match tokio::time::timeout(Duration::from_secs(5), node.leave()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not leave the cluster; the leases lapse by themselves")
            }
            Err(_) => {
                tracing::warn!("leaving the cluster timed out; the leases lapse by themselves")
            }
        }
    }
    tracing::info!(committed = store.committed(), "stopped");
}

/// The `retention:` policy, once an hour (the first run an hour after start, so
/// that start-up stays quick).
async fn apply_retention(hubs: tokio::sync::watch::Receiver<Option<Hub>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.tick().await;
    loop {
        tick.tick().await;
        // The current hub: it is replaced after a storage fault.
        let Some(hub) = hubs.borrow().clone() else {
            continue;
        };
        if !hub.settings().retention.is_set() {
            continue;
        }
        match hub.prune(false, Utc::now()).await {
            Ok(p) => tracing::info!(?p, "retention applied"),
            Err(e) => tracing::error!(error = %e, "retention failed; next try in an hour"),
        }
    }
}

/// Announce on the event stream agents that went quiet (presence window passed);
/// a quarter of the window apart (1 to 15 s), so an offline event is at most that
/// late.
async fn sweep_presence(hubs: tokio::sync::watch::Receiver<Option<Hub>>) {
    loop {
        let every = hubs
            .borrow()
            .as_ref()
            .map_or(15, |h| (h.settings().presence_window_secs / 4).clamp(1, 15));
        tokio::time::sleep(Duration::from_secs(every)).await;
        // The current hub: it is replaced after a storage fault.
        let hub = hubs.borrow().clone();
        if let Some(hub) = hub {
            hub.sweep_presence(Utc::now());
        }
    }
}

/// The store as `hubctl hub` and the banner name it: the SQLite file, or the
/// PostgreSQL URL (which holds no password) and this node's id.
fn database_name(ep: &config::Endpoint) -> String {
    match &ep.store {
        None => ep.db.display().to_string(),
        Some(url) => format!("{url} (node {})", ep.node_id),
    }
}

fn print_banner(
    loaded: &bootstrap::Loaded,
    ep: &config::Endpoint,
    url: &str,
    durability: Durability,
    print_tokens: bool,
) {
    let ids: Vec<&str> = loaded.agents.agents.iter().map(|a| a.id.as_str()).collect();
    println!("agent-hub listening on {url}");
    println!("  config dir: {}", loaded.dir.display());
    println!(
        "  database:   {} ({})",
        database_name(ep),
        match durability {
            Durability::Durable => "durable: writes are answered once on disk",
            Durability::Fast => "fast: writes are answered before they reach disk",
        }
    );
    // Behind a proxy browsers use public_url; else the address we listen on.
    let site = match &loaded.settings.dashboard.public_url {
        Some(public) => public.clone(),
        None => url.trim_end_matches("/mcp").to_string(),
    };
    println!("  dashboard:  {site}/ui (log in with the operator token)");
    println!(
        "  agents:     {}",
        if ids.is_empty() {
            "(none)".to_string()
        } else {
            ids.join(", ")
        }
    );
    match loaded
        .generated_agent
        .as_deref()
        .and_then(|id| loaded.agents.get(id))
    {
        Some(agent) => {
            let file = loaded.dir.join(config::paths::AGENTS_FILE);
            println!(
                "\nFirst start: generated {} with agent `{}` and an operator token.\n",
                file.display(),
                agent.id
            );
            if print_tokens {
                print!("{}", connect::snippets(url, &agent.id, &agent.token));
            } else {
                println!(
                    "Its token is in {} (not printed: stdout is not a terminal; \
                     --print-tokens prints it).\n\
                     Client configuration: hubctl connect {}",
                    file.display(),
                    agent.id
                );
            }
        }
        None => println!("  client config: hubctl connect <agent-id>"),
    }
}
