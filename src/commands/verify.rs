//! `pkg verify REFERENCE|NAME`: the image's Sigstore bundles, found as referrers and verified
//! offline (`verify/`); says who signed what, exit 0, or why nothing fits, exit 1.

use std::io::Write as _;

use anyhow::Context as _;

use crate::cli::VerifyArgs;
use crate::digest::Digest;
use crate::registry::Repository;
use crate::verify::{self, Policy, Signer};

use super::{BadInput, Ctx, print_json};

/// `pkg verify --json`.
#[derive(serde::Serialize)]
struct Verified {
    schema: u32,
    repository: String,
    digest: String,
    signatures: Vec<verify::Signed>,
}

pub fn run(ctx: &Ctx, args: &VerifyArgs) -> anyhow::Result<()> {
    let signer = match (
        &args.key,
        &args.certificate_identity,
        &args.certificate_oidc_issuer,
    ) {
        (Some(path), _, _) => Signer::Key {
            pem: verify::read_regular(path, verify::MAX_KEY_BYTES)
                .map_err(|e| BadInput(format!("--key {}: {e}", path.display())))?,
            path: path.clone(),
        },
        (None, _, _) if args.certificate_github_workflow_repository.is_some() => Signer::GitHub {
            repository: args
                .certificate_github_workflow_repository
                .clone()
                .unwrap_or_default(),
            workflow: None,
        },
        (None, Some(identity), issuer) => Signer::Identity {
            identity: identity.clone(),
            issuer: issuer.clone(),
        },
        _ => {
            return Err(BadInput(
                "say whose signature to accept, one of: --certificate-identity ID --certificate-oidc-issuer URL (a keyless signature: cosign's, a workflow's); --certificate-github-workflow-repository OWNER/REPO (GitHub's attestations, `gh attestation`); --key FILE (a cosign public key). docs/verify.md has examples".into(),
            )
            .into());
        }
    };
    if let Some(root) = &args.trusted_root
        && !root.is_file()
    {
        let why = if root.exists() {
            "not a regular file (pkg reads trust material only from files)"
        } else {
            "no such file"
        };
        return Err(BadInput(format!("--trusted-root {}: {why}", root.display())).into());
    }
    let policy = Policy {
        signer,
        predicate_types: Vec::new(),
        trust_root: args.trusted_root.clone(),
        insecure_ignore_tlog: args.insecure_ignore_tlog,
    };
    let client = ctx.client();
    let (repo, digest) = target(ctx, &client, &args.reference)?;
    let found = verify::discover::bundles(&client, &repo, &digest)
        .with_context(|| format!("looking for the signatures of {repo}@{digest}"))?;
    let signed = match verify::check(&found, &digest, &policy) {
        Ok(signed) => signed,
        Err(verify::VerifyError::NoneMeets(why)) => anyhow::bail!(
            "no signature of {repo}@{digest} meets the policy ({}); {why}",
            policy.describe()
        ),
        Err(e) => return Err(e.into()),
    };
    if args.json {
        return print_json(&Verified {
            schema: super::JSON_SCHEMA,
            repository: repo.to_string(),
            digest: digest.to_string(),
            signatures: signed,
        });
    }
    let mut out = std::io::stdout().lock();
    for s in &signed {
        writeln!(
            out,
            "Verified {repo}@{digest}: signed by {}{}{}{}",
            s.signer,
            s.issuer
                .as_ref()
                .map(|i| format!(" (issuer {i})"))
                .unwrap_or_default(),
            s.predicate_type
                .as_ref()
                .map(|p| format!(", predicate {p}"))
                .unwrap_or_default(),
            s.time
                .as_ref()
                .map(|t| format!(", logged {t}"))
                .unwrap_or_default(),
        )?;
    }
    Ok(())
}

/// The repository and manifest digest a reference (or an installed package) names.
fn target(
    ctx: &Ctx,
    client: &crate::registry::Client,
    arg: &str,
) -> anyhow::Result<(Repository, Digest)> {
    if crate::references::is_reference(arg) {
        let reference = crate::references::parse(arg)?;
        let digest = match reference.digest {
            Some(d) => d,
            None => {
                client
                    .fetch_manifest(&reference.repository, &reference.tag)?
                    .digest
            }
        };
        return Ok((reference.repository, digest));
    }
    crate::cli::package_name(arg).map_err(BadInput)?;
    let version = ctx.state().require_installed(arg)?;
    let receipt = crate::cellar::receipt::Receipt::read(&ctx.cellar.keg(arg, &version))?;
    let repo: Repository = receipt.repository.parse().with_context(|| {
        format!(
            "{arg} was installed from {}, not a registry",
            receipt.repository
        )
    })?;
    Ok((repo, receipt.manifest_digest))
}
