//! The parts of Sigstore's X.509 profile the chain check leaves out. sigstore-verify's path
//! check (webpki) holds the signing certificate to the code-signing extended key usage and
//! refuses a CA as the leaf, but reads no key usage, and takes each certificate authority of a
//! trust root as an anchor whatever it says of itself. As sigstore-python asks: the signing
//! certificate's key usage allows `digitalSignature`; every certificate of a trust root's
//! authority chains is a CA — basic constraints critical and `CA:TRUE`, key usage
//! `keyCertSign`.

use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};

/// Refuses a signing certificate (DER) whose key usage does not allow signatures; the reason.
pub fn check_leaf(der: &[u8]) -> Result<(), String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("cannot be read: {e}"))?;
    match key_usage(&cert)? {
        None => Err(
            "has no key usage extension (a Sigstore signing certificate allows digitalSignature)"
                .into(),
        ),
        Some(usage) if !usage.0.contains(KeyUsages::DigitalSignature) => {
            Err("has a key usage without digitalSignature: it may not sign".into())
        }
        Some(_) => Ok(()),
    }
}

/// Refuses a certificate authority's certificate (DER) that is not a CA; the reason.
pub fn check_authority(der: &[u8]) -> Result<(), String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("cannot be read: {e}"))?;
    let constraints: Option<(bool, BasicConstraints)> = cert
        .tbs_certificate
        .get()
        .map_err(|e| format!("has basic constraints that cannot be read: {e}"))?;
    match constraints {
        None => return Err("has no basic constraints: it is not a CA".into()),
        Some((_, bc)) if !bc.ca => return Err("says CA:FALSE: it is not a CA".into()),
        Some((false, _)) => {
            return Err("has basic constraints not marked critical, as a CA's must be".into());
        }
        Some(_) => {}
    }
    match key_usage(&cert)? {
        None => Err("has no key usage extension (a CA's allows keyCertSign)".into()),
        Some(usage) if !usage.0.contains(KeyUsages::KeyCertSign) => {
            Err("has a key usage without keyCertSign: it may not sign certificates".into())
        }
        Some(_) => Ok(()),
    }
}

fn key_usage(cert: &Certificate) -> Result<Option<KeyUsage>, String> {
    let usage: Option<(bool, KeyUsage)> = cert
        .tbs_certificate
        .get()
        .map_err(|e| format!("has a key usage that cannot be read: {e}"))?;
    Ok(usage.map(|(_, u)| u))
}
