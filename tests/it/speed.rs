//! Speed II (issue 17), checked for what it must not change: the parallel unpack writes the
//! tree GNU tar extracts, whatever the number of writers; a warm install is a reflink clone of
//! the unpacked store where the filesystem has reflinks (a real XFS, loop-mounted), and a write
//! into one keg changes neither the store nor another prefix's keg. No timing here: bench/.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest as _;

use crate::faults::host_platform;
use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};
use crate::realworld::{assert_same_tree, gnu_extract, sh, usrish_tree};

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn gzip(tar: &Path) -> Vec<u8> {
    let out = Command::new("gzip").arg("-c").arg(tar).output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// A tree that keeps writers busy and in each other's way: many small files, files of several
/// chunks, hard links to a big file still being written, an empty file, a path written twice
/// (the later entry wins), plus every kind of entry of [`usrish_tree`].
fn busy_tree(dir: &Path) {
    usrish_tree(dir);
    sh(
        dir,
        r#"
mkdir -p many big
for d in 0 1 2 3 4 5 6 7; do mkdir -p many/$d; for f in $(seq 0 199); do printf "file $d/$f\n" > many/$d/$f.txt; done; done
for i in 1 2 3; do head -c $((i * 1100000 + 12345)) /dev/urandom > big/blob$i.bin; done
ln big/blob3.bin big/blob3-again.bin
: > many/empty
find many big -type d -exec chmod 0755 {} +
find many big -type f -exec chmod 0644 {} +
chmod 0755 big/blob1.bin
touch -d '2001-02-03 04:05:06' big/blob2.bin many/3/7.txt
"#,
    );
}

#[test]
fn the_parallel_unpack_writes_the_tree_gnu_tar_extracts_with_any_number_of_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    busy_tree(&tree);
    let tar = tmp.path().join("busy.tar");
    sh(
        &tree,
        &format!(
            "tar --format=posix -S --xattrs --owner=0 --group=0 --numeric-owner -cf '{0}' . && printf 'the later one\\n' > many/0/1.txt && tar --format=posix --owner=0 --group=0 -rf '{0}' ./many/0/1.txt",
            tar.display()
        ),
    );
    let reference = tmp.path().join("gnu-tar");
    gnu_extract(&tar, &reference);
    assert_eq!(
        std::fs::read_to_string(reference.join("many/0/1.txt")).unwrap(),
        "the later one\n"
    );
    let reg = Registry::start();
    let (os, arch) = host_platform();
    reg.push(
        "acme/busy",
        "1.0.0",
        &Fixture::Image(ImageSpec::new(os, arch).raw_layer(gzip(&tar), GZIP)),
    );
    for writers in ["0", "1", "4"] {
        let mut ctx = TestContext::new();
        ctx.env("PKG_UNPACK_WRITERS", writers);
        ctx.write_formula(
            "busy",
            &Formula::new("busy")
                .bin(&[])
                .version("1.0.0", &format!("{}/acme/busy", reg.host()), "1.0.0")
                .to_toml(),
        );
        ctx.pkg(&["install", "busy"]).success();
        // Type, mode, size, sha256, mtime, link target, link count and xattrs, entry by entry.
        assert_same_tree(
            &format!("{writers} writers"),
            &ctx.keg("busy", "1.0.0"),
            &reference,
        );
    }
}

/// An XFS filesystem with reflinks, loop-mounted for the test (unmounted when dropped); `None`
/// where this machine cannot mount one.
pub struct Xfs {
    pub dir: PathBuf,
    _image: tempfile::TempDir,
}

impl Xfs {
    pub fn mount() -> Option<Xfs> {
        let image = tempfile::tempdir().unwrap();
        let file = image.path().join("xfs.img");
        let dir = image.path().join("mnt");
        std::fs::create_dir_all(&dir).unwrap();
        let made = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "truncate -s 512M '{f}' && mkfs.xfs -q -m reflink=1 '{f}' && mount -o loop '{f}' '{d}'",
                f = file.display(),
                d = dir.display()
            ))
            .output()
            .unwrap();
        if !made.status.success() {
            eprintln!(
                "no XFS here ({}): the filesystem without reflinks is checked",
                String::from_utf8_lossy(&made.stderr).trim()
            );
            return None;
        }
        Some(Xfs { dir, _image: image })
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

pub fn sha256(path: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Used bytes of the filesystem holding `path`.
fn used(path: &Path) -> u64 {
    let st = rustix::fs::statvfs(path).unwrap();
    (st.f_blocks - st.f_bfree) * st.f_frsize
}

#[test]
fn a_write_into_a_warm_keg_leaves_the_store_and_other_kegs_unchanged() {
    let reg = Registry::start();
    let data: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (os, arch) = host_platform();
    reg.push(
        "acme/heavy",
        "1.0.0",
        &Fixture::Image(
            ImageSpec::new(os, arch)
                .file("share/heavy.bin", &data, 0o644)
                .file("bin/heavy", "#!/bin/sh\necho heavy\n", 0o755),
        ),
    );
    let xfs = Xfs::mount();
    let fallback = tempfile::tempdir().unwrap();
    let base = match &xfs {
        Some(x) => x.dir.clone(),
        None => fallback.path().to_owned(),
    };
    let prefix = |name: &str| {
        let mut ctx = TestContext::new();
        ctx.prefix = base.join(name);
        ctx.cache = base.join("cache");
        ctx
    };
    let formula = Formula::new("heavy")
        .version("1.0.0", &format!("{}/acme/heavy", reg.host()), "1.0.0")
        .to_toml();
    let (a, b, c) = (prefix("a"), prefix("b"), prefix("c"));
    for ctx in [&a, &b, &c] {
        ctx.write_formula("heavy", &formula);
    }
    // (The blob cached first: a clone is stored from the layers' second unpacking on.)
    a.pkg(&["fetch", "heavy"]).success();
    a.pkg(&["install", "heavy"]).success();
    let store = base.join("cache/v1/unpacked");
    let entries: Vec<PathBuf> = std::fs::read_dir(&store)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let before_b = used(&base);
    b.pkg(&["install", "heavy"]).success();
    c.pkg(&["install", "heavy"]).success();
    let grew = used(&base) - before_b;
    let file = |ctx: &TestContext| ctx.keg("heavy", "1.0.0").join("share/heavy.bin");
    let original = sha256(&file(&a));
    assert_eq!(sha256(&file(&b)), original);
    match &xfs {
        Some(_) => {
            assert_eq!(entries.len(), 1, "the unpacked tree is stored: {entries:?}");
            // Two more prefixes of a 24 MiB package cost a few blocks of metadata, not 48 MiB.
            assert!(
                grew < 4 << 20,
                "two warm prefixes used {grew} bytes: they were copied, not cloned"
            );
        }
        None => assert!(
            entries.is_empty(),
            "without reflinks nothing is stored (a hard link would share the inode): {entries:?}"
        ),
    }

    // A write into b's keg (as root, past any mode bits): a, c and the store keep their bytes.
    std::fs::OpenOptions::new()
        .append(true)
        .open(file(&b))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"scribbled"))
        .unwrap();
    assert_ne!(sha256(&file(&b)), original);
    assert_eq!(sha256(&file(&a)), original, "a's keg changed with b's");
    assert_eq!(sha256(&file(&c)), original, "c's keg changed with b's");
    if let Some(entry) = entries.first() {
        assert_eq!(
            sha256(&entry.join("tree/share/heavy.bin")),
            original,
            "the store changed with b's keg"
        );
    }
    // And the next prefix still gets the published bytes; reinstall mends b.
    let d = prefix("d");
    d.write_formula("heavy", &formula);
    d.pkg(&["install", "heavy"]).success();
    assert_eq!(sha256(&file(&d)), original);
    b.pkg(&["reinstall", "heavy"]).success();
    assert_eq!(sha256(&file(&b)), original);

    // Cleanup keeps a tree a prefix uses, and drops it with its layer.
    for ctx in [&a, &b, &c, &d] {
        ctx.pkg(&["uninstall", "heavy"]).success();
    }
    d.pkg(&["cleanup"]).success();
    let left: Vec<_> = std::fs::read_dir(&store)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "cleanup left {left:?}");
}
