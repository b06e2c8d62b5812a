//! Link modes for warm installs (`--link-mode`, `PKG_LINK_MODE`): each installs, cold and warm,
//! the tree GNU tar extracts; `hardlink` shares the store's inodes on ext4 yet never writes
//! through them (relocation and `chmod +x` work on copies); a write into a hard-linked keg is
//! found by `pkg doctor` and mended by `pkg reinstall`.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::faults::host_platform;
use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};
use crate::realworld::{assert_same_tree, gnu_extract, sh, usrish_tree};
use crate::speed::Xfs;

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The trees in the store of the cache at `cache`.
fn stored(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("v1/unpacked"))
        .map(|d| d.flatten().map(|e| e.path().join("tree")).collect())
        .unwrap_or_default()
}

fn inode(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).unwrap().ino()
}

/// GNU tar's tree with every kind of entry, pushed as `acme/usrish:1.0.0`; returns the
/// repository and GNU tar's extraction of it.
fn usrish_image(reg: &Registry, tmp: &Path) -> (String, PathBuf) {
    let tree = tmp.join("tree");
    usrish_tree(&tree);
    let tar = tmp.join("usrish.tar");
    sh(
        &tree,
        &format!(
            "tar --format=posix -S --xattrs --owner=0 --group=0 --numeric-owner -cf '{}' .",
            tar.display()
        ),
    );
    let reference = tmp.join("gnu-tar");
    gnu_extract(&tar, &reference);
    sh(tmp, "gzip -k -n usrish.tar");
    let (os, arch) = host_platform();
    reg.push(
        "acme/usrish",
        "1.0.0",
        &Fixture::Image(
            ImageSpec::new(os, arch)
                .raw_layer(std::fs::read(tmp.join("usrish.tar.gz")).unwrap(), GZIP),
        ),
    );
    (format!("{}/acme/usrish", reg.host()), reference)
}

/// A prefix at `base/dir` sharing `base/cache`, with `usrish`'s formula.
fn prefix_on(base: &Path, dir: &str, repository: &str) -> TestContext {
    let mut ctx = TestContext::new();
    ctx.prefix = base.join(dir);
    ctx.cache = base.join("cache");
    ctx.write_formula(
        "usrish",
        &Formula::new("usrish")
            .bin(&[])
            .version("1.0.0", repository, "1.0.0")
            .to_toml(),
    );
    ctx
}

#[test]
fn each_link_mode_installs_the_tree_gnu_tar_extracts_cold_and_warm() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let (repo, reference) = usrish_image(&reg, tmp.path());
    let xfs = Xfs::mount().expect("a loop-mounted XFS (scripts/test installs xfsprogs)");
    // (mode, where, whether a tree is kept in the store there: by hard links at the first
    // unpacking, by a clone or a copy from the second on)
    let ext4 = tempfile::tempdir().unwrap();
    let cases = [
        ("clone", ext4.path().join("clone"), false),
        ("clone", xfs.dir.join("clone"), true),
        ("hardlink", ext4.path().join("hardlink"), true),
        ("hardlink", xfs.dir.join("hardlink"), true),
        ("copy", ext4.path().join("copy"), true),
    ];
    for (mode, base, kept) in cases {
        let case = format!("{mode} on {}", base.display());
        let cold = prefix_on(&base, "cold", &repo);
        cold.pkg(&["--link-mode", mode, "install", "usrish"])
            .success();
        let at_once = kept && mode == "hardlink";
        let trees = stored(&cold.cache);
        assert_eq!(trees.len(), usize::from(at_once), "{case}, cold: {trees:?}");
        // The layers unpacked again, from the cache (another prefix): kept now.
        let again = prefix_on(&base, "again", &repo);
        again
            .pkg(&["--link-mode", mode, "install", "usrish"])
            .success();
        let trees = stored(&cold.cache);
        assert_eq!(trees.len(), usize::from(kept), "{case}, again: {trees:?}");
        // A prefix taking the tree from the store, which must not look changed afterwards.
        let warm_at = |dir: &str| {
            let ctx = prefix_on(&base, dir, &repo);
            let run = ctx
                .pkg(&["--link-mode", mode, "install", "usrish"])
                .success();
            assert!(
                !run.output().contains("changed"),
                "{case}: {}",
                run.describe()
            );
            ctx
        };
        let warm = warm_at("warm");
        for ctx in [&cold, &again, &warm] {
            assert_same_tree(&case, &ctx.keg("usrish", "1.0.0"), &reference);
        }
        let shared = |ctx: &TestContext, rel: &str| {
            trees.first().is_some_and(|tree| {
                inode(&ctx.keg("usrish", "1.0.0").join(rel)) == inode(&tree.join(rel))
            })
        };
        // Hard links share the store's inodes (the sparse image, both names of the
        // hard-linked tool, and symlinks, which cannot be written through); the other modes
        // share none.
        for rel in [
            "share/disk.img",
            "bin/tool",
            "bin/tool-again",
            "bin/awk",
            "share/longlink",
            "share/dangling",
        ] {
            assert_eq!(shared(&warm, rel), mode == "hardlink", "{case}: {rel}");
            assert_eq!(shared(&cold, rel), mode == "hardlink", "{case}: {rel}");
            assert_eq!(shared(&again, rel), mode == "hardlink", "{case}: {rel}");
        }
        // A third prefix is warm as well: taking the tree did not make it look changed.
        let third = warm_at("third");
        assert_same_tree(&case, &third.keg("usrish", "1.0.0"), &reference);
        // Each receipt's sums match its keg (a warm one's come from the store).
        for ctx in [&cold, &again, &warm, &third] {
            let run = ctx.pkg(&["doctor"]);
            assert!(
                !run.output().contains("changed"),
                "{case}: {}",
                run.describe()
            );
            let stamps = &ctx.receipt("usrish", "1.0.0")["stamps"];
            assert!(stamps["bin/tool"][3].is_u64(), "{case}: {stamps}");
            assert_eq!(
                stamps["bin/tool"][3], stamps["bin/tool-again"][3],
                "{case}: {stamps}"
            );
        }
        // Kegs of links to one tree hold the same inodes: a warm keg's receipt, listed from the
        // store's manifest without a walk, records what the cold keg's walk did, entry by entry.
        if mode == "hardlink" {
            let cold_receipt = cold.receipt("usrish", "1.0.0");
            for ctx in [&warm, &third] {
                let receipt = ctx.receipt("usrish", "1.0.0");
                for field in ["files", "stamps"] {
                    assert_eq!(receipt[field], cold_receipt[field], "{case}: {field}");
                }
            }
        }
    }
}

/// A stored tree already shared with hard-linked kegs (every file's link count above one),
/// taken by `copy`: the tree's own hard link is kept (`bin/tool` and `bin/tool-again` one inode)
/// and no other file is made a link of another, nor of the store.
#[test]
fn a_copy_of_a_tree_shared_with_hard_linked_kegs_keeps_only_the_trees_own_links() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let (repo, reference) = usrish_image(&reg, tmp.path());
    let base = tempfile::tempdir().unwrap();
    for dir in ["linked", "linked-again"] {
        prefix_on(base.path(), dir, &repo)
            .pkg(&["--link-mode", "hardlink", "install", "usrish"])
            .success();
    }
    let copied = prefix_on(base.path(), "copied", &repo);
    copied
        .pkg(&["--link-mode", "copy", "install", "usrish"])
        .success();
    let keg = copied.keg("usrish", "1.0.0");
    assert_same_tree("copy of a shared tree", &keg, &reference);
    let tree = stored(&copied.cache).pop().expect("the stored tree");
    assert_eq!(
        inode(&keg.join("bin/tool")),
        inode(&keg.join("bin/tool-again"))
    );
    for rel in ["bin/tool", "share/disk.img"] {
        assert_ne!(inode(&keg.join(rel)), inode(&tree.join(rel)), "{rel}");
    }
    let links = |p: &Path| std::os::unix::fs::MetadataExt::nlink(&std::fs::metadata(p).unwrap());
    assert_eq!(links(&keg.join("bin/tool")), 2);
    assert_eq!(links(&keg.join("share/disk.img")), 1);
}

#[test]
fn a_hard_linked_bottle_is_relocated_per_prefix_and_never_written_through_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let blob = crate::artifacts::brew_built_greeter(
        tmp.path(),
        "mkdir -p share && printf 'plain data\\n' > share/data \
         && printf 'home=@@HOMEBREW_PREFIX@@\\n' > share/conf \
         && printf '#!/bin/sh\\necho script ran\\n' > bin/script && chmod 0644 bin/script",
    );
    let registry = Registry::start();
    crate::artifacts::push_layer(&registry, "acme/greeter", "1.0.0", blob);
    let base = tempfile::tempdir().unwrap();
    let at = |dir: &str| {
        let mut ctx = TestContext::new();
        ctx.prefix = base.path().join(dir);
        ctx.cache = base.path().join("cache");
        ctx.env("PKG_LINK_MODE", "hardlink");
        ctx.write_formula(
            "greeter",
            &Formula::new("greeter")
                .bin(&["bin/greeter", "bin/script"])
                .version(
                    "1.0.0",
                    &format!("{}/acme/greeter", registry.host()),
                    "1.0.0",
                )
                .to_toml(),
        );
        ctx
    };
    let (a, b) = (at("a"), at("b"));
    a.pkg(&["install", "greeter"]).success().says("Relocated");
    let run = b.pkg(&["install", "greeter"]).success();
    run.says("Relocated");
    assert!(!run.output().contains("changed"), "{}", run.describe());
    let trees = stored(&a.cache);
    assert_eq!(trees.len(), 1, "the tree is kept on ext4 by hard links");
    let stored_keg = trees[0].join("greeter/1.0.0");
    for ctx in [&a, &b] {
        let keg = ctx.keg("greeter", "1.0.0");
        let prefix = ctx.prefix.display().to_string();
        // Each prefix's own relocation: the program runs and names its own prefix.
        let out = Command::new(ctx.prefix.join("bin/greeter"))
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "hello from libgreet"
        );
        let interp = Command::new("patchelf")
            .arg("--print-interpreter")
            .arg(keg.join("bin/greeter"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&interp.stdout).trim(),
            format!("{prefix}/lib/ld.so")
        );
        assert_eq!(
            std::fs::read_to_string(keg.join("share/conf")).unwrap(),
            format!("home={prefix}\n")
        );
        // `chmod +x` made the keg's own file executable, not the store's.
        let script = Command::new(ctx.prefix.join("bin/script"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&script.stdout).trim(), "script ran");
        assert_ne!(
            inode(&keg.join("bin/script")),
            inode(&stored_keg.join("bin/script"))
        );
        // What is not rewritten is the store's own file.
        assert_eq!(
            inode(&keg.join("share/data")),
            inode(&stored_keg.join("share/data"))
        );
        for rel in ["bin/greeter", "lib/libgreet.so.1", "share/conf"] {
            assert_ne!(inode(&keg.join(rel)), inode(&stored_keg.join(rel)), "{rel}");
        }
    }
    // The store still holds the bottle as published.
    assert_eq!(
        std::fs::read_to_string(stored_keg.join("share/conf")).unwrap(),
        "home=@@HOMEBREW_PREFIX@@\n"
    );
    let mode = std::fs::metadata(stored_keg.join("bin/script"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let greeter = std::fs::read(stored_keg.join("bin/greeter")).unwrap();
    assert!(greeter.windows(19).any(|w| w == b"@@HOMEBREW_PREFIX@@"));
    // Every receipt's sums are of the relocated bytes: no file looks changed.
    for ctx in [&a, &b] {
        let run = ctx.pkg(&["doctor"]);
        assert!(!run.output().contains("changed"), "{}", run.describe());
    }
    // A third prefix takes the tree, unchanged, and relocates its own copy.
    let c = at("c");
    let run = c.pkg(&["install", "greeter"]).success();
    assert!(!run.output().contains("changed"), "{}", run.describe());
    assert_eq!(
        std::fs::read_to_string(c.keg("greeter", "1.0.0").join("share/conf")).unwrap(),
        format!("home={}\n", c.prefix.display())
    );

    // Hostile: the store's record of which files hold a placeholder is emptied (whoever can
    // write the cache can; docs/hardening.md's limit). Relocation then opens nothing it was not
    // told of, so it writes nothing, least of all through a link: the store and the other
    // prefixes' kegs keep their bytes (the new keg is left unrelocated).
    let entry = trees[0].parent().unwrap().to_owned();
    std::fs::write(entry.join("marked"), "").unwrap();
    let d = at("d");
    d.pkg(&["install", "greeter"]).success();
    assert_eq!(
        std::fs::read_to_string(stored_keg.join("share/conf")).unwrap(),
        "home=@@HOMEBREW_PREFIX@@\n"
    );
    assert_eq!(
        std::fs::read(stored_keg.join("bin/greeter")).unwrap(),
        greeter
    );
    for ctx in [&a, &b, &c] {
        assert_eq!(
            std::fs::read_to_string(ctx.keg("greeter", "1.0.0").join("share/conf")).unwrap(),
            format!("home={}\n", ctx.prefix.display())
        );
    }
}

#[test]
fn a_write_into_a_hard_linked_keg_is_found_by_doctor_and_mended_by_reinstall() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let (repo, reference) = usrish_image(&reg, tmp.path());
    let base = tempfile::tempdir().unwrap();
    let at = |dir: &str| {
        let mut ctx = prefix_on(base.path(), dir, &repo);
        ctx.env("PKG_LINK_MODE", "hardlink");
        ctx
    };
    let (a, b) = (at("a"), at("b"));
    a.pkg(&["install", "usrish"]).success();
    b.pkg(&["install", "usrish"]).success();
    // One write in a's keg is a write in b's: the risk the mode documents.
    let data = "share/private/id_ed25519";
    let published = std::fs::read(reference.join(data)).unwrap();
    std::fs::write(a.keg("usrish", "1.0.0").join(data), "scribbled\n").unwrap();
    assert_eq!(
        std::fs::read(b.keg("usrish", "1.0.0").join(data)).unwrap(),
        b"scribbled\n"
    );
    for ctx in [&a, &b] {
        ctx.pkg(&["doctor"]).failure().says(data);
    }
    // b's reinstall takes the blobs, and puts a good tree back in the store.
    let run = b.pkg(&["reinstall", "usrish"]).success();
    assert!(!run.output().contains("was changed"), "{}", run.describe());
    assert_same_tree("reinstalled", &b.keg("usrish", "1.0.0"), &reference);
    let clean = |ctx: &TestContext| {
        let run = ctx.pkg(&["doctor"]);
        assert!(!run.output().contains(data), "{}", run.describe());
    };
    clean(&b);
    assert_eq!(
        std::fs::read(stored(&a.cache)[0].join(data)).unwrap(),
        published
    );
    // a still has the written inode until its own reinstall.
    a.pkg(&["doctor"]).failure().says(data);
    a.pkg(&["reinstall", "usrish"]).success();
    clean(&a);
    assert_same_tree("a reinstalled", &a.keg("usrish", "1.0.0"), &reference);
    // A new prefix gets what was published, from the mended store.
    let c = at("c");
    let run = c.pkg(&["install", "usrish"]).success();
    assert!(!run.output().contains("changed"), "{}", run.describe());
    assert_same_tree("after the mend", &c.keg("usrish", "1.0.0"), &reference);
    let perms = std::fs::metadata(c.keg("usrish", "1.0.0").join(data))
        .unwrap()
        .permissions();
    assert_eq!(perms.mode() & 0o777, 0o600);
}

#[test]
fn a_link_mode_that_is_not_one_is_bad_input_naming_the_modes() {
    let ctx = TestContext::new();
    ctx.pkg(&["--link-mode", "symlink", "list"])
        .failure_with(2)
        .says("clone");
    let mut ctx = TestContext::new();
    ctx.env("PKG_LINK_MODE", "symlink");
    let run = ctx.pkg(&["list"]).failure_with(2);
    run.says("PKG_LINK_MODE must be one of clone, hardlink or copy, got `symlink`");
    ctx.env("PKG_LINK_MODE", "hardlink");
    let shown = ctx.pkg(&["config", "--json"]).success();
    let doc: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(doc["settings"]["link_mode"]["value"], "hardlink", "{doc}");
    assert_eq!(doc["settings"]["link_mode"]["source"], "env", "{doc}");
}
