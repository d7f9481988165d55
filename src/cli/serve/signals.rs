//! Signals, handled here rather than by actix-server (its handlers are disabled in
//! `http::server::serve`): actix stops at once on SIGINT without finishing requests
//! in flight, ignores a second signal, and leaves SIGHUP to kill the process.
//!
//! - SIGINT, SIGTERM, SIGQUIT: stop gracefully (`serve`'s preparations first: a
//!   cluster node hands its shards over, `shutdown_drain_secs` pass; then requests
//!   in flight finish, and `serve` flushes every queued write).
//! - The same again while stopping: exit at once, with status 128 + the signal.
//! - SIGHUP: re-read agents.env, as `hubctl reload` does (an invalid file is logged
//!   with its `file:line: reason` and changes nothing).

use crate::http::reload::Reloader;
use actix_web::dev::ServerHandle;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

/// What runs on the first stop signal before the server stops (see
/// `serve::before_stop`).
pub(crate) type BeforeStop = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// Start handling the signals on the current actix system. Call before awaiting
/// anything long (the database load), so that no stop signal is ever missed.
pub(crate) fn install(
    server: ServerHandle,
    reloader: Arc<Reloader>,
    before_stop: Box<dyn FnOnce() -> BeforeStop>,
) -> std::io::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut before_stop = Some(before_stop);
    actix_rt::spawn(async move {
        let mut stopping = false;
        loop {
            let (name, number) = tokio::select! {
                _ = int.recv() => ("SIGINT", libc::SIGINT),
                _ = term.recv() => ("SIGTERM", libc::SIGTERM),
                _ = quit.recv() => ("SIGQUIT", libc::SIGQUIT),
                _ = hup.recv() => {
                    tracing::info!("SIGHUP received: reloading agents.env");
                    // Spawned: a reload waits for the writer, and stop signals must
                    // still be handled meanwhile. It logs its own outcome.
                    let reloader = reloader.clone();
                    actix_rt::spawn(async move { let _ = reloader.reload().await; });
                    continue;
                }
            };
            if stopping {
                // In durable mode this loses nothing answered: answers waited for
                // their commit. In fast mode, answered writes still queued are lost.
                tracing::warn!(
                    signal = name,
                    "second stop signal: exiting now; queued writes may not be flushed"
                );
                std::process::exit(128 + number);
            }
            stopping = true;
            tracing::info!(
                signal = name,
                "stopping: finishing requests in flight, then flushing queued writes \
                 (send it again to exit at once)"
            );
            // Spawned: this loop must go on listening for a second signal.
            let (server, before) = (server.clone(), before_stop.take());
            actix_rt::spawn(async move {
                if let Some(before) = before {
                    before().await;
                }
                server.stop(true).await
            });
        }
    });
    Ok(())
}
