//! What the engine tells the user, as data: one variant per thing that happened, carrying what
//! the words need. The words (and whether it is a status line, a warning or an error) are the
//! command layer's (`commands/ui.rs`), so library code holds no English for the terminal.

use std::error::Error;
use std::path::Path;

use semver::Version;

use crate::digest::Digest;
use crate::platform::Platform;

/// An error carried by an event: said with its causes, each once.
pub type Cause<'a> = &'a (dyn Error + 'static);

/// One thing that happened.
#[derive(Debug)]
pub enum Event<'a> {
    // Locks.
    /// Another pkg holds the prefix lock; this run waits for it.
    WaitingForPrefix { prefix: &'a Path },
    /// Another pkg holds the cache lock; this run waits for it.
    WaitingForCache { cache: &'a Path },

    // The registry.
    /// An endpoint of a mirror chain failed and rests for `seconds`; `instead` answered.
    EndpointResting {
        endpoint: &'a str,
        registry: &'a str,
        cause: &'a str,
        tries: u32,
        instead: &'a str,
        seconds: u64,
    },

    // The install road: fetch, verify, unpack, shape.
    /// A package's image is being fetched.
    Fetching {
        name: &'a str,
        version: &'a Version,
        repository: &'a str,
        tag: &'a str,
    },
    /// A signature met the formula's policy.
    Verified {
        name: &'a str,
        version: &'a str,
        digest: &'a Digest,
        signer: &'a str,
        predicate_type: Option<&'a str>,
    },
    /// The tag moved on; the pinned manifest is still there by its digest and is installed.
    PinnedManifest {
        repository: &'a str,
        tag: &'a str,
        pinned: &'a Digest,
    },
    /// A layer failed its check and is fetched once more from the start.
    Refetching { error: Cause<'a> },
    /// The registry could not be reached; the manifest the tag had when last fetched is used.
    CachedManifest {
        error: Cause<'a>,
        digest: &'a Digest,
        repository: &'a str,
        tag: &'a str,
    },
    /// The unpacked tree kept for warm installs changed since it was stored; it is replaced.
    KeptTreeChanged { error: Cause<'a> },
    /// The unpacked tree could not be kept for warm installs.
    KeptTreeNotStored { name: &'a str, error: Cause<'a> },
    /// An OCI layout's index says another size than its blob has; the digest verifies.
    LayoutSizeDiffers {
        index: &'a Path,
        digest: &'a Digest,
        said: u64,
        size: u64,
    },
    /// Files holding Homebrew's placeholders were rewritten for this prefix.
    Relocated {
        files: usize,
        name: &'a str,
        prefix: &'a Path,
    },
    /// Extended attributes the filesystem refused.
    XattrsSkipped { repository: &'a str, count: u64 },
    /// The package shipped pkg's own metadata directory; it is replaced by the receipt.
    ShippedMetadata { repository: &'a str, dir: &'a str },

    // Applying a plan.
    /// A record (requested, on request) could not be written; the change itself stands.
    RecordNotWritten { error: Cause<'a> },
    /// An upgrade starts.
    Upgrading {
        name: &'a str,
        from: Option<&'a Version>,
        to: &'a Version,
    },
    /// `--overwrite` took a link from another package.
    TookOver {
        link: &'a Path,
        from: &'a str,
        by: &'a str,
    },
    /// A keg was poured and linked.
    Poured {
        how: Arrival<'a>,
        name: &'a str,
        version: &'a Version,
        files: usize,
        bytes: u64,
    },
    /// The linked version of a package changed to one already installed.
    Switched {
        name: &'a str,
        version: &'a Version,
        was: &'a Version,
        how: Switch,
    },
    /// An installed keg was linked (nothing poured).
    Linked { name: &'a str, version: &'a Version },
    /// A step undoing a failed change failed too.
    UndoFailed {
        step: UndoStep<'a>,
        error: Cause<'a>,
    },

    // Removing.
    /// A version the user asked to uninstall is gone.
    Uninstalled { name: &'a str, version: &'a Version },
    /// A version housekeeping removed is gone.
    Removed {
        name: &'a str,
        version: &'a Version,
        bytes: u64,
    },
    /// One of several packages could not be linked again after a removal.
    LeftUnlinked { error: Cause<'a> },
    /// The formula `pkg install REFERENCE` recorded for a removed package is forgotten.
    ForgotReference { name: &'a str },
    /// Links a removed package had taken over went back to their owner.
    GaveBack {
        owner: &'a str,
        version: &'a Version,
        taker: &'a str,
    },
    /// Links a removed package had taken over could not go back.
    GiveBackFailed {
        owner: &'a str,
        taker: &'a str,
        error: Cause<'a>,
    },
    /// The newest remaining version was linked after the linked one went.
    LinkedNewest {
        name: &'a str,
        version: &'a Version,
        links: usize,
    },

    // Bottling and publishing.
    /// A directory is being bottled.
    Bottling {
        name: &'a str,
        version: &'a str,
        platform: &'a Platform,
        dir: &'a Path,
    },
    /// The bottle was written to an OCI layout.
    Bottled {
        file: &'a str,
        entries: u64,
        bytes: u64,
        layout: &'a Path,
        tag: &'a str,
    },
    /// A formula file was given the new version.
    FormulaUpdated { path: &'a Path, version: &'a str },
    /// A tag is being pointed at a manifest or an index.
    Tagging {
        repository: &'a str,
        tag: &'a str,
        digest: &'a Digest,
        index: bool,
        was: Option<&'a Digest>,
    },
    /// A blob the registry already has.
    BlobPresent {
        digest: &'a Digest,
        repository: &'a str,
    },
    /// A blob mounted from another repository of the registry.
    Mounted { digest: &'a Digest, from: &'a str },
    /// A mount was refused; the blob is uploaded instead.
    MountFailed {
        digest: &'a Digest,
        from: &'a str,
        error: Cause<'a>,
    },
    /// A blob upload starts (`chunk`: in chunks of that many bytes).
    Uploading {
        digest: &'a Digest,
        size: u64,
        chunk: Option<u64>,
    },
    /// A push finished.
    Pushed {
        repository: &'a str,
        tag: &'a str,
        digest: &'a Digest,
        platforms: &'a [Platform],
        uploaded: u64,
        tag_move: TagMove<'a>,
    },
    /// A bundle was attached to a pushed image as a referrer.
    Attached {
        path: &'a Path,
        repository: &'a str,
        subject: &'a Digest,
        referrer: &'a Digest,
    },
}

/// How a keg came to be poured.
#[derive(Debug)]
pub enum Arrival<'a> {
    /// Asked for (`keg`: where it is).
    Installed { keg: &'a Path },
    /// Brought in by an upgrade as a new dependency.
    NewDependency,
    /// A newer (or, `down`, an older) version replaced `from`.
    Upgraded { from: &'a Version, down: bool },
    /// Poured again over itself.
    Reinstalled { keg: &'a Path },
}

/// What a switch of the linked version amounts to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Switch {
    /// The same image under another version (a channel beside a version tag).
    SameContent,
    /// An older release than the one linked before.
    Downgrade,
    /// Anything else (a newer release, or a channel, never ordered against releases).
    Other,
}

/// A step of undoing a failed change.
#[derive(Debug)]
pub enum UndoStep<'a> {
    TakeOutKeg { name: &'a str, version: &'a Version },
    PutBackLinks { name: &'a str },
    GiveBackLinks { by: &'a str },
    RemoveLoader { loader: &'a str },
}

/// What a push did to its tag.
#[derive(Debug)]
pub enum TagMove<'a> {
    /// It already pointed there.
    Unchanged,
    /// A new tag.
    New,
    /// Released content was replaced: from each of these.
    Moved(&'a [(Digest, Digest)]),
    /// It gained a platform (it was this index or manifest).
    GainedPlatform(&'a Digest),
}
