//! The unpacked store is trusted no more than the blobs it stands for, on a loop-mounted XFS
//! (reflinks, so trees are stored): a tree is named by how each layer was read, checked against
//! its manifest before each use, never used by `reinstall`, and cloned under the caller's umask.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

use crate::faults::host_platform;
use crate::harness::{Fixture, Formula, ImageSpec, Registry, Run, TestContext};
use crate::realworld::sh;
use crate::speed::{Xfs, sha256};

const PLAIN: &str = "application/vnd.oci.image.layer.v1.tar";

/// A prefix on `base` sharing `base/cache`, with `name`'s formula at `repository`.
fn prefix(base: &Path, dir: &str, name: &str, repository: &str) -> TestContext {
    let mut ctx = TestContext::new();
    ctx.prefix = base.join(dir);
    ctx.cache = base.join("cache");
    ctx.write_formula(
        name,
        &Formula::new(name)
            .bin(&[])
            .version("1.0.0", repository, "1.0.0")
            .to_toml(),
    );
    ctx
}

/// The trees in the store.
fn stored(base: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(base.join("cache/v1/unpacked"))
        .map(|d| d.flatten().map(|e| e.path().join("tree")).collect())
        .unwrap_or_default()
}

/// `pkg ARGS` under `umask`.
fn pkg_with_umask(ctx: &TestContext, args: &[&str], umask: u32) -> Run {
    let mut cmd = ctx.command(args);
    // SAFETY: umask(2) is async-signal-safe and touches nothing but the child's mask.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(umask as libc::mode_t);
            Ok(())
        });
    }
    TestContext::wait(cmd.spawn().unwrap(), args)
}

/// `layer` pushed as `acme/kept:1.0.0`, a plain tar for this host; returns the repository.
fn push_kept(reg: &Registry, layer: Vec<u8>) -> String {
    let (os, arch) = host_platform();
    reg.push(
        "acme/kept",
        "1.0.0",
        &Fixture::Image(ImageSpec::new(os, arch).raw_layer(layer, PLAIN)),
    );
    format!("{}/acme/kept", reg.host())
}

fn tar_of(tmp: &Path, script: &str) -> Vec<u8> {
    let tree = tmp.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    sh(&tree, script);
    sh(&tree, "tar --owner=0 --group=0 -cf ../layer.tar .");
    std::fs::read(tmp.join("layer.tar")).unwrap()
}

#[test]
fn an_edited_store_tree_is_never_installed_and_reinstall_takes_the_blobs() {
    let xfs = Xfs::mount().expect("a loop-mounted XFS (scripts/test installs xfsprogs)");
    let tmp = tempfile::tempdir().unwrap();
    let layer = tar_of(
        tmp.path(),
        "mkdir -p share && printf published > share/data && printf other > share/other",
    );
    let reg = Registry::start();
    let repo = push_kept(&reg, layer);
    let a = prefix(&xfs.dir, "a", "kept", &repo);
    // (The blob cached first: a clone is stored from the layers' second unpacking on.)
    a.pkg(&["fetch", "kept"]).success();
    a.pkg(&["install", "kept"]).success();
    let trees = stored(&xfs.dir);
    assert_eq!(trees.len(), 1, "the tree is stored on XFS");
    let published = sha256(&a.keg("kept", "1.0.0").join("share/data"));
    // Edited in the store: same size, mtime put back.
    let edit = |tree: &Path| {
        crate::harness::rewrite_keeping_mtime(&tree.join("share/data"), b"tampered!");
    };
    edit(&trees[0]);
    let b = prefix(&xfs.dir, "b", "kept", &repo);
    let run = b.pkg(&["install", "kept"]).success();
    run.says("was changed after it was stored");
    run.says("share/data");
    assert_eq!(
        sha256(&b.keg("kept", "1.0.0").join("share/data")),
        published
    );
    // The changed tree was replaced by the one just unpacked.
    let trees = stored(&xfs.dir);
    assert_eq!(trees.len(), 1);
    assert_eq!(sha256(&trees[0].join("share/data")), published);
    let c = prefix(&xfs.dir, "c", "kept", &repo);
    let warm = c.pkg(&["install", "kept"]).success();
    assert!(!warm.output().contains("changed"), "{}", warm.describe());

    // A reinstall takes the blobs, whatever the store holds, and puts a good tree back.
    edit(&trees[0]);
    std::fs::write(a.keg("kept", "1.0.0").join("share/data"), "scribbled").unwrap();
    let run = a.pkg(&["reinstall", "kept"]).success();
    assert!(!run.output().contains("was changed"), "{}", run.describe());
    assert_eq!(
        sha256(&a.keg("kept", "1.0.0").join("share/data")),
        published
    );
    assert_eq!(sha256(&stored(&xfs.dir)[0].join("share/data")), published);
}

#[test]
fn the_same_blob_unpacked_as_a_tar_and_placed_as_an_oras_file_makes_two_trees() {
    let xfs = Xfs::mount().expect("a loop-mounted XFS (scripts/test installs xfsprogs)");
    let tmp = tempfile::tempdir().unwrap();
    let release = tar_of(tmp.path(), "printf 'inside\\n' > inside.txt");
    let reg = Registry::start();
    let (os, arch) = host_platform();
    reg.push(
        "acme/unpacked",
        "1.0.0",
        &Fixture::Image(ImageSpec::new(os, arch).raw_layer(release.clone(), PLAIN)),
    );
    let mut spec = ImageSpec::new(os, arch).raw_layer(release.clone(), PLAIN);
    spec.layer_annotations = vec![(
        "org.opencontainers.image.title".into(),
        "payload.tar".into(),
    )];
    reg.push("acme/placed", "1.0.0", &Fixture::Image(spec));
    let a = prefix(
        &xfs.dir,
        "a",
        "unpacked",
        &format!("{}/acme/unpacked", reg.host()),
    );
    // (The blobs cached first: a clone is stored from the layers' second unpacking on.)
    a.pkg(&["fetch", "unpacked"]).success();
    a.pkg(&["install", "unpacked"]).success();
    assert!(a.keg("unpacked", "1.0.0").join("inside.txt").is_file());
    let b = prefix(
        &xfs.dir,
        "b",
        "placed",
        &format!("{}/acme/placed", reg.host()),
    );
    b.pkg(&["fetch", "placed"]).success();
    b.pkg(&["install", "placed"]).success();
    let keg = b.keg("placed", "1.0.0");
    assert_eq!(std::fs::read(keg.join("payload.tar")).unwrap(), release);
    assert!(
        !keg.join("inside.txt").exists(),
        "the tar's tree was installed"
    );
    assert_eq!(stored(&xfs.dir).len(), 2);
}

#[test]
fn a_warm_install_applies_the_callers_umask_as_a_cold_one_does() {
    let xfs = Xfs::mount().expect("a loop-mounted XFS (scripts/test installs xfsprogs)");
    let tmp = tempfile::tempdir().unwrap();
    let layer = tar_of(
        tmp.path(),
        "mkdir -p share/group && printf x > share/group/shared && chmod 0775 share/group \
         && chmod 0664 share/group/shared",
    );
    let reg = Registry::start();
    let (os, arch) = host_platform();
    reg.push(
        "acme/modes",
        "1.0.0",
        &Fixture::Image(ImageSpec::new(os, arch).raw_layer(layer, PLAIN)),
    );
    let repo = format!("{}/acme/modes", reg.host());
    let modes = |ctx: &TestContext| {
        let keg = ctx.keg("modes", "1.0.0");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        (
            mode(&keg.join("share/group")),
            mode(&keg.join("share/group/shared")),
        )
    };
    let a = prefix(&xfs.dir, "a", "modes", &repo);
    // (The blob cached first: a clone is stored from the layers' second unpacking on.)
    a.pkg(&["fetch", "modes"]).success();
    pkg_with_umask(&a, &["install", "modes"], 0o022).success();
    assert_eq!(modes(&a), (0o755, 0o644));
    assert_eq!(stored(&xfs.dir).len(), 1);
    // Stricter: cloned, then masked as a cold install masks.
    let b = prefix(&xfs.dir, "b", "modes", &repo);
    pkg_with_umask(&b, &["install", "modes"], 0o077).success();
    assert_eq!(modes(&b), (0o700, 0o600));
    // Looser: the store lacks the group's write bits, so the layers are unpacked again.
    let c = prefix(&xfs.dir, "c", "modes", &repo);
    pkg_with_umask(&c, &["install", "modes"], 0o002).success();
    assert_eq!(modes(&c), (0o775, 0o664));
}

/// A tree shared with hard-linked kegs is checked while it is linked, entry by entry with the
/// copy's own `lstat`: every kind of edit made in the store after the fact is found and named,
/// nothing of the edited tree is installed (the keg is what GNU tar extracts), and the tree
/// unpacked instead replaces it.
#[test]
fn every_kind_of_edit_to_a_hard_linked_store_tree_is_found_while_linking_and_never_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = tar_of(
        tmp.path(),
        "mkdir -p share/doc && printf published > share/data && printf other > share/other \
         && printf readme > share/doc/readme",
    );
    let reference = tmp.path().join("gnu-tar");
    crate::realworld::gnu_extract(&tmp.path().join("layer.tar"), &reference);
    let reg = Registry::start();
    let repo = push_kept(&reg, layer);
    type Edit = fn(&Path);
    let edits: [(&str, &str, Edit); 7] = [
        ("a write", "share/data", |t| {
            std::fs::write(t.join("share/data"), "published, and more").unwrap()
        }),
        ("a chmod", "share/data", |t| {
            std::fs::set_permissions(t.join("share/data"), std::fs::Permissions::from_mode(0o600))
                .unwrap()
        }),
        // An entry added or removed changes its directory's ctime: the directory is named.
        ("a file added", "share", |t| {
            std::fs::write(t.join("share/extra"), "").unwrap()
        }),
        ("a file removed", "share", |t| {
            std::fs::remove_file(t.join("share/other")).unwrap()
        }),
        ("a file swapped for a link", "share", |t| {
            std::fs::remove_file(t.join("share/other")).unwrap();
            std::os::unix::fs::symlink("data", t.join("share/other")).unwrap();
        }),
        ("a directory added", "share/doc", |t| {
            std::fs::create_dir(t.join("share/doc/new")).unwrap()
        }),
        ("a directory's mode", "share/doc", |t| {
            std::fs::set_permissions(t.join("share/doc"), std::fs::Permissions::from_mode(0o700))
                .unwrap()
        }),
    ];
    for (what, named, edit) in edits {
        let base = tempfile::tempdir().unwrap();
        let hardlink = ["--link-mode", "hardlink", "install", "kept"];
        prefix(base.path(), "a", "kept", &repo)
            .pkg(&hardlink)
            .success();
        let trees = stored(base.path());
        assert_eq!(trees.len(), 1, "{what}: the tree is stored");
        edit(&trees[0]);
        let b = prefix(base.path(), "b", "kept", &repo);
        let run = b.pkg(&hardlink).success();
        run.says("was changed after it was stored");
        assert!(
            run.output().contains(&format!("(at `{named}`)")),
            "{what}: {}",
            run.describe()
        );
        crate::realworld::assert_same_tree(what, &b.keg("kept", "1.0.0"), &reference);
        // The tree unpacked instead is the one kept now, and a third prefix takes it as it is.
        let c = prefix(base.path(), "c", "kept", &repo);
        let warm = c.pkg(&hardlink).success();
        assert!(
            !warm.output().contains("changed"),
            "{what}: {}",
            warm.describe()
        );
        crate::realworld::assert_same_tree(what, &c.keg("kept", "1.0.0"), &reference);
    }
}
