//! What other tools publish, installed by pkg: the seed's own anakin layout with the formula
//! built into pkg, Docker schema2 manifests and manifest lists as skopeo converts them, plain
//! (uncompressed) tar layers, and a registry whose `Docker-Content-Digest` contradicts the
//! manifest it serves.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::faults::{Rig, assert_nothing_installed, host_platform, run_bin};
use crate::harness::layout::{FileEntry, OciLayout, tar_bytes};
use crate::harness::proxy::{Fault, Times};
use crate::harness::registry::{skopeo_copy, skopeo_push};
use crate::harness::token::{PASSWORD, USERNAME};
use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest (or index) a tag points to, as the registry serves it.
fn raw_manifest(registry: &Registry, repo: &str, tag: &str) -> serde_json::Value {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
        .arg(format!("{USERNAME}:{PASSWORD}"))
        .arg(format!("docker://{}/{repo}:{tag}", registry.host()))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo");
    assert!(
        output.status.success(),
        "skopeo inspect {repo}:{tag} failed"
    );
    serde_json::from_slice(&output.stdout).expect("a JSON manifest")
}

fn tool(name: &str, text: &str) -> ImageSpec {
    let (os, arch) = host_platform();
    ImageSpec::new(os, arch).file(
        &format!("bin/{name}"),
        format!("#!/bin/sh\necho {text}\n"),
        0o755,
    )
}

fn layout_with(tmp: &tempfile::TempDir, tag: &str, fixture: &Fixture) -> PathBuf {
    let dir = tmp.path().join(format!("layout-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    OciLayout::create(&dir).add(tag, fixture);
    dir
}

/// The seed's anakin layout pushed byte-exact by skopeo to where the formula built into pkg
/// points (`cortinico/space-unlimited-space/anakin:1.0.0`), on `registry`.
pub fn push_seed_anakin(registry: &Registry) {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("anakin");
    copy_tree(&seed_anakin(), &layout);
    skopeo_push(
        &layout,
        "1.0.0",
        &format!(
            "{}/cortinico/space-unlimited-space/anakin:1.0.0",
            registry.host()
        ),
    );
}

/// Where the seed material sits in CI and in a checkout: `../shared` beside the project.
fn seed_anakin() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/anakin");
    assert!(
        dir.join("index.json").is_file(),
        "the seed's anakin layout is expected at {} (../shared beside the checkout, as in CI)",
        dir.display()
    );
    dir
}

/// The real thing: the seed's anakin layout (index.json says 548 bytes for its 504-byte
/// manifest; darwin/amd64 config; a JPEG and a macOS `._` file with pax xattr headers), pushed
/// byte-exact by skopeo to where the formula built into pkg points (through a mirror of
/// ghcr.io), installs on this machine with the built-in formula and its pinned digest.
#[test]
fn the_seed_anakin_layout_installs_with_the_formula_built_into_pkg() {
    let registry = Registry::start();
    push_seed_anakin(&registry);
    let mut ctx = TestContext::new();
    ctx.mirrors(&format!("ghcr.io={}", registry.url()));

    ctx.pkg(&["install", "anakin"]).success();

    let keg = ctx.keg("anakin", "1.0.0");
    let jpeg = std::fs::read(keg.join("6v05lf.jpg"))
        .unwrap_or_else(|e| panic!("6v05lf.jpg missing ({e}):\n{}", ctx.prefix_listing()));
    assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff], "a JPEG");
    assert!(
        !keg.join("._6v05lf.jpg").exists(),
        "macOS AppleDouble metadata is left out"
    );
    let receipt = ctx.receipt("anakin", "1.0.0");
    assert_eq!(
        receipt["repository"],
        "ghcr.io/cortinico/space-unlimited-space/anakin"
    );
    assert_eq!(
        receipt["manifest_digest"],
        "sha256:aa986f18e5556f9ce7ce265242ec6457ea2802030d92e5dc4c3c807a495db1e4"
    );
    assert_eq!(
        receipt["layers"],
        serde_json::json!([
            "sha256:57b8eee16897b0bb1d00190e99fb722dbaa32ecd1eb70686012ecf814ce329ba"
        ]),
        "{receipt}"
    );
    assert_eq!(
        std::fs::read_link(ctx.prefix.join("opt/anakin")).unwrap(),
        Path::new("../Cellar/anakin/1.0.0")
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::write(&dest, std::fs::read(e.path()).unwrap()).unwrap();
        }
    }
}

/// skopeo converts to Docker's formats (schema2 manifest, rootfs.diff.tar.gzip layers, and a
/// manifest list for an index); pkg installs each and picks the host's entry from the list.
#[test]
fn docker_schema2_manifests_and_manifest_lists_from_skopeo_install() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let ctx = TestContext::new();

    let single = layout_with(&tmp, "1.0.0", &Fixture::Image(tool("dockerish", "schema2")));
    skopeo_copy(
        &["--format", "v2s2"],
        &single,
        "1.0.0",
        &format!("{}/acme/dockerish:1.0.0", registry.host()),
    );
    let manifest = raw_manifest(&registry, "acme/dockerish", "1.0.0");
    assert_eq!(manifest["mediaType"], DOCKER_MANIFEST, "{manifest}");

    let (os, arch) = host_platform();
    let foreign = if os == "darwin" { "linux" } else { "darwin" };
    let list = layout_with(
        &tmp,
        "2.0.0",
        &Fixture::Index(vec![
            ImageSpec::new(foreign, arch).file("bin/dockerish", "#!/bin/sh\necho wrong\n", 0o755),
            tool("dockerish", "from a manifest list"),
        ]),
    );
    skopeo_copy(
        &["--all", "--format", "v2s2"],
        &list,
        "2.0.0",
        &format!("{}/acme/dockerish:2.0.0", registry.host()),
    );
    let index = raw_manifest(&registry, "acme/dockerish", "2.0.0");
    assert_eq!(index["mediaType"], DOCKER_LIST, "{index}");

    let repo = format!("{}/acme/dockerish", registry.host());
    ctx.write_formula(
        "dockerish",
        &Formula::new("dockerish")
            .version("1.0.0", &repo, "1.0.0")
            .version("2.0.0", &repo, "2.0.0")
            .to_toml(),
    );
    ctx.pkg(&["install", "dockerish@1.0.0"]).success();
    assert_eq!(run_bin(&ctx, "dockerish"), "schema2");
    ctx.forget_request("dockerish");
    ctx.pkg(&["upgrade", "dockerish"]).success();
    assert_eq!(run_bin(&ctx, "dockerish"), "from a manifest list");
    let receipt = ctx.receipt("dockerish", "2.0.0");
    assert_eq!(
        receipt["layers"].as_array().map(Vec::len),
        Some(1),
        "{receipt}"
    );
}

/// A layer of media type `…layer.v1.tar` without a title annotation is a plain tar: it is
/// unpacked as it is, without gunzip.
#[test]
fn a_plain_uncompressed_tar_layer_installs() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let ctx = TestContext::new();
    let (os, arch) = host_platform();
    let tar = tar_bytes(&[
        FileEntry {
            path: "bin/plain".into(),
            contents: b"#!/bin/sh\necho not compressed\n".to_vec(),
            mode: 0o755,
        },
        FileEntry {
            path: "share/plain/notes.txt".into(),
            contents: b"plain tar layer\n".to_vec(),
            mode: 0o644,
        },
    ]);
    let layout = layout_with(
        &tmp,
        "1.0.0",
        &Fixture::Image(
            ImageSpec::new(os, arch).raw_layer(tar, "application/vnd.oci.image.layer.v1.tar"),
        ),
    );
    skopeo_push(
        &layout,
        "1.0.0",
        &format!("{}/acme/plain:1.0.0", registry.host()),
    );
    ctx.write_formula(
        "plain",
        &Formula::new("plain")
            .version("1.0.0", &format!("{}/acme/plain", registry.host()), "1.0.0")
            .to_toml(),
    );
    ctx.pkg(&["install", "plain"]).success();
    assert_eq!(run_bin(&ctx, "plain"), "not compressed");
    assert_eq!(
        std::fs::read_to_string(ctx.keg("plain", "1.0.0").join("share/plain/notes.txt")).unwrap(),
        "plain tar layer\n"
    );
}

/// A registry that names another digest in `Docker-Content-Digest` than the bytes it sends is
/// not believed: nothing is installed, and the message gives both digests.
#[test]
fn a_docker_content_digest_that_contradicts_the_manifest_installs_nothing() {
    let rig = Rig::start();
    let built = rig.publish("hello", &["1.0.0"], 1024);
    let lie = format!("sha256:{}", "0".repeat(64));
    let header = lie.clone();
    rig.reg().on(
        "GET",
        "/manifests/",
        Times::Always,
        Fault::rewrite(move |r| r.set_header("Docker-Content-Digest", &header)),
    );
    let run = rig.ctx.pkg(&["install", "hello"]).failure();
    run.says(&lie);
    run.says(&built[0].digest);
    assert_nothing_installed(&rig.ctx, "hello");
}
