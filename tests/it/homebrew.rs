//! homebrew/core as a formula source: bottles built the way brew builds them (a library and a
//! dynamically linked program from `cc`, patched by patchelf to brew's placeholders, tarred by
//! GNU tar as `NAME/VERSION/`), put in indexes with the annotations `github_packages.rb` writes,
//! pushed by skopeo; their formulae served in the formula JSON API's shape by a local HTTP
//! server that answers ETag revalidation as formulae.brew.sh does.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::artifacts::{INDEX, Layout, MANIFEST};
use crate::harness::registry::skopeo_push;
use crate::harness::{Registry, TestContext};

/// A formula JSON API: one document with an ETag; `If-None-Match` with that ETag gets a 304.
/// Every request is logged as `STATUS if-none-match=…`.
struct ApiServer {
    url: String,
    state: Arc<Mutex<(String, Vec<u8>)>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl ApiServer {
    fn start(document: &Value) -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/formula.json", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new((String::new(), Vec::new())));
        let log = Arc::new(Mutex::new(Vec::new()));
        let server = ApiServer { url, state, log };
        server.serve(document);
        let (state, log) = (server.state.clone(), server.log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut if_none_match = None;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("if-none-match")
                    {
                        if_none_match = Some(v.trim().to_owned());
                    }
                    line.clear();
                }
                let (etag, body) = state.lock().unwrap().clone();
                let mut out = stream;
                let status = if if_none_match.as_deref() == Some(etag.as_str()) {
                    let _ = write!(
                        out,
                        "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    304
                } else {
                    let _ = write!(
                        out,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: {etag}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = out.write_all(&body);
                    200
                };
                log.lock().unwrap().push(format!(
                    "{status} if-none-match={}",
                    if_none_match.unwrap_or_default()
                ));
            }
        });
        server
    }

    /// Serves `document` from now on, under a new ETag.
    fn serve(&self, document: &Value) {
        let body = serde_json::to_vec_pretty(document).unwrap();
        let etag = format!("\"{}\"", &crate::harness::sha256_digest(&body)[7..23]);
        *self.state.lock().unwrap() = (etag, body);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// One bottle of a formula, as brew publishes it: its tar.gz under an index entry for its tag.
struct Bottle {
    tag: &'static str,
    tar_gz: Vec<u8>,
}

/// Pushes `bottles` of NAME at PKG_VERSION (rebuild `rebuild`) as Homebrew's index to
/// `homebrew/core/IMAGE:TAG`, annotated as `github_packages.rb` annotates it. Returns the sha256
/// (hex) of each bottle by tag.
fn publish(
    registry: &Registry,
    image: &str,
    pkg_version: &str,
    rebuild: u32,
    bottles: &[Bottle],
) -> Vec<(String, String)> {
    let layout = Layout::new();
    let mut entries = Vec::new();
    let mut shas = Vec::new();
    let suffix = if rebuild > 0 {
        format!(".{rebuild}")
    } else {
        String::new()
    };
    for b in bottles {
        let (os, arch, os_version) = match b.tag {
            "x86_64_linux" => ("linux", "amd64", "Ubuntu 22.04"),
            "arm64_sonoma" => ("darwin", "arm64", "macOS 14"),
            other => panic!("no platform for {other}"),
        };
        let config = json!({"architecture": arch, "os": os, "os.version": os_version,
            "rootfs": {"type": "layers", "diff_ids": []}})
        .to_string();
        let config = layout.descriptor(
            "application/vnd.oci.image.config.v1+json",
            config.as_bytes(),
            json!({}),
        );
        let ref_name = format!("{pkg_version}.{}{suffix}", b.tag);
        let layer = layout.descriptor(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &b.tar_gz,
            json!({"org.opencontainers.image.title":
                format!("{image}--{pkg_version}.{}.bottle{suffix}.tar.gz", b.tag)}),
        );
        let sha = layer["digest"].as_str().unwrap()[7..].to_owned();
        let tab = json!({"homebrew_version": "4.4.0", "changed_files": [], "arch": arch,
            "built_on": {"os": os, "os_version": os_version}})
        .to_string();
        let manifest = json!({
            "schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer],
            "annotations": {"org.opencontainers.image.ref.name": ref_name,
                "sh.brew.bottle.digest": sha, "sh.brew.tab": tab},
        })
        .to_string();
        let mut entry = layout.descriptor(
            MANIFEST,
            manifest.as_bytes(),
            json!({"org.opencontainers.image.ref.name": ref_name,
                "sh.brew.bottle.digest": sha,
                "sh.brew.bottle.size": b.tar_gz.len().to_string(),
                "sh.brew.tab": tab}),
        );
        entry["platform"] = json!({"architecture": arch, "os": os, "os.version": os_version});
        entries.push(entry);
        shas.push((b.tag.to_owned(), sha));
    }
    let index = json!({
        "schemaVersion": 2, "mediaType": INDEX, "manifests": entries,
        "annotations": {"com.github.package.type": "homebrew_bottle",
            "org.opencontainers.image.version": pkg_version},
    })
    .to_string();
    let tag = if rebuild > 0 {
        format!("{pkg_version}-{rebuild}")
    } else {
        pkg_version.to_owned()
    };
    let top = layout.descriptor(INDEX, index.as_bytes(), json!({}));
    layout.tag(&tag, &top);
    skopeo_push(
        layout.path(),
        &tag,
        &format!("{}/homebrew/core/{image}:{tag}", registry.host()),
    );
    shas
}

/// A formula of the formula JSON API, in its real shape (fields pkg does not read included):
/// version `(stable, revision, rebuild)`.
fn api_formula(
    registry: &Registry,
    name: &str,
    image: &str,
    (stable, revision, rebuild): (&str, u32, u32),
    dependencies: &[&str],
    shas: &[(String, String)],
) -> Value {
    let files: serde_json::Map<String, Value> = shas
        .iter()
        .map(|(tag, sha)| {
            (
                tag.clone(),
                json!({"cellar": ":any",
                    "url": format!("http://{}/v2/homebrew/core/{image}/blobs/sha256:{sha}", registry.host()),
                    "sha256": sha}),
            )
        })
        .collect();
    json!({
        "name": name, "full_name": name, "tap": "homebrew/core", "oldnames": [], "aliases": [],
        "versioned_formulae": [], "desc": format!("{name}, from the formula API"),
        "license": "MIT", "homepage": "https://example.com",
        "versions": {"stable": stable, "head": null, "bottle": true},
        "urls": {"stable": {"url": "https://example.com/src.tar.gz", "tag": null, "revision": null}},
        "revision": revision, "version_scheme": 0,
        "bottle": {"stable": {"rebuild": rebuild,
            "root_url": format!("http://{}/v2/homebrew/core", registry.host()), "files": files}},
        "keg_only": false, "keg_only_reason": null, "options": [],
        "build_dependencies": ["pkgconf"], "dependencies": dependencies,
        "test_dependencies": [], "recommended_dependencies": [], "optional_dependencies": [],
        "uses_from_macos": [{"python": "build"}], "requirements": [], "conflicts_with": [],
        "caveats": null, "installed": [], "linked_keg": null, "pinned": false, "outdated": false,
        "deprecated": false, "disabled": false, "post_install_defined": false, "service": null,
        "variations": {}
    })
}

fn tar_gz(dir: &Path, top: &str) -> Vec<u8> {
    crate::realworld::sh(
        dir,
        &format!(
            "cd src && tar --format=pax --sort=name --owner=0 --group=0 --numeric-owner -czf ../out.tar.gz {top}"
        ),
    );
    std::fs::read(dir.join("out.tar.gz")).unwrap()
}

/// A user's week with homebrew/core as a tap: `tap add homebrew/core --api URL`, `install app`
/// (which brings its dependency `libgreet`), the program runs from PREFIX/bin with no
/// LD_LIBRARY_PATH and no placeholder is left; `pkg update` costs a 304; a formula whose sha256
/// is not the registry's bottle installs nothing.
#[test]
fn homebrew_core_formulae_from_the_json_api_install_with_their_dependencies() {
    let tmp = tempfile::tempdir().unwrap();
    crate::realworld::sh(
        tmp.path(),
        r#"
set -eu
mkdir -p src/libgreet/1.2/lib/pkgconfig src/libgreet/1.2/include src/app/1.0.0_1/bin src/mac/x
printf '#include <stdio.h>\nvoid greet(void) { puts("hello from libgreet"); }\n' > greet.c
printf 'void greet(void);\nint main(void) { greet(); return 0; }\n' > main.c
printf 'void greet(void);\n' > src/libgreet/1.2/include/greet.h
printf 'prefix=@@HOMEBREW_PREFIX@@\nLibs: -L${prefix}/lib -lgreet\n' > src/libgreet/1.2/lib/pkgconfig/greet.pc
cc -shared -fPIC -Wl,-soname,libgreet.so.1 -o src/libgreet/1.2/lib/libgreet.so.1 greet.c
cc -o src/app/1.0.0_1/bin/app main.c -Lsrc/libgreet/1.2/lib -l:libgreet.so.1
printf '%s' '@@HOMEBREW_PREFIX@@/lib/ld.so' > interp
printf '%s' '@@HOMEBREW_PREFIX@@/lib' > rpath
patchelf --set-interpreter @interp src/app/1.0.0_1/bin/app
patchelf --set-rpath @rpath src/app/1.0.0_1/bin/app
patchelf --set-rpath @rpath src/libgreet/1.2/lib/libgreet.so.1
printf 'not for linux\n' > src/mac/x/README
"#,
    );
    let registry = Registry::start();
    let mac = || Bottle {
        tag: "arm64_sonoma",
        tar_gz: tar_gz(tmp.path(), "mac"),
    };
    // libgreet 1.2 (Homebrew's two-number version); app 1.0.0 revision 1, rebuild 1.
    let lib_shas = publish(
        &registry,
        "libgreet",
        "1.2",
        0,
        &[
            mac(),
            Bottle {
                tag: "x86_64_linux",
                tar_gz: tar_gz(tmp.path(), "libgreet"),
            },
        ],
    );
    let app_shas = publish(
        &registry,
        "app",
        "1.0.0_1",
        1,
        &[
            Bottle {
                tag: "x86_64_linux",
                tar_gz: tar_gz(tmp.path(), "app"),
            },
            mac(),
        ],
    );
    let libgreet = api_formula(
        &registry,
        "libgreet",
        "libgreet",
        ("1.2", 0, 0),
        &[],
        &lib_shas,
    );
    let app = api_formula(
        &registry,
        "app",
        "app",
        ("1.0.0", 1, 1),
        &["libgreet"],
        &app_shas,
    );
    let api = ApiServer::start(&json!([libgreet, app]));

    let ctx = TestContext::new();
    ctx.pkg(&["tap", "add", "homebrew/core", "--api", &api.url])
        .success()
        .says("2 formulae");
    let list = ctx.pkg(&["tap", "list"]).success();
    assert!(
        list.stdout.starts_with("homebrew/core\tapi\t"),
        "{}",
        list.stdout
    );
    // A Pkgfile dumped from this prefix taps the same document (not formulae.brew.sh's).
    let dump = ctx.pkg(&["bundle", "dump"]).success().stdout;
    assert!(
        dump.contains(&format!("\"homebrew/core\" = \"api:{}\"", api.url)),
        "{dump}"
    );
    ctx.pkg(&["install", "app"])
        .success()
        .says("libgreet")
        .says("Relocated");
    assert_eq!(ctx.cellar_versions("libgreet"), ["1.2"]);
    assert_eq!(ctx.cellar_versions("app"), ["1.0.0_1"]);
    let run = Command::new(ctx.prefix.join("bin/app"))
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
    let grep = Command::new("grep")
        .args(["-r", "-l", "@@HOMEBREW_"])
        .arg(ctx.prefix.join("Cellar"))
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "placeholders left in: {}",
        String::from_utf8_lossy(&grep.stdout)
    );
    // The layer poured is the very file the API names, for this host's tag.
    let receipt = ctx.receipt("app", "1.0.0_1");
    assert_eq!(
        receipt["layers"][0],
        format!("sha256:{}", sha_of(&app_shas))
    );
    assert_eq!(receipt["tag"], "1.0.0_1-1");

    // Nothing changed: `pkg update` sends the ETag back and gets a 304.
    ctx.pkg(&["update"]).success().says("has not changed");
    let log = api.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[1].starts_with("304 if-none-match=\""), "{log:?}");

    // A formula whose sha256 is not what the registry holds: refused, nothing installed.
    let mut wrong = api_formula(
        &registry,
        "wrong",
        "libgreet",
        ("1.2", 0, 0),
        &[],
        &lib_shas,
    );
    wrong["bottle"]["stable"]["files"]["x86_64_linux"]["sha256"] = json!("0".repeat(64));
    let libgreet = api_formula(
        &registry,
        "libgreet",
        "libgreet",
        ("1.2", 0, 0),
        &[],
        &lib_shas,
    );
    let app = api_formula(
        &registry,
        "app",
        "app",
        ("1.0.0", 1, 1),
        &["libgreet"],
        &app_shas,
    );
    api.serve(&json!([libgreet, app, wrong]));
    ctx.pkg(&["update"]).success().says("3 formulae");
    let run = ctx.pkg(&["install", "wrong"]).failure();
    run.says("x86_64_linux bottle")
        .says(&"0".repeat(64))
        .says(sha_of(&lib_shas));
    assert!(ctx.cellar_versions("wrong").is_empty());
    // Removing the tap takes its formulae away; what was installed stays.
    ctx.pkg(&["tap", "remove", "homebrew/core"]).success();
    assert!(!ctx.prefix.join("var/pkg/taps/homebrew").exists());
    assert_eq!(ctx.cellar_versions("app"), ["1.0.0_1"]);
}

fn sha_of(shas: &[(String, String)]) -> &str {
    &shas.iter().find(|(t, _)| t == "x86_64_linux").unwrap().1
}

/// The same API document read from a `file://` URL; a formula the tap had to leave out (a
/// version pkg cannot order) is named with its reason when the tap is added.
#[test]
fn a_formula_api_document_on_disk_is_a_tap_too() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = json!([
        {"name": "hello", "desc": "hi", "homepage": "https://example.com",
         "versions": {"stable": "2.12.1"}, "revision": 0,
         "bottle": {"stable": {"rebuild": 0, "files": {"all": {"cellar": ":any_skip_relocation",
            "url": "https://ghcr.io/v2/homebrew/core/hello/blobs/sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}}}},
        {"name": "openssh", "versions": {"stable": "9.9p1"}, "bottle": {"stable": {"files": {}}}}
    ]);
    let path = tmp.path().join("formula.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let ctx = TestContext::new();
    let url = format!("file://{}", path.display());
    ctx.pkg(&["tap", "add", "brewish", "--api", &url])
        .success()
        .says("1 formula;")
        .says("openssh");
    let info = ctx.pkg(&["info", "hello"]).success();
    info.says("2.12.1");
    // A name alone is homebrew/core's API; any other name needs a source.
    ctx.pkg(&["tap", "add", "acme"])
        .failure_with(2)
        .says("--api");
}

/// Versions as Homebrew writes them (`1.2`, its revision `1.2_1`) read that way in every
/// command's words and JSON: never as the semver pkg orders them by (`1.2.0+x2`, `1.2.0+x2.1`).
#[test]
fn homebrew_versions_are_written_as_homebrew_writes_them_everywhere() {
    let registry = Registry::start();
    let repo = format!("{}/acme/short", registry.host());
    for (tag, says) in [("1.2", "one two"), ("1.2_1", "one two, rebuilt")] {
        registry.push(
            "acme/short",
            tag,
            &crate::harness::Fixture::Image({
                let (os, arch) = crate::faults::host_platform();
                crate::harness::ImageSpec::new(os, arch).file(
                    "bin/short",
                    format!("#!/bin/sh\necho {says}\n"),
                    0o755,
                )
            }),
        );
    }
    let ctx = TestContext::new();
    let formula = |versions: &[&str]| {
        let mut f = crate::harness::Formula::new("short");
        for v in versions {
            f = f.version(v, &repo, v);
        }
        ctx.write_formula("short", &f.to_toml());
    };
    formula(&["1.2"]);
    let mut said = String::new();
    let mut run = |args: &[&str]| {
        let out = ctx.pkg(args);
        said.push_str(&format!("$ pkg {}\n{}\n", args.join(" "), out.output()));
        out
    };
    run(&["install", "short"]).success();
    assert_eq!(ctx.cellar_versions("short"), ["1.2"]);
    formula(&["1.2", "1.2_1"]);
    run(&["outdated"]).success();
    run(&["outdated", "--json"]).success();
    run(&["upgrade", "--dry-run"]).success();
    run(&["fetch", "short"]).success();
    run(&["upgrade"]).success();
    assert_eq!(ctx.cellar_versions("short"), ["1.2_1"]);
    run(&["list", "--versions"]).success();
    run(&["info", "short"]).success();
    run(&["info", "--json", "short"]).success();
    run(&["deps", "short"]).success();
    run(&["pin", "short"]).success();
    run(&["list", "--pinned"]).success();
    run(&["unpin", "short"]).success();
    run(&["unlink", "short"]).success();
    run(&["link", "short"]).success();
    run(&["uses", "short"]);
    run(&["search", "short"]).success();
    run(&["doctor"]);
    let layout = ctx.root().join("short.oci");
    let layout = layout.to_str().unwrap();
    run(&["bottle", "--keg", "short", "--output", layout]).success();
    run(&["cleanup", "--dry-run"]).success();
    run(&["cleanup"]).success();
    for wrong in ["1.2.0", "+x2"] {
        assert!(!said.contains(wrong), "`{wrong}` in:\n{said}");
    }
    assert!(said.contains("1.2_1"), "{said}");
    let out = Command::new(ctx.prefix.join("bin/short")).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "one two, rebuilt"
    );
    let out = ctx.pkg(&["uninstall", "short@1.2_1"]).success();
    assert!(!out.output().contains("+x2"), "{}", out.output());
}

/// homebrew/core as it is (issue 28): ca-certificates still has a date version
/// (`2022-07-19_1`), and openssl@3 needs it. Both are in the tap, install, and are named as
/// Homebrew names them; `aalib 1.4rc5_2`, `abcmidi 2022.05.05` and `openssh 7.8p1` are in the
/// tap too, ordered as Homebrew orders them.
#[test]
fn real_homebrew_versions_are_in_the_tap_and_install() {
    let tmp = tempfile::tempdir().unwrap();
    crate::realworld::sh(
        tmp.path(),
        r#"
set -eu
mkdir -p src/ca-certificates/2022-07-19_1/share/ca-certificates src/openssl@3/3.3.2/bin
printf 'certs\n' > src/ca-certificates/2022-07-19_1/share/ca-certificates/cacert.pem
printf '#!/bin/sh\necho openssl 3.3.2\n' > src/openssl@3/3.3.2/bin/openssl
chmod 755 src/openssl@3/3.3.2/bin/openssl
"#,
    );
    let registry = Registry::start();
    let linux = |top: &str| Bottle {
        tag: "x86_64_linux",
        tar_gz: tar_gz(tmp.path(), top),
    };
    let certs = publish(
        &registry,
        "ca-certificates",
        "2022-07-19_1",
        0,
        &[linux("ca-certificates")],
    );
    let ssl = publish(&registry, "openssl/3", "3.3.2", 0, &[linux("openssl@3")]);
    let mut formulae = vec![
        api_formula(
            &registry,
            "ca-certificates",
            "ca-certificates",
            ("2022-07-19", 1, 0),
            &[],
            &certs,
        ),
        api_formula(
            &registry,
            "openssl@3",
            "openssl/3",
            ("3.3.2", 0, 0),
            &["ca-certificates"],
            &ssl,
        ),
    ];
    // Other real shapes, in the tap though nothing here installs them.
    for (name, stable, revision) in [
        ("aalib", "1.4rc5", 2),
        ("abcmidi", "2022.05.05", 0),
        ("openssh", "7.8p1", 0),
    ] {
        formulae.push(api_formula(
            &registry,
            name,
            name,
            (stable, revision, 0),
            &[],
            &certs,
        ));
    }
    let api = ApiServer::start(&json!(formulae));
    let ctx = TestContext::new();
    let added = ctx
        .pkg(&["tap", "add", "homebrew/core", "--api", &api.url])
        .success();
    added.says("5 formulae");
    assert!(!added.output().contains("left out"), "{}", added.describe());
    ctx.pkg(&["install", "openssl@3"]).success();
    assert_eq!(ctx.cellar_versions("ca-certificates"), ["2022-07-19_1"]);
    assert_eq!(ctx.cellar_versions("openssl@3"), ["3.3.2"]);
    assert_eq!(
        std::fs::read_to_string(
            ctx.keg("ca-certificates", "2022-07-19_1")
                .join("share/ca-certificates/cacert.pem")
        )
        .unwrap(),
        "certs\n"
    );
    ctx.pkg(&["info", "aalib"]).success().says("1.4rc5_2");
    ctx.pkg(&["info", "openssh"]).success().says("7.8p1");
    ctx.pkg(&["info", "abcmidi"]).success().says("2022.05.05");
}

/// zlib as formulae.brew.sh serves it: `keg_only` with `:provided_by_macos`, which Homebrew
/// applies only on macOS. On Linux its library, header and pkg-config file are linked.
#[test]
fn keg_only_provided_by_macos_is_linked_on_linux() {
    let tmp = tempfile::tempdir().unwrap();
    crate::realworld::sh(
        tmp.path(),
        r#"
set -eu
mkdir -p src/zlib/1.3.1/lib/pkgconfig src/zlib/1.3.1/include
printf 'not really a library\n' > src/zlib/1.3.1/lib/libz.so.1.3.1
ln -s libz.so.1.3.1 src/zlib/1.3.1/lib/libz.so
printf '/* zlib */\n' > src/zlib/1.3.1/include/zlib.h
printf 'Name: zlib\n' > src/zlib/1.3.1/lib/pkgconfig/zlib.pc
"#,
    );
    let registry = Registry::start();
    let shas = publish(
        &registry,
        "zlib",
        "1.3.1",
        0,
        &[Bottle {
            tag: "x86_64_linux",
            tar_gz: tar_gz(tmp.path(), "zlib"),
        }],
    );
    let mut zlib = api_formula(&registry, "zlib", "zlib", ("1.3.1", 0, 0), &[], &shas);
    zlib["keg_only"] = json!(true);
    zlib["keg_only_reason"] = json!({"reason": ":provided_by_macos", "explanation": ""});
    let api = ApiServer::start(&json!([zlib]));
    let ctx = TestContext::new();
    ctx.pkg(&["tap", "add", "homebrew/core", "--api", &api.url])
        .success();
    ctx.pkg(&["install", "zlib"]).success();
    for linked in ["lib/libz.so", "include/zlib.h", "lib/pkgconfig/zlib.pc"] {
        assert!(
            std::fs::symlink_metadata(ctx.prefix.join(linked)).is_ok(),
            "{linked} is not linked:\n{}",
            ctx.prefix_listing()
        );
    }
}

/// A restored cache installs offline with a formula API tap (issue 30, item 5): the API document
/// is kept in the cache when tapped, so `--offline bundle install --locked` in a new prefix that
/// shares the cache taps it from there and installs; before, the tap needed the network and the
/// advice (`pkg fetch`) could not fetch it.
#[test]
fn a_restored_cache_taps_a_formula_api_and_installs_offline() {
    let tmp = tempfile::tempdir().unwrap();
    crate::realworld::sh(
        tmp.path(),
        "set -eu\nmkdir -p src/cfg/2.0/share/cfg\nprintf 'data\\n' > src/cfg/2.0/share/cfg/data\n",
    );
    let registry = Registry::start();
    let shas = publish(
        &registry,
        "cfg",
        "2.0",
        0,
        &[Bottle {
            tag: "x86_64_linux",
            tar_gz: tar_gz(tmp.path(), "cfg"),
        }],
    );
    let api = ApiServer::start(&json!([api_formula(
        &registry,
        "cfg",
        "cfg",
        ("2.0", 0, 0),
        &[],
        &shas
    )]));
    let ctx = TestContext::new();
    let project = ctx.home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let pkgfile = project.join("Pkgfile");
    std::fs::write(
        &pkgfile,
        format!(
            "[taps]\n\"homebrew/core\" = \"api:{}\"\n\n[packages]\ncfg = \"*\"\n",
            api.url
        ),
    )
    .unwrap();
    let file = pkgfile.to_str().unwrap();
    ctx.pkg(&["bundle", "install", "--file", file]).success();
    assert!(ctx.prefix.join("share/cfg/data").exists());

    // A new machine with the cache restored, and no network.
    let fresh = ctx.sharing_cache();
    fresh
        .pkg(&["--offline", "bundle", "install", "--locked", "--file", file])
        .success();
    assert!(fresh.prefix.join("share/cfg/data").exists());

    // `pkg update` brings a changed document: the cache's copy follows it, so the next prefix
    // tapped offline from the cache sees what the updated one sees.
    let shas = publish(
        &registry,
        "cfg",
        "3.0",
        0,
        &[Bottle {
            tag: "x86_64_linux",
            tar_gz: {
                crate::realworld::sh(
                    tmp.path(),
                    "set -eu\nrm -rf src/cfg/2.0\nmkdir -p src/cfg/3.0/share/cfg\nprintf 'data 3\\n' > src/cfg/3.0/share/cfg/data\n",
                );
                tar_gz(tmp.path(), "cfg")
            },
        }],
    );
    api.serve(&json!([api_formula(
        &registry,
        "cfg",
        "cfg",
        ("3.0", 0, 0),
        &[],
        &shas
    )]));
    ctx.pkg(&["update"]).success().says("Updated");
    ctx.pkg(&["fetch", "cfg"]).success();
    let later = ctx.sharing_cache();
    later
        .pkg(&[
            "--offline",
            "tap",
            "add",
            "homebrew/core",
            "--api",
            &api.url,
        ])
        .success();
    later.pkg(&["--offline", "install", "cfg"]).success();
    assert_eq!(later.cellar_versions("cfg"), ["3.0"]);

    // Nothing in the cache: the message says how the document gets there.
    let empty = TestContext::new();
    empty
        .pkg(&[
            "--offline",
            "tap",
            "add",
            "homebrew/core",
            "--api",
            &api.url,
        ])
        .failure()
        .says("a tap added online keeps its document there");
}

/// Honest tap contents (issue 28): a formula with bottles only for other machines is left out of
/// the tap with that reason, and `install`, `info` and `search` say it rather than "no formula".
#[test]
fn a_formula_without_a_bottle_for_this_machine_says_so_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let sha = "b".repeat(64);
    let doc = json!([
        {"name": "maconly", "desc": "macOS only", "homepage": "https://example.com",
         "versions": {"stable": "1.0"}, "revision": 0,
         "bottle": {"stable": {"rebuild": 0, "files": {"arm64_sonoma": {"cellar": ":any",
            "url": format!("https://ghcr.io/v2/homebrew/core/maconly/blobs/sha256:{sha}"),
            "sha256": sha}}}}}
    ]);
    let path = tmp.path().join("formula.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let ctx = TestContext::new();
    ctx.pkg(&[
        "tap",
        "add",
        "homebrew/core",
        "--api",
        &format!("file://{}", path.display()),
    ])
    .success()
    .says("maconly");
    let install = ctx.pkg(&["install", "maconly"]).failure();
    install
        .says("homebrew/core lists `maconly`, but pkg left it out of the tap")
        .says("no bottle for this machine")
        .says("arm64_sonoma");
    ctx.pkg(&["info", "maconly"])
        .failure()
        .says("no bottle for this machine");
    ctx.pkg(&["search", "maconly"])
        .success()
        .says("maconly: (left out of homebrew/core: no bottle for this machine");
}

/// A formula JSON of homebrew/core's real size (7,000 formulae in the real shape, each needing
/// two earlier ones, so a deep formula reaches dozens): `tap add`, `update` of a changed document, `search`, `info` and the
/// resolution of `install --dry-run` work on it. Timings are printed (tests never assert them;
/// docs/performance.md has the figures).
#[test]
fn a_formula_api_of_homebrew_cores_size_is_tapped_searched_and_resolved() {
    const COUNT: usize = 7_000;
    let tmp = tempfile::tempdir().unwrap();
    let sha = "c".repeat(64);
    let document = |bump: &str| {
        let formulae: Vec<Value> = (0..COUNT)
            .map(|i| {
                let deps: Vec<String> = [i / 2, i / 3]
                    .into_iter()
                    .filter(|d| *d != i)
                    .map(|d| format!("formula{d}"))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let stable = if i == COUNT - 1 { bump.to_owned() } else { format!("1.{}", i % 97) };
                json!({
                    "name": format!("formula{i}"), "full_name": format!("formula{i}"),
                    "tap": "homebrew/core", "oldnames": [], "aliases": [],
                    "desc": format!("Formula number {i} of a homebrew/core-sized tap"),
                    "license": "MIT", "homepage": "https://example.com",
                    "versions": {"stable": stable, "head": null, "bottle": true},
                    "revision": i % 3, "version_scheme": 0,
                    "bottle": {"stable": {"rebuild": 0, "root_url": "https://ghcr.io/v2/homebrew/core",
                        "files": {"all": {"cellar": ":any_skip_relocation",
                            "url": format!("https://ghcr.io/v2/homebrew/core/formula{i}/blobs/sha256:{sha}"),
                            "sha256": sha}}}},
                    "keg_only": false, "keg_only_reason": null, "options": [],
                    "build_dependencies": ["pkgconf"], "dependencies": deps,
                    "uses_from_macos": [], "requirements": [], "conflicts_with": [],
                    "caveats": null, "deprecated": false, "disabled": false, "variations": {}
                })
            })
            .collect();
        serde_json::to_vec(&formulae).unwrap()
    };
    let path = tmp.path().join("formula.json");
    std::fs::write(&path, document("2.0")).unwrap();
    let url = format!("file://{}", path.display());
    let ctx = TestContext::new();
    let timed = |args: &[&str]| {
        let started = std::time::Instant::now();
        let run = ctx.pkg(args);
        eprintln!(
            "{:>8.3} s  pkg {}",
            started.elapsed().as_secs_f64(),
            args.join(" ")
        );
        run
    };
    timed(&["tap", "add", "homebrew/core", "--api", &url])
        .success()
        .says(&format!("{COUNT} formulae"));
    timed(&["search", "formula699"])
        .success()
        .says("formula6999: Formula number 6999");
    timed(&["info", "formula6999"]).success().says("2.0");
    let plan = timed(&["install", "--dry-run", "formula6999"]).success();
    // 6999 needs 3499 and 2333, and so on down to formula0: every formula reached is planned
    // once.
    assert!(plan.output().contains("formula0"), "{}", plan.describe());
    std::fs::write(&path, document("2.1")).unwrap();
    timed(&["update"]).success();
    timed(&["info", "formula6999"]).success().says("2.1");
}

/// Relocation opens only the files the unpack saw a placeholder in, and misses none: a text
/// file and a second (hard-linked) name of it, a placeholder split across the unpack's chunks in
/// a big file, and a file without one left byte for byte as it came.
#[test]
fn relocation_finds_every_placeholder_the_unpack_saw() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("marked");
    std::fs::create_dir_all(&dir).unwrap();
    crate::realworld::sh(
        &dir,
        r#"
set -eu
mkdir -p marked/1.0.0/etc marked/1.0.0/share
printf 'prefix=@@HOMEBREW_PREFIX@@\n' > marked/1.0.0/etc/conf
ln marked/1.0.0/etc/conf marked/1.0.0/etc/conf-again
printf 'nothing to see @@HOMEBREW here\n' > marked/1.0.0/share/plain
# 256 KiB and a few bytes of filler, then the placeholder: it straddles a chunk boundary.
head -c 262139 /dev/zero | tr '\0' 'x' > marked/1.0.0/share/big
printf '@@HOMEBREW_CELLAR@@/end\n' >> marked/1.0.0/share/big
# Enough marked files that relocation shares them among threads, a second name to some.
mkdir -p marked/1.0.0/share/many
for i in $(seq 1 48); do printf 'at=@@HOMEBREW_PREFIX@@/%s\n' "$i" > marked/1.0.0/share/many/f$i; done
for i in $(seq 1 12); do ln marked/1.0.0/share/many/f$i marked/1.0.0/share/many/g$i; done
"#,
    );
    let reg = Registry::start();
    let ctx = TestContext::new();
    crate::containment::publish(&reg, &ctx, "marked", &dir);
    ctx.pkg(&["install", "marked"]).success().says("Relocated");
    let keg = ctx.keg("marked", "1.0.0");
    let prefix = ctx.prefix.display().to_string();
    for conf in ["etc/conf", "etc/conf-again"] {
        assert_eq!(
            std::fs::read_to_string(keg.join(conf)).unwrap(),
            format!("prefix={prefix}\n"),
            "{conf}"
        );
    }
    let big = std::fs::read_to_string(keg.join("share/big")).unwrap();
    assert!(
        big.ends_with(&format!("{prefix}/Cellar/end\n")),
        "{}",
        &big[big.len() - 80..]
    );
    assert_eq!(
        std::fs::read_to_string(keg.join("share/plain")).unwrap(),
        "nothing to see @@HOMEBREW here\n"
    );
    for i in 1..=48 {
        let mut names = vec![format!("f{i}")];
        if i <= 12 {
            names.push(format!("g{i}"));
        }
        for name in names {
            assert_eq!(
                std::fs::read_to_string(keg.join("share/many").join(&name)).unwrap(),
                format!("at={prefix}/{i}\n"),
                "{name}"
            );
        }
    }
    // The receipt's sums are of the relocated bytes: doctor finds no file changed.
    let doctor = ctx.pkg(&["doctor"]).output();
    assert!(!doctor.contains("changed"), "{doctor}");
}
