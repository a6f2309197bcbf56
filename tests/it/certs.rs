//! Certificates for the tests that speak TLS, made with the openssl CLI on the spot.

use std::path::Path;
use std::process::Command;

/// In `dir`: a CA (`ca.pem`, `ca.key`); signed by it, a server certificate for
/// 127.0.0.1 (`server.pem`, `server.key`) and a client certificate (`cert.pem`,
/// `key.pem`, the names Docker's `cert_path` expects).
pub fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=salve test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    signed(
        dir,
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        ("server.key", "server.pem"),
    );
    signed(
        dir,
        "/CN=salve",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        ("key.pem", "cert.pem"),
    );
}

/// A key and a certificate for `subject` with `extensions`, signed by the CA in `dir`.
pub fn signed(dir: &Path, subject: &str, extensions: &str, (key, cert): (&str, &str)) {
    let request = format!("{cert}.csr");
    let ext = format!("{cert}.ext");
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", key, "-out",
            &request,
        ],
    );
    std::fs::write(dir.join(&ext), extensions).expect("write the extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &request,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext,
            "-out",
            cert,
        ],
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("this test needs the openssl command to make certificates");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
