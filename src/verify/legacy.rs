//! Legacy cosign signatures: the `sha256-<hex>.sig` tag whose simple-signing layers are the
//! signed payload and whose annotations carry the signature, the certificate and chain, and
//! Rekor's signed entry timestamp. Read into a record pkg keeps (versioned by its media type);
//! one with a Rekor entry becomes a v0.1 Sigstore bundle over the payload, as cosign reads it,
//! and is verified as any bundle; one with no log entry (`cosign sign --tlog-upload=false`,
//! sigstore-rs) is a bare key signature, accepted only when the policy says
//! `insecure_ignore_tlog`. Either way the payload must name the manifest pkg installs.

use base64::Engine as _;

use crate::digest::Digest;

use super::VerifyError;

/// A simple-signing layer of a cosign `.sig` manifest.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// What pkg keeps of one (in the signature cache, beside Sigstore bundles).
pub const RECORD_MEDIA_TYPE: &str = "application/vnd.pkg.cosign-signature.v1+json";

const SIGNATURE: &str = "dev.cosignproject.cosign/signature";
const CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
const CHAIN: &str = "dev.sigstore.cosign/chain";
const BUNDLE: &str = "dev.sigstore.cosign/bundle";
const TIMESTAMP: &str = "dev.sigstore.cosign/rfc3161timestamp";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// One legacy signature, as found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Record {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The simple-signing payload, base64.
    pub payload: String,
    /// The signature over the payload, base64.
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Rekor's bundle annotation: `{SignedEntryTimestamp, Payload{body, integratedTime, logIndex, logID}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor: Option<serde_json::Value>,
    /// `{SignedRFC3161Timestamp}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc3161: Option<serde_json::Value>,
}

impl Record {
    /// A `.sig` layer's payload and annotations; `None` when it carries no signature.
    pub fn from_layer(payload: &[u8], annotations: &serde_json::Value) -> Option<Record> {
        let text = |k: &str| annotations.get(k)?.as_str().map(str::to_owned);
        let json = |k: &str| serde_json::from_str(&text(k)?).ok();
        Some(Record {
            media_type: RECORD_MEDIA_TYPE.into(),
            payload: b64().encode(payload),
            signature: text(SIGNATURE)?,
            certificate: text(CERTIFICATE).filter(|c| !c.is_empty()),
            chain: text(CHAIN).filter(|c| !c.is_empty()),
            rekor: json(BUNDLE),
            rfc3161: json(TIMESTAMP),
        })
    }

    /// A kept record (its media type says so), or `None` for anything else (a Sigstore bundle).
    pub fn parse(bytes: &[u8]) -> Option<Record> {
        let record: Record = serde_json::from_slice(bytes).ok()?;
        (record.media_type == RECORD_MEDIA_TYPE).then_some(record)
    }

    pub fn payload(&self) -> Result<Vec<u8>, VerifyError> {
        b64()
            .decode(&self.payload)
            .map_err(|e| VerifyError::Bundle(format!("legacy payload: {e}")))
    }

    pub fn signature_bytes(&self) -> Result<Vec<u8>, VerifyError> {
        b64()
            .decode(self.signature.trim())
            .map_err(|e| VerifyError::Bundle(format!("legacy signature: {e}")))
    }

    /// Whether a transparency log (or timestamp authority) vouches for it.
    pub fn logged(&self) -> bool {
        self.rekor.is_some() || self.rfc3161.is_some()
    }

    /// The payload must be a cosign image signature of `subject`.
    pub fn check_subject(&self, subject: &Digest) -> Result<(), VerifyError> {
        let doc: serde_json::Value = serde_json::from_slice(&self.payload()?)
            .map_err(|e| VerifyError::Bundle(format!("legacy payload: {e}")))?;
        let kind = doc.pointer("/critical/type").and_then(|t| t.as_str());
        if kind != Some("cosign container image signature") {
            return Err(VerifyError::Rejected(format!(
                "the payload's type is {}, not a cosign container image signature",
                kind.unwrap_or("missing")
            )));
        }
        let named = doc
            .pointer("/critical/image/docker-manifest-digest")
            .and_then(|d| d.as_str())
            .unwrap_or("nothing");
        if named != subject.to_string() {
            return Err(VerifyError::Rejected(format!(
                "the signature's payload names {named}, not {subject}"
            )));
        }
        Ok(())
    }

    /// The Sigstore bundle cosign reads from a logged signature: a v0.1 bundle (a Rekor entry
    /// with its signed entry timestamp, no inclusion proof) or, with only an RFC 3161
    /// timestamp, a v0.3 bundle; the message signature is over the payload.
    pub fn to_bundle(&self) -> Result<String, VerifyError> {
        let bad = |what: &str| VerifyError::Bundle(format!("legacy signature: {what}"));
        let payload = self.payload()?;
        let digest = Digest::of_bytes(&payload);
        let digest_bytes = hex_bytes(digest.hex()).ok_or_else(|| bad("digest"))?;
        let certs: Vec<String> = [&self.certificate, &self.chain]
            .into_iter()
            .flatten()
            .flat_map(|pem| pem_blocks(pem))
            .collect();
        let mut material = serde_json::Map::new();
        let mut media_type = "application/vnd.dev.sigstore.bundle+json;version=0.3";
        let mut entries = Vec::new();
        if let Some(rekor) = &self.rekor {
            media_type = "application/vnd.dev.sigstore.bundle+json;version=0.1";
            let p = rekor
                .get("Payload")
                .ok_or_else(|| bad("Rekor bundle without Payload"))?;
            let body = p
                .get("body")
                .and_then(|b| b.as_str())
                .ok_or_else(|| bad("Rekor body"))?;
            let decoded: serde_json::Value = b64()
                .decode(body)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| bad("Rekor body is not JSON"))?;
            let log_id = p
                .get("logID")
                .and_then(|l| l.as_str())
                .and_then(hex_bytes)
                .ok_or_else(|| bad("Rekor logID"))?;
            entries.push(serde_json::json!({
                "logIndex": p.get("logIndex").and_then(|i| i.as_i64()).ok_or_else(|| bad("Rekor logIndex"))?.to_string(),
                "logId": {"keyId": b64().encode(log_id)},
                "kindVersion": {
                    "kind": decoded.get("kind").and_then(|k| k.as_str()).unwrap_or_default(),
                    "version": decoded.get("apiVersion").and_then(|k| k.as_str()).unwrap_or_default(),
                },
                "integratedTime": p.get("integratedTime").and_then(|i| i.as_i64()).ok_or_else(|| bad("Rekor integratedTime"))?.to_string(),
                "inclusionPromise": {"signedEntryTimestamp": rekor.get("SignedEntryTimestamp").and_then(|s| s.as_str()).ok_or_else(|| bad("SignedEntryTimestamp"))?},
                "canonicalizedBody": body,
            }));
        }
        match (certs.is_empty(), media_type.ends_with("0.1")) {
            (true, _) => {
                material.insert("publicKey".into(), serde_json::json!({"hint": ""}));
            }
            (false, true) => {
                let chain: Vec<_> = certs
                    .iter()
                    .map(|c| serde_json::json!({"rawBytes": c}))
                    .collect();
                material.insert(
                    "x509CertificateChain".into(),
                    serde_json::json!({ "certificates": chain }),
                );
            }
            (false, false) => {
                material.insert(
                    "certificate".into(),
                    serde_json::json!({"rawBytes": certs[0]}),
                );
            }
        }
        material.insert("tlogEntries".into(), serde_json::Value::Array(entries));
        if let Some(ts) = self
            .rfc3161
            .as_ref()
            .and_then(|t| t.get("SignedRFC3161Timestamp"))
        {
            material.insert(
                "timestampVerificationData".into(),
                serde_json::json!({"rfc3161Timestamps": [{"signedTimestamp": ts}]}),
            );
        }
        let bundle = serde_json::json!({
            "mediaType": media_type,
            "verificationMaterial": material,
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": b64().encode(digest_bytes)},
                "signature": self.signature.trim(),
            },
        });
        Ok(bundle.to_string())
    }
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    hex.len()
        .is_multiple_of(2)
        .then(|| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten()
}

/// The base64 DER of each PEM certificate block in `pem`.
fn pem_blocks(pem: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        if line.starts_with("-----BEGIN") {
            current = Some(String::new());
        } else if line.starts_with("-----END") {
            out.extend(current.take());
        } else if let Some(c) = current.as_mut() {
            c.push_str(line);
        }
    }
    out
}
