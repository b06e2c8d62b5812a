use super::limits::{self, parse_limit};
use super::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use tar::Header;

/// Builds archives from raw headers, so hostile names go in unchecked.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn raw(&mut self, name: &[u8], kind: EntryType, link: &[u8], mode: u32, data: &[u8]) {
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Tar {
        self.raw(name.as_bytes(), EntryType::Regular, b"", mode, data);
        self
    }

    fn dir(&mut self, name: &str) -> &mut Tar {
        self.raw(name.as_bytes(), EntryType::Directory, b"", 0o755, b"");
        self
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
        let (n, t) = (name.as_bytes(), target.as_bytes());
        self.raw(n, EntryType::Symlink, t, 0o777, b"");
        self
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Tar {
        let (n, t) = (name.as_bytes(), target.as_bytes());
        self.raw(n, EntryType::Link, t, 0o644, b"");
        self
    }

    /// A GNU long-name header for the next entry.
    fn long_name(&mut self, name: &[u8]) -> &mut Tar {
        let mut data = name.to_vec();
        data.push(0);
        self.raw(b"././@LongLink", EntryType::GNULongName, b"", 0o644, &data);
        self
    }

    /// A pax extended header for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        self.raw(b"PaxHeaders/x", EntryType::XHeader, b"", 0o644, &data);
        self
    }

    fn bytes(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

/// A scratch dir holding `root` (the staging root) and room beside it to detect escapes.
struct Scratch {
    dir: tempfile::TempDir,
    stats: Stats,
    limits: Limits,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        Scratch {
            dir,
            stats: Stats::default(),
            limits: Limits::default(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn outside(&self) -> &Path {
        self.dir.path()
    }

    fn unpack(&mut self, tar: &[u8]) -> Result<(), UnpackError> {
        let root = self.root();
        unpack_tar(tar, &root, &self.limits, &mut self.stats)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root().join(rel)).unwrap()
    }

    fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.root().join(rel)).is_ok()
    }

    fn mode(&self, rel: &str) -> u32 {
        fs::symlink_metadata(self.root().join(rel)).unwrap().mode() & 0o7777
    }
}

fn refused_path(err: UnpackError, entry: &str) {
    match &err {
        UnpackError::Path { entry: e, .. } => assert_eq!(&**e, entry, "{err}"),
        other => panic!("expected a refused path for {entry}, got {other:?}"),
    }
    assert!(err.to_string().contains(entry), "{err}");
}

fn refused_link(err: UnpackError, entry: &str, reason: Reason) {
    match &err {
        UnpackError::LinkTarget {
            entry: e,
            reason: r,
            ..
        } => assert_eq!((&**e, *r), (entry, reason), "{err}"),
        other => panic!("expected a refused link for {entry}, got {other:?}"),
    }
}

#[test]
fn normal_tar_gz_unpacks() {
    let tar = Tar::new()
        .dir("./")
        .dir("./bin/")
        .dir("./libexec/")
        .file("./libexec/tool", 0o775, b"#!/bin/sh\necho hi\n")
        .symlink("./bin/tool", "../libexec/tool")
        .dir("share/doc/pkg")
        .file("share/doc/pkg/README", 0o664, b"read me")
        .hardlink("share/doc/pkg/README.txt", "./share/doc/pkg/README")
        .file("lib/deep/nested/libx.a", 0o644, b"ar")
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();

    let mut s = Scratch::new();
    let root = s.root();
    unpack_tar(
        flate2::read::GzDecoder::new(&gz[..]),
        &root,
        &s.limits,
        &mut s.stats,
    )
    .unwrap();

    assert_eq!(s.read("libexec/tool"), "#!/bin/sh\necho hi\n");
    assert_eq!(s.mode("libexec/tool"), 0o755);
    assert_eq!(
        fs::read_link(root.join("bin/tool")).unwrap(),
        Path::new("../libexec/tool")
    );
    assert_eq!(s.read("bin/tool"), "#!/bin/sh\necho hi\n");
    assert_eq!(s.read("share/doc/pkg/README.txt"), "read me");
    let a = fs::metadata(root.join("share/doc/pkg/README")).unwrap();
    let b = fs::metadata(root.join("share/doc/pkg/README.txt")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(s.mode("share/doc/pkg/README"), 0o644);
    assert_eq!(s.mode("lib/deep/nested"), 0o755);
    assert_eq!(s.read("lib/deep/nested/libx.a"), "ar");
    assert_eq!(a.mtime(), 1_600_000_000);
    assert_eq!(s.stats.entries, 9);
    assert_eq!(s.stats.bytes, 18 + 7 + 2);
}

#[test]
fn refuses_absolute_paths() {
    for name in ["/etc/passwd", "//etc/x", "/"] {
        let mut s = Scratch::new();
        let err = s.unpack(&Tar::new().file(name, 0o644, b"x").bytes());
        refused_path(err.unwrap_err(), name);
    }
}

#[test]
fn refuses_dotdot_components() {
    for name in [
        "../escaped",
        "a/../../escaped",
        "a/..",
        "./../escaped",
        "..",
    ] {
        let mut s = Scratch::new();
        let err = s.unpack(&Tar::new().file(name, 0o644, b"x").bytes());
        refused_path(err.unwrap_err(), name);
        assert!(!s.outside().join("escaped").exists());
    }
}

#[test]
fn refuses_nul_bytes_and_empty_names() {
    let mut s = Scratch::new();
    let tar = Tar::new()
        .long_name(b"bin/ok\0/../../escaped")
        .file("ignored", 0o644, b"x")
        .bytes();
    let err = s.unpack(&tar).unwrap_err();
    assert!(
        matches!(&err, UnpackError::Path { entry, .. } if &**entry == "bin/ok\\u{0}/../../escaped"),
        "{err:?}"
    );

    let mut s = Scratch::new();
    let tar = Tar::new()
        .pax(&[("path", b"a\0b")])
        .file("ignored", 0o644, b"x")
        .bytes();
    assert!(matches!(s.unpack(&tar), Err(UnpackError::Path { .. })));

    let mut s = Scratch::new();
    let err = s.unpack(&Tar::new().file("", 0o644, b"x").bytes());
    refused_path(err.unwrap_err(), "");

    // `./` as anything but a directory.
    let mut s = Scratch::new();
    let err = s.unpack(&Tar::new().file("./", 0o644, b"x").bytes());
    assert!(matches!(err, Err(UnpackError::Path { .. })));
    let mut s = Scratch::new();
    let err = s.unpack(&Tar::new().symlink(".", "..").bytes());
    assert!(matches!(err, Err(UnpackError::Path { .. })));
}

#[test]
fn long_names_are_merged() {
    let long = format!("share/{}/file", "d".repeat(150));
    let mut s = Scratch::new();
    let tar = Tar::new()
        .long_name(long.as_bytes())
        .file("trunc", 0o644, b"long")
        .pax(&[("path", b"./from/pax")])
        .file("trunc2", 0o644, b"pax")
        .bytes();
    s.unpack(&tar).unwrap();
    assert_eq!(s.read(&long), "long");
    assert_eq!(s.read("from/pax"), "pax");
    assert!(!s.exists("trunc") && !s.exists("trunc2"));
}

#[test]
fn never_writes_through_a_symlink() {
    // A symlink inside the root, then a file and a directory "inside" it.
    for second in ["file", "dir"] {
        let mut s = Scratch::new();
        let mut tar = Tar::new();
        tar.dir("sub").symlink("link", "sub");
        if second == "file" {
            tar.file("link/x", 0o644, b"x");
        } else {
            tar.dir("link/d/");
        }
        let err = s.unpack(&tar.bytes()).unwrap_err();
        assert!(
            matches!(&err, UnpackError::ThroughSymlink { symlink, .. } if &**symlink == "link"),
            "{err:?}"
        );
        assert!(!s.exists("sub/x") && !s.exists("sub/d"));
    }

    // Through a symlink made by an earlier layer.
    let mut s = Scratch::new();
    s.unpack(&Tar::new().dir("a").symlink("a/b", ".").bytes())
        .unwrap();
    let err = s.unpack(&Tar::new().file("a/b/c", 0o644, b"x").bytes());
    assert!(matches!(err, Err(UnpackError::ThroughSymlink { .. })));
    assert!(!s.exists("a/c"));
}

#[test]
fn a_checked_directory_replaced_by_a_symlink_is_checked_again() {
    // `d` and `d/e` are checked (and remembered) while writing `d/e/x`; then `d` becomes a
    // symlink to `sub`, and a later entry under `d/e/` must not go through it.
    for replacement in ["symlink", "file then symlink"] {
        let mut s = Scratch::new();
        let mut tar = Tar::new();
        tar.dir("sub/e").file("d/e/x", 0o644, b"x");
        if replacement == "file then symlink" {
            tar.file("d", 0o644, b"now a file");
        }
        tar.symlink("d", "sub").file("d/e/y", 0o644, b"y");
        let err = s.unpack(&tar.bytes()).unwrap_err();
        assert!(
            matches!(&err, UnpackError::ThroughSymlink { symlink, .. } if &**symlink == "d"),
            "{replacement}: {err:?}"
        );
        assert!(!s.exists("sub/e/y"), "{replacement}");
    }

    // A whiteout of a checked directory, then the same path as a symlink.
    let mut s = Scratch::new();
    s.unpack(&Tar::new().dir("sub/e").file("d/e/x", 0o644, b"x").bytes())
        .unwrap();
    let tar = Tar::new()
        .file("d/e/z", 0o644, b"z")
        .file(".wh.d", 0o644, b"")
        .symlink("d", "sub")
        .file("d/e/y", 0o644, b"y")
        .bytes();
    // `d` was made by this layer, so the whiteout spares it and the symlink replaces it.
    let err = s.unpack(&tar).unwrap_err();
    assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err:?}");
    assert!(!s.exists("sub/e/y"));
}

#[test]
fn whiteouts_in_a_first_layer_remove_nothing() {
    let mut s = Scratch::new();
    let tar = Tar::new()
        .file("x", 0o644, b"x")
        .file(".wh.x", 0o644, b"")
        .file("d/f", 0o644, b"f")
        .file("d/.wh..wh..opq", 0o644, b"")
        .file("e/.wh..wh..opq", 0o644, b"")
        .file(".wh.missing", 0o644, b"")
        .bytes();
    s.unpack(&tar).unwrap();
    assert_eq!(s.read("x"), "x");
    assert_eq!(s.read("d/f"), "f");
    assert!(fs::symlink_metadata(s.root().join("e")).unwrap().is_dir());
    // A later layer's whiteout still removes what an earlier layer made.
    s.unpack(&Tar::new().file("y", 0o644, b"y").bytes())
        .unwrap();
    s.unpack(&Tar::new().file(".wh.y", 0o644, b"").bytes())
        .unwrap();
    assert!(!s.exists("y"));
    let err = Scratch::new()
        .unpack(&Tar::new().file(".wh.", 0o644, b"").bytes())
        .unwrap_err();
    refused_path(err, ".wh.");
}

#[test]
fn symlink_targets_are_data_and_never_written_through() {
    // Created as the archive says, wherever they point (GNU tar does the same)…
    let targets = [
        ("evil", "/etc/passwd"),
        ("up", ".."),
        ("sibling", "../root2"),
        ("a/climb", "../../x"),
        ("a/b/dots", "./../.././../x"),
        ("a/b/up", "../.."),
        ("a/self", "."),
        ("a/dangling", "../nowhere/x"),
        ("a/after", "b/../../.."),
    ];
    let mut s = Scratch::new();
    let mut tar = Tar::new();
    for (name, target) in targets {
        tar.symlink(name, target);
    }
    s.unpack(&tar.bytes()).unwrap();
    for (name, target) in targets {
        assert_eq!(
            fs::read_link(s.root().join(name)).unwrap(),
            Path::new(target),
            "{name}"
        );
    }
    // …and no later entry goes through one, whatever it is.
    fs::write(s.outside().join("secret"), "secret").unwrap();
    for (name, _) in targets {
        for later in [
            Tar::new()
                .file(&format!("{name}/pwned"), 0o644, b"x")
                .bytes(),
            Tar::new().dir(&format!("{name}/pwned")).bytes(),
            Tar::new().symlink(&format!("{name}/pwned"), "x").bytes(),
            Tar::new()
                .hardlink(&format!("{name}/pwned"), "a/self")
                .bytes(),
        ] {
            let err = s.unpack(&later).unwrap_err();
            assert!(
                matches!(&err, UnpackError::ThroughSymlink { symlink, .. } if **symlink == *name),
                "{name}: {err:?}"
            );
        }
    }
    let outside: Vec<_> = fs::read_dir(s.outside()).unwrap().collect();
    assert_eq!(
        outside.len(),
        2,
        "only root/ and secret are beside the root"
    );
    assert_eq!(
        fs::read_to_string(s.outside().join("secret")).unwrap(),
        "secret"
    );

    let mut s = Scratch::new();
    let err = s.unpack(&Tar::new().symlink("l", "").bytes());
    refused_link(err.unwrap_err(), "l", Reason::Empty);
    assert!(!s.exists("l"));
    // A NUL in a pax `linkpath`.
    let mut s = Scratch::new();
    let mut tar = Tar::new();
    tar.pax(&[("linkpath", b"ok\0/../../..")])
        .symlink("l", "ok");
    refused_link(s.unpack(&tar.bytes()).unwrap_err(), "l", Reason::Nul);
}

#[test]
fn a_hard_link_to_a_symlink_links_the_symlink() {
    let mut s = Scratch::new();
    let tar = Tar::new()
        .file("file", 0o644, b"data")
        .symlink("sym", "/etc/passwd")
        .hardlink("hardsym", "sym")
        .bytes();
    s.unpack(&tar).unwrap();
    assert_eq!(
        fs::read_link(s.root().join("hardsym")).unwrap(),
        Path::new("/etc/passwd")
    );
    let a = fs::symlink_metadata(s.root().join("sym")).unwrap();
    let b = fs::symlink_metadata(s.root().join("hardsym")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
}

#[test]
fn hardlinks_stay_inside_and_point_at_files() {
    // Each case: a symlink made first (or none), then `h` hard-linked to the target.
    let cases = [
        (None, "../secret", Some(Reason::DotDot)),
        (None, "/etc/passwd", Some(Reason::Absolute)),
        (None, "./", Some(Reason::Root)),
        (None, "missing", Some(Reason::Missing)),
        (None, "nodir/missing", Some(Reason::Missing)),
        (None, "d", Some(Reason::NotAFile)),
        // Parents of the target are checked like an entry's.
        (Some(("dsym", "d")), "dsym/f", None),
    ];
    for (symlink, target, reason) in cases {
        let mut s = Scratch::new();
        fs::write(s.outside().join("secret"), "secret").unwrap();
        let mut tar = Tar::new();
        tar.file("file", 0o644, b"data").file("d/f", 0o644, b"f");
        if let Some((name, to)) = symlink {
            tar.symlink(name, to);
        }
        tar.hardlink("h", target);
        let err = s.unpack(&tar.bytes()).unwrap_err();
        match reason {
            Some(reason) => refused_link(err, "h", reason),
            None => assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err:?}"),
        }
        assert!(!s.exists("h"));
        assert_eq!(
            fs::read_to_string(s.outside().join("secret")).unwrap(),
            "secret"
        );
    }
}

#[test]
fn fifos_are_made_and_devices_refused() {
    let mut s = Scratch::new();
    let mut tar = Tar::new();
    tar.raw(b"pipe", EntryType::Fifo, b"", 0o640, b"");
    tar.file("kept", 0o644, b"k");
    s.unpack(&tar.bytes()).unwrap();
    use std::os::unix::fs::FileTypeExt as _;
    let pipe = fs::symlink_metadata(s.root().join("pipe")).unwrap();
    assert!(pipe.file_type().is_fifo());
    assert_eq!(pipe.mode() & 0o777, 0o640);
    assert_eq!(s.read("kept"), "k");
    for (kind, shown) in [
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
    ] {
        let mut tar = Tar::new();
        tar.raw(b"dev/x", kind, b"", 0o666, b"");
        let err = Scratch::new().unpack(&tar.bytes()).unwrap_err().to_string();
        assert!(err.contains("dev/x") && err.contains(shown), "{err}");
    }
    let mut tar = Tar::new();
    tar.raw(b"odd", EntryType::new(b'Q'), b"", 0o644, b"");
    let err = Scratch::new().unpack(&tar.bytes()).unwrap_err().to_string();
    assert!(err.contains("`odd`") && err.contains("`Q`"), "{err}");
}

#[test]
fn xattr_headers_and_apple_double_files() {
    let mut apple_double = APPLE_DOUBLE_MAGIC.to_vec();
    apple_double.extend_from_slice(&[0, 2, 0, 0, b'M', b'a', b'c', b' ', b'O', b'S']);
    let mut s = Scratch::new();
    let tar = Tar::new()
        .pax(&[
            ("LIBARCHIVE.xattr.com.apple.quarantine", b"MDA4MTs1ZjAw"),
            ("SCHILY.xattr.trusted.evil", b"x"),
            ("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02"),
            ("SCHILY.xattr.user.origin", b"gnu tar"),
            ("LIBARCHIVE.xattr.user.from%20bsdtar", b"YnNkdGFy"),
        ])
        .file("bin/tool", 0o755, b"tool")
        .file("bin/._tool", 0o644, &apple_double)
        .file("._notes", 0o644, b"not AppleDouble")
        .file("._", 0o644, b"")
        .bytes();
    s.unpack(&tar).unwrap();
    assert_eq!(s.read("bin/tool"), "tool");
    assert_eq!(s.mode("bin/tool"), 0o755);
    assert!(!s.exists("bin/._tool"));
    let xattr = |name: &str| {
        let mut buf = vec![0u8; 64];
        let n = rustix::fs::getxattr(s.root().join("bin/tool"), name, &mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    assert_eq!(xattr("user.origin"), "gnu tar");
    assert_eq!(xattr("user.from bsdtar"), "bsdtar");
    assert_eq!(s.stats.xattrs_skipped, 0);
    assert_eq!(s.read("._notes"), "not AppleDouble");
    assert_eq!(s.read("._"), "");
}

#[test]
fn a_layer_is_capped_by_its_compressed_size() {
    // The caps follow the blob: at least the floors, else ratio and bytes per entry.
    let limits = Limits::default();
    let stats = Stats {
        entries: 7,
        written: 1000,
        ..Stats::default()
    };
    let caps = limits.for_layer(1 << 20, &stats).layer.unwrap();
    assert_eq!(caps.written_until, 1000 + (200 << 20));
    assert_eq!(caps.entries_until, 7 + limits::ENTRY_FLOOR);
    let small = limits.for_layer(10, &Stats::default()).layer.unwrap();
    assert_eq!(small.written_until, limits::RATIO_FLOOR_BYTES);
    let big = limits.for_layer(1 << 30, &Stats::default()).layer.unwrap();
    assert_eq!(
        big.entries_until,
        (1 << 30) / limits::COMPRESSED_BYTES_PER_ENTRY
    );
    let off = Limits {
        max_ratio: 0,
        entries_set: true,
        ..limits
    };
    let off = off.for_layer(10, &Stats::default()).layer.unwrap();
    assert_eq!((off.written_until, off.entries_until), (u64::MAX, u64::MAX));

    // Past either cap, the entry that crosses it is refused by name.
    let caps = LayerCaps {
        compressed: 10,
        written_until: 100,
        entries_until: 3,
    };
    let mut s = Scratch::new();
    s.limits.layer = Some(caps);
    let err = s
        .unpack(
            &Tar::new()
                .file("a", 0o644, &[0; 60])
                .file("b", 0o644, &[0; 60])
                .bytes(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, UnpackError::TooExpanded { entry, .. } if &**entry == "b"),
        "{err}"
    );
    assert!(err.to_string().contains("PKG_MAX_UNPACK_RATIO"), "{err}");
    let mut s = Scratch::new();
    s.limits.layer = Some(caps);
    let tar = Tar::new()
        .file("a", 0o644, b"")
        .file("b", 0o644, b"")
        .file("c", 0o644, b"")
        .file("d", 0o644, b"")
        .bytes();
    let err = s.unpack(&tar).unwrap_err();
    assert!(
        matches!(&err, UnpackError::TooManyEntriesForSize { entry, .. } if &**entry == "d"),
        "{err}"
    );
}

#[test]
fn xattrs_the_filesystem_refuses_are_counted_not_fatal() {
    let mut s = Scratch::new();
    // A name longer than any filesystem takes (ERANGE): refused whatever the filesystem.
    let long = format!("SCHILY.xattr.user.{}", "n".repeat(300));
    let tar = Tar::new()
        .pax(&[(long.as_str(), b"v"), ("SCHILY.xattr.user.ok", b"v")])
        .file("f", 0o644, b"f")
        .bytes();
    s.unpack(&tar).unwrap();
    assert_eq!(s.read("f"), "f");
    assert_eq!(s.stats.xattrs_skipped, 1);
}

#[test]
fn modes_are_the_archives_under_the_umask_without_setuid() {
    let mut s = Scratch::new();
    let mut tar = Tar::new();
    tar.file("suid", 0o4755, b"")
        .file("sgid", 0o2644, b"")
        .file("private-exec", 0o700, b"")
        .file("readonly", 0o400, b"")
        .file("world", 0o666, b"");
    tar.raw(b"sticky", EntryType::Directory, b"", 0o1777, b"");
    tar.raw(b"locked", EntryType::Directory, b"", 0o500, b"");
    tar.file("locked/inside", 0o644, b"");
    s.unpack(&tar.bytes()).unwrap();
    let umask = crate::platform::process_umask();
    assert_eq!(s.mode("suid"), 0o755 & !umask);
    assert_eq!(s.mode("sgid"), 0o644 & !umask);
    assert_eq!(s.mode("private-exec"), 0o700);
    assert_eq!(s.mode("readonly"), 0o400);
    assert_eq!(s.mode("world"), 0o666 & !umask);
    assert_eq!(s.mode("sticky"), 0o777 & !umask);
    // Directories keep u+rwx, so pkg can always fill and remove them.
    assert_eq!(s.mode("locked"), 0o700);
}

#[test]
fn duplicates_replace_without_following() {
    let mut s = Scratch::new();
    let tar = Tar::new()
        .file("target", 0o644, b"original")
        .symlink("s", "target")
        .file("s", 0o644, b"replaced")
        .file("shared", 0o644, b"shared")
        .hardlink("other", "shared")
        .file("other", 0o644, b"new other")
        .file("thing", 0o644, b"was a file")
        .dir("thing")
        .file("thing/in", 0o644, b"in")
        .symlink("thing", "target")
        .bytes();
    s.unpack(&tar).unwrap();
    assert_eq!(s.read("target"), "original");
    assert!(fs::symlink_metadata(s.root().join("s")).unwrap().is_file());
    assert_eq!(s.read("s"), "replaced");
    assert_eq!(s.read("shared"), "shared");
    assert_eq!(s.read("other"), "new other");
    assert_eq!(
        fs::read_link(s.root().join("thing")).unwrap(),
        Path::new("target")
    );

    // Across layers too: the symlink is replaced, its target untouched.
    let mut s = Scratch::new();
    s.unpack(&Tar::new().file("f", 0o644, b"1").symlink("l", "f").bytes())
        .unwrap();
    s.unpack(&Tar::new().file("l", 0o644, b"2").bytes())
        .unwrap();
    assert_eq!(s.read("f"), "1");
    assert_eq!(s.read("l"), "2");
}

#[test]
fn byte_limit() {
    let mut s = Scratch::new();
    s.limits.max_bytes = 10;
    s.unpack(&Tar::new().file("a", 0o644, b"12345").bytes())
        .unwrap();
    // Counted across layers: 5 + 6 > 10.
    let err = s
        .unpack(&Tar::new().file("big", 0o644, b"123456").bytes())
        .unwrap_err();
    assert!(
        matches!(&err, UnpackError::TooManyBytes { entry, limit: 10 } if &**entry == "big"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("10 bytes") && msg.contains("PKG_MAX_UNPACK_BYTES"),
        "{msg}"
    );
    assert!(!s.exists("big"));

    // A pax `size` cannot sneak past either (the tar crate reads that many bytes).
    let mut s = Scratch::new();
    s.limits.max_bytes = 1 << 20;
    let mut tar = Tar::new();
    tar.pax(&[("size", b"1099511627776")]);
    tar.file("huge", 0o644, b"");
    let err = s.unpack(&tar.bytes()).unwrap_err();
    assert!(matches!(err, UnpackError::TooManyBytes { .. }), "{err:?}");
}

#[test]
fn entry_limit() {
    let mut s = Scratch::new();
    s.limits.max_entries = 3;
    s.unpack(&Tar::new().dir("d").file("d/a", 0o644, b"").bytes())
        .unwrap();
    let mut tar = Tar::new();
    tar.file("d/b", 0o644, b"");
    tar.raw(b"fifo", EntryType::Fifo, b"", 0o644, b"");
    let err = s.unpack(&tar.bytes()).unwrap_err();
    assert!(
        matches!(&err, UnpackError::TooManyEntries { entry, limit: 3 } if &**entry == "fifo"),
        "{err:?}"
    );
    assert!(err.to_string().contains("PKG_MAX_UNPACK_ENTRIES"));
    assert_eq!(s.stats.entries, 4);
}

#[test]
fn truncated_entry_is_an_error() {
    let mut tar = Tar::new().file("f", 0o644, &[7; 2000]).bytes();
    tar.truncate(512 + 1024);
    let mut s = Scratch::new();
    let err = s.unpack(&tar).unwrap_err();
    assert!(
        matches!(
            err,
            UnpackError::Truncated {
                expected: 2000,
                actual: 1024,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn whiteouts_apply_to_earlier_layers() {
    let mut s = Scratch::new();
    let lower = Tar::new()
        .file("a/x", 0o644, b"x")
        .file("a/y", 0o644, b"y")
        .file("b", 0o644, b"b")
        .file("c/deep/f", 0o644, b"f")
        .file("keep", 0o644, b"k")
        .bytes();
    s.unpack(&lower).unwrap();
    let upper = Tar::new()
        .file("a/new-before", 0o644, b"n")
        .file("a/.wh..wh..opq", 0o644, b"")
        .file("a/new-after", 0o644, b"n")
        .file(".wh.b", 0o644, b"")
        .file(".wh.c", 0o644, b"")
        .file(".wh.missing", 0o644, b"")
        .file("gone/.wh.x", 0o644, b"")
        .file(".wh..wh.plnk", 0o644, b"")
        .file("fresh", 0o644, b"f")
        .file(".wh.fresh", 0o644, b"")
        .bytes();
    s.unpack(&upper).unwrap();
    let mut a: Vec<_> = fs::read_dir(s.root().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    a.sort();
    assert_eq!(a, ["new-after", "new-before"]);
    assert!(!s.exists("b") && !s.exists("c") && !s.exists("gone"));
    assert!(!s.exists(".wh.b") && !s.exists(".wh..wh.plnk"));
    assert_eq!(s.read("keep"), "k");
    assert_eq!(s.read("fresh"), "f");

    // A whiteout never reaches through a symlink.
    let mut s = Scratch::new();
    s.unpack(
        &Tar::new()
            .file("d/f", 0o644, b"f")
            .symlink("l", "d")
            .bytes(),
    )
    .unwrap();
    let err = s.unpack(&Tar::new().file("l/.wh.f", 0o644, b"").bytes());
    assert!(matches!(err, Err(UnpackError::ThroughSymlink { .. })));
    let err = s.unpack(&Tar::new().file("l/.wh..wh..opq", 0o644, b"").bytes());
    assert!(matches!(err, Err(UnpackError::ThroughSymlink { .. })));
    assert_eq!(s.read("d/f"), "f");

    let mut s = Scratch::new();
    let err = s.unpack(&Tar::new().file("a/.wh.", 0o644, b"").bytes());
    assert!(matches!(err, Err(UnpackError::Path { .. })));
}

#[test]
fn file_over_a_file_parent_is_refused() {
    let mut s = Scratch::new();
    let tar = Tar::new()
        .file("a", 0o644, b"a")
        .file("a/b", 0o644, b"b")
        .bytes();
    let err = s.unpack(&tar).unwrap_err();
    assert!(
        matches!(&err, UnpackError::NotADirectory { parent, .. } if &**parent == "a"),
        "{err:?}"
    );
}

#[test]
fn limits_from_env_values() {
    assert_eq!(parse_limit(MAX_BYTES_VAR, None).unwrap(), None);
    assert_eq!(parse_limit(MAX_BYTES_VAR, Some("".into())).unwrap(), None);
    assert_eq!(
        parse_limit(MAX_BYTES_VAR, Some(" 123 ".into())).unwrap(),
        Some(123)
    );
    let err = parse_limit(MAX_BYTES_VAR, Some("8G".into())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "PKG_MAX_UNPACK_BYTES=`8G` is not a whole number"
    );
}

#[test]
fn sanitize_path_rules() {
    assert_eq!(
        sanitize_path(b"./a//b/./c/").unwrap(),
        Some(PathBuf::from("a/b/c"))
    );
    assert_eq!(sanitize_path(b"./").unwrap(), None);
    assert_eq!(sanitize_path(b".").unwrap(), None);
    assert_eq!(sanitize_path(b""), Err(Reason::Empty));
    assert_eq!(sanitize_path(b"a/\0"), Err(Reason::Nul));
    assert_eq!(sanitize_path(b"/a"), Err(Reason::Absolute));
    assert_eq!(sanitize_path(b"a/../b"), Err(Reason::DotDot));
    assert_eq!(display_name(b"a\0b\n"), "a\\u{0}b\\n");
}

/// Every sparse format GNU tar writes (old GNU `S`, pax 0.0, 0.1, 1.0) restores to the same
/// bytes, with the holes left as holes (the filesystems tests run on all have them).
#[test]
fn sparse_files_from_gnu_tar_restore_exactly_with_their_holes() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    fs::create_dir_all(src.join("share")).unwrap();
    let f = fs::File::create(src.join("share/disk.img")).unwrap();
    f.set_len(8 << 20).unwrap();
    f.write_all_at(b"hello", 4096 * 10).unwrap();
    f.write_all_at(&[7u8; 10000], 3 << 20).unwrap();
    drop(f);
    let want = fs::read(src.join("share/disk.img")).unwrap();
    for args in [
        vec!["--format=gnu"],
        vec!["--format=posix", "--sparse-version=0.0"],
        vec!["--format=posix", "--sparse-version=0.1"],
        vec!["--format=posix", "--sparse-version=1.0"],
        vec!["--format=posix"],
    ] {
        let out = d.path().join("t.tar");
        let st = std::process::Command::new("tar")
            .args(&args)
            .arg("-S")
            .arg("-cf")
            .arg(&out)
            .arg("-C")
            .arg(&src)
            .arg("share")
            .status()
            .unwrap();
        assert!(st.success());
        let mut s = Scratch::new();
        s.unpack(&fs::read(&out).unwrap()).unwrap();
        let got = fs::read(s.root().join("share/disk.img")).unwrap();
        assert!(got == want, "{args:?}: {} bytes, not the file", got.len());
        let names: Vec<_> = fs::read_dir(s.root().join("share"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["disk.img"], "{args:?}");
        let allocated = fs::metadata(s.root().join("share/disk.img"))
            .unwrap()
            .blocks()
            * 512;
        assert!(allocated < 1 << 20, "{args:?}: {allocated} bytes allocated");
        assert_eq!(s.stats.bytes, 8 << 20);
    }
}
