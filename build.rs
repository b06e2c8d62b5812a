//! Embeds the `formulae/` shipped with pkg, so an installed binary needs no checkout.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new("formulae");
    println!("cargo:rerun-if-changed=formulae");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".toml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from("pub static EMBEDDED: &[(&str, &str)] = &[\n");
    for name in &names {
        let stem = name.trim_end_matches(".toml");
        let path = std::fs::canonicalize(dir.join(name)).expect("formula path");
        writeln!(out, "    ({stem:?}, include_str!({path:?})),").expect("write to string");
        println!("cargo:rerun-if-changed=formulae/{name}");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_formulae.rs");
    std::fs::write(dest, out).expect("write embedded_formulae.rs");
}
