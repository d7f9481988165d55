//! From a `postgres://` URL to a pool of connections. The password never comes from
//! the URL, which shows in `ps`, shell history and logs: it is PGPASSWORD, else the
//! matching line of the PGPASSFILE (by default `~/.pgpass`), as libpq reads them.
//! The environment is passed in as a function, so that tests need not change the
//! process's own. TLS follows libpq's `sslmode` and `sslrootcert` (see [`super::tls`]).

use super::{passfile, PgError};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::config::Host;
use tokio_postgres::Config;

/// How long an unanswered connection is kept: TCP's user timeout and keepalive
/// idle time of the pool's connections.
const DEAD_PEER: Duration = Duration::from_secs(30);

/// The size and patience of a pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Connections at most.
    pub max_size: usize,
    /// How long opening one connection may take (unless the URL sets
    /// `connect_timeout`).
    pub connect_timeout: Duration,
    /// How long a caller waits for a free connection before "unavailable".
    pub wait_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 8,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
        }
    }
}

/// Where and how to connect: the driver's settings and the TLS client's.
#[derive(Debug, Clone)]
pub struct Target {
    /// The driver's: host, port, database, user, password, `sslmode`.
    pub config: Config,
    /// The TLS client's: how the server's certificate is checked.
    pub tls: rustls::ClientConfig,
}

/// The connection settings of `url` (`postgres://USER@HOST:PORT/DB?PARAMS`, with
/// libpq's parameters such as `host=/socket/dir`, `sslmode` and `sslrootcert`),
/// with the password looked up in `env`.
pub fn config_from_url(
    url: &str,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Target, PgError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(PgError::Url(
            "expected postgres://USER@HOST:PORT/DATABASE".into(),
        ));
    }
    let (url, tls) = super::tls::split_url(url)?;
    let mut config: Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PgError::Url(e.to_string()))?;
    config.ssl_mode(tls.mode.driver());
    if config.get_password().is_some() {
        return Err(PgError::PasswordInUrl);
    }
    if config.get_hosts().is_empty() {
        return Err(PgError::Url("no host".into()));
    }
    if config.get_user().is_none() {
        let user = env("PGUSER").filter(|u| !u.is_empty());
        config.user(user.ok_or(PgError::NoUser)?.to_string_lossy());
    }
    if config.get_application_name().is_none() {
        // Names our sessions in pg_stat_activity.
        config.application_name("agent-hub");
    }
    if let Some(password) = password(&config, env)? {
        config.password(password);
    }
    let home = env("HOME").map(PathBuf::from);
    let tls = super::tls::client_config(&tls, home.as_deref())?;
    Ok(Target { config, tls })
}

/// PGPASSWORD if set and not empty (libpq's rule), else the password file's line
/// for this host, port, database and user, if any.
fn password(
    config: &Config,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Option<Vec<u8>>, PgError> {
    if let Some(p) = env("PGPASSWORD").filter(|p| !p.is_empty()) {
        return Ok(Some(p.into_vec()));
    }
    let (path, named) = match env("PGPASSFILE").filter(|p| !p.is_empty()) {
        Some(p) => (PathBuf::from(p), true),
        None => match env("HOME") {
            Some(home) => (PathBuf::from(home).join(".pgpass"), false),
            None => return Ok(None),
        },
    };
    // A default ~/.pgpass that does not exist is normal; a named one is a mistake.
    if !named && !path.exists() {
        return Ok(None);
    }
    let user = config.get_user().unwrap_or_default();
    let (host, socket) = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => (h.clone(), false),
        Some(Host::Unix(p)) => (p.display().to_string(), true),
        None => return Ok(None),
    };
    let target = passfile::Target {
        host: &host,
        socket,
        port: config.get_ports().first().copied().unwrap_or(5432),
        dbname: config.get_dbname().unwrap_or(user),
        user,
    };
    let text = passfile::read(&path)?;
    Ok(passfile::find(&text, &target))
}

/// A pool over `config`. Connections are made on first use, so this does not
/// touch the server.
pub fn pool(target: Target, options: &PoolOptions) -> Result<Pool, PgError> {
    let Target { mut config, tls } = target;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    // A database host gone silent (not closed) is noticed in about 30 s instead of
    // the kernel's defaults (2 h of keepalive, ~15 min of retransmits), unless the
    // URL says otherwise.
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(DEAD_PEER);
    }
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(DEAD_PEER);
    }
    // Fast: a checked-out connection is only tested for being closed, not with a
    // query (one round trip per checkout); a dead one fails its first statement,
    // which callers handle as any other database error.
    let manager = Manager::from_config(
        config,
        super::tls::Connector::new(tls),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(options.max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(options.wait_timeout))
        .create_timeout(Some(options.connect_timeout))
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_password_in_the_url_is_refused() {
        let none = env_of(&[]);
        for url in [
            "postgres://hub:secret@db/hub",
            "postgres://hub@db/hub?password=secret",
        ] {
            assert!(matches!(
                config_from_url(url, &none),
                Err(PgError::PasswordInUrl)
            ));
        }
    }

    #[test]
    fn urls_are_checked() {
        let none = env_of(&[]);
        assert!(matches!(
            config_from_url("host=db user=hub", &none),
            Err(PgError::Url(_))
        ));
        assert!(matches!(
            config_from_url("postgres://hub@db/hub?sslmode=verify-full", &none),
            Err(PgError::Url(_))
        ));
        assert!(matches!(
            config_from_url("postgres://db/hub", &none),
            Err(PgError::NoUser)
        ));
        let c = config_from_url("postgres://db/hub", &env_of(&[("PGUSER", "u")]))
            .unwrap()
            .config;
        assert_eq!(c.get_user(), Some("u"));
        assert_eq!(c.get_application_name(), Some("agent-hub"));
    }

    #[test]
    fn password_from_the_environment() {
        let env = env_of(&[("PGPASSWORD", "s3cret"), ("PGPASSFILE", "/nonexistent")]);
        let c = config_from_url("postgres://hub@db:5433/hub", &env)
            .unwrap()
            .config;
        assert_eq!(c.get_password(), Some(&b"s3cret"[..]));
    }

    #[test]
    fn password_from_a_passfile() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        passfile::write_private(&file, "db:5433:hub:hub:right\n*:*:*:*:wrong\n");
        let path = file.to_str().unwrap();
        // An empty PGPASSWORD counts as unset, as in libpq.
        let env = env_of(&[("PGPASSWORD", ""), ("PGPASSFILE", path)]);
        let c = config_from_url("postgres://hub@db:5433/hub", &env)
            .unwrap()
            .config;
        assert_eq!(c.get_password(), Some(&b"right"[..]));
        let c = config_from_url("postgres://hub@db/hub", &env)
            .unwrap()
            .config;
        assert_eq!(c.get_password(), Some(&b"wrong"[..]));

        // A named file that is missing is an error; a default one that is missing is not.
        let missing = env_of(&[("PGPASSFILE", "/nonexistent/pgpass")]);
        assert!(matches!(
            config_from_url("postgres://hub@db/hub", &missing),
            Err(PgError::Passfile { .. })
        ));
        let home = env_of(&[("HOME", "/nonexistent")]);
        let c = config_from_url("postgres://hub@db/hub", &home)
            .unwrap()
            .config;
        assert_eq!(c.get_password(), None);
    }
}
