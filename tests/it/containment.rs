//! Containment on the surfaces past the unpack, driven through the real `pkg` binary: whole-keg
//! linking (`link = "all"`, what every Homebrew bottle gets) never writes through a link another
//! keg shipped, `PREFIX/lib/ld.so` is not a keg's to take, and a hostile ELF file in a bottle is
//! refused by name with nothing left behind. Layers are packed by GNU tar.

use std::path::{Path, PathBuf};

use crate::faults::host_platform;
use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};
use crate::realworld::sh;

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Packs `dir` with GNU tar (gzip) and pushes it as `acme/NAME:1.0.0`; the formula links
/// everything (`link = "all"`).
pub fn publish(reg: &Registry, ctx: &TestContext, name: &str, dir: &Path) {
    let tgz = dir.with_extension("tar.gz");
    sh(
        dir,
        &format!(
            "tar --format=posix --owner=0 --group=0 -czf '{}' .",
            tgz.display()
        ),
    );
    let (os, arch) = host_platform();
    reg.push(
        &format!("acme/{name}"),
        "1.0.0",
        &Fixture::Image(ImageSpec::new(os, arch).raw_layer(std::fs::read(&tgz).unwrap(), GZIP)),
    );
    let repo = format!("{}/acme/{name}", reg.host());
    let formula = Formula::new(name)
        .bin(&[])
        .version("1.0.0", &repo, "1.0.0")
        .to_toml();
    ctx.write_formula(name, &format!("link = \"all\"\n{formula}"));
}

/// Every path under `dir` with its link target or contents, links not followed.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if meta.is_dir() {
                stack.push(p.clone());
                "dir".into()
            } else {
                std::fs::read_to_string(&p).unwrap_or_default()
            };
            out.push((p.strip_prefix(dir).unwrap().to_owned(), what));
        }
    }
    out.sort();
    out
}

#[test]
fn whole_keg_links_never_write_through_another_kegs_link_out_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    sh(
        tmp.path(),
        "mkdir -p outside && printf precious > outside/victim",
    );
    let reg = Registry::start();
    let ctx = TestContext::new();
    let build = |name: &str, script: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        sh(&dir, script);
        dir
    };
    let victim = build(
        "victim",
        "mkdir -p share/vdata && printf precious > share/vdata/victim",
    );
    let out = build(
        "aout",
        &format!("mkdir share && ln -s '{}' share/rtdir", outside.display()),
    );
    let into = build(
        "ainto",
        "mkdir share && ln -s ../../../victim/1.0.0/share/vdata share/rtdir",
    );
    let b = build(
        "b",
        "mkdir -p share/rtdir/sub/deeper && printf b > share/rtdir/pwned \
         && printf b > share/rtdir/sub/deeper/pwned-deep && printf b > share/rtdir/victim",
    );
    for (name, dir) in [
        ("victim", &victim),
        ("aout", &out),
        ("ainto", &into),
        ("b", &b),
    ] {
        publish(&reg, &ctx, name, dir);
    }
    ctx.pkg(&["install", "victim"]).success();
    let victim_keg = ctx.keg("victim", "1.0.0");
    for a in ["aout", "ainto"] {
        ctx.pkg(&["install", a]).success();
        let before = (snapshot(&outside), snapshot(&victim_keg));
        let rtdir = ctx.prefix.join("share/rtdir");
        let refused = ctx.pkg(&["install", "b"]).failure();
        refused.says(&rtdir.display().to_string());
        refused.says("never links into a link");
        assert!(
            !refused.output().contains("rtdir/victim"),
            "{a}: a path through the link was named:\n{}",
            refused.describe()
        );
        assert_eq!((snapshot(&outside), snapshot(&victim_keg)), before, "{a}");
        ctx.pkg(&["install", "--overwrite", "b"]).success();
        assert_eq!(
            (snapshot(&outside), snapshot(&victim_keg)),
            before,
            "{a}: --overwrite wrote through the link"
        );
        assert!(std::fs::symlink_metadata(&rtdir).unwrap().is_dir());
        assert_eq!(
            std::fs::read_to_string(rtdir.join("sub/deeper/pwned-deep")).unwrap(),
            "b"
        );
        ctx.pkg(&["uninstall", "b", a]).success();
        assert_eq!((snapshot(&outside), snapshot(&victim_keg)), before, "{a}");
        assert!(
            std::fs::symlink_metadata(&rtdir).is_err(),
            "{a}: uninstall left {:?}",
            snapshot(&rtdir)
        );
    }
}

#[test]
fn a_keg_shipping_lib_ld_so_is_refused_the_name_even_with_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("evil");
    std::fs::create_dir_all(&dir).unwrap();
    sh(
        &dir,
        "mkdir lib && printf '#!/bin/sh\\necho hijacked\\n' > lib/ld.so && chmod 755 lib/ld.so",
    );
    let reg = Registry::start();
    let ctx = TestContext::new();
    publish(&reg, &ctx, "evil", &dir);
    for args in [
        &["install", "evil"][..],
        &["install", "--overwrite", "evil"],
    ] {
        let run = ctx.pkg(args).failure();
        run.says("lib/ld.so");
        run.says("reserved");
    }
    assert!(std::fs::symlink_metadata(ctx.prefix.join("lib/ld.so")).is_err());
    assert!(!ctx.prefix.join("Cellar/evil").exists());
}

#[test]
fn a_bottle_with_a_hostile_elf_header_is_refused_by_name_and_leaves_no_staging_keg() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let ctx = TestContext::new();
    // A Homebrew-shaped bottle (NAME/VERSION/…) whose binary holds a placeholder, so it goes
    // to the ELF editor: the host's /bin/sh with one header field made hostile.
    let cases: [(&str, usize, u64, usize, &str); 3] = [
        ("shentsize", 58, 0, 2, "section header entry size is 0"),
        ("phentsize", 54, 0, 2, "program header entry size is 0"),
        ("shnum", 60, 0x7fff, 2, "section header table"),
    ];
    for (name, at, value, size, says) in cases {
        let dir = tmp.path().join(name);
        let bin = dir.join(format!("{name}/1.0.0/bin"));
        std::fs::create_dir_all(&bin).unwrap();
        let mut bytes = std::fs::read("/bin/sh").unwrap();
        bytes[at..at + size].copy_from_slice(&value.to_le_bytes()[..size]);
        bytes.extend_from_slice(b"@@HOMEBREW_PREFIX@@/lib\0");
        std::fs::write(bin.join("tool"), &bytes).unwrap();
        publish(&reg, &ctx, name, &dir);
        let run = ctx.pkg(&["install", name]).failure();
        run.says("bin/tool");
        run.says(says);
        assert!(!ctx.prefix.join("Cellar").join(name).exists());
        let staging: Vec<_> = std::fs::read_dir(ctx.prefix.join("Cellar/.staging"))
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(staging.is_empty(), "{name}: left {staging:?}");
    }
}

#[test]
fn the_loader_link_is_made_by_the_units_transaction_and_goes_with_a_unit_that_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("relocated");
    std::fs::create_dir_all(&dir).unwrap();
    // A Homebrew-shaped bottle whose program names @@HOMEBREW_PREFIX@@/lib/ld.so (patchelf on a
    // program from cc, as brew's keg_relocate writes it).
    sh(
        &dir,
        r#"
mkdir -p relocated/1.0.0/bin
printf '#include <stdio.h>\nint main(void) { puts("relocated runs"); return 0; }\n' > main.c
cc -o relocated/1.0.0/bin/relocated main.c
printf '%s' '@@HOMEBREW_PREFIX@@/lib/ld.so' > interp
patchelf --set-interpreter @interp relocated/1.0.0/bin/relocated
rm main.c interp
"#,
    );
    let reg = Registry::start();
    let ctx = TestContext::new();
    publish(&reg, &ctx, "relocated", &dir);
    // A file of the user's where the program's link goes: the unit fails at linking.
    std::fs::create_dir_all(ctx.prefix.join("bin")).unwrap();
    std::fs::write(ctx.prefix.join("bin/relocated"), "mine").unwrap();
    let loader = ctx.prefix.join("lib/ld.so");
    ctx.pkg(&["install", "relocated"])
        .failure()
        .says("bin/relocated");
    assert!(
        std::fs::symlink_metadata(&loader).is_err(),
        "a failed unit left PREFIX/lib/ld.so"
    );
    ctx.pkg(&["install", "--overwrite", "relocated"]).success();
    let target = std::fs::read_link(&loader).unwrap();
    assert!(target.is_absolute(), "{}", target.display());
    let run = std::process::Command::new(ctx.prefix.join("bin/relocated"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "relocated runs"
    );
}

/// Whole-directory links (brew's rule) under a second and third keg, through the binary: a
/// directory the prefix lacks is one link; a second keg's file two levels inside it splits it
/// level by level without writing into the first keg; a file both ship is a conflict that
/// changes nothing; each uninstall leaves the other's files reachable and joins what is left.
#[test]
fn a_directory_linked_whole_is_split_for_a_second_keg_and_joined_when_it_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let ctx = TestContext::new();
    let build = |name: &str, script: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        sh(&dir, script);
        publish(&reg, &ctx, name, &dir);
    };
    build(
        "a",
        "mkdir -p share/vim/vim90/syntax share/vim/addons share/man/man1 \
         && printf a > share/vim/vim90/syntax/a.vim && printf a > share/vim/addons/x \
         && printf a > share/man/man1/a.1",
    );
    build(
        "b",
        "mkdir -p share/vim/vim90/syntax share/man/man1 \
         && printf b > share/vim/vim90/syntax/b.vim && printf b > share/man/man1/b.1",
    );
    build(
        "c",
        "mkdir -p share/vim/vim90/syntax && printf c > share/vim/vim90/syntax/a.vim",
    );
    let vim = ctx.prefix.join("share/vim");
    let read = |rel: &str| std::fs::read_to_string(vim.join(rel)).unwrap();
    let is_link = |p: &Path| {
        std::fs::symlink_metadata(p)
            .unwrap()
            .file_type()
            .is_symlink()
    };

    ctx.pkg(&["install", "a"]).success();
    assert_eq!(
        std::fs::read_link(&vim).unwrap(),
        Path::new("../Cellar/a/1.0.0/share/vim")
    );
    assert!(!is_link(&ctx.prefix.join("share/man/man1")));
    let a_keg = snapshot(&ctx.keg("a", "1.0.0"));

    ctx.pkg(&["install", "b"]).success();
    assert_eq!(
        snapshot(&ctx.keg("a", "1.0.0")),
        a_keg,
        "written into a's keg"
    );
    assert!(!is_link(&vim) && !is_link(&vim.join("vim90/syntax")));
    assert_eq!(
        (
            read("vim90/syntax/a.vim"),
            read("vim90/syntax/b.vim"),
            read("addons/x")
        ),
        ("a".into(), "b".into(), "a".into())
    );

    let before = snapshot(&ctx.prefix.join("share"));
    let refused = ctx.pkg(&["install", "c"]).failure_with(1);
    refused.says("syntax/a.vim");
    refused.says("`a`");
    assert_eq!(snapshot(&ctx.prefix.join("share")), before);

    ctx.pkg(&["uninstall", "a"]).success();
    assert_eq!(
        std::fs::read_link(&vim).unwrap(),
        Path::new("../Cellar/b/1.0.0/share/vim"),
        "{:?}",
        snapshot(&ctx.prefix.join("share"))
    );
    assert_eq!(read("vim90/syntax/b.vim"), "b");
    let mut doctor = ctx.command(&["doctor"]);
    let path = format!("{}:/usr/bin:/bin", ctx.prefix.join("bin").display());
    doctor.env("PATH", path);
    let run = TestContext::wait(doctor.spawn().unwrap(), &["doctor"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    ctx.pkg(&["uninstall", "b"]).success();
    assert!(std::fs::symlink_metadata(&vim).is_err());
}
