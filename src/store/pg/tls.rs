//! TLS to PostgreSQL, with libpq's `sslmode` and `sslrootcert` URL parameters, on
//! rustls (pure Rust with ring, already in the tree through `ureq`: no OpenSSL to
//! install). The modes mean what they mean to libpq:
//! - `disable`: never TLS;
//! - `prefer` (the default, as in libpq): TLS if the server offers it, without
//!   checking its certificate (it only keeps passive listeners out);
//! - `require`: TLS or no connection, certificate not checked (libpq checks it
//!   against the CA when `sslrootcert` is given: so do we, as `verify-ca`);
//! - `verify-ca`: the server's certificate must chain to the CA;
//! - `verify-full`: and must name the host connected to.
//!
//! The CA of the verifying modes is `sslrootcert` (a PEM file), else
//! `~/.postgresql/root.crt`, as for libpq.
//!
//! A client certificate (for pg_hba.conf's `cert` method or `clientcert=`) is
//! `sslcert` and `sslkey` (PEM; the key unencrypted, readable by its owner only
//! as libpq demands), else `~/.postgresql/postgresql.crt` and `postgresql.key` when
//! that certificate exists, as for libpq.

use super::PgError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Result<SslMode, PgError> {
        Ok(match v {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries without TLS first; taken as `prefer`.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(PgError::Url(format!(
                    "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }

    /// What tokio-postgres is told: whether TLS is tried, and required.
    pub(crate) fn driver(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            SslMode::Disable => Driver::Disable,
            SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Driver::Require,
        }
    }
}

/// The TLS settings of a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub mode: SslMode,
    /// `sslrootcert`, if given.
    pub root_cert: Option<PathBuf>,
    /// `sslcert` and `sslkey`, if given: the client's certificate (chain) and key.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// `url` without its `sslmode`, `sslrootcert`, `sslcert` and `sslkey` parameters
/// (which tokio-postgres does not know all of), and what they say.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsSettings), PgError> {
    let mut settings = TlsSettings {
        mode: SslMode::Prefer,
        root_cert: None,
        cert: None,
        key: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), settings));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => settings.mode = SslMode::parse(&percent_decoded(value)?)?,
            "sslrootcert" => settings.root_cert = Some(PathBuf::from(percent_decoded(value)?)),
            "sslcert" => settings.cert = Some(PathBuf::from(percent_decoded(value)?)),
            "sslkey" => settings.key = Some(PathBuf::from(percent_decoded(value)?)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, settings))
}

fn percent_decoded(v: &str) -> Result<String, PgError> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PgError::Url(format!("bad percent-encoding in {v:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgError::Url(format!("{v:?} is not UTF-8 once decoded")))
}

/// The rustls client configuration for `settings`; `home` for libpq's default CA
/// file (`~/.postgresql/root.crt`).
pub(crate) fn client_config(
    settings: &TlsSettings,
    home: Option<&Path>,
) -> Result<ClientConfig, PgError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(e.to_string()))?;
    let default_root = home.map(|h| h.join(".postgresql/root.crt"));
    let root = settings
        .root_cert
        .clone()
        .or_else(|| default_root.filter(|p| p.is_file()));
    let verified = match (settings.mode, root) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => None,
        (SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull, Some(root)) => {
            Some(roots(&root)?)
        }
        (mode @ (SslMode::VerifyCa | SslMode::VerifyFull), None) => {
            return Err(PgError::Url(format!(
                "sslmode={}: the server's certificate is checked against a CA: name its PEM file with sslrootcert=FILE (or put it in ~/.postgresql/root.crt)",
                if mode == SslMode::VerifyCa { "verify-ca" } else { "verify-full" }
            )))
        }
    };
    let builder = match verified {
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider))),
        Some(roots) if settings.mode == SslMode::VerifyFull => {
            builder.with_root_certificates(roots)
        }
        Some(roots) => {
            let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| PgError::Tls(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
        }
    };
    match client_identity(settings, home)? {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            PgError::Tls(format!(
                "sslcert and sslkey: {e} (an X.509 v3 certificate and its own key are expected)"
            ))
        }),
    }
}

/// The client certificate chain and key to present, if any: `sslcert`/`sslkey`,
/// else libpq's defaults in `~/.postgresql` when that certificate exists.
#[allow(clippy::type_complexity)] // the pair rustls takes
fn client_identity(
    settings: &TlsSettings,
    home: Option<&Path>,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, PgError> {
    if settings.mode == SslMode::Disable {
        return Ok(None);
    }
    let dir = home.map(|h| h.join(".postgresql"));
    let cert = match &settings.cert {
        Some(c) => c.clone(),
        None => match dir.as_ref().map(|d| d.join("postgresql.crt")) {
            Some(c) if c.is_file() => c,
            _ => return Ok(None),
        },
    };
    let key = match (&settings.key, &dir) {
        (Some(k), _) => k.clone(),
        (None, Some(d)) => d.join("postgresql.key"),
        (None, None) => {
            return Err(PgError::Url(format!(
                "sslcert {}: name its key with sslkey=FILE",
                cert.display()
            )))
        }
    };
    match load_identity(&cert, &key) {
        Ok(identity) => Ok(Some(identity)),
        // Files named in the URL must work; libpq's default files are used only
        // where they do (libpq reads them for TLS connections only, and a hub
        // connecting without TLS must not refuse to start over them).
        Err(e) if settings.cert.is_none() && settings.key.is_none() => {
            tracing::warn!(error = %e, "~/.postgresql/postgresql.crt is not usable: connecting without a client certificate");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The certificate chain of PEM file `cert` and the private key of `key`.
#[allow(clippy::type_complexity)] // the pair rustls takes
fn load_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PgError> {
    // Before reading anything: a key others can read is refused as libpq does.
    private_key_readable_by_owner_only(key)?;
    let bad = |what: &str, path: &Path, why: String| {
        PgError::Tls(format!("{what} {}: {why}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("sslcert", cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("sslcert", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("sslcert", cert, "no certificate in it".into()));
    }
    let secret = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        bad(
            "sslkey",
            key,
            format!("{e} (a PEM private key, not encrypted, is expected)"),
        )
    })?;
    Ok((chain, secret))
}

/// libpq's rule for a client key file: owned by this user or root; no access for
/// group or others, or, for a file owned by root, read access for its group at
/// most.
fn private_key_readable_by_owner_only(path: &Path) -> Result<(), PgError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| PgError::Tls(format!("sslkey {}: {e}", path.display())))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(PgError::Tls(format!(
            "sslkey {}: must be owned by this user or root",
            path.display()
        )));
    }
    let mode = meta.mode() & 0o777;
    let forbidden = if meta.uid() == 0 { 0o037 } else { 0o077 };
    if mode & forbidden != 0 {
        return Err(PgError::Tls(format!(
            "sslkey {}: has mode {mode:03o}; a private key must be readable by its owner only (chmod 600)",
            path.display()
        )));
    }
    Ok(())
}

/// The pool's TLS connector: rustls's, given a placeholder name for a Unix socket.
/// tokio-postgres asks for a connector by host name before it sees that the host
/// is a socket (where PostgreSQL never offers TLS), and an empty name is no
/// server name: every socket connection would fail.
#[derive(Clone)]
pub(crate) struct Connector(tokio_postgres_rustls::MakeRustlsConnect);

impl Connector {
    pub(crate) fn new(config: ClientConfig) -> Connector {
        Connector(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for Connector
where
    tokio_postgres_rustls::MakeRustlsConnect: tokio_postgres::tls::MakeTlsConnect<S>,
{
    type Stream =
        <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Stream;
    type TlsConnect = <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
        S,
    >>::TlsConnect;
    type Error =
        <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<Self::TlsConnect, Self::Error> {
        let name = if host.is_empty() { "localhost" } else { host };
        self.0.make_tls_connect(name)
    }
}

/// The CA certificates of PEM file `path`.
fn roots(path: &Path) -> Result<RootCertStore, PgError> {
    let bad = |why: String| PgError::Tls(format!("sslrootcert {}: {why}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    let mut store = RootCertStore::empty();
    for c in certs {
        store.add(c).map_err(|e| bad(e.to_string()))?;
    }
    Ok(store)
}

/// `prefer` and `require` without a CA: the connection is encrypted, the server's
/// certificate is not checked (libpq's meaning). Handshake signatures still are.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain to the CA is checked, not the name the certificate is
/// for (rustls checks the name last, once the chain is good).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (rest, s) = split_url(
            "postgres://hub@db/hub?connect_timeout=3&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://hub@db/hub?connect_timeout=3");
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert.as_deref(), Some(Path::new("/etc/ca.pem")));
        let (rest, s) = split_url("postgres://hub@db/hub").unwrap();
        assert_eq!(
            (rest.as_str(), s.mode),
            ("postgres://hub@db/hub", SslMode::Prefer)
        );
        let (rest, s) = split_url("postgres://hub@db/hub?sslmode=disable").unwrap();
        assert_eq!(
            (rest.as_str(), s.mode),
            ("postgres://hub@db/hub", SslMode::Disable)
        );
        let (rest, s) =
            split_url("postgres://hub@db/hub?sslcert=%2Fc%2Fme.crt&sslkey=%2Fc%2Fme.key").unwrap();
        assert_eq!(rest, "postgres://hub@db/hub");
        assert_eq!(
            (s.cert.as_deref(), s.key.as_deref()),
            (Some(Path::new("/c/me.crt")), Some(Path::new("/c/me.key")))
        );
        assert!(split_url("postgres://hub@db/hub?sslmode=maybe").is_err());
        assert!(split_url("postgres://hub@db/hub?sslrootcert=%zz").is_err());
    }

    #[test]
    fn client_certificates_as_libpq_finds_them() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let settings = |cert: Option<PathBuf>, key: Option<PathBuf>| TlsSettings {
            mode: SslMode::Require,
            root_cert: None,
            cert,
            key,
        };
        // None given, none in ~/.postgresql: no client certificate.
        assert!(client_identity(&settings(None, None), Some(tmp.path()))
            .unwrap()
            .is_none());
        // A key others may read is refused before anything is read.
        let (cert, key) = (tmp.path().join("me.crt"), tmp.path().join("me.key"));
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = client_config(&settings(Some(cert.clone()), Some(key.clone())), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("chmod 600"), "{e}");
        // Readable by its owner only: then its contents are what is wrong.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = client_config(&settings(Some(cert.clone()), Some(key.clone())), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslcert") && e.contains("no certificate"), "{e}");
        // libpq's default files, not usable (the key missing): no certificate,
        // as a connection without TLS would have it; named in the URL: refused.
        let dir = tmp.path().join(".postgresql");
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(&cert, dir.join("postgresql.crt")).unwrap();
        assert!(client_identity(&settings(None, None), Some(tmp.path()))
            .unwrap()
            .is_none());
        let named = settings(Some(dir.join("postgresql.crt")), None);
        let e = client_config(&named, Some(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("postgresql.key"), "{e}");
        // Mode 0700 is libpq's "owner only" too.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = client_config(&settings(Some(cert.clone()), Some(key.clone())), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no certificate"), "{e}");
        // `disable` presents nothing.
        let off = TlsSettings {
            mode: SslMode::Disable,
            ..settings(None, None)
        };
        assert!(client_identity(&off, Some(tmp.path())).unwrap().is_none());
    }

    #[test]
    fn checking_modes_need_a_ca() {
        let tmp = tempfile::tempdir().unwrap();
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let s = TlsSettings {
                mode,
                root_cert: None,
                cert: None,
                key: None,
            };
            let e = client_config(&s, Some(tmp.path())).unwrap_err().to_string();
            assert!(e.contains("sslrootcert"), "{e}");
        }
        let missing = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some(tmp.path().join("none.pem")),
            cert: None,
            key: None,
        };
        assert!(client_config(&missing, None).is_err());
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            let s = TlsSettings {
                mode,
                root_cert: None,
                cert: None,
                key: None,
            };
            assert!(client_config(&s, Some(tmp.path())).is_ok());
        }
    }
}
