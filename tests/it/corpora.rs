//! Tar files nobody here wrote: every archive of Go's `archive/tar` test data (Debian's
//! `golang-*-src`) and CPython's `testtar.tar` (Debian's `libpython3.*-testsuite`), installed
//! by pkg from the real registry as the only layer of an image and compared entry by entry with
//! GNU tar's extraction of the same bytes. Each is identical, or refused with a message naming
//! the entry; never a different file set, never a panic. scripts/test installs both packages.
//!
//! Documented omissions (docs/hardening.md): pkg makes no device files, so device entries are
//! cut out of an archive (by the byte offsets Python's `tarfile` reports) before both tools read
//! it; and pkg's unpack limits refuse what is bigger than a package.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::faults::host_platform;
use crate::harness::{Fixture, Formula, ImageSpec, Registry, Run, TestContext};
use crate::realworld::assert_same_tree;

const PLAIN: &str = "application/vnd.oci.image.layer.v1.tar";

/// The newest directory matching `pattern` (a shell glob), which must exist.
fn newest(pattern: &str, what: &str) -> PathBuf {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("ls -d {pattern} 2>/dev/null | sort -V | tail -1"))
        .output()
        .unwrap();
    let found = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        !found.is_empty(),
        "{what} is missing ({pattern}); scripts/test installs it"
    );
    PathBuf::from(found)
}

/// `tar` without its device entries (character and block devices, with the extension headers
/// before them), cut at the offsets Python's `tarfile` gives; `tar` as it is when Python cannot
/// read it or it has none.
fn without_devices(tar: &Path, out: &Path) {
    let script = r#"
import sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
try:
    members = tarfile.open(src).getmembers()
except Exception:
    members = []
cut = [(m.offset, m.offset_data) for m in members if m.ischr() or m.isblk()]
for start, end in reversed(cut):
    data = data[:start] + data[end:]
open(dst, "wb").write(data)
"#;
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(tar)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

/// GNU tar's extraction as a normal user does it; whether it succeeded.
fn gnu_extract(tar: &Path, into: &Path) -> bool {
    std::fs::create_dir_all(into).unwrap();
    Command::new("tar")
        .args([
            "--no-same-owner",
            "--no-same-permissions",
            "--xattrs",
            "--xattrs-include=user.*",
            "-xf",
        ])
        .arg(tar)
        .current_dir(into)
        .output()
        .unwrap()
        .status
        .success()
}

fn pkg_install(reg: &Registry, ctx: &TestContext, name: &str, blob: Vec<u8>) -> Run {
    let (os, arch) = host_platform();
    reg.push(
        &format!("corpus/{name}"),
        "1.0.0",
        &Fixture::Image(ImageSpec::new(os, arch).raw_layer(blob, PLAIN)),
    );
    let repo = format!("{}/corpus/{name}", reg.host());
    ctx.write_formula(
        name,
        &Formula::new(name)
            .bin(&[])
            .version("1.0.0", &repo, "1.0.0")
            .to_toml(),
    );
    ctx.pkg(&["install", name])
}

/// Installs each archive and holds pkg to GNU tar; returns one line per archive.
fn check_corpus(archives: &[PathBuf]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let ctx = TestContext::new();
    let mut outcomes = Vec::new();
    for (i, archive) in archives.iter().enumerate() {
        let case = archive.file_name().unwrap().to_string_lossy().into_owned();
        let name = format!("corpus{i}");
        let tar = tmp.path().join(format!("{name}.tar"));
        without_devices(archive, &tar);
        let reference = tmp.path().join(format!("{name}-gnu"));
        let gnu_ok = gnu_extract(&tar, &reference);
        // Documented: pkg keeps u+rwx on every directory, so it can always fill and remove a keg.
        let chmod = Command::new("find")
            .arg(&reference)
            .args(["-type", "d", "-exec", "chmod", "u+rwx", "{}", "+"])
            .status()
            .unwrap();
        assert!(chmod.success());
        let run = pkg_install(&reg, &ctx, &name, std::fs::read(&tar).unwrap());
        match run.code {
            0 => {
                assert!(
                    gnu_ok,
                    "{case}: pkg installed an archive GNU tar fails to extract:\n{}",
                    run.describe()
                );
                assert_same_tree(&case, &ctx.keg(&name, "1.0.0"), &reference);
                outcomes.push(format!("{case}: identical"));
            }
            1 => {
                let said = run.stderr.clone();
                assert!(
                    said.contains("tar entry `")
                        || said.contains(" before `")
                        || said.contains(" after `")
                        || said.contains("reading the layer tarball"),
                    "{case}: refused without naming where:\n{}",
                    run.describe()
                );
                assert!(
                    !ctx.prefix.join("Cellar").join(&name).exists(),
                    "{case}: a refused layer left a keg"
                );
                let why = said
                    .lines()
                    .skip_while(|l| !l.contains("error"))
                    .collect::<Vec<_>>();
                outcomes.push(format!(
                    "{case}: refused ({}); GNU tar ok: {gnu_ok}",
                    why.join(" ")
                ));
            }
            _ => panic!("{case}: pkg crashed:\n{}", run.describe()),
        }
    }
    outcomes
}

#[test]
fn go_archive_tar_test_data_installs_as_gnu_tar_extracts_it_or_is_refused_by_entry() {
    let dir = newest(
        "/usr/share/go-*/src/archive/tar/testdata /usr/lib/go-*/src/archive/tar/testdata",
        "Go's archive/tar test data (Debian's golang-src)",
    );
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    archives.sort();
    assert!(archives.len() > 30, "{}: {archives:?}", dir.display());
    let outcomes = check_corpus(&archives);
    eprintln!("{}", outcomes.join("\n"));
    // The archives Go's own reader reads without error are read by pkg too.
    for must in [
        "gnu.tar",
        "pax.tar",
        "ustar.tar",
        "v7.tar",
        "star.tar",
        "hardlink.tar",
    ] {
        let line = outcomes.iter().find(|o| o.starts_with(must)).unwrap();
        assert!(line.ends_with("identical"), "{line}");
    }
}

#[test]
fn cpython_testtar_installs_as_gnu_tar_extracts_it() {
    let dir = newest(
        "/usr/lib/python3.*/test",
        "CPython's test suite (Debian's libpython3.*-testsuite)",
    );
    let tar = dir.join("testtar.tar");
    let outcomes = check_corpus(std::slice::from_ref(&tar));
    eprintln!("{}", outcomes.join("\n"));
    assert!(outcomes[0].ends_with("identical"), "{}", outcomes[0]);
}

/// One ustar header block for `name` of type `kind` whose size field says `size`.
fn header(name: &str, kind: tar::EntryType, size: u64, link: &str) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_700_000_000);
    if !link.is_empty() {
        h.set_link_name(link).unwrap();
    }
    h.set_cksum();
    h.as_bytes().to_vec()
}

fn padded(mut data: Vec<u8>) -> Vec<u8> {
    data.resize(data.len().div_ceil(512) * 512, 0);
    data
}

#[test]
fn header_only_entries_with_a_size_install_what_gnu_tar_extracts_and_nothing_hidden() {
    use tar::EntryType::{Directory, Link, Regular};
    // A directory whose size field says 512: every tar reader but the `tar` crate reads the next
    // block as the header of `notes.tar`, whose data is a tar holding `bin/smuggled`; skipping
    // 512 bytes lands on that inner header instead.
    let mut inner = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    let script = b"#!/bin/sh\necho smuggled\n";
    h.set_size(script.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    inner
        .append_data(&mut h, "bin/smuggled", &script[..])
        .unwrap();
    let inner = inner.into_inner().unwrap();
    let mut smuggling = header("docs/", Directory, 512, "");
    smuggling.extend(header("notes.tar", Regular, inner.len() as u64, ""));
    smuggling.extend(padded(inner));
    smuggling.extend([0; 1024]);
    // A hard link whose size field says 512: the `tar` crate skipped the next header.
    let mut hardlink = header("a", Regular, 2, "");
    hardlink.extend(padded(b"a\n".to_vec()));
    hardlink.extend(header("b", Link, 512, "a"));
    hardlink.extend(header("c", Regular, 2, ""));
    hardlink.extend(padded(b"c\n".to_vec()));
    hardlink.extend([0; 1024]);

    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let ctx = TestContext::new();
    for (name, bytes) in [("smuggling", smuggling), ("sizedlink", hardlink)] {
        let tar = tmp.path().join(format!("{name}.tar"));
        std::fs::write(&tar, &bytes).unwrap();
        let reference = tmp.path().join(name);
        assert!(gnu_extract(&tar, &reference), "{name}: GNU tar refused it");
        pkg_install(&reg, &ctx, name, bytes).success();
        assert_same_tree(name, &ctx.keg(name, "1.0.0"), &reference);
    }
    let keg = ctx.keg("smuggling", "1.0.0");
    assert!(keg.join("notes.tar").is_file());
    assert!(!keg.join("bin/smuggled").exists());
    assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/smuggled")).is_err());
    assert!(ctx.keg("sizedlink", "1.0.0").join("c").is_file());
}

/// Python's `tarfile` (what sdists are packed with) writes an mtime the ustar field cannot hold
/// (before 1970, after 2242, or with a fraction) as a pax `mtime` record, the field left 0 or
/// cut: GNU tar takes the record, and so does pkg.
#[test]
fn pax_mtime_records_written_by_python_win_over_the_header() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("sdist.tar");
    let script = r##"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for name, mtime in [("pkg-1.0/old.py", -31536000.25), ("pkg-1.0/future.py", 10000000000.5),
                        ("pkg-1.0/now.py", 1600000000.75)]:
        data = ("# " + name + "\n").encode()
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), mtime, 0o644
        t.addfile(info, io.BytesIO(data))
"##;
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&tar)
        .status()
        .unwrap();
    assert!(status.success());
    let outcomes = check_corpus(std::slice::from_ref(&tar));
    assert!(outcomes[0].ends_with("identical"), "{}", outcomes[0]);
}
