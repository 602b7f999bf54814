//! TLS with rustls: system roots plus the profile's CA file and grid CA directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ctadata_core::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// Where trust comes from, and an optional client identity.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// Extra trusted CAs (PEM bundle).
    pub ca_file: Option<PathBuf>,
    /// A hashed CA directory (`<hash>.0` files; CRLs `.r0` are not read).
    pub ca_dir: Option<PathBuf>,
    /// Skip verification entirely (the CLI warns every time).
    pub insecure: bool,
    /// Also trust the system's roots (default true).
    pub system_roots: bool,
    /// A client certificate chain and key (X.509 backend).
    pub client_identity: Option<Arc<dyn ResolvesClientCert>>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_file", &self.ca_file)
            .field("ca_dir", &self.ca_dir)
            .field("insecure", &self.insecure)
            .field("system_roots", &self.system_roots)
            .field("client_identity", &self.client_identity.is_some())
            .finish()
    }
}

impl TlsOptions {
    /// Trust the system roots and nothing else.
    pub fn system() -> Self {
        Self {
            system_roots: true,
            ..Default::default()
        }
    }

    /// Words for error messages: which trust sources were used.
    pub fn describe_trust(&self) -> String {
        let mut parts = Vec::new();
        if self.system_roots {
            parts.push("the system CA store".to_string());
        }
        if let Some(f) = &self.ca_file {
            parts.push(format!("ca_file {}", f.display()));
        }
        if let Some(d) = &self.ca_dir {
            parts.push(format!("ca_dir {}", d.display()));
        }
        if parts.is_empty() {
            "no trusted CAs".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The crypto provider used everywhere (ring: small, fast to build).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::config(
                format!("the {what} {} does not exist", path.display()),
                "fix the path in the profile (or the flag), or remove it",
            )
        } else {
            Error::local("read", path, e)
        }
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            Error::config(
                format!("the {what} {} is not valid PEM: {e}", path.display()),
                "give a PEM file of CA certificates",
            )
        })?;
    Ok(certs)
}

/// Is `name` a hashed CA file name (`0a1b2c3d.0`)?
fn is_hashed_name(name: &str) -> bool {
    let Some((hash, n)) = name.split_once('.') else {
        return false;
    };
    hash.len() == 8
        && hash.chars().all(|c| c.is_ascii_hexdigit())
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit())
}

/// The root store: system roots plus `ca_file` plus the `*.N` files of `ca_dir`.
pub fn root_store(opts: &TlsOptions) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if opts.system_roots {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::debug!("system CA store: {e}");
        }
        let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
        tracing::debug!(added, ignored, "system roots");
    }
    if let Some(f) = &opts.ca_file {
        let certs = read_pem_certs(f, "CA file")?;
        if certs.is_empty() {
            return Err(Error::config(
                format!("the CA file {} holds no certificate", f.display()),
                "give a PEM bundle of CA certificates",
            ));
        }
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::config(
                format!("no usable CA certificate in {}", f.display()),
                "check the file",
            ));
        }
    }
    if let Some(d) = &opts.ca_dir {
        let rd = std::fs::read_dir(d).map_err(|e| {
            Error::config(
                format!("the CA directory {} cannot be read: {e}", d.display()),
                "fix ca_dir in the profile or X509_CERT_DIR, or remove it",
            )
        })?;
        let mut n = 0;
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().to_string();
            if !is_hashed_name(&name) {
                continue; // .r0 CRLs, .signing_policy, .namespaces and others are not read
            }
            match read_pem_certs(&ent.path(), "CA certificate") {
                Ok(certs) => n += roots.add_parsable_certificates(certs).0,
                Err(e) => tracing::warn!("skipping {}: {e}", ent.path().display()),
            }
        }
        tracing::debug!(added = n, dir = %d.display(), "CA directory");
    }
    Ok(roots)
}

/// A rustls client configuration from the options (HTTP/1.1 only, as dCache doors speak).
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal("the TLS setup failed").with_source(e))?;
    let builder = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        let roots = root_store(opts)?;
        if roots.is_empty() {
            return Err(Error::config(
                "no trusted CA certificates were found (system store empty, no ca_file, no ca_dir)",
                "install ca-certificates, or set ca_file / ca_dir in the profile",
            ));
        }
        builder.with_root_certificates(roots)
    };
    let mut cfg = match &opts.client_identity {
        Some(resolver) => builder.with_client_cert_resolver(resolver.clone()),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Accepts any server certificate (`--insecure`).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names() {
        assert!(is_hashed_name("0a1b2c3d.0"));
        assert!(is_hashed_name("DEADBEEF.12"));
        assert!(!is_hashed_name("0a1b2c3d.r0"));
        assert!(!is_hashed_name("0a1b2c3d.signing_policy"));
        assert!(!is_hashed_name("ca.pem"));
    }

    #[test]
    fn missing_trust_sources_are_config_errors() {
        let o = TlsOptions {
            ca_dir: Some("/nonexistent/certificates".into()),
            ..Default::default()
        };
        let e = client_config(&o).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/certificates"), "{e}");
        let o = TlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = client_config(&o).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.pem");
        std::fs::write(&f, "not a certificate").unwrap();
        let e = client_config(&TlsOptions {
            ca_file: Some(f),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("bad.pem"), "{e}");
    }
}
