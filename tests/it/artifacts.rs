//! Artifacts pkg did not publish: ORAS-style artifacts (files named by their title annotation,
//! directories with the unpack annotation) and Homebrew bottles (an index of platforms named by
//! bottle tags, a `NAME/VERSION/` layer, `@@HOMEBREW_…@@` placeholders). Built as OCI layouts
//! here, pushed by skopeo to the real registry.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::layout::{FileEntry, gzip, tar_bytes};
use crate::harness::registry::skopeo_push;
use crate::harness::{Formula, Registry, TestContext, sha256_digest};

/// A minimal OCI layout writer for hand-made manifests.
pub struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    pub fn new() -> Layout {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Layout { dir }
    }

    pub fn blob(&self, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        std::fs::write(
            self.dir.path().join("blobs/sha256").join(&digest[7..]),
            bytes,
        )
        .unwrap();
        digest
    }

    pub fn descriptor(&self, media_type: &str, bytes: &[u8], annotations: Value) -> Value {
        let mut d =
            json!({"mediaType": media_type, "digest": self.blob(bytes), "size": bytes.len()});
        if annotations.as_object().is_some_and(|a| !a.is_empty()) {
            d["annotations"] = annotations;
        }
        d
    }

    pub fn tag(&self, tag: &str, top: &Value) {
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": top["mediaType"], "digest": top["digest"], "size": top["size"],
                "annotations": {"org.opencontainers.image.ref.name": tag}
            }]
        });
        std::fs::write(self.dir.path().join("index.json"), index.to_string()).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn entry(path: &str, contents: &str, mode: u32) -> FileEntry {
    FileEntry {
        path: path.to_owned(),
        contents: contents.as_bytes().to_vec(),
        mode,
    }
}

#[test]
fn an_oras_artifact_with_a_file_and_a_directory_installs() {
    let registry = Registry::start();
    let layout = Layout::new();
    let empty = layout.descriptor("application/vnd.oci.empty.v1+json", b"{}", json!({}));
    // `oras push … tool:…` labels a plain file `…layer.v1.tar` with its title.
    let tool = layout.descriptor(
        "application/vnd.oci.image.layer.v1.tar",
        b"#!/bin/sh\necho oras tool\n",
        json!({"org.opencontainers.image.title": "tool"}),
    );
    let notes = layout.descriptor(
        "text/markdown",
        b"# notes\n",
        json!({"org.opencontainers.image.title": "share/notes.md"}),
    );
    // A directory: tar+gzip with the unpack annotation.
    let docs_tar = gzip(&tar_bytes(&[entry("docs/guide.txt", "read me\n", 0o644)]));
    let docs = layout.descriptor(
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &docs_tar,
        json!({"org.opencontainers.image.title": "docs", "io.deis.oras.content.unpack": "true"}),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": "application/vnd.acme.tool",
        "config": empty,
        "layers": [tool, notes, docs],
    })
    .to_string();
    let top = layout.descriptor(MANIFEST, manifest.as_bytes(), json!({}));
    layout.tag("1.0.0", &top);
    skopeo_push(
        layout.path(),
        "1.0.0",
        &format!("{}/acme/tool:1.0.0", registry.host()),
    );

    let ctx = TestContext::new();
    ctx.write_formula(
        "tool",
        &Formula::new("tool")
            .bin(&["tool"])
            .version("1.0.0", &format!("{}/acme/tool", registry.host()), "1.0.0")
            .to_toml(),
    );
    ctx.pkg(&["install", "tool"]).success();
    let keg = ctx.keg("tool", "1.0.0");
    assert_eq!(
        std::fs::read_to_string(keg.join("share/notes.md")).unwrap(),
        "# notes\n"
    );
    assert_eq!(
        std::fs::read_to_string(keg.join("docs/guide.txt")).unwrap(),
        "read me\n"
    );
    let out = Command::new(ctx.prefix.join("bin/tool")).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "oras tool",
        "the file is executable and linked"
    );
}

fn bottle_manifest(layout: &Layout, name: &str, version: &str, tag: &str, script: &str) -> Value {
    let layer = gzip(&tar_bytes(&[
        entry(&format!("{name}/{version}/bin/{name}"), script, 0o755),
        entry(
            &format!("{name}/{version}/share/{name}/paths.txt"),
            "prefix=@@HOMEBREW_PREFIX@@\ncellar=@@HOMEBREW_CELLAR@@\n",
            0o644,
        ),
        entry(
            &format!("{name}/{version}/INSTALL_RECEIPT.json"),
            "{\"homebrew_version\":\"4.4.0\"}",
            0o644,
        ),
    ]));
    let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).to_string();
    let config = layout.descriptor(
        "application/vnd.oci.image.config.v1+json",
        config.as_bytes(),
        json!({}),
    );
    let layer = layout.descriptor(
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &layer,
        json!({"org.opencontainers.image.title": format!("{name}--{version}.{tag}.bottle.tar.gz")}),
    );
    let manifest = json!({
        "schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer],
        "annotations": {"org.opencontainers.image.ref.name": format!("{version}.{tag}")},
    })
    .to_string();
    // Homebrew's own index entries carry a platform; these leave it out, so the bottle tag
    // in the ref.name annotation has to decide.
    layout.descriptor(
        MANIFEST,
        manifest.as_bytes(),
        json!({"org.opencontainers.image.ref.name": format!("{version}.{tag}"), "sh.brew.bottle.digest": "x"}),
    )
}

#[test]
fn a_homebrew_bottle_index_installs_the_hosts_bottle_relocated() {
    let registry = Registry::start();
    let layout = Layout::new();
    let mac = bottle_manifest(
        &layout,
        "hello",
        "1.2.3",
        "arm64_sonoma",
        "#!/bin/sh\necho mac\n",
    );
    let linux = bottle_manifest(
        &layout,
        "hello",
        "1.2.3",
        "x86_64_linux",
        "#!/bin/sh\necho linux bottle at @@HOMEBREW_PREFIX@@\n",
    );
    let index = json!({
        "schemaVersion": 2, "mediaType": INDEX, "manifests": [mac, linux],
        "annotations": {"com.github.package.type": "homebrew_bottle"},
    })
    .to_string();
    let top = layout.descriptor(INDEX, index.as_bytes(), json!({}));
    layout.tag("1.2.3", &top);
    skopeo_push(
        layout.path(),
        "1.2.3",
        &format!("{}/acme/homebrew/hello:1.2.3", registry.host()),
    );

    let ctx = TestContext::new();
    ctx.write_formula(
        "hello",
        &Formula::new("hello")
            .version(
                "1.2.3",
                &format!("{}/acme/homebrew/hello", registry.host()),
                "1.2.3",
            )
            .to_toml(),
    );
    ctx.pkg(&["install", "hello"]).success().says("Relocated");
    let keg = ctx.keg("hello", "1.2.3");
    assert!(
        !keg.join("hello").exists(),
        "NAME/VERSION/ was not stripped:\n{}",
        ctx.prefix_listing()
    );
    let prefix = ctx.prefix.display().to_string();
    assert_eq!(
        std::fs::read_to_string(keg.join("share/hello/paths.txt")).unwrap(),
        format!("prefix={prefix}\ncellar={prefix}/Cellar\n")
    );
    let out = Command::new(ctx.prefix.join("bin/hello")).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("linux bottle at {prefix}")
    );
    let receipt = ctx.receipt("hello", "1.2.3");
    assert_eq!(receipt["platform_manifest_digest"], linux["digest"]);
}

#[test]
fn a_bottle_whose_binary_needs_relocation_is_refused() {
    let registry = Registry::start();
    let layout = Layout::new();
    let layer = gzip(&tar_bytes(&[FileEntry {
        path: "lib/2.0.0/lib/libx.so".into(),
        contents: b"\x7fELF\0\0\0@@HOMEBREW_CELLAR@@/lib/x\0".to_vec(),
        mode: 0o644,
    }]));
    let config = layout.descriptor(
        "application/vnd.oci.image.config.v1+json",
        br#"{"os":"linux","architecture":"amd64"}"#,
        json!({}),
    );
    let layer = layout.descriptor(
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &layer,
        json!({}),
    );
    let manifest =
        json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]})
            .to_string();
    let top = layout.descriptor(MANIFEST, manifest.as_bytes(), json!({}));
    layout.tag("2.0.0", &top);
    skopeo_push(
        layout.path(),
        "2.0.0",
        &format!("{}/acme/lib:2.0.0", registry.host()),
    );
    let ctx = TestContext::new();
    ctx.write_formula(
        "lib",
        &Formula::new("lib")
            .version("2.0.0", &format!("{}/acme/lib", registry.host()), "2.0.0")
            .to_toml(),
    );
    // Not an ELF file an editor can read (just its magic): refused, saying why.
    ctx.pkg(&["install", "lib"])
        .failure()
        .says("cannot be relocated")
        .says("not an ELF file pkg can read")
        .says("lib/libx.so");
    assert!(
        !ctx.prefix.join("Cellar/lib").exists(),
        "{}",
        ctx.prefix_listing()
    );
}

/// Pushes `blob` as the only (tar+gzip) layer of `repo:tag`, an image for this host.
pub fn push_layer(registry: &Registry, repo: &str, tag: &str, blob: Vec<u8>) {
    let (os, arch) = crate::faults::host_platform();
    registry.push(
        repo,
        tag,
        &crate::harness::Fixture::Image(
            crate::harness::ImageSpec::new(os, arch)
                .raw_layer(blob, crate::harness::layout::LAYER_TYPE),
        ),
    );
}

/// A dynamically linked Linux bottle built the way brew builds one: a shared library and an
/// executable from `cc`, patched with patchelf to brew's placeholders (interpreter
/// `@@HOMEBREW_PREFIX@@/lib/ld.so`, RUNPATH with `@@HOMEBREW_CELLAR@@` and `@@HOMEBREW_PREFIX@@`),
/// tarred by GNU tar as `NAME/VERSION/`. After `pkg install` the executable runs from
/// `PREFIX/bin` with no LD_LIBRARY_PATH, finds its library through its relocated RUNPATH, and no
/// installed file holds a placeholder.
/// The `greeter` bottle built in `dir` as brew builds one (see below), with the shell lines of
/// `extra` run in its keg (`greeter/1.0.0/`) before it is tarred: its `.tar.gz` bytes.
pub fn brew_built_greeter(dir: &Path, extra: &str) -> Vec<u8> {
    let keg = dir.join("src/greeter/1.0.0");
    std::fs::create_dir_all(keg.join("bin")).unwrap();
    std::fs::create_dir_all(keg.join("lib")).unwrap();
    let script = r#"
set -eu
cat > greet.c <<'C'
#include <stdio.h>
void greet(void) { puts("hello from libgreet"); }
C
cat > main.c <<'C'
void greet(void);
int main(void) { greet(); return 0; }
C
cc -shared -fPIC -Wl,-soname,libgreet.so.1 -o src/greeter/1.0.0/lib/libgreet.so.1 greet.c
cc -o src/greeter/1.0.0/bin/greeter main.c -Lsrc/greeter/1.0.0/lib -l:libgreet.so.1
# patchelf reads an argument starting with `@` as a file name: the placeholders go in files.
printf '%s' '@@HOMEBREW_PREFIX@@/lib/ld.so' > interp
printf '%s' '@@HOMEBREW_CELLAR@@/greeter/1.0.0/lib:@@HOMEBREW_PREFIX@@/lib' > app-rpath
printf '%s' '@@HOMEBREW_PREFIX@@/lib' > lib-rpath
patchelf --set-interpreter @interp src/greeter/1.0.0/bin/greeter
patchelf --set-rpath @app-rpath src/greeter/1.0.0/bin/greeter
patchelf --set-rpath @lib-rpath src/greeter/1.0.0/lib/libgreet.so.1
patchelf --print-interpreter src/greeter/1.0.0/bin/greeter | grep -q '^@@HOMEBREW_PREFIX@@/lib/ld.so$'
patchelf --print-rpath src/greeter/1.0.0/bin/greeter | grep -q '^@@HOMEBREW_CELLAR@@/greeter'
printf 'prefix=@@HOMEBREW_PREFIX@@\n' > src/greeter/1.0.0/INSTALL_RECEIPT.json
(cd src/greeter/1.0.0 && eval "$EXTRA")
cd src && tar --format=pax --sort=name --owner=0 --group=0 --numeric-owner -czf ../bottle.tar.gz greeter
"#;
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("EXTRA", extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("bottle.tar.gz")).unwrap()
}

/// A dynamically linked Linux bottle built the way brew builds one: a shared library and an
/// executable from `cc`, patched with patchelf to brew's placeholders (interpreter
/// `@@HOMEBREW_PREFIX@@/lib/ld.so`, RUNPATH with `@@HOMEBREW_CELLAR@@` and `@@HOMEBREW_PREFIX@@`),
/// tarred by GNU tar as `NAME/VERSION/`. After `pkg install` the executable runs from
/// `PREFIX/bin` with no LD_LIBRARY_PATH, finds its library through its relocated RUNPATH, and no
/// installed file holds a placeholder.
#[test]
fn a_dynamically_linked_linux_bottle_is_relocated_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let blob = brew_built_greeter(tmp.path(), "true");
    let registry = Registry::start();
    push_layer(&registry, "acme/greeter", "1.0.0", blob);
    let ctx = TestContext::new();
    ctx.write_formula(
        "greeter",
        &Formula::new("greeter")
            .bin(&["bin/greeter"])
            .version(
                "1.0.0",
                &format!("{}/acme/greeter", registry.host()),
                "1.0.0",
            )
            .to_toml(),
    );
    ctx.pkg(&["install", "greeter"]).success().says("Relocated");
    let run = Command::new(ctx.prefix.join("bin/greeter"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "hello from libgreet",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let loader = std::fs::read_link(ctx.prefix.join("lib/ld.so")).unwrap();
    assert!(loader.is_absolute() && loader.exists(), "{loader:?}");
    let grep = Command::new("grep")
        .args(["-r", "-l", "@@HOMEBREW_"])
        .arg(ctx.keg("greeter", "1.0.0"))
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "placeholders left in: {}",
        String::from_utf8_lossy(&grep.stdout)
    );
    // Shown as patchelf reads it: the real prefix.
    let interp = Command::new("patchelf")
        .arg("--print-interpreter")
        .arg(ctx.keg("greeter", "1.0.0").join("bin/greeter"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&interp.stdout).trim(),
        ctx.prefix.join("lib/ld.so").display().to_string()
    );
}

/// `tool@2` lives at `homebrew/core/tool/2` (Homebrew's image name): installed by reference, it is
/// the package `tool@2`, its `tool@2/2.1.0/` top is stripped, and its binary is linked.
#[test]
fn a_versioned_homebrew_formula_installed_by_reference_keeps_its_name() {
    let registry = Registry::start();
    let layer = gzip(&tar_bytes(&[entry(
        "tool@2/2.1.0/bin/tool",
        "#!/bin/sh\necho tool 2.1.0\n",
        0o755,
    )]));
    push_layer(&registry, "homebrew/core/tool/2", "2.1.0", layer);
    let ctx = TestContext::new();
    let reference = format!("{}/homebrew/core/tool/2:2.1.0", registry.host());
    ctx.pkg(&["install", &reference]).success();
    assert_eq!(ctx.cellar_versions("tool@2"), ["2.1.0"]);
    assert!(ctx.keg("tool@2", "2.1.0").join("bin/tool").is_file());
    let out = Command::new(ctx.prefix.join("bin/tool")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "tool 2.1.0");
}

/// Two bottles built like brew's: `libgreet` (a shared library, its header and pkg-config file)
/// and `app`, whose only RUNPATH is `@@HOMEBREW_PREFIX@@/lib`. Bottles are linked as brew links
/// them, file by file into shared directories, so `app` finds the other bottle's library in
/// `PREFIX/lib`; `pkg unlink`/`pkg link` take those links away and back; another package's file
/// at the same place is a conflict found before anything changes.
#[test]
fn bottles_are_linked_file_by_file_and_find_each_others_libraries() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
set -eu
mkdir -p src/libgreet/1.0.0/lib/pkgconfig src/libgreet/1.0.0/include src/app/1.0.0/bin
printf '#include <stdio.h>\nvoid greet(void) { puts("hello from libgreet"); }\n' > greet.c
printf 'void greet(void);\nint main(void) { greet(); return 0; }\n' > main.c
printf 'void greet(void);\n' > src/libgreet/1.0.0/include/greet.h
printf 'prefix=@@HOMEBREW_PREFIX@@\nLibs: -L${prefix}/lib -lgreet\n' > src/libgreet/1.0.0/lib/pkgconfig/greet.pc
cc -shared -fPIC -Wl,-soname,libgreet.so.1 -o src/libgreet/1.0.0/lib/libgreet.so.1 greet.c
ln -s libgreet.so.1 src/libgreet/1.0.0/lib/libgreet.so
cc -o src/app/1.0.0/bin/app main.c -Lsrc/libgreet/1.0.0/lib -l:libgreet.so.1
printf '%s' '@@HOMEBREW_PREFIX@@/lib/ld.so' > interp
printf '%s' '@@HOMEBREW_PREFIX@@/lib' > rpath
patchelf --set-interpreter @interp src/app/1.0.0/bin/app
patchelf --set-rpath @rpath src/app/1.0.0/bin/app
cd src
tar --format=pax --sort=name --owner=0 --group=0 --numeric-owner -czf ../libgreet.tar.gz libgreet
tar --format=pax --sort=name --owner=0 --group=0 --numeric-owner -czf ../app.tar.gz app
mkdir -p clash/1.0.0/include && printf 'not greet\n' > clash/1.0.0/include/greet.h
tar --format=pax --sort=name --owner=0 --group=0 --numeric-owner -czf ../clash.tar.gz clash
"#;
    crate::realworld::sh(tmp.path(), script);
    let registry = Registry::start();
    let ctx = TestContext::new();
    for (name, deps) in [
        ("libgreet", &[][..]),
        ("app", &[("libgreet", "^1")][..]),
        ("clash", &[][..]),
    ] {
        let blob = std::fs::read(tmp.path().join(format!("{name}.tar.gz"))).unwrap();
        push_layer(&registry, &format!("acme/{name}"), "1.0.0", blob);
        ctx.write_formula(
            name,
            &Formula::new(name)
                .version_with(
                    "1.0.0",
                    &format!("{}/acme/{name}", registry.host()),
                    "1.0.0",
                    None,
                    deps,
                )
                .to_toml(),
        );
    }
    ctx.pkg(&["install", "app"]).success();
    let run_app = || {
        Command::new(ctx.prefix.join("bin/app"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    };
    let out = run_app();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello from libgreet",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Shared directories are real; the files in them are links into the keg.
    let pkgconfig = std::fs::symlink_metadata(ctx.prefix.join("lib/pkgconfig")).unwrap();
    assert!(pkgconfig.is_dir());
    assert_eq!(
        std::fs::read_link(ctx.prefix.join("lib/pkgconfig/greet.pc")).unwrap(),
        Path::new("../../Cellar/libgreet/1.0.0/lib/pkgconfig/greet.pc")
    );
    assert_eq!(
        std::fs::read_to_string(ctx.prefix.join("lib/pkgconfig/greet.pc")).unwrap(),
        format!(
            "prefix={}\nLibs: -L${{prefix}}/lib -lgreet\n",
            ctx.prefix.display()
        )
    );
    assert!(ctx.prefix.join("include/greet.h").is_file());

    // Unlink takes every link away (the app then lacks its library); link puts them back.
    ctx.pkg(&["unlink", "libgreet"]).success();
    for gone in [
        "lib/libgreet.so.1",
        "lib/libgreet.so",
        "include/greet.h",
        "lib/pkgconfig/greet.pc",
    ] {
        assert!(
            std::fs::symlink_metadata(ctx.prefix.join(gone)).is_err(),
            "{gone} is still linked"
        );
    }
    assert!(!run_app().status.success());
    ctx.pkg(&["link", "libgreet"]).success();
    assert_eq!(
        String::from_utf8_lossy(&run_app().stdout).trim(),
        "hello from libgreet"
    );

    // Another bottle's header at the same place: a conflict, and nothing of it is linked.
    let run = ctx.pkg(&["install", "clash"]).failure();
    run.says("include/greet.h").says("libgreet");
    assert_eq!(
        std::fs::read_link(ctx.prefix.join("include/greet.h")).unwrap(),
        Path::new("../Cellar/libgreet/1.0.0/include/greet.h")
    );
    assert!(std::fs::symlink_metadata(ctx.prefix.join("opt/clash")).is_err());
}

/// A revision bottle (`1.0.0_1`, packed as `rev/1.0.0_1/`) is a version of its own: it orders
/// after `1.0.0`, its keg is `Cellar/rev/1.0.0_1` as its own relocated paths expect, and an
/// upgrade moves `1.0.0` to it.
#[test]
fn a_revision_bottle_is_the_newer_version_and_finds_its_own_files() {
    let tmp = tempfile::tempdir().unwrap();
    crate::realworld::sh(
        tmp.path(),
        r#"
for v in 1.0.0 1.0.0_1; do
    mkdir -p src/rev/$v/bin src/rev/$v/share/rev
    printf 'rev %s\n' $v > src/rev/$v/share/rev/msg
    printf '#!/bin/sh\ncat @@HOMEBREW_CELLAR@@/rev/%s/share/rev/msg\n' $v > src/rev/$v/bin/rev
    chmod 0755 src/rev/$v/bin/rev
    (cd src && tar --format=pax --sort=name --owner=0 --group=0 --numeric-owner -czf ../rev-$v.tar.gz rev/$v)
done
"#,
    );
    let registry = Registry::start();
    let ctx = TestContext::new();
    let repo = format!("{}/acme/rev", registry.host());
    let mut formula = Formula::new("rev");
    for v in ["1.0.0", "1.0.0_1"] {
        let blob = std::fs::read(tmp.path().join(format!("rev-{v}.tar.gz"))).unwrap();
        push_layer(&registry, "acme/rev", v, blob);
        formula = formula.version(v, &repo, v);
    }
    ctx.write_formula("rev", &formula.to_toml());
    let run_rev = || {
        let out = Command::new(ctx.prefix.join("bin/rev")).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    ctx.pkg(&["install", "rev@1.0.0"]).success();
    assert_eq!(ctx.cellar_versions("rev"), ["1.0.0"]);
    assert_eq!(run_rev(), "rev 1.0.0");
    ctx.pkg(&["outdated"]).success().says("1.0.0_1");
    ctx.pkg(&["upgrade"]).success();
    assert!(ctx.keg("rev", "1.0.0_1").join("bin/rev").is_file());
    assert_eq!(run_rev(), "rev 1.0.0_1");
    let list = ctx.pkg(&["list", "--versions"]).success();
    assert!(list.stdout.contains("rev 1.0.0_1"), "{}", list.stdout);
}
