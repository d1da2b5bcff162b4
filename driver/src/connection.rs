//! How the driver connects: a libpq connection string or URL, TLS settings
//! included, or libpq's environment variables, turned into a connection or
//! a pool over TLS as libpq would negotiate it.
//!
//! tokio-postgres parses `sslmode` only as `disable`, `prefer` or `require`
//! and refuses `sslrootcert`; this module takes both out of the text first
//! and gives them libpq's meaning, with rustls (ring) doing the TLS:
//!
//! | `sslmode` | encrypted | the server's certificate |
//! |---|---|---|
//! | `disable` | never | – |
//! | `prefer` (default) | when the server offers TLS | not checked, unless there is a root certificate (below) |
//! | `require` | always | not checked, unless there is a root certificate |
//! | `verify-ca` | always | signed by the root certificate |
//! | `verify-full` | always | signed by it and issued for the host name |
//!
//! `sslrootcert` is a PEM file of root certificates, or `system` for the
//! operating system's store; without it, `~/.postgresql/root.crt` when that
//! exists. As in libpq, a root certificate makes `prefer` and `require`
//! check the chain like `verify-ca`.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::Socket;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS connector every driver connection uses.
pub type Tls = MakeRustlsConnect;

/// A connection's background half, as `tokio_postgres::connect` returns it
/// with [`Tls`].
pub type PgConnection = tokio_postgres::Connection<Socket, <Tls as MakeTlsConnect<Socket>>::Stream>;

/// libpq's `sslmode`, all but `allow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS always; the certificate is checked only against a given root.
    Require,
    /// TLS always, with a certificate signed by the root certificate.
    VerifyCa,
    /// TLS always, with a certificate signed by the root and issued for the host.
    VerifyFull,
}

impl SslMode {
    /// The setting's libpq spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl std::str::FromStr for SslMode {
    type Err = ConnectionError;

    fn from_str(value: &str) -> Result<Self, ConnectionError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(ConnectionError::BadSetting {
                    setting: "sslmode",
                    value: other.to_string(),
                    reason: "expected disable, prefer, require, verify-ca or verify-full".into(),
                })
            }
        })
    }
}

/// Where the root certificates that vouch for the server come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of one or more certificates.
    File(PathBuf),
    /// The operating system's store (`sslrootcert=system`).
    System,
}

/// Why connection settings could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// A setting has a value it cannot have.
    #[error("{setting} {value:?}: {reason}")]
    BadSetting {
        /// The setting (`sslmode`, `PGPORT`, …).
        setting: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The text is not a connection string or URL tokio-postgres accepts.
    #[error("not a PostgreSQL connection string or URL: {0}")]
    Unparsable(String),
    /// The root certificates could not be read.
    #[error("root certificate {0}")]
    RootCert(String),
}

/// Where and how to connect: tokio-postgres' settings plus libpq's TLS ones.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    config: tokio_postgres::Config,
    ssl_mode: SslMode,
    root_cert: Option<RootCert>,
}

impl ConnectionSettings {
    /// Settings from a libpq connection string (`host=… sslmode=…`) or a
    /// `postgresql://` URL (`?sslmode=…&sslrootcert=…`).
    pub fn parse(text: &str) -> Result<Self, ConnectionError> {
        let (rest, tls) = take_tls_settings(text)?;
        let config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| ConnectionError::Unparsable(e.to_string()))?;
        Self::with_tls(config, tls)
    }

    /// Settings from libpq's environment variables, as `lookup` (for example
    /// `std::env::var(name).ok()`) reads them: `PGHOST`, `PGHOSTADDR`,
    /// `PGPORT`, `PGDATABASE`, `PGUSER`, `PGPASSWORD`, `PGSSLMODE`,
    /// `PGSSLROOTCERT`, `PGAPPNAME`, `PGCONNECT_TIMEOUT`. What is not set
    /// gets libpq's default: the socket folder `/var/run/postgresql` (or
    /// `localhost` where it does not exist), port 5432, the user `USER`, a
    /// database named after the user.
    pub fn from_libpq_env(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConnectionError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let mut config = tokio_postgres::Config::new();
        match get("PGHOST") {
            Some(hosts) => hosts.split(',').for_each(|h| {
                config.host(h);
            }),
            None if std::path::Path::new("/var/run/postgresql").is_dir() => {
                config.host_path("/var/run/postgresql");
            }
            None => {
                config.host("localhost");
            }
        }
        if let Some(addrs) = get("PGHOSTADDR") {
            for addr in addrs.split(',') {
                config.hostaddr(addr.parse().map_err(|_| ConnectionError::BadSetting {
                    setting: "PGHOSTADDR",
                    value: addr.to_string(),
                    reason: "not an IP address".into(),
                })?);
            }
        }
        if let Some(ports) = get("PGPORT") {
            for port in ports.split(',') {
                config.port(port.parse().map_err(|_| ConnectionError::BadSetting {
                    setting: "PGPORT",
                    value: port.to_string(),
                    reason: "not a port number".into(),
                })?);
            }
        }
        let user = get("PGUSER")
            .or_else(|| get("USER"))
            .or_else(|| get("LOGNAME"))
            .unwrap_or_else(|| "postgres".into());
        config.dbname(get("PGDATABASE").as_deref().unwrap_or(&user));
        config.user(&user);
        if let Some(password) = get("PGPASSWORD") {
            config.password(password);
        }
        if let Some(name) = get("PGAPPNAME") {
            config.application_name(&name);
        }
        if let Some(seconds) = get("PGCONNECT_TIMEOUT") {
            let parsed: u64 = seconds.parse().map_err(|_| ConnectionError::BadSetting {
                setting: "PGCONNECT_TIMEOUT",
                value: seconds.clone(),
                reason: "not a number of seconds".into(),
            })?;
            if parsed > 0 {
                config.connect_timeout(std::time::Duration::from_secs(parsed));
            }
        }
        let tls = TlsText {
            ssl_mode: get("PGSSLMODE"),
            root_cert: get("PGSSLROOTCERT"),
        };
        Self::with_tls(config, tls)
    }

    fn with_tls(mut config: tokio_postgres::Config, tls: TlsText) -> Result<Self, ConnectionError> {
        let ssl_mode = match tls.ssl_mode {
            Some(text) => text.parse()?,
            None => SslMode::Prefer,
        };
        let root_cert = tls.root_cert.map(|text| match text.as_str() {
            "system" => RootCert::System,
            _ => RootCert::File(PathBuf::from(text)),
        });
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(ConnectionSettings {
            config,
            ssl_mode,
            root_cert,
        })
    }

    /// tokio-postgres' half of the settings.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The `sslmode` asked for.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// Where the server is, as an error message should name it: `host:port`
    /// (every one tried), database, user and sslmode.
    pub fn describe(&self) -> String {
        let hosts = self.config.get_hosts();
        let ports = self.config.get_ports();
        let places: Vec<String> = hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match host {
                    Host::Tcp(name) => format!("{name}:{port}"),
                    #[cfg(unix)]
                    Host::Unix(path) => format!("socket {}/.s.PGSQL.{port}", path.display()),
                }
            })
            .collect();
        let places = if places.is_empty() {
            let addrs = self.config.get_hostaddrs();
            let port = ports.first().copied().unwrap_or(5432);
            addrs
                .iter()
                .map(|a| format!("{a}:{port}"))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            places.join(", ")
        };
        format!(
            "{places} (database {}, user {}, sslmode {})",
            self.config.get_dbname().unwrap_or("?"),
            self.config.get_user().unwrap_or("?"),
            self.ssl_mode.as_str()
        )
    }

    /// The TLS connector for these settings: rustls with the certificate
    /// checks the `sslmode` asks for.
    pub fn tls(&self) -> Result<Tls, ConnectionError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let root_cert = match (&self.root_cert, self.ssl_mode) {
            (_, SslMode::Disable) => None,
            (Some(root), _) => Some(root.clone()),
            // libpq's default root certificate file, used when it exists
            // (and required by the verify modes).
            (None, mode) => {
                let default = std::env::var_os("HOME")
                    .map(|home| PathBuf::from(home).join(".postgresql/root.crt"));
                match default {
                    Some(path) if path.is_file() => Some(RootCert::File(path)),
                    path if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                        return Err(ConnectionError::RootCert(format!(
                            "needed for sslmode {}: give sslrootcert=FILE (or system), or put one at {}",
                            mode.as_str(),
                            path.map_or("~/.postgresql/root.crt".into(), |p| p.display().to_string())
                        )))
                    }
                    _ => None,
                }
            }
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConnectionError::RootCert(e.to_string()))?;
        // As libpq: a root certificate, when there is one, is checked in
        // every mode that may encrypt; the host name only by verify-full.
        let check = match (self.ssl_mode, root_cert) {
            (SslMode::Disable, _) | (SslMode::Prefer | SslMode::Require, None) => Check::Nothing,
            (SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, Some(root)) => {
                Check::Chain(root)
            }
            (SslMode::VerifyFull, Some(root)) => Check::ChainAndName(root),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => unreachable!("returned above"),
        };
        let config = match check {
            Check::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCheck(provider)))
                .with_no_client_auth(),
            Check::Chain(root) => {
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots(&root)?), provider)
                        .build()
                        .map_err(|e| ConnectionError::RootCert(e.to_string()))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                    .with_no_client_auth()
            }
            Check::ChainAndName(root) => builder
                .with_root_certificates(roots(&root)?)
                .with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }

    /// One connection, over TLS as the settings ask; spawn or poll the
    /// returned [`PgConnection`].
    pub async fn connect(&self) -> Result<(tokio_postgres::Client, PgConnection), ConnectError> {
        let tls = self.tls()?;
        Ok(self.config.connect(tls).await?)
    }

    /// A deadpool pool of at most `max_size` connections.
    pub fn pool(&self, max_size: usize) -> Result<Pool, ConnectionError> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(max_size)
            .build()
            .map_err(|e| ConnectionError::Unparsable(e.to_string()))
    }
}

/// Why [`ConnectionSettings::connect`] failed: the settings, or the server.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The settings cannot be used (a root certificate that cannot be read).
    #[error(transparent)]
    Settings(#[from] ConnectionError),
    /// The server could not be reached or refused.
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// The TLS settings found in a connection string, as text.
#[derive(Default)]
struct TlsText {
    ssl_mode: Option<String>,
    root_cert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of a connection string or URL.
fn take_tls_settings(text: &str) -> Result<(String, TlsText), ConnectionError> {
    let mut tls = TlsText::default();
    let is_url = text.starts_with("postgres://") || text.starts_with("postgresql://");
    if is_url {
        let Some((base, query)) = text.split_once('?') else {
            return Ok((text.to_string(), tls));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => tls.ssl_mode = Some(percent_decode(value)?),
                "sslrootcert" => tls.root_cert = Some(percent_decode(value)?),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, tls));
    }
    let mut kept = Vec::new();
    for (key, value) in key_values(text)? {
        match key.as_str() {
            "sslmode" => tls.ssl_mode = Some(value),
            "sslrootcert" => tls.root_cert = Some(value),
            _ => kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )),
        }
    }
    Ok((kept.join(" "), tls))
}

/// The `key=value` pairs of a libpq key/value connection string (values may
/// be single-quoted, with `\'` and `\\` escapes).
fn key_values(text: &str) -> Result<Vec<(String, String)>, ConnectionError> {
    let bad = |reason: &str| ConnectionError::Unparsable(format!("{reason} in {text:?}"));
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(bad(&format!("no `=` after {key:?}")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().ok_or_else(|| bad("a trailing `\\`"))?),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(bad("an unterminated quote")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next().ok_or_else(|| bad("a trailing `\\`"))?);
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

fn percent_decode(text: &str) -> Result<String, ConnectionError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return Err(ConnectionError::Unparsable(format!(
                    "bad percent-encoding in {text:?}"
                )));
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConnectionError::Unparsable(format!("{text:?} is not UTF-8")))
}

/// What a connection checks of the server's certificate.
enum Check {
    Nothing,
    Chain(RootCert),
    ChainAndName(RootCert),
}

fn roots(root: &RootCert) -> Result<RootCertStore, ConnectionError> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|e| ConnectionError::RootCert(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(ConnectionError::RootCert(format!(
                    "{}: no PEM certificate in it",
                    path.display()
                )));
            }
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| ConnectionError::RootCert(format!("{}: {e}", path.display())))?;
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(ConnectionError::RootCert(
                    "system: the operating system's store has no certificate".into(),
                ));
            }
        }
    }
    Ok(store)
}

/// `prefer` and `require` without a root: encrypted, the certificate
/// unchecked (what libpq does), its signature on the handshake still checked.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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

/// `verify-ca`: the chain up to a trusted root is checked, the host name not.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
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

impl fmt::Display for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_tls_settings_are_taken_out_and_the_rest_kept() {
        let s = ConnectionSettings::parse(
            "postgresql://u@db.example:6432/erp?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(s.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        assert_eq!(s.config().get_application_name(), Some("x"));
        assert_eq!(s.config().get_dbname(), Some("erp"));
        assert_eq!(
            s.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(
            s.describe(),
            "db.example:6432 (database erp, user u, sslmode verify-full)"
        );
    }

    #[test]
    fn key_value_tls_settings_are_taken_out_with_quotes() {
        let s = ConnectionSettings::parse(
            "host=localhost port=5 user='o\\'brien' sslmode = verify-ca sslrootcert='/a b/ca.pem' dbname=x",
        )
        .unwrap();
        assert_eq!(s.ssl_mode(), SslMode::VerifyCa);
        assert_eq!(s.root_cert, Some(RootCert::File("/a b/ca.pem".into())));
        assert_eq!(s.config().get_user(), Some("o'brien"));
        assert_eq!(s.config().get_ports(), &[5]);
    }

    #[test]
    fn defaults_and_system_roots() {
        let s = ConnectionSettings::parse("postgresql://u@h/d").unwrap();
        assert_eq!(s.ssl_mode(), SslMode::Prefer);
        let s =
            ConnectionSettings::parse("host=h user=u sslmode=require sslrootcert=system").unwrap();
        assert_eq!(s.root_cert, Some(RootCert::System));
    }

    #[test]
    fn a_bad_sslmode_is_named() {
        let error = ConnectionSettings::parse("postgresql://u@h/d?sslmode=allow").unwrap_err();
        assert!(error.to_string().contains("sslmode \"allow\""), "{error}");
        let error = ConnectionSettings::parse("host=h sslmode").unwrap_err();
        assert!(matches!(error, ConnectionError::Unparsable(_)), "{error}");
    }

    #[test]
    fn libpq_variables() {
        let env = |name: &str| {
            match name {
                "PGHOST" => Some("db1,db2"),
                "PGPORT" => Some("7000,7001"),
                "PGUSER" => Some("app"),
                "PGPASSWORD" => Some("secret"),
                "PGSSLMODE" => Some("require"),
                _ => None,
            }
            .map(String::from)
        };
        let s = ConnectionSettings::from_libpq_env(env).unwrap();
        assert_eq!(
            s.config().get_dbname(),
            Some("app"),
            "the database defaults to the user"
        );
        assert_eq!(s.config().get_password(), Some(&b"secret"[..]));
        assert_eq!(s.ssl_mode(), SslMode::Require);
        assert_eq!(
            s.describe(),
            "db1:7000, db2:7001 (database app, user app, sslmode require)"
        );
        let error = ConnectionSettings::from_libpq_env(|n| (n == "PGPORT").then(|| "x".into()))
            .unwrap_err();
        assert!(error.to_string().contains("PGPORT \"x\""), "{error}");
    }

    #[test]
    fn verify_modes_need_a_readable_root() {
        let s = ConnectionSettings::parse(
            "host=h user=u sslmode=verify-full sslrootcert=/nonexistent/ca.pem",
        )
        .unwrap();
        let error = s.tls().err().expect("no such file");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
