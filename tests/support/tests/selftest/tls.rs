//! The test CA, checked with openssl.

use ctadata_testsupport::TestCa;
use std::process::Command;

#[test]
fn files_verify_with_openssl() {
    let ca = TestCa::new();
    for name in ["ca.pem", "server.pem", "server.key"] {
        assert!(ca.dir().join(name).is_file(), "{name}");
    }
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(ca.ca_cert_path())
        .arg(ca.server_cert_path())
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "{out:?}");
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(ca.server_cert_path())
        .output()
        .unwrap();
    let san = String::from_utf8_lossy(&text.stdout);
    for want in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:127.0.0.2",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(san.contains(want), "{san}");
    }
    // A client certificate signed by the same CA.
    let client = ca.client_cert("Test User");
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("user.pem");
    std::fs::write(&cert, &client.cert_pem).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(ca.ca_cert_path())
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(client.key_pem.contains("PRIVATE KEY"));
    // A rustls config can be built.
    let _ = ca.server_config();
}
