//! The main log's filter, changeable while the server runs (`log_level` in
//! config.yaml, applied by a reload). The subscriber's reload handle has a type
//! that depends on the log format; it is kept here behind one function.

use std::sync::OnceLock;

type Setter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static SETTER: OnceLock<Setter> = OnceLock::new();

/// The filter at start: `RUST_LOG` if set, else `log_level`, else `info`.
pub(crate) fn initial(log_level: Option<&str>) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .ok()
        .or_else(|| log_level.and_then(|l| tracing_subscriber::EnvFilter::try_new(l).ok()))
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"))
}

/// Called once by the subscriber's set-up.
pub(crate) fn install(setter: Setter) {
    let _ = SETTER.set(setter);
}

/// Put `filter` in force (a reload); `None` (the key removed) means `info`.
pub(crate) fn set(filter: Option<&str>) -> Result<(), String> {
    let filter = filter.unwrap_or("info");
    match SETTER.get() {
        Some(set) => set(filter),
        None => Err("logging is not set up".into()),
    }
}
