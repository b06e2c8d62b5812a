//! Trees people really publish, packed by real peers — GNU tar (`--format=gnu`, `--format=posix`,
//! `-S` with each sparse version), bsdtar, umoci, `python3 -m venv`, and `pkg bottle` itself —
//! pushed to the real registry as `tar`, `tar+gzip` and `tar+zstd` layers. Each installed keg is
//! compared entry by entry with GNU tar's extraction of the very same archive: type, permission
//! bits, size, sha256, link target, link count and `user.*` xattrs.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest as _;

use crate::faults::host_platform;
use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
const PLAIN: &str = "application/vnd.oci.image.layer.v1.tar";

/// Runs `script` with bash in `dir`; panics with its output when it fails.
pub fn sh(dir: &Path, script: &str) {
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What is compared of one entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Facts {
    kind: &'static str,
    /// Regular files only: GNU tar restores their mtime, and so must pkg.
    mtime: Option<i64>,
    mode: u32,
    size: u64,
    sha256: Option<String>,
    link: Option<PathBuf>,
    /// The first path (in order) of the tree's own names for this inode: hard links within
    /// the tree, whatever links the inode has outside it (a keg hard-linked to the store).
    first_name: Option<String>,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn user_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n]
        .split(|b| *b == 0)
        .filter(|n| n.starts_with(b"user."))
    {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut value = vec![0u8; 4096];
        let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value).unwrap();
        out.push((name, value[..len].to_vec()));
    }
    out.sort();
    out
}

/// Every entry under `root` (links not followed), keyed by its relative path; `.pkg` left out.
pub fn listing(root: &Path) -> BTreeMap<String, Facts> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if rel == ".pkg" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                stack.push(path.clone());
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_file() {
                "file"
            } else if ft.is_fifo() {
                "fifo"
            } else {
                "other"
            };
            if !ft.is_dir() {
                inodes.insert(rel.clone(), (meta.dev(), meta.ino()));
            }
            let sha256 = ft.is_file().then(|| {
                let bytes = std::fs::read(&path).unwrap();
                hex::encode(sha2::Sha256::digest(&bytes))
            });
            out.insert(
                rel,
                Facts {
                    kind,
                    mtime: ft.is_file().then(|| meta.mtime()),
                    // A symlink's own mode is not the archive's to set.
                    mode: if ft.is_symlink() {
                        0
                    } else {
                        meta.mode() & 0o7777
                    },
                    size: if ft.is_dir() { 0 } else { meta.len() },
                    sha256,
                    link: ft.is_symlink().then(|| std::fs::read_link(&path).unwrap()),
                    first_name: None,
                    xattrs: if ft.is_symlink() {
                        Vec::new()
                    } else {
                        user_xattrs(&path)
                    },
                },
            );
        }
    }
    let mut first: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for (rel, inode) in &inodes {
        first.entry(*inode).or_insert_with(|| rel.clone());
    }
    for (rel, inode) in &inodes {
        if let Some(facts) = out.get_mut(rel) {
            facts.first_name = first.get(inode).cloned();
        }
    }
    out
}

#[track_caller]
pub fn assert_same_tree(case: &str, keg: &Path, reference: &Path) {
    let (got, want) = (listing(keg), listing(reference));
    for (rel, facts) in &want {
        assert_eq!(
            got.get(rel),
            Some(facts),
            "{case}: `{rel}` differs from GNU tar's extraction"
        );
    }
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(extra.is_empty(), "{case}: only in pkg's keg: {extra:?}");
}

/// GNU tar's extraction of `tar` (uncompressed) as a normal user does it: no owners, modes
/// under the umask, `user.*` xattrs kept.
pub fn gnu_extract(tar: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    sh(
        into,
        &format!(
            "tar --no-same-owner --no-same-permissions --xattrs --xattrs-include='user.*' -xf '{}'",
            tar.display()
        ),
    );
}

/// The tree of a `/usr`-like subtree and a package with every kind of entry GNU tar writes.
pub fn usrish_tree(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let long_dir = "d".repeat(150);
    let long_file = "f".repeat(120);
    let long_target = format!("../{}", "t".repeat(200));
    sh(
        dir,
        &format!(
            r#"
mkdir -p bin lib/python3.12/site-packages/certifi share/private "share/{long_dir}"
printf '#!/bin/sh\necho usrish tool\n' > bin/tool
ln bin/tool bin/tool-again
ln -s /etc/alternatives/awk bin/awk
ln -s /lib/x86_64-linux-gnu/libz.so.1 lib/libz.so
ln -s ../../../../../../etc/ssl/cert.pem lib/python3.12/site-packages/certifi/cacert.pem
ln -s ../bin/tool lib/sym
ln lib/sym lib/hardsym
printf 'secret key\n' > share/private/id_ed25519
printf 'deep\n' > "share/{long_dir}/{long_file}"
ln -s "{long_target}" share/longlink
ln -s nowhere share/dangling
truncate -s 8M share/disk.img
printf start | dd of=share/disk.img conv=notrunc status=none
printf middle | dd of=share/disk.img bs=1 seek=4194304 conv=notrunc status=none
mkfifo share/pipe
find . -type d -exec chmod 0755 {{}} +
find . -type f -exec chmod 0644 {{}} +
chmod 0755 bin/tool
chmod 0700 share/private
chmod 0600 share/private/id_ed25519
chmod 0750 lib
python3 -c 'import os; os.setxattr("share/private/id_ed25519", "user.origin", b"a peer")'
"#
        ),
    );
}

/// Writes the formula `name` 1.0.0 at `repository` (tag `1.0.0`), linking `bins`.
fn write_formula(ctx: &TestContext, name: &str, repository: &str, bins: &[&str]) {
    ctx.write_formula(
        name,
        &Formula::new(name)
            .bin(bins)
            .version("1.0.0", repository, "1.0.0")
            .to_toml(),
    );
}

/// Installs `blob` as the only layer of `acme/NAME:1.0.0`, by a formula linking `bins`.
fn install(reg: &Registry, ctx: &TestContext, name: &str, blob: Vec<u8>, media_type: &str) {
    install_with(reg, ctx, name, blob, media_type, &[]);
}

fn install_with(
    reg: &Registry,
    ctx: &TestContext,
    name: &str,
    blob: Vec<u8>,
    media_type: &str,
    bins: &[&str],
) {
    let (os, arch) = host_platform();
    reg.push(
        &format!("acme/{name}"),
        "1.0.0",
        &Fixture::Image(ImageSpec::new(os, arch).raw_layer(blob, media_type)),
    );
    let repo = format!("{}/acme/{name}", reg.host());
    write_formula(ctx, name, &repo, bins);
    ctx.pkg(&["install", name]).success();
}

fn compress(tar: &Path, media_type: &str) -> Vec<u8> {
    let tool = match media_type {
        GZIP => "gzip -c",
        ZSTD | DOCKER_ZSTD => "zstd -q -c",
        _ => "cat",
    };
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{tool} '{}'", tar.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn trees_from_gnu_tar_and_bsdtar_install_exactly_as_gnu_tar_extracts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    usrish_tree(&tree);
    let reg = Registry::start();
    let ctx = TestContext::new();
    let owners = "--owner=0 --group=0 --numeric-owner";
    let cases = [
        ("gnu", format!("tar --format=gnu -S {owners}"), GZIP),
        (
            "pax-sparse-1-0",
            format!("tar --format=posix -S --sparse-version=1.0 --xattrs {owners}"),
            ZSTD,
        ),
        (
            "pax-sparse-0-0",
            format!("tar --format=posix -S --sparse-version=0.0 --xattrs {owners}"),
            PLAIN,
        ),
        (
            "pax-sparse-0-1",
            format!("tar --format=posix -S --sparse-version=0.1 --xattrs {owners}"),
            GZIP,
        ),
        (
            "bsdtar",
            "bsdtar --format=pax --uid 0 --gid 0".to_owned(),
            DOCKER_ZSTD,
        ),
    ];
    for (case, create, media_type) in cases {
        let tar = tmp.path().join(format!("{case}.tar"));
        sh(&tree, &format!("{create} -cf '{}' .", tar.display()));
        let reference = tmp.path().join(format!("{case}-gnu-tar"));
        gnu_extract(&tar, &reference);
        install(&reg, &ctx, case, compress(&tar, media_type), media_type);
        let keg = ctx.keg(case, "1.0.0");
        assert_same_tree(case, &keg, &reference);

        // What the standards name, said outright (the comparison holds them too).
        let private = std::fs::metadata(keg.join("share/private/id_ed25519")).unwrap();
        assert_eq!(
            private.mode() & 0o777,
            0o600,
            "{case}: a private file widened"
        );
        let dir = std::fs::metadata(keg.join("share/private")).unwrap();
        assert_eq!(dir.mode() & 0o777, 0o700, "{case}: a private dir widened");
        assert_eq!(
            std::fs::read_link(keg.join("bin/awk")).unwrap(),
            Path::new("/etc/alternatives/awk")
        );
        let disk = std::fs::metadata(keg.join("share/disk.img")).unwrap();
        assert_eq!(disk.len(), 8 << 20, "{case}: the sparse file's size");
        if case != "bsdtar" {
            assert!(
                disk.blocks() * 512 < 1 << 20,
                "{case}: the sparse file's holes were filled ({} bytes allocated)",
                disk.blocks() * 512
            );
        }
        if case != "gnu" {
            // `--format=gnu` has no room for xattrs; pax (GNU's SCHILY, bsdtar's LIBARCHIVE) has.
            assert_eq!(
                user_xattrs(&keg.join("share/private/id_ed25519")),
                [("user.origin".to_owned(), b"a peer".to_vec())],
                "{case}"
            );
        }
        let hardsym = std::fs::symlink_metadata(keg.join("lib/hardsym")).unwrap();
        assert!(
            hardsym.file_type().is_symlink(),
            "{case}: hard link to a symlink"
        );
    }
}

#[test]
fn a_layer_built_by_umoci_installs_as_gnu_tar_extracts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    usrish_tree(&tree);
    std::fs::remove_file(tree.join("share/pipe")).unwrap();
    let (os, arch) = host_platform();
    let layout = tmp.path().join("layout");
    sh(
        tmp.path(),
        &format!(
            r#"
umoci init --layout layout
umoci new --image layout:1.0.0
umoci config --image layout:1.0.0 --os {os} --architecture {arch}
umoci unpack --rootless --image layout:1.0.0 bundle
cp -a tree/. bundle/rootfs/
umoci repack --image layout:1.0.0 bundle
"#
        ),
    );
    let reg = Registry::start();
    crate::harness::registry::skopeo_push(
        &layout,
        "1.0.0",
        &format!("{}/acme/umoci:1.0.0", reg.host()),
    );
    let ctx = TestContext::new();
    write_formula(&ctx, "umoci", &format!("{}/acme/umoci", reg.host()), &[]);
    ctx.pkg(&["install", "umoci"]).success();

    // The layer umoci wrote, extracted by GNU tar.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| layout.join("blobs/sha256").join(&digest[7..]);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let tar = tmp.path().join("umoci.tar");
    let gz = blob(layers[0]["digest"].as_str().unwrap());
    sh(
        tmp.path(),
        &format!("gzip -dc '{}' > '{}'", gz.display(), tar.display()),
    );
    let reference = tmp.path().join("umoci-gnu-tar");
    gnu_extract(&tar, &reference);
    assert_same_tree("umoci", &ctx.keg("umoci", "1.0.0"), &reference);
}

#[test]
fn a_virtualenv_installs_runs_and_round_trips_through_pkg_bottle() {
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    sh(
        tmp.path(),
        "python3 -m venv --without-pip venv && printf 'print(42)\\n' > venv/answer.py",
    );
    let python3 = std::fs::read_link(venv.join("bin/python3")).unwrap();
    assert!(python3.is_absolute(), "venv made {python3:?}");

    let reg = Registry::start();
    let ctx = TestContext::new();
    let tar = tmp.path().join("venv.tar");
    sh(
        &venv,
        &format!(
            "tar --format=posix --owner=0 --group=0 --numeric-owner -cf '{}' .",
            tar.display()
        ),
    );
    let reference = tmp.path().join("venv-gnu-tar");
    gnu_extract(&tar, &reference);
    install_with(
        &reg,
        &ctx,
        "venv",
        compress(&tar, GZIP),
        GZIP,
        &["bin/python3"],
    );
    let keg = ctx.keg("venv", "1.0.0");
    assert_same_tree("venv", &keg, &reference);
    // The keg is a working virtualenv: its python runs, knows it is in the keg.
    let out = Command::new(keg.join("bin/python3"))
        .arg("-c")
        .arg("import sys; print(sys.prefix)")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        keg.display().to_string(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `bin/python3` is linked as it is: the prefix's link leads to the keg's link.
    assert_eq!(
        std::fs::read_link(ctx.prefix.join("bin/python3")).unwrap(),
        Path::new("../Cellar/venv/1.0.0/bin/python3")
    );

    // pkg can publish the same venv, and what it writes installs with the same links.
    let layout = tmp.path().join("venv.oci");
    ctx.pkg(&[
        "bottle",
        venv.to_str().unwrap(),
        "--name",
        "venvbottle",
        "--version",
        "1.0.0",
        "--output",
        layout.to_str().unwrap(),
    ])
    .success();
    write_formula(
        &ctx,
        "venvbottle",
        &format!("oci:{}", layout.display()),
        &[],
    );
    ctx.pkg(&["install", "venvbottle"]).success();
    let bottled = listing(&ctx.keg("venvbottle", "1.0.0"));
    let original = listing(&venv);
    assert_eq!(
        bottled.keys().collect::<Vec<_>>(),
        original.keys().collect::<Vec<_>>()
    );
    for (rel, facts) in &original {
        let got = &bottled[rel];
        assert_eq!(
            (got.kind, &got.link, &got.sha256),
            (facts.kind, &facts.link, &facts.sha256),
            "{rel}"
        );
    }
}

/// A Homebrew bottle (GNU tar `--format=pax --sort=name` of `NAME/1.0.0_1/`, as brew packs one)
/// becomes the keg with that top stripped, links moved as they are; a tarball whose top is
/// `NAME/SUBDIR/` keeps its shape. Both compared with GNU tar's extraction.
#[test]
fn the_bottle_strip_fires_only_on_name_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sh(
        tmp.path(),
        r#"
mkdir -p src/brewed/1.0.0_1/bin src/brewed/1.0.0_1/lib/python3.12/site-packages/certifi src/brewed/1.0.0_1/.brew
printf '#!/bin/sh
echo brewed
' > src/brewed/1.0.0_1/bin/brewed
chmod 0755 src/brewed/1.0.0_1/bin/brewed
printf 'class Brewed < Formula; end
' > src/brewed/1.0.0_1/.brew/brewed.rb
printf '{}' > src/brewed/1.0.0_1/INSTALL_RECEIPT.json
ln -s ../../../../../../etc/ssl/cert.pem src/brewed/1.0.0_1/lib/python3.12/site-packages/certifi/cacert.pem
mkdir -p src/mytool/bin && printf '#!/bin/sh
echo mytool
' > src/mytool/bin/mytool && chmod 0755 src/mytool/bin/mytool
"#,
    );
    let reg = Registry::start();
    let ctx = TestContext::new();
    for (name, top) in [("brewed", "brewed/1.0.0_1"), ("mytool", "")] {
        let tar = tmp.path().join(format!("{name}.tar"));
        sh(
            &src,
            &format!(
                "tar --format=pax --sort=name --owner=0 --group=0 --numeric-owner -cf '{}' {name}",
                tar.display()
            ),
        );
        let reference = tmp.path().join(format!("{name}-gnu-tar"));
        gnu_extract(&tar, &reference);
        install(&reg, &ctx, name, compress(&tar, GZIP), GZIP);
        assert_same_tree(name, &ctx.keg(name, "1.0.0"), &reference.join(top));
    }
    let keg = ctx.keg("brewed", "1.0.0");
    assert_eq!(
        std::fs::read_link(keg.join("lib/python3.12/site-packages/certifi/cacert.pem")).unwrap(),
        Path::new("../../../../../../etc/ssl/cert.pem")
    );
    assert!(
        ctx.keg("mytool", "1.0.0")
            .join("mytool/bin/mytool")
            .is_file()
    );
}

/// ORAS file layers are placed whatever their bytes (a `.tar` file stays a file) and their
/// titles are cleaned as ORAS Go cleans them; an unsafe title is a clear error.
#[test]
fn oras_files_are_placed_never_unpacked() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    sh(
        &tree,
        "printf 'inside\\n' > inside.txt && tar -cf ../release.tar inside.txt",
    );
    let release = std::fs::read(tmp.path().join("release.tar")).unwrap();
    let reg = Registry::start();
    let ctx = TestContext::new();
    let (os, arch) = host_platform();
    for (name, title, ok) in [
        ("orastar", "release.tar", true),
        ("orasdot", "./hello.sh", true),
        ("orasevil", "../../escaped", false),
    ] {
        let mut spec = ImageSpec::new(os, arch).raw_layer(release.clone(), PLAIN);
        spec.layer_annotations = vec![("org.opencontainers.image.title".into(), title.into())];
        reg.push(&format!("acme/{name}"), "1.0.0", &Fixture::Image(spec));
        write_formula(&ctx, name, &format!("{}/acme/{name}", reg.host()), &[]);
        let run = ctx.pkg(&["install", name]);
        if ok {
            let placed = ctx.keg(name, "1.0.0").join(title.trim_start_matches("./"));
            assert_eq!(std::fs::read(&placed).unwrap(), release, "{name}");
            assert!(!ctx.keg(name, "1.0.0").join("inside.txt").exists());
        } else {
            assert_eq!(run.code, 1, "{}", run.output());
            run.says("`../../escaped`")
                .says("not a path inside the package");
        }
    }
}

/// Decompression follows the media type, and the bytes must agree with it: a gzip blob labelled
/// `tar+zstd`, or a zstd blob labelled plain `tar`, is refused with a message saying both, and
/// nothing is installed.
#[test]
fn a_layer_whose_bytes_contradict_its_media_type_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/x"), "x").unwrap();
    let tar = tmp.path().join("x.tar");
    sh(&tree, &format!("tar -cf '{}' bin", tar.display()));
    let reg = Registry::start();
    let ctx = TestContext::new();
    for (name, bytes_of, labelled, says) in [
        (
            "gzlabelledzstd",
            GZIP,
            ZSTD,
            "media type says tar+zstd but its bytes are tar+gzip",
        ),
        (
            "zstdlabelledtar",
            ZSTD,
            PLAIN,
            "media type says tar but its bytes are tar+zstd",
        ),
    ] {
        let (os, arch) = host_platform();
        let spec = ImageSpec::new(os, arch).raw_layer(compress(&tar, bytes_of), labelled);
        reg.push(&format!("acme/{name}"), "1.0.0", &Fixture::Image(spec));
        write_formula(&ctx, name, &format!("{}/acme/{name}", reg.host()), &[]);
        let run = ctx.pkg(&["install", name]).failure();
        run.says(says);
        crate::faults::assert_nothing_installed(&ctx, name);
    }
}
