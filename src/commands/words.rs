//! The English of the engine's events: what each [`Event`] says on the terminal, and whether it
//! is a status line, a warning or an error. The engine hands over data; the words live here.

use crate::report::{Arrival, Event, Switch, TagMove, UndoStep, count, human_bytes, one_line};
use crate::version::Shown;

/// How an event is shown.
#[derive(Debug, PartialEq, Eq)]
pub enum Said {
    /// A step of progress: a right-aligned action word, then the message.
    Status(&'static str, String),
    /// Something the user should know that did not stop the command.
    Warning(String),
    /// Part of the command failed while the rest went on (shown even under `--quiet`).
    Error(String),
}

use Said::{Error, Status, Warning};

/// The words for `event`.
/// Long: one arm per event; the enum is the length.
pub fn words(event: &Event<'_>) -> Said {
    match *event {
        Event::WaitingForPrefix { prefix } => Status(
            "Waiting",
            format!("for another pkg to finish with {}", prefix.display()),
        ),
        Event::WaitingForCache { cache } => Status(
            "Waiting",
            format!(
                "for other pkg runs to finish with the cache {}",
                cache.display()
            ),
        ),
        Event::EndpointResting {
            endpoint,
            registry,
            cause,
            tries,
            instead,
            seconds,
        } => Warning(format!(
            "{endpoint} for {registry}: {cause} ({}); using {instead} instead for the next {seconds} s",
            count(tries as usize, "try")
        )),
        Event::Fetching {
            name,
            version,
            repository,
            tag,
        } => Status(
            "Fetching",
            format!(
                "{name} {} ({})",
                Shown(version),
                crate::references::shown(&repository, tag)
            ),
        ),
        Event::Verified {
            name,
            version,
            digest,
            signer,
            predicate_type,
        } => Status(
            "Verified",
            format!(
                "{name} {version} ({digest}): signed by {signer}{}",
                predicate_type.map(|p| format!(", {p}")).unwrap_or_default()
            ),
        ),
        Event::PinnedManifest {
            repository,
            tag,
            pinned,
        } => Status(
            "Pinned",
            format!("{repository}:{tag} points elsewhere now; installing {pinned} as pinned"),
        ),
        Event::Refetching { error } => {
            Warning(format!("{error}\nFetching it once more from the start."))
        }
        Event::CachedManifest {
            error,
            digest,
            repository,
            tag,
        } => Warning(format!(
            "{error}; using the cached manifest {digest} that {repository}:{tag} had when last fetched"
        )),
        Event::KeptTreeChanged { error } => Warning(error.to_string()),
        Event::KeptTreeNotStored { name, error } => Warning(format!(
            "could not keep the unpacked tree of {name} for warm installs: {error}"
        )),
        Event::LayoutSizeDiffers {
            index,
            digest,
            said,
            size,
        } => Warning(format!(
            "{}: the entry for {digest} says {said} bytes but the blob has {size}; its digest verifies, so pkg uses it (the digest is what identifies content). Fix the size in index.json",
            index.display()
        )),
        Event::Relocated {
            files,
            name,
            prefix,
        } => Status(
            "Relocated",
            format!(
                "{files} file(s) of the {name} bottle to {}",
                prefix.display()
            ),
        ),
        Event::XattrsSkipped { repository, count } => Warning(format!(
            "{repository}: {count} extended attribute(s) of the package could not be set here (the filesystem refused them); the files are installed without them"
        )),
        Event::ShippedMetadata { repository, dir } => Warning(format!(
            "{repository}: the package ships its own `{dir}`; pkg replaces it with its receipt"
        )),
        Event::RecordNotWritten { error } => Warning(error.to_string()),
        Event::Upgrading { name, from, to } => Status(
            "Upgrading",
            format!(
                "{name} {} -> {}",
                from.map_or_else(String::new, crate::version::show),
                Shown(to)
            ),
        ),
        Event::TookOver { link, from, by } => Status(
            "Took over",
            format!(
                "{} from {from} (--overwrite; uninstalling {by} gives it back)",
                link.display()
            ),
        ),
        Event::Poured {
            ref how,
            name,
            version,
            files,
            bytes,
        } => poured(how, name, version, files, bytes),
        Event::Switched {
            name,
            version,
            was,
            how,
        } => {
            let note = match how {
                Switch::SameContent => " (the same content)",
                Switch::Downgrade => " (a downgrade)",
                Switch::Other => "",
            };
            Status(
                "Linked",
                format!("{name} {}, was {}{note}", Shown(version), Shown(was)),
            )
        }
        Event::Linked { name, version } => Status("Linked", format!("{name} {}", Shown(version))),
        Event::UndoFailed { ref step, error } => {
            let what = match *step {
                UndoStep::TakeOutKeg { name, version } => {
                    format!("taking out the new keg of {name} {}", Shown(version))
                }
                UndoStep::PutBackLinks { name } => format!("putting back the links of {name}"),
                UndoStep::GiveBackLinks { by } => {
                    format!("giving back the links {by} had taken over")
                }
                UndoStep::RemoveLoader { loader } => format!("removing {loader}"),
            };
            Warning(format!(
                "undoing the failed change: {what} failed: {}; `pkg doctor` shows what is left",
                one_line(error)
            ))
        }
        Event::Uninstalled { name, version } => {
            Status("Uninstalled", format!("{name} {}", Shown(version)))
        }
        Event::Removed {
            name,
            version,
            bytes,
        } => Status(
            "Removed",
            format!("{name} {} ({})", Shown(version), human_bytes(bytes)),
        ),
        Event::LeftUnlinked { error } => Error(one_line(error)),
        Event::ForgotReference { name } => Status(
            "Forgot",
            format!("the formula `pkg install REFERENCE` recorded for {name}"),
        ),
        Event::GaveBack {
            owner,
            version,
            taker,
        } => Status(
            "Linked",
            format!(
                "{owner} {} again (its links that {taker} had taken over)",
                Shown(version)
            ),
        ),
        Event::GiveBackFailed {
            owner,
            taker,
            error,
        } => Warning(format!(
            "{owner} could not get back the links {taker} had taken over: {error}; `pkg link {owner}` to retry"
        )),
        Event::LinkedNewest {
            name,
            version,
            links,
        } => Status(
            "Linked",
            format!(
                "{name} {} ({links} links; the newest remaining version)",
                Shown(version)
            ),
        ),
        Event::Bottling {
            name,
            version,
            platform,
            dir,
        } => Status(
            "Bottling",
            format!("{name} {version} ({platform}) from {}", dir.display()),
        ),
        Event::Bottled {
            file,
            entries,
            bytes,
            layout,
            tag,
        } => Status(
            "Bottled",
            format!(
                "{file} ({entries} entries, {} compressed) → {}:{tag}",
                human_bytes(bytes),
                layout.display()
            ),
        ),
        Event::FormulaUpdated { path, version } => {
            Status("Updated", format!("{} (version {version})", path.display()))
        }
        Event::Tagging {
            repository,
            tag,
            digest,
            index,
            was,
        } => Status(
            "Tagging",
            format!(
                "{repository}:{tag} → {}{digest}{}",
                if index { "index " } else { "" },
                was.map(|d| format!(" (was {d})")).unwrap_or_default()
            ),
        ),
        Event::BlobPresent { digest, repository } => {
            Status("Skipping", format!("{digest}: already in {repository}"))
        }
        Event::Mounted { digest, from } => Status("Mounted", format!("{digest} from {from}")),
        Event::MountFailed {
            digest,
            from,
            error,
        } => Warning(format!(
            "could not mount {digest} from {from} ({error}); uploading it instead"
        )),
        Event::Uploading {
            digest,
            size,
            chunk,
        } => Status(
            "Uploading",
            match chunk {
                None => format!("{digest} ({size} bytes)"),
                Some(chunk) => format!("{digest} ({size} bytes in chunks of {chunk})"),
            },
        ),
        Event::Pushed {
            repository,
            tag,
            digest,
            platforms,
            uploaded,
            ref tag_move,
        } => {
            let how = match *tag_move {
                TagMove::Unchanged => ", the tag already pointed there".to_owned(),
                TagMove::New => ", a new tag".to_owned(),
                TagMove::Moved(moved) => format!(
                    ", the tag moved from {}",
                    moved
                        .iter()
                        .map(|(from, _)| from.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                TagMove::GainedPlatform(before) => {
                    format!(", the tag gained a platform (was {before})")
                }
            };
            let platforms: Vec<String> = platforms.iter().map(|p| p.to_string()).collect();
            Status(
                "Pushed",
                format!(
                    "{repository}:{tag} → {digest} ({}; {} uploaded{how})",
                    platforms.join(", "),
                    human_bytes(uploaded),
                ),
            )
        }
        Event::Attached {
            path,
            repository,
            subject,
            referrer,
        } => Status(
            "Attached",
            format!(
                "{} to {repository}@{subject} as the referrer {referrer}",
                path.display()
            ),
        ),
    }
}

fn poured(
    how: &Arrival<'_>,
    name: &str,
    version: &semver::Version,
    files: usize,
    bytes: u64,
) -> Said {
    let version = Shown(version);
    let size = format!("({}, {})", count(files, "file"), human_bytes(bytes));
    match *how {
        Arrival::Installed { keg } => Status(
            "Installed",
            format!("{name} {version} {size} in {}", keg.display()),
        ),
        Arrival::NewDependency => Status(
            "Installed",
            format!("{name} {version} {size} (a new dependency)"),
        ),
        Arrival::Upgraded { from, down } => Status(
            if down { "Downgraded" } else { "Upgraded" },
            format!("{name} {} -> {version} {size}", Shown(from)),
        ),
        Arrival::Reinstalled { keg } => Status(
            "Reinstalled",
            format!("{name} {version} {size} in {}", keg.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn events_say_what_they_carry_at_their_level() {
        let (v1, v2): (semver::Version, semver::Version) =
            ("1.0.0".parse().unwrap(), "2.0.0".parse().unwrap());
        let down = Event::Poured {
            how: Arrival::Upgraded {
                from: &v2,
                down: true,
            },
            name: "hello",
            version: &v1,
            files: 3,
            bytes: 2048,
        };
        assert_eq!(
            words(&down),
            Status(
                "Downgraded",
                "hello 2.0.0 -> 1.0.0 (3 files, 2.0 KiB)".into()
            )
        );
        let switched = Event::Switched {
            name: "hello",
            version: &v2,
            was: &v1,
            how: Switch::SameContent,
        };
        assert_eq!(
            words(&switched),
            Status("Linked", "hello 2.0.0, was 1.0.0 (the same content)".into())
        );
        let refused = std::io::Error::other("refused");
        let left = Event::LeftUnlinked { error: &refused };
        assert_eq!(words(&left), Error("refused".into()));
        let resting = Event::EndpointResting {
            endpoint: "https://mirror",
            registry: "ghcr.io",
            cause: "answered 429",
            tries: 2,
            instead: "https://ghcr.io",
            seconds: 30,
        };
        assert_eq!(
            words(&resting),
            Warning(
                "https://mirror for ghcr.io: answered 429 (2 tries); using https://ghcr.io instead for the next 30 s"
                    .into()
            )
        );
        let digest: crate::digest::Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let tagging = Event::Tagging {
            repository: "r/x",
            tag: "1.0",
            digest: &digest,
            index: true,
            was: None,
        };
        let Status("Tagging", text) = words(&tagging) else {
            panic!("a tag is a status line")
        };
        assert_eq!(text, format!("r/x:1.0 → index {digest}"));
        let waiting = Event::WaitingForCache {
            cache: Path::new("/c"),
        };
        assert_eq!(
            words(&waiting),
            Status(
                "Waiting",
                "for other pkg runs to finish with the cache /c".into()
            )
        );
    }
}
