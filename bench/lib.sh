# shellcheck shell=bash
# Helpers for bench/run: tools, a local registry, OCI images pushed with curl, workloads, timing.
# Sourced, not run.

die() {
    echo "bench: $*" >&2
    exit 1
}

log() {
    echo "bench: $*" >&2
}

# Installs the Debian packages the benchmark needs when they are missing.
need_tools() {
    local need=()
    [[ -x /usr/bin/docker-registry ]] || need+=(docker-registry)
    [[ -x /usr/bin/time ]] || need+=(time)
    local tool
    for tool in skopeo hyperfine curl strace gzip tar patchelf zstd; do
        command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
    done
    command -v mkfs.xfs >/dev/null 2>&1 || need+=(xfsprogs)
    ((${#need[@]})) || return 0
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${need[@]}" </dev/null >&2; then
        "${sudo[@]}" apt-get update </dev/null >&2
        "${sudo[@]}" apt-get install -y --no-install-recommends "${need[@]}" </dev/null >&2
    fi
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_registry DIR: a plain (no auth) distribution registry on 127.0.0.1 with its storage in
# DIR. Sets REGISTRY_PID and REGISTRY (host:port).
start_registry() {
    local dir=$1 port
    port=$(free_port)
    mkdir -p "$dir/storage"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
EOF
    /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    REGISTRY_PID=$!
    REGISTRY=127.0.0.1:$port
    local i
    for i in $(seq 200); do
        if curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null; then
            return 0
        fi
        kill -0 "$REGISTRY_PID" 2>/dev/null || die "docker-registry exited: $(cat "$dir/registry.log")"
        sleep 0.05
    done
    die "docker-registry did not answer on $REGISTRY"
}

stop_registry() {
    if [[ -n ${REGISTRY_PID:-} ]]; then
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
        REGISTRY_PID=
    fi
}

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# push_blob REPO FILE DIGEST: a monolithic upload (POST, then PUT with the digest).
push_blob() {
    local repo=$1 file=$2 digest=$3 location
    if curl -fsS -o /dev/null -I "http://$REGISTRY/v2/$repo/blobs/$digest" 2>/dev/null; then
        return 0
    fi
    location=$(curl -fsS -o /dev/null -D - -X POST "http://$REGISTRY/v2/$repo/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    [[ -n $location ]] || die "no upload location for $repo"
    [[ $location == http* ]] || location="http://$REGISTRY$location"
    local sep='?'
    [[ $location == *\?* ]] && sep='&'
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary "@$file" "$location${sep}digest=$digest" ||
        die "upload of $file to $repo failed"
}

host_arch() {
    case $(uname -m) in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    *) uname -m ;;
    esac
}

# push_image REPO TAG LAYER.tar.gz DIFF_ID: one tar+gzip layer, an OCI config and manifest.
# Prints the layer digest.
push_image() { # push_image REPO TAG LAYER DIFF_ID [MEDIA_TYPE]
    local repo=$1 tag=$2 layer=$3 diff_id=$4 media=${5:-application/vnd.oci.image.layer.v1.tar+gzip}
    local tmp layer_digest layer_size config config_digest manifest
    tmp=$(mktemp -d)
    layer_digest=sha256:$(sha256_of "$layer")
    layer_size=$(stat -c %s "$layer")
    printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]},"config":{}}' \
        "$(host_arch)" "$diff_id" >"$tmp/config.json"
    config_digest=sha256:$(sha256_of "$tmp/config.json")
    push_blob "$repo" "$layer" "$layer_digest"
    push_blob "$repo" "$tmp/config.json" "$config_digest"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"%s","digest":"%s","size":%s}]}' \
        "$config_digest" "$(stat -c %s "$tmp/config.json")" "$media" "$layer_digest" "$layer_size" >"$tmp/manifest.json"
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$tmp/manifest.json" "http://$REGISTRY/v2/$repo/manifests/$tag" ||
        die "manifest upload for $repo:$tag failed"
    rm -rf "$tmp"
    echo "$layer_digest"
}

# write_formula DIR NAME REPO TAG VERSION [BIN_TOML]
write_formula() {
    local dir=$1 name=$2 repo=$3 tag=$4 version=$5 bin=${6:-}
    {
        echo "name = \"$name\""
        echo "desc = \"bench package $name\""
        echo "homepage = \"https://example.com/$name\""
        [[ -z $bin ]] || echo "bin = $bin"
        echo
        echo "[versions.\"$version\"]"
        echo "repository = \"$repo\""
        echo "tag = \"$tag\""
    } >"$dir/$name.toml"
}

# make_tree_tar SRC_PARENT SRC_NAME OUT.tar: a sorted, root-owned tar of SRC_PARENT/SRC_NAME, as
# a real tree is: every symlink kept as it is (absolute, climbing, dangling).
make_tree_tar() {
    local parent=$1 name=$2 out=$3 list
    list=$(mktemp)
    (
        cd "$parent" || exit 1
        find "$name" \( -type f -o -type d -o -type l \) -print
    ) | LC_ALL=C sort >"$list"
    tar -C "$parent" --no-recursion --owner=0 --group=0 --numeric-owner --mtime=@1700000000 \
        -cf "$out" -T "$list"
    rm -f "$list"
}

now_ns() {
    date +%s%N
}

# timed NAME LABEL CMD…: runs CMD (a bash -c string) once under /usr/bin/time; appends
# `LABEL<TAB>seconds<TAB>max_rss_kib` to $RESULTS/NAME.tsv. Fails the bench if CMD fails.
timed() {
    local name=$1 label=$2 cmd=$3 start end rss
    start=$(now_ns)
    if ! /usr/bin/time -f '%M' -o "$RESULTS/.rss" bash -c "$cmd" >"$RESULTS/.out" 2>&1; then
        cat "$RESULTS/.out" >&2
        die "$name/$label failed: $cmd"
    fi
    end=$(now_ns)
    rss=$(tail -n1 "$RESULTS/.rss")
    printf '%s\t%s\t%s\n' "$label" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')" "$rss" \
        >>"$RESULTS/$name.tsv"
}

# median of numbers on stdin
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# stat_of NAME LABEL COLUMN: the median of a column (2 = seconds, 3 = RSS KiB) for one label.
stat_of() {
    awk -F'\t' -v l="$2" -v c="$3" '$1 == l { print $c }' "$RESULTS/$1.tsv" | median
}

max_of() {
    awk -F'\t' -v l="$2" -v c="$3" '$1 == l && (n++ == 0 || $c > m) { m = $c } END { print m }' "$RESULTS/$1.tsv"
}

min_of() {
    awk -F'\t' -v l="$2" -v c="$3" '$1 == l && (n++ == 0 || $c < m) { m = $c } END { print m }' "$RESULTS/$1.tsv"
}

# CPU busy percentage over half a second (all cores, from /proc/stat).
busy_pct() {
    local a b c d e f g h
    read -r _ a b c d e f g h _ </proc/stat
    local busy1=$((a + b + c + f + g + h)) total1=$((a + b + c + d + e + f + g + h))
    sleep 0.5
    read -r _ a b c d e f g h _ </proc/stat
    local busy2=$((a + b + c + f + g + h)) total2=$((a + b + c + d + e + f + g + h))
    echo $((100 * (busy2 - busy1) / (total2 - total1 + 1)))
}

# Waits (up to BENCH_IDLE_WAIT seconds, default 300) until other processes leave the CPUs
# alone (busy below BENCH_IDLE_PCT, default 10%); the last reading goes to $RESULTS/busy.
wait_idle() {
    local deadline=$((SECONDS + ${BENCH_IDLE_WAIT:-300})) pct
    while :; do
        pct=$(busy_pct)
        if ((pct < ${BENCH_IDLE_PCT:-10} || SECONDS > deadline)); then
            echo "$pct" >>"$RESULTS/busy"
            return 0
        fi
        sleep 1
    done
}

# push_bottle REPO VERSION BOTTLE.tar.gz: a Homebrew bottle as ghcr.io/homebrew/core serves one —
# an OCI index tagged VERSION whose one entry (platform linux/ARCH, annotations ref.name
# VERSION.x86_64_linux and sh.brew.bottle.digest) is a manifest of the gzip layer. Prints the
# layer digest.
push_bottle() {
    local repo=$1 version=$2 layer=$3 tmp layer_digest config_digest manifest_digest
    tmp=$(mktemp -d)
    layer_digest=sha256:$(sha256_of "$layer")
    printf '{"architecture":"%s","os":"linux","os.version":"Ubuntu 22.04","rootfs":{"type":"layers","diff_ids":[]}}' \
        "$(host_arch)" >"$tmp/config.json"
    config_digest=sha256:$(sha256_of "$tmp/config.json")
    push_blob "$repo" "$layer" "$layer_digest"
    push_blob "$repo" "$tmp/config.json" "$config_digest"
    python3 - "$tmp" "$(host_arch)" "$version" "$layer_digest" "$(stat -c %s "$layer")" \
        "$config_digest" "$(stat -c %s "$tmp/config.json")" "$repo" <<'PY'
import hashlib, json, sys
tmp, arch, version, layer, size, config, config_size, repo = sys.argv[1:]
ref = f"{version}.x86_64_linux"
tab = json.dumps({"homebrew_version": "4.4.0", "changed_files": [], "arch": arch,
                  "built_on": {"os": "Linux", "os_version": "Ubuntu 22.04"}})
notes = {"org.opencontainers.image.ref.name": ref, "sh.brew.bottle.digest": layer[7:], "sh.brew.tab": tab}
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": int(config_size)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": int(size),
                "annotations": {"org.opencontainers.image.title": f"{repo.split('/')[-1]}--{ref}.bottle.tar.gz"}}],
    "annotations": notes}).encode()
digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                   "size": len(manifest), "platform": {"architecture": arch, "os": "linux", "os.version": "Ubuntu 22.04"},
                   "annotations": dict(notes, **{"sh.brew.bottle.size": size})}],
    "annotations": {"com.github.package.type": "homebrew_bottle", "org.opencontainers.image.version": version}})
open(f"{tmp}/manifest.json", "wb").write(manifest)
open(f"{tmp}/index.json", "w").write(index)
open(f"{tmp}/manifest.digest", "w").write(digest)
PY
    manifest_digest=$(cat "$tmp/manifest.digest")
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$tmp/manifest.json" "http://$REGISTRY/v2/$repo/manifests/$manifest_digest" ||
        die "manifest upload for $repo failed"
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
        --data-binary "@$tmp/index.json" "http://$REGISTRY/v2/$repo/manifests/$version" ||
        die "index upload for $repo:$version failed"
    rm -rf "$tmp"
    echo "$layer_digest"
}

# api_formula_json NAME VERSION URL SHA256: one formula of Homebrew's formula JSON API, in the
# shape formulae.brew.sh serves (the fields pkg and zerobrew read, and a few they do not).
api_formula_json() {
    python3 - "$@" <<'PY'
import json, sys
name, version, url, sha = sys.argv[1:]
print(json.dumps({"name": name, "full_name": name, "tap": "homebrew/core", "oldnames": [], "aliases": [],
    "versioned_formulae": [], "desc": f"{name}, a real tree as a bottle", "license": "MIT",
    "homepage": "https://example.com", "versions": {"stable": version, "head": None, "bottle": True},
    "urls": {"stable": {"url": "https://example.com/src.tar.gz", "tag": None, "revision": None}},
    "revision": 0, "version_scheme": 0,
    "bottle": {"stable": {"rebuild": 0, "root_url": url.rsplit("/", 3)[0],
        "files": {"x86_64_linux": {"cellar": ":any", "url": url, "sha256": sha}}}},
    "keg_only": False, "keg_only_reason": None, "options": [], "build_dependencies": [],
    "dependencies": [], "test_dependencies": [], "recommended_dependencies": [],
    "optional_dependencies": [], "uses_from_macos": [], "requirements": [], "conflicts_with": [],
    "caveats": None, "installed": [], "linked_keg": None, "pinned": False, "outdated": False,
    "deprecated": False, "disabled": False, "variations": {}}))
PY
}
