//! Which servers a delivery trusts: the system's root certificates plus the CA certificates stored with each LRS (`lrs add --ca-file`).

use super::BridgeError;
use rustls::RootCertStore;
use rustls_pki_types::pem::SectionKind;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The largest CA file `lrs add --ca-file` reads: far above any CA bundle, so a wrong path
/// (a disk image, a log) is refused instead of stored.
pub(crate) const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// The root certificates of this host (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`),
/// read once when the delivery worker starts. Unreadable entries are logged and skipped.
pub(crate) fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "cannot read a system root certificate");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!(
            ignored,
            "no system root certificates (install ca-certificates); only LRSs with --ca-file can be reached over https"
        );
    } else {
        tracing::info!(added, ignored, "system root certificates loaded");
    }
    roots
}

/// Checks the PEM text of an `lrs add --ca-file` and returns it normalised: only the
/// certificates, re-encoded, so nothing else in the file (comments, a key) is stored.
/// Refused: no certificate, a private key or any other PEM section, a section that is not
/// valid base64, and a certificate that cannot serve as a trust anchor.
pub(crate) fn check_ca_pem(text: &[u8]) -> Result<String, BridgeError> {
    let certificates = parse(text)?;
    let mut roots = RootCertStore::empty();
    for (index, certificate) in certificates.iter().enumerate() {
        roots.add(certificate.clone()).map_err(|error| {
            BridgeError::Certificates(format!(
                "certificate {} of the file is not a usable X.509 certificate: {error}",
                index + 1
            ))
        })?;
    }
    Ok(certificates.iter().map(encode).collect())
}

/// SHA-256 fingerprints (hex, as `openssl x509 -fingerprint -sha256` shows them without
/// colons) of the certificates in stored PEM text, for `lrs list`.
pub(crate) fn fingerprints(pem: &str) -> Vec<String> {
    parse(pem.as_bytes())
        .unwrap_or_default()
        .iter()
        .map(|certificate| hex::encode(Sha256::digest(certificate.as_ref())))
        .collect()
}

/// The TLS settings of one LRS: `system` roots plus its stored CA certificates, offering
/// HTTP/2 and HTTP/1.1 as the default client did.
pub(crate) fn client_config(
    system: &RootCertStore,
    ca_pem: Option<&str>,
) -> Result<rustls::ClientConfig, BridgeError> {
    let mut roots = system.clone();
    if let Some(pem) = ca_pem {
        for certificate in parse(pem.as_bytes())? {
            roots.add(certificate).map_err(|error| {
                BridgeError::Certificates(format!("a stored CA certificate: {error}"))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| BridgeError::Certificates(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificate problem somewhere in `error`'s causes, if the TLS handshake failed on one.
pub(crate) fn certificate_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::CertificateError> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(rustls::Error::InvalidCertificate(certificate)) =
            current.downcast_ref::<rustls::Error>()
        {
            return Some(certificate);
        }
        // An io::Error hides the error it wraps from source() (it answers that error's
        // source), and TLS connectors wrap the handshake error in one or two of them.
        cause = match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

fn parse(text: &[u8]) -> Result<Vec<CertificateDer<'static>>, BridgeError> {
    let mut reader = text;
    let mut certificates = Vec::new();
    loop {
        match rustls_pki_types::pem::from_buf(&mut reader) {
            Ok(Some((SectionKind::Certificate, der))) => certificates.push(der.into()),
            Ok(Some((
                SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey,
                _,
            ))) => {
                return Err(BridgeError::Certificates(
                    "the file holds a private key; give only the CA's certificate".into(),
                ))
            }
            Ok(Some((kind, _))) => {
                return Err(BridgeError::Certificates(format!(
                    "the file holds a {kind:?} section; give only CA certificates \
                     (-----BEGIN CERTIFICATE-----)"
                )))
            }
            Ok(None) => break,
            Err(error) => {
                return Err(BridgeError::Certificates(format!(
                    "the file is not valid PEM: {error}"
                )))
            }
        }
    }
    if certificates.is_empty() {
        return Err(BridgeError::Certificates(
            "the file holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certificates)
}

fn encode(certificate: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(certificate.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<usize, &str>) {
        match (check_ca_pem(input.as_bytes()), expected) {
            (Ok(pem), Ok(count)) => {
                assert_eq!(fingerprints(&pem).len(), count, "{input}");
                // Normalised text parses to the same certificates.
                assert_eq!(check_ca_pem(pem.as_bytes()).unwrap(), pem);
            }
            (Err(error), Err(wanted)) => {
                assert!(error.to_string().contains(wanted), "{input}: {error}")
            }
            (got, wanted) => panic!("{input}: got {got:?}, wanted {wanted:?}"),
        }
    }

    /// A self-signed CA certificate, made once with `openssl req -x509 -newkey ec
    /// -pkeyopt ec_paramgen_curve:P-256 -subj /CN=Test-CA -days 36500 -nodes`.
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBezCCASGgAwIBAgIUOh/8Dgo9DYgFRdWe1tq/UCz1zqwwCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHVGVzdC1DQTAgFw0yNjEyMDIwNjQwNThaGA8yMTI2MTEwODA2
NDA1OFowEjEQMA4GA1UEAwwHVGVzdC1DQTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABDK5440q8+Ul0pHpV0qDU8MPEtP53IVRefqf0fUGnK6yxkusuUvgTEKOIH/j
6q/QLEujoCub5hN2EjsAKkRNbR2jUzBRMB0GA1UdDgQWBBSogIPB4L9VkD1e0eKb
P6JvLDOTwzAfBgNVHSMEGDAWgBSogIPB4L9VkD1e0eKbP6JvLDOTwzAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIHC1z131FKbQMRHhJ6ECzfmcrXAi
kKAjb2MfnY9u6kHDAiEA5uTEbAgNuRxMqIfaOaL2ITP2vYIrBOpb6SWE3QKB7tw=
-----END CERTIFICATE-----
";

    #[test]
    fn ca_files_are_checked_at_lrs_add() {
        check(CA, Ok(1));
        check(&format!("a comment\n{CA}\n{CA}"), Ok(2));
        check("", Err("holds no PEM certificate"));
        check("just text\n", Err("holds no PEM certificate"));
        check(
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
            Err("not valid PEM"),
        );
        check(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            Err("certificate 1 of the file is not a usable X.509 certificate"),
        );
        check(
            &format!("{CA}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err("holds a private key"),
        );
        check("-----BEGIN CERTIFICATE-----\nAAAA\n", Err("not valid PEM"));
    }

    #[test]
    fn a_config_has_the_system_roots_and_the_stored_ones() {
        let stored = check_ca_pem(CA.as_bytes()).unwrap();
        let config = client_config(&RootCertStore::empty(), Some(&stored)).unwrap();
        assert_eq!(config.alpn_protocols.len(), 2);
        assert!(client_config(&RootCertStore::empty(), None).is_ok());
    }

    #[test]
    fn a_certificate_problem_is_found_inside_nested_io_errors() {
        let rustls_error =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let nested = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls_error,
        ));
        assert_eq!(
            certificate_error(&nested),
            Some(&rustls::CertificateError::UnknownIssuer)
        );
        assert_eq!(certificate_error(&std::io::Error::other("refused")), None);
    }
}
