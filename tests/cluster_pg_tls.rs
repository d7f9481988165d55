//! TLS to PostgreSQL (issue 16; `src/store/pg/tls.rs`): a server of its own that
//! takes TCP connections over TLS only (`hostssl` in pg_hba.conf), with a
//! certificate for 127.0.0.1 signed by a CA made here with `openssl`. Each of
//! libpq's `sslmode`s connects or is refused as libpq's would, the Unix socket
//! still works, a database that requires a client certificate (pg_hba.conf's
//! `cert`) takes `sslcert`/`sslkey` and refuses a connection without, and a hub
//! serves with `sslmode=verify-full`. Skips, saying why, where PostgreSQL or openssl is
//! missing.

mod common;
use agent_hub::pg::{self, PoolOptions};
use common::postgres::{start_node, until_ready, Postgres};
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `openssl` with `args` in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME.crt`, `NAME.key`) in `dir`.
fn ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    dir.join(format!("{name}.crt"))
}

/// The server's certificate for 127.0.0.1 (only), signed by CA `ca`, and its key,
/// in the cluster's data directory.
fn server_certificate(pg: &Postgres, work: &Path, ca: &str) {
    openssl(
        work,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=agent-hub-test-db",
        ],
    );
    std::fs::write(work.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        work,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let data = pg.data_dir();
    std::fs::copy(work.join(format!("{ca}.crt")), work.join("root.crt")).expect("root.crt");
    for f in ["server.crt", "server.key", "root.crt"] {
        let to = data.join(f);
        std::fs::copy(work.join(f), &to).expect(f);
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        pg.give(&to);
    }
    let conf = data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
    text.push_str(
        "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'root.crt'\n",
    );
    std::fs::write(&conf, text).expect("postgresql.conf");
    // TCP over TLS only; the Unix socket (createdb, pg_ctl) as before. Database
    // `certs` takes a client certificate naming the user, and no password.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all scram-sha-256\nhostssl certs all 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
    )
    .expect("pg_hba.conf");
}

/// A client certificate for user `user` signed by CA `ca` (`NAME.crt`) and its key
/// (`NAME.key`, mode 0600), in `work`: their paths.
fn client_certificate(work: &Path, ca: &str, user: &str, name: &str) -> (String, String) {
    std::fs::write(work.join("client-ext.cnf"), "extendedKeyUsage=clientAuth\n").expect("ext");
    let (crt, key, csr) = (
        format!("{name}.crt"),
        format!("{name}.key"),
        format!("{name}.csr"),
    );
    openssl(
        work,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={user}"),
        ],
    );
    openssl(
        work,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            // An X.509 v3 certificate (with an extension), as rustls requires.
            "-extfile",
            "client-ext.cnf",
        ],
    );
    let key = work.join(key);
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    (
        work.join(crt).display().to_string(),
        key.display().to_string(),
    )
}

/// Whether a connection with `url` works, and is encrypted: `Ok(true)`, or why not.
async fn connect(server: &Postgres, url: &str) -> Result<bool, String> {
    let target = pg::config_from_url(url, &server.env()).map_err(|e| e.to_string())?;
    let options = PoolOptions {
        max_size: 1,
        ..PoolOptions::default()
    };
    let pool = pg::pool(target, &options).map_err(|e| e.to_string())?;
    let c = pool
        .get()
        .await
        .map_err(|e| pg::PgError::from(e).to_string())?;
    let row = c
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn tls_modes_connect_as_libpq_would() {
    if Command::new("openssl").arg("version").output().is_err() {
        println!("skipped: openssl not found (it makes the test's certificates)");
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let (ca, other) = (ca(work.path(), "test-ca"), ca(work.path(), "other-ca"));
    let started = Postgres::start_with(|pg| server_certificate(pg, work.path(), "test-ca"));
    let server = match started {
        Ok(s) => s,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    server.create_databases(&["tls"]);
    let ip = server.url("tls");
    // The same server by name: the certificate is for 127.0.0.1 only.
    let named = ip.replace("127.0.0.1", "localhost") + "?hostaddr=127.0.0.1";
    let with = |url: &str, params: &str| {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{params}")
    };
    let (ca, other) = (ca.display().to_string(), other.display().to_string());
    let ok = [
        // libpq's default: TLS when offered.
        (ip.clone(), "prefer"),
        (with(&ip, "sslmode=require"), "require"),
        (
            with(&ip, &format!("sslmode=verify-full&sslrootcert={ca}")),
            "verify-full",
        ),
        (
            with(&named, &format!("sslmode=verify-ca&sslrootcert={ca}")),
            "verify-ca by name",
        ),
    ];
    for (url, what) in &ok {
        assert_eq!(connect(&server, url).await, Ok(true), "{what}: {url}");
    }
    // The Unix socket (never TLS), with the default mode and with `disable`.
    let socket = server.socket_url("tls");
    assert_eq!(connect(&server, &socket).await, Ok(false), "{socket}");
    let plain = with(&socket, "sslmode=disable");
    assert_eq!(connect(&server, &plain).await, Ok(false), "{plain}");
    let refused = [
        (with(&ip, "sslmode=disable"), "no encryption", "disable"),
        (
            with(&ip, &format!("sslmode=verify-full&sslrootcert={other}")),
            "certificate",
            "another CA",
        ),
        (
            with(&ip, &format!("sslmode=require&sslrootcert={other}")),
            "certificate",
            "require with another CA (checked, as libpq does)",
        ),
        (
            with(&named, &format!("sslmode=verify-full&sslrootcert={ca}")),
            "certificate",
            "verify-full by a name the certificate lacks",
        ),
        (
            with(&ip, "sslmode=verify-full"),
            "sslrootcert",
            "verify-full without a CA",
        ),
    ];
    for (url, why, what) in &refused {
        let r = connect(&server, url).await;
        let e = r.expect_err(what);
        assert!(e.contains(why), "{what}: {e}");
    }

    // Client certificates: database `certs` takes the one naming user hub, with
    // any sslmode that encrypts, and nothing else.
    server.create_databases(&["certs"]);
    let (cert, key) = client_certificate(work.path(), "test-ca", "hub", "hub");
    let certs = server.url("certs");
    let me = format!("sslcert={cert}&sslkey={key}");
    for mode in ["prefer", "require", "verify-full"] {
        let url = with(&certs, &format!("sslmode={mode}&sslrootcert={ca}&{me}"));
        assert_eq!(connect(&server, &url).await, Ok(true), "{url}");
    }
    let without = with(&certs, "sslmode=require");
    let e = connect(&server, &without)
        .await
        .expect_err("no certificate");
    assert!(e.contains("certificate"), "{e}");
    let (cert2, key2) = client_certificate(work.path(), "test-ca", "somebody-else", "else");
    let e = connect(
        &server,
        &with(
            &certs,
            &format!("sslmode=require&sslcert={cert2}&sslkey={key2}"),
        ),
    )
    .await
    .expect_err("a certificate for another user");
    assert!(e.contains("certificate"), "{e}");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let e = connect(&server, &with(&certs, &me))
        .await
        .expect_err("a key others can read");
    assert!(e.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");

    // A hub on it, checking the server's certificate.
    let url = with(&ip, &format!("sslmode=verify-full&sslrootcert={ca}"));
    let hub = start_node(&server, config_dir(&["alice"], ""), &url, "tls-1");
    until_ready(&hub, Duration::from_secs(30));
    let alice = hub.modern("alice");
    let r = alice.send(
        "tools/call",
        json!({"name": "agent_heartbeat", "arguments": {}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}
