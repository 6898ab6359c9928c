//! HTTPS for the emulator: a CA and a server certificate for 127.0.0.1 and localhost, made once
//! per data dir and reused on restart, so a client told to trust `DATA_DIR/tls/ca.pem` keeps
//! trusting the emulator across restarts. Clients verify the chain as they do Azure's; nothing
//! needs verification turned off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::keys::{dir_with_mode, write_file};

pub struct Tls {
    /// The CA certificate clients trust (0644).
    pub ca_pem: PathBuf,
    pub config: Arc<rustls::ServerConfig>,
}

const CA: &str = "ca.pem";
const CERT: &str = "server.pem";
const KEY: &str = "server.key";

/// Loads `DATA_DIR/tls`, creating the CA and server certificate on first use.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Tls> {
    let dir = data_dir.join("tls");
    // The CA certificate is public (other users' clients must read it); the key is 0600.
    dir_with_mode(&dir, 0o755)?;
    let (ca, cert, key) = (dir.join(CA), dir.join(CERT), dir.join(KEY));
    if !(ca.exists() && cert.exists() && key.exists()) {
        create(&ca, &cert, &key)?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate", cert.display()))?;
    let private = PrivateKeyDer::from_pem_file(&key)
        .with_context(|| format!("{} is not a PEM private key", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .context("the emulator's TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem: ca,
        config: Arc::new(config),
    })
}

fn create(ca_path: &Path, cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("rescue emulator CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // Python 3.13's default context is X509-strict: a CA needs key usage and key identifiers.
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".to_string()])?;
    server
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    server.distinguished_name = name("127.0.0.1");
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;

    // A set left incomplete by a crash lacks a file and is made anew on the next start.
    write_file(key_path, server_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert_path, server_cert.pem().as_bytes(), 0o644)?;
    write_file(ca_path, ca_cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn name(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn
}
