//! The main log's filter, changeable while the server runs (`log_level` in
//! config.yaml, applied by a reload). The subscriber's reload handle has a type
//! that depends on the log format; it is kept here behind one function.

use std::sync::OnceLock;
use tracing::level_filters::LevelFilter;

type Setter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static SETTER: OnceLock<Setter> = OnceLock::new();

/// Always added: the webhook client's debug lines name the URL it posts to, and a
/// webhook URL is often itself a secret.
const CAPS: &str = "ureq=warn";

/// `filter` with [`CAPS`] after it.
fn capped(filter: &str) -> String {
    format!("{filter},{CAPS}")
}

/// The filter at start: `RUST_LOG` if set, else `log_level`, else `info`.
pub(crate) fn initial(log_level: Option<&str>) -> tracing_subscriber::EnvFilter {
    let wanted = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| tracing_subscriber::EnvFilter::try_new(f).is_ok())
        .or_else(|| log_level.map(str::to_string))
        .unwrap_or_else(|| "info".into());
    tracing_subscriber::EnvFilter::try_new(capped(&wanted))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(capped("info")))
}

/// Called once by the subscriber's set-up.
pub(crate) fn install(setter: Setter) {
    let _ = SETTER.set(setter);
}

/// Put `filter` in force (a reload); `None` (the key removed) means `info`.
pub(crate) fn set(filter: Option<&str>) -> Result<(), String> {
    let Some(set) = SETTER.get() else {
        return Err("logging is not set up".into());
    };
    set(&capped(filter.unwrap_or("info")))?;
    // Crates that log through `log` (actix, rustls) are filtered by its own
    // maximum first, fixed at start: follow the new filter's.
    log::set_max_level(match LevelFilter::current() {
        LevelFilter::OFF => log::LevelFilter::Off,
        LevelFilter::ERROR => log::LevelFilter::Error,
        LevelFilter::WARN => log::LevelFilter::Warn,
        LevelFilter::INFO => log::LevelFilter::Info,
        LevelFilter::DEBUG => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_client_is_always_capped() {
        assert_eq!(capped("debug"), "debug,ureq=warn");
        assert!(tracing_subscriber::EnvFilter::try_new(capped("agent_hub=debug,info")).is_ok());
    }
}
