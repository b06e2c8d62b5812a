use super::*;
use std::os::unix::fs::PermissionsExt as _;

fn keg(prefix: &Path, name: &str, version: &str, bins: &[&str]) {
    let k = prefix.join("Cellar").join(name).join(version).join("bin");
    std::fs::create_dir_all(&k).unwrap();
    for b in bins {
        std::fs::write(k.join(b), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(k.join(b), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(k.join("README"), "not executable").unwrap();
}

#[test]
fn links_are_relative_and_default_to_executables() {
    let d = tempfile::tempdir().unwrap();
    keg(d.path(), "hello", "1.0.0", &["hello"]);
    let bins = crate::cellar::bins::bins_for(&d.path().join("Cellar/hello/1.0.0"), None).unwrap();
    assert_eq!(bins, ["bin/hello"]);
    link(d.path(), "hello", "1.0.0", &bins, &[], false).unwrap();
    assert_eq!(
        std::fs::read_link(d.path().join("bin/hello")).unwrap(),
        Path::new("../Cellar/hello/1.0.0/bin/hello")
    );
    assert_eq!(
        std::fs::read_link(d.path().join("opt/hello")).unwrap(),
        Path::new("../Cellar/hello/1.0.0")
    );
    // A newer version of the same package takes the links over.
    keg(d.path(), "hello", "2.0.0", &["hello"]);
    link(d.path(), "hello", "2.0.0", &bins, &[], false).unwrap();
    assert_eq!(
        std::fs::read_link(d.path().join("bin/hello")).unwrap(),
        Path::new("../Cellar/hello/2.0.0/bin/hello")
    );
    assert_eq!(linked_version(d.path(), "hello").as_deref(), Some("2.0.0"));
    assert_eq!(links_of(d.path(), "hello").len(), 2);
    assert_eq!(unlink(d.path(), "hello").unwrap().len(), 2);
    assert!(links_of(d.path(), "hello").is_empty());
    assert_eq!(linked_version(d.path(), "hello"), None);
}

#[test]
fn links_the_new_keg_does_not_provide_are_removed() {
    let d = tempfile::tempdir().unwrap();
    keg(d.path(), "hello", "1.0.0", &["hello", "old-tool"]);
    keg(d.path(), "hello", "2.0.0", &["hello"]);
    link(
        d.path(),
        "hello",
        "1.0.0",
        &["bin/hello".into(), "bin/old-tool".into()],
        &[],
        false,
    )
    .unwrap();
    link(
        d.path(),
        "hello",
        "2.0.0",
        &["bin/hello".into()],
        &[],
        false,
    )
    .unwrap();
    assert!(std::fs::symlink_metadata(d.path().join("bin/old-tool")).is_err());
}

#[test]
fn unowned_files_and_other_packages_links_are_conflicts_and_nothing_changes() {
    let d = tempfile::tempdir().unwrap();
    keg(d.path(), "hello", "1.0.0", &["hello", "greet"]);
    keg(d.path(), "other", "1.0.0", &["greet"]);
    link(
        d.path(),
        "other",
        "1.0.0",
        &["bin/greet".into()],
        &[],
        false,
    )
    .unwrap();
    std::fs::write(d.path().join("bin/hello"), "mine").unwrap();
    let bins = vec!["bin/greet".to_string(), "bin/hello".to_string()];
    let err = link(d.path(), "hello", "1.0.0", &bins, &[], false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 file(s) in the way")
            && err.contains("`other`")
            && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("bin/hello")).unwrap(),
        "mine"
    );
    assert!(!d.path().join("opt/hello").exists());
    link(d.path(), "hello", "1.0.0", &bins, &[], true).unwrap();
    assert!(std::fs::read_link(d.path().join("bin/hello")).is_ok());
    let leftovers: Vec<_> = std::fs::read_dir(d.path().join("bin"))
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.starts_with('.').then_some(n)
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn failure_midway_restores_previous_links() {
    let d = tempfile::tempdir().unwrap();
    keg(d.path(), "hello", "1.0.0", &["a", "b"]);
    link(d.path(), "hello", "1.0.0", &["bin/a".into()], &[], false).unwrap();
    // opt/hello cannot be created: opt is a file.
    std::fs::remove_dir_all(d.path().join("opt")).unwrap();
    std::fs::write(d.path().join("opt"), "x").unwrap();
    keg(d.path(), "hello", "2.0.0", &["a", "b"]);
    assert!(
        link(
            d.path(),
            "hello",
            "2.0.0",
            &["bin/a".into(), "bin/b".into()],
            &[],
            false
        )
        .is_err()
    );
    assert_eq!(
        std::fs::read_link(d.path().join("bin/a")).unwrap(),
        Path::new("../Cellar/hello/1.0.0/bin/a")
    );
    assert!(std::fs::symlink_metadata(d.path().join("bin/b")).is_err());
}

#[test]
fn recovery_restores_a_backup_and_drops_a_half_made_link() {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // Died after moving the user's file aside, before the new link took its place.
    std::fs::write(bin.join(".tool.pkg-old-4242"), "user's").unwrap();
    // Died after making the new link under its temp name.
    std::os::unix::fs::symlink("../Cellar/x/1.0.0/bin/x", bin.join(".x.pkg-new-4242")).unwrap();
    // A backup whose destination was already replaced is just dropped.
    std::fs::write(bin.join("y"), "new").unwrap();
    std::fs::write(bin.join(".y.pkg-old-17"), "old").unwrap();
    std::fs::write(bin.join(".hidden-but-not-ours"), "keep").unwrap();
    let repaired = recover(d.path());
    assert_eq!(repaired.len(), 3, "{repaired:?}");
    assert_eq!(std::fs::read_to_string(bin.join("tool")).unwrap(), "user's");
    assert!(std::fs::symlink_metadata(bin.join(".x.pkg-new-4242")).is_err());
    assert!(std::fs::symlink_metadata(bin.join("x")).is_err());
    assert_eq!(std::fs::read_to_string(bin.join("y")).unwrap(), "new");
    assert!(!bin.join(".y.pkg-old-17").exists());
    assert!(bin.join(".hidden-but-not-ours").exists());
}

/// Everything under `dir`, links not followed: (relative path, link target if a link).
fn tree(dir: &Path) -> Vec<(PathBuf, Option<PathBuf>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(dir).unwrap().to_owned();
            out.push((rel, std::fs::read_link(&p).ok()));
        }
    }
    out.sort();
    out
}

fn file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Keg B: files under `share/rtdir/`, which keg A (already linked with `link = "all"`)
/// ships as a link to `a_link`.
fn escape_setup(prefix: &Path, a_link: &Path) {
    let a = prefix.join("Cellar/a/1.0.0/share");
    std::fs::create_dir_all(&a).unwrap();
    std::os::unix::fs::symlink(a_link, a.join("rtdir")).unwrap();
    link(prefix, "a", "1.0.0", &[], &["share".into()], false).unwrap();
    let b = prefix.join("Cellar/b/1.0.0/share/rtdir");
    file(&b.join("pwned"), "b");
    file(&b.join("sub/deeper/pwned-deep"), "b");
    file(&b.join("victim"), "b");
}

#[test]
fn a_link_leading_out_of_the_prefix_or_into_another_keg_is_never_linked_into() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside");
    file(&outside.join("victim"), "precious");
    let prefix = d.path().join("prefix");
    let victim = prefix.join("Cellar/victim/1.0.0/share/vdata");
    file(&victim.join("victim"), "precious");
    let cases = [
        outside.clone(),
        PathBuf::from("../../../victim/1.0.0/share/vdata"),
    ];
    for (i, a_link) in cases.iter().enumerate() {
        let prefix = d.path().join(format!("prefix{i}"));
        if i == 1 {
            std::fs::rename(d.path().join("prefix"), &prefix).unwrap();
        }
        escape_setup(&prefix, a_link);
        let before = (tree(&outside), tree(&prefix.join("Cellar/victim")));
        let dirs = ["share".to_string()];
        let err = link(&prefix, "b", "1.0.0", &[], &dirs, false).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains(&prefix.join("share/rtdir").display().to_string())
                && !shown.contains("rtdir/victim")
                && shown.contains("never links into a link"),
            "{a_link:?}: {shown}"
        );
        // --overwrite replaces A's link by a real directory; nothing is written through it.
        link(&prefix, "b", "1.0.0", &[], &dirs, true).unwrap();
        let rtdir = std::fs::symlink_metadata(prefix.join("share/rtdir")).unwrap();
        assert!(rtdir.is_dir(), "{a_link:?}");
        assert!(prefix.join("share/rtdir/sub/deeper/pwned-deep").exists());
        assert_eq!(
            (tree(&outside), tree(&prefix.join("Cellar/victim"))),
            before,
            "{a_link:?}: something was written through A's link"
        );
        // Uninstalling B removes every link it owns and the directories it leaves empty.
        unlink(&prefix, "b").unwrap();
        unlink(&prefix, "a").unwrap();
        assert!(std::fs::symlink_metadata(prefix.join("share/rtdir")).is_err());
        assert_eq!(
            (tree(&outside), tree(&prefix.join("Cellar/victim"))),
            before
        );
    }
}

#[test]
fn a_link_to_a_directory_inside_its_own_keg_is_split_when_another_keg_needs_it() {
    let d = tempfile::tempdir().unwrap();
    let prefix = d.path();
    let a = prefix.join("Cellar/a/1.0.0/share");
    file(&a.join("a-doc/readme"), "a");
    std::fs::create_dir_all(a.join("doc")).unwrap();
    std::os::unix::fs::symlink("../a-doc", a.join("doc/a")).unwrap();
    let dirs = ["share".to_string()];
    link(prefix, "a", "1.0.0", &[], &dirs, false).unwrap();
    assert!(std::fs::read_link(prefix.join("share/doc/a")).is_ok());
    file(&prefix.join("Cellar/b/1.0.0/share/doc/a/b-notes"), "b");
    link(prefix, "b", "1.0.0", &[], &dirs, false).unwrap();
    let split = prefix.join("share/doc/a");
    assert!(std::fs::symlink_metadata(&split).unwrap().is_dir());
    assert_eq!(std::fs::read_to_string(split.join("readme")).unwrap(), "a");
    assert_eq!(std::fs::read_to_string(split.join("b-notes")).unwrap(), "b");
    assert_eq!(
        links_of(prefix, "a").len(),
        3,
        "{:?}",
        links_of(prefix, "a")
    );
    // A relinks into the real directory, entry by entry; B's link stays.
    link(prefix, "a", "1.0.0", &[], &dirs, false).unwrap();
    assert_eq!(std::fs::read_to_string(split.join("b-notes")).unwrap(), "b");
    unlink(prefix, "b").unwrap();
    assert_eq!(std::fs::read_to_string(split.join("readme")).unwrap(), "a");
    // B gone: A's link is one link again, as A alone would have it.
    assert_eq!(
        std::fs::read_link(&split).unwrap(),
        Path::new("../../Cellar/a/1.0.0/share/doc/a")
    );
    unlink(prefix, "a").unwrap();
    assert!(std::fs::symlink_metadata(&split).is_err());
}

#[test]
fn a_keg_shipping_lib_ld_so_gets_a_conflict_even_with_overwrite() {
    let d = tempfile::tempdir().unwrap();
    file(&d.path().join("Cellar/evil/1.0.0/lib/ld.so"), "#!/bin/sh\n");
    for overwrite in [false, true] {
        let err = link(d.path(), "evil", "1.0.0", &[], &["lib".into()], overwrite)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lib/ld.so") && err.contains("reserved"),
            "{err}"
        );
    }
    assert!(std::fs::symlink_metadata(d.path().join("lib/ld.so")).is_err());
}

#[test]
fn listed_bin_must_exist() {
    let d = tempfile::tempdir().unwrap();
    keg(d.path(), "hello", "1.0.0", &["hello"]);
    let err = crate::cellar::bins::bins_for(
        &d.path().join("Cellar/hello/1.0.0"),
        Some(&["bin/nope".into()]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("bin/nope"));
}

/// `Cellar/NAME/VERSION/PATH` for each path, holding its own name.
fn kegged(prefix: &Path, name: &str, version: &str, paths: &[&str]) {
    let keg = prefix.join("Cellar").join(name).join(version);
    for p in paths {
        file(&keg.join(p), &format!("{name} {p}"));
    }
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

#[test]
fn a_directory_the_prefix_lacks_is_one_link_split_level_by_level_and_joined_again() {
    let d = tempfile::tempdir().unwrap();
    let prefix = d.path();
    let dirs = ["share".to_string(), "lib".to_string()];
    kegged(
        prefix,
        "a",
        "1.0.0",
        &[
            "share/vim/vim90/syntax/a.vim",
            "share/vim/vim90/filetype.vim",
            "share/vim/addons/x",
            "share/man/man1/a.1",
            "lib/pkgconfig/a.pc",
            "lib/liba.so",
        ],
    );
    link(prefix, "a", "1.0.0", &[], &dirs, false).unwrap();
    // As brew links: one link for `share/vim`; `share/man/man1` and `lib/pkgconfig` stay real.
    assert_eq!(
        std::fs::read_link(prefix.join("share/vim")).unwrap(),
        Path::new("../Cellar/a/1.0.0/share/vim")
    );
    assert!(is_real_dir(&prefix.join("share/man/man1")));
    assert!(is_link(&prefix.join("share/man/man1/a.1")));
    assert!(is_real_dir(&prefix.join("lib/pkgconfig")));
    let a_alone = tree(prefix);

    // B puts a file two levels inside A's linked directory: each level becomes a real directory
    // of A's links, and nothing is written into A's keg.
    kegged(
        prefix,
        "b",
        "1.0.0",
        &["share/vim/vim90/syntax/b.vim", "share/man/man1/b.1"],
    );
    let a_keg = tree(&prefix.join("Cellar/a"));
    link(prefix, "b", "1.0.0", &[], &dirs, false).unwrap();
    assert_eq!(tree(&prefix.join("Cellar/a")), a_keg);
    for dir in ["share/vim", "share/vim/vim90", "share/vim/vim90/syntax"] {
        assert!(is_real_dir(&prefix.join(dir)), "{dir}");
    }
    assert!(is_link(&prefix.join("share/vim/addons")));
    let read = |p: &str| std::fs::read_to_string(prefix.join(p)).unwrap();
    assert_eq!(
        read("share/vim/vim90/syntax/a.vim"),
        "a share/vim/vim90/syntax/a.vim"
    );
    assert_eq!(
        read("share/vim/vim90/syntax/b.vim"),
        "b share/vim/vim90/syntax/b.vim"
    );
    assert_eq!(
        read("share/vim/vim90/filetype.vim"),
        "a share/vim/vim90/filetype.vim"
    );
    assert_eq!(read("share/vim/addons/x"), "a share/vim/addons/x");

    // A file both ship is a conflict naming its owner; nothing changes.
    kegged(prefix, "c", "1.0.0", &["share/vim/vim90/syntax/a.vim"]);
    let before = tree(prefix);
    let err = link(prefix, "c", "1.0.0", &[], &dirs, false).unwrap_err();
    assert!(err.to_string().contains("`a`"), "{err}");
    assert_eq!(tree(prefix), before);

    // Unlinking A first leaves B's links, joined into B's one link; relinking A splits again.
    unlink(prefix, "a").unwrap();
    assert_eq!(
        std::fs::read_link(prefix.join("share/vim")).unwrap(),
        Path::new("../Cellar/b/1.0.0/share/vim")
    );
    assert!(is_real_dir(&prefix.join("share/man/man1")));
    assert!(!prefix.join("share/vim/addons").exists());
    link(prefix, "a", "1.0.0", &[], &dirs, false).unwrap();
    assert_eq!(
        read("share/vim/vim90/syntax/a.vim"),
        "a share/vim/vim90/syntax/a.vim"
    );
    assert_eq!(
        read("share/vim/vim90/syntax/b.vim"),
        "b share/vim/vim90/syntax/b.vim"
    );
    assert_eq!(tree(&prefix.join("Cellar/a")), a_keg);

    // B gone: A's links are joined back into the one link A alone has; man1 stays real.
    unlink(prefix, "b").unwrap();
    let mut now = tree(prefix);
    now.retain(|(p, _)| !p.starts_with("Cellar/b") && !p.starts_with("Cellar/c"));
    let mut want = a_alone.clone();
    want.retain(|(p, _)| !p.starts_with("Cellar/b"));
    assert_eq!(now, want);

    // A failure midway (a file where the link goes) leaves the prefix as it was.
    unlink(prefix, "a").unwrap();
    std::fs::create_dir_all(prefix.join("share/vim/vim90/syntax")).unwrap();
    std::fs::write(prefix.join("share/vim/vim90/syntax/a.vim"), "mine").unwrap();
    let before = tree(prefix);
    assert!(link(prefix, "a", "1.0.0", &[], &dirs, false).is_err());
    assert_eq!(tree(prefix), before);
}

#[test]
fn a_newer_version_takes_over_its_whole_directory_links_and_drops_the_ones_it_lacks() {
    let d = tempfile::tempdir().unwrap();
    let prefix = d.path();
    let dirs = ["share".to_string()];
    kegged(
        prefix,
        "a",
        "1.0.0",
        &["share/vim/syntax/a.vim", "share/old/x"],
    );
    kegged(
        prefix,
        "a",
        "2.0.0",
        &["share/vim/syntax/a.vim", "share/new/y"],
    );
    link(prefix, "a", "1.0.0", &[], &dirs, false).unwrap();
    link(prefix, "a", "2.0.0", &[], &dirs, false).unwrap();
    assert_eq!(
        std::fs::read_link(prefix.join("share/vim")).unwrap(),
        Path::new("../Cellar/a/2.0.0/share/vim")
    );
    assert_eq!(
        std::fs::read_link(prefix.join("share/new")).unwrap(),
        Path::new("../Cellar/a/2.0.0/share/new")
    );
    assert!(
        std::fs::symlink_metadata(prefix.join("share/old")).is_err(),
        "a directory link of the old version stayed"
    );
    // Split by a second keg, then upgraded: the split directory keeps b's link and holds the
    // new version's links; b gone, it is the new version's one link again.
    kegged(prefix, "b", "1.0.0", &["share/vim/syntax/b.vim"]);
    link(prefix, "b", "1.0.0", &[], &dirs, false).unwrap();
    kegged(prefix, "a", "3.0.0", &["share/vim/syntax/a.vim"]);
    link(prefix, "a", "3.0.0", &[], &dirs, false).unwrap();
    assert_eq!(
        std::fs::read_link(prefix.join("share/vim/syntax/a.vim")).unwrap(),
        Path::new("../../../Cellar/a/3.0.0/share/vim/syntax/a.vim")
    );
    assert!(is_link(&prefix.join("share/vim/syntax/b.vim")));
    unlink(prefix, "b").unwrap();
    assert_eq!(
        std::fs::read_link(prefix.join("share/vim")).unwrap(),
        Path::new("../Cellar/a/3.0.0/share/vim")
    );
    assert!(std::fs::symlink_metadata(prefix.join("share/new")).is_err());
}
