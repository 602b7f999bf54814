//! A throw-away certificate authority for TLS tests, made with `rcgen`.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Names the server certificate is valid for.
pub const SERVER_NAMES: [&str; 4] = ["localhost", "127.0.0.1", "127.0.0.2", "::1"];

/// A test CA and a server certificate it signed, also written to a directory as `ca.pem`,
/// `server.pem` and `server.key`. Cheap to clone.
#[derive(Clone)]
pub struct TestCa {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    ca_der: Vec<u8>,
    server_pem: String,
    server_der: Vec<u8>,
    server_key_pem: String,
    server_key_der: Vec<u8>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// A CA-signed end-entity certificate for a client (user), with its key, in PEM.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The certificate in PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8) in PEM.
    pub key_pem: String,
}

fn rc(e: rcgen::Error) -> std::io::Error {
    std::io::Error::other(format!("rcgen: {e}"))
}

impl TestCa {
    /// Makes a CA and server certificate, written to a fresh temporary directory that lives as
    /// long as the last clone of this value.
    pub fn new() -> TestCa {
        let tempdir = tempfile::Builder::new()
            .prefix("ctadata-testca-")
            .tempdir()
            .expect("create a temporary directory for the test CA");
        let dir = tempdir.path().to_path_buf();
        Self::build(dir, Some(tempdir)).expect("create the test CA")
    }

    /// Makes a CA and server certificate, written to `dir` (created if missing).
    pub fn new_in(dir: &Path) -> std::io::Result<TestCa> {
        std::fs::create_dir_all(dir)?;
        Self::build(dir.to_path_buf(), None)
    }

    fn build(dir: PathBuf, tempdir: Option<tempfile::TempDir>) -> std::io::Result<TestCa> {
        let ca_key = KeyPair::generate().map_err(rc)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "cta-data tests");
        dn.push(DnType::CommonName, "cta-data test CA");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(rc)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(rc)?;
        let mut params = CertificateParams::new(
            SERVER_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .map_err(rc)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let server_cert = params.signed_by(&server_key, &issuer).map_err(rc)?;

        let inner = Inner {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().to_vec(),
            server_pem: server_cert.pem(),
            server_der: server_cert.der().to_vec(),
            server_key_pem: server_key.serialize_pem(),
            server_key_der: server_key.serialize_der(),
            issuer,
            dir,
            _tempdir: tempdir,
        };
        std::fs::write(inner.dir.join("ca.pem"), &inner.ca_pem)?;
        std::fs::write(inner.dir.join("server.pem"), &inner.server_pem)?;
        std::fs::write(inner.dir.join("server.key"), &inner.server_key_pem)?;
        Ok(TestCa {
            inner: Arc::new(inner),
        })
    }

    /// The directory holding `ca.pem`, `server.pem` and `server.key`.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Path of the CA certificate (`ca.pem`), what a client trusts.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.inner.dir.join("ca.pem")
    }

    /// Path of the server certificate (`server.pem`).
    pub fn server_cert_path(&self) -> PathBuf {
        self.inner.dir.join("server.pem")
    }

    /// Path of the server private key (`server.key`, PKCS#8 PEM).
    pub fn server_key_path(&self) -> PathBuf {
        self.inner.dir.join("server.key")
    }

    /// The CA certificate in PEM.
    pub fn ca_pem(&self) -> &str {
        &self.inner.ca_pem
    }

    /// The CA certificate in DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.inner.ca_der
    }

    /// The server certificate in PEM.
    pub fn server_cert_pem(&self) -> &str {
        &self.inner.server_pem
    }

    /// A rustls server configuration (ring provider, HTTP/1.1 ALPN) with the server certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = vec![CertificateDer::from(self.inner.server_der.clone())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.inner.server_key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the test server certificate is valid");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Issues a client (user) certificate with the given common name, signed by this CA.
    pub fn client_cert(&self, common_name: &str) -> ClientCert {
        let key = KeyPair::generate().expect("generate a key");
        let mut params =
            CertificateParams::new(Vec::<String>::new()).expect("empty SAN list is valid");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "cta-data tests");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.inner.issuer)
            .expect("sign the client certificate");
        ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}
