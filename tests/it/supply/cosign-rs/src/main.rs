//! `pkg-test-cosign-rs keygen DIR`: a P-256 key pair, DIR/cosign.key and DIR/cosign.pub.
//! `pkg-test-cosign-rs sign KEY HOST/REPO@DIGEST USER PASSWORD`: sigstore-rs signs the manifest
//! and pushes the signature to the `sha256-<hex>.sig` tag over plain HTTP, as cosign 2 does
//! (no transparency log: there is none on 127.0.0.1).
//! `pkg-test-cosign-rs verify PUB HOST/REPO@DIGEST USER PASSWORD`: sigstore-rs's own verdict,
//! exit 0 when a signature by PUB is found, 1 when not.
use std::process::ExitCode;

use sigstore::cosign::constraint::PrivateKeySigner;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{Constraint, CosignCapabilities, SignatureLayer};
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use zeroize::Zeroizing;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn client() -> Result<sigstore::cosign::Client> {
    let config = ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    };
    Ok(sigstore::cosign::ClientBuilder::default()
        .with_oci_client_config(config)
        .build()?)
}

async fn run(args: &[String]) -> Result<bool> {
    let scheme = SigningScheme::ECDSA_P256_SHA256_ASN1;
    match args {
        [cmd, dir] if cmd == "keygen" => {
            let pair = scheme.create_signer()?.to_sigstore_keypair()?;
            std::fs::write(
                format!("{dir}/cosign.key"),
                pair.private_key_to_pem()?.as_bytes(),
            )?;
            std::fs::write(format!("{dir}/cosign.pub"), pair.public_key_to_pem()?)?;
            Ok(true)
        }
        [cmd, key, image, user, password] if cmd == "sign" => {
            let image: OciReference = image.parse()?;
            let auth = Auth::Basic(user.clone(), password.clone());
            let mut client = client()?;
            let (sig_image, digest) = client.triangulate(&image, &auth).await?;
            let mut layer = SignatureLayer::new_unsigned(&image, &digest)?;
            let key = Zeroizing::new(std::fs::read(key)?);
            PrivateKeySigner::new_with_raw(key, Zeroizing::new(Vec::new()), &scheme)?
                .add_constraint(&mut layer)?;
            client
                .push_signature(None, &auth, &sig_image, vec![layer])
                .await?;
            Ok(true)
        }
        [cmd, public, image, user, password] if cmd == "verify" => {
            let image: OciReference = image.parse()?;
            let auth = Auth::Basic(user.clone(), password.clone());
            let mut client = client()?;
            let layers = client.trusted_signature_layers(&auth, &image).await?;
            let constraints: VerificationConstraintVec = vec![Box::new(PublicKeyVerifier::new(
                &std::fs::read(public)?,
                &scheme,
            )?)];
            Ok(sigstore::cosign::verify_constraints(&layers, constraints.iter()).is_ok())
        }
        _ => Err(
            "usage: keygen DIR | sign KEY REF USER PASSWORD | verify PUB REF USER PASSWORD".into(),
        ),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pkg-test-cosign-rs: {e}");
            ExitCode::from(2)
        }
    }
}
