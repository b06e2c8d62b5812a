//! The house rules of the source tree, checked on the tree itself: which layers may name which
//! (the flow runs one way), and `docs/architecture.md`'s module list is the tree as it is, each
//! module with the contract its `//!` opening states.

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every `.rs` file under `dir`, sorted, as paths relative to `src/`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    rust_files_in(dir)
        .into_iter()
        .map(|p| p.strip_prefix(src()).unwrap().to_owned())
        .collect()
}

/// Lines of `file` (relative to `src/`) that name any of `names`, outside comments.
fn naming(file: &Path, names: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(src().join(file)).unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| names.iter().any(|n| l.contains(n)))
        .map(|l| format!("{}: {}", file.display(), l.trim()))
        .collect()
}

#[test]
fn the_pour_never_links_and_the_store_never_names_a_registry_or_the_cellar() {
    let rules: [(&str, &[&str]); 2] = [
        // The pour shapes a keg in staging; every change to the prefix is the transaction's.
        ("pour", &["crate::link"]),
        // The store knows digests, sizes and sinks; sources hand it streams in its own terms.
        (
            "store",
            &["crate::registry", "crate::cellar", "crate::source"],
        ),
    ];
    let mut broken = Vec::new();
    for (dir, names) in rules {
        for file in rust_files(&src().join(dir)) {
            broken.extend(naming(&file, names));
        }
    }
    assert!(
        broken.is_empty(),
        "layers named against the flow:\n{}",
        broken.join("\n")
    );
}

#[test]
fn commands_leave_the_filesystem_to_the_engine() {
    // The command layer parses, calls the engine and reports: it reads and writes no file
    // itself (stdin and stdout are its own).
    let mut found = Vec::new();
    for file in rust_files(&src().join("commands")) {
        found.extend(naming(&file, &["std::fs", "fs_err", "File::"]));
    }
    assert!(
        found.is_empty(),
        "filesystem work in src/commands/ (move it into the engine):\n{}",
        found.join("\n")
    );
}

const BEGIN: &str = "<!-- modules:begin -->";
const END: &str = "<!-- modules:end -->";

/// The module list as the tree has it: each file (tests aside) and the first paragraph of its
/// `//!` opening.
fn module_list() -> String {
    let mut out = String::new();
    for file in rust_files(&src()) {
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(src().join(&file)).unwrap();
        let contract: Vec<&str> = text
            .lines()
            .map_while(|l| l.strip_prefix("//!"))
            .map(str::trim)
            .take_while(|l| !l.is_empty())
            .collect();
        assert!(
            !contract.is_empty(),
            "src/{} does not open with a `//!` line saying what it owns",
            file.display()
        );
        out.push_str(&format!(
            "- `src/{}`: {}\n",
            file.display(),
            contract.join(" ")
        ));
    }
    out
}

/// `PKG_BLESS=1 cargo test --test it house::` writes the list into the document.
#[test]
fn the_architecture_documents_module_list_is_the_tree_as_it_is() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/architecture.md has no {BEGIN} … {END} block");
    };
    let listed = &doc[begin + BEGIN.len()..end];
    let want = format!("\n{}", module_list());
    if listed != want {
        if std::env::var_os("PKG_BLESS").is_some() {
            let text = format!("{}{BEGIN}{want}{}", &doc[..begin], &doc[end..]);
            std::fs::write(&doc_path, text).unwrap();
            return;
        }
        let have: Vec<&str> = listed.lines().collect();
        let differ: Vec<String> = want
            .lines()
            .filter(|l| !have.contains(l))
            .map(|l| format!("+ {l}"))
            .chain(
                have.iter()
                    .filter(|l| !want.lines().any(|w| w == **l))
                    .map(|l| format!("- {l}")),
            )
            .collect();
        panic!(
            "docs/architecture.md's module list is not the tree (run `PKG_BLESS=1 cargo test --test it house::` to write it):\n{}",
            differ.join("\n")
        );
    }
}

/// Every `.rs` file under the crate's `src/` and `tests/`, read.
fn all_sources() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [root.join("src"), root.join("tests")]
        .iter()
        .flat_map(|d| rust_files_in(d))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn every_test_the_documents_name_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.push(root.join("README.md"));
    let sources = all_sources();
    let defined = |name: &str| {
        let (call, generic) = (format!("fn {name}("), format!("fn {name}<"));
        sources
            .iter()
            .any(|s| s.contains(&call) || s.contains(&generic))
    };
    let mut missing = Vec::new();
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        // `module::test_name` or `test_name` in backticks: a test is named by words joined
        // with `_` (a bare name needs five of them, so settings and file names are not taken).
        for quoted in text.split('`').skip(1).step_by(2) {
            let (name, words) = match quoted.rsplit_once("::") {
                Some((_, name)) => (name, 3),
                None => (quoted, 6),
            };
            let is_test_name = name.split('_').count() >= words
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if is_test_name && !defined(name) {
                missing.push(format!(
                    "{}: {quoted}",
                    doc.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "tests named in the documents that do not exist:\n{}",
        missing.join("\n")
    );
}

/// `commands::exit_code` asks each error type of a chain by name: a type that classifies its
/// variants (`impl … Classify for T`) but is missing from that list would exit 1 for bad input.
#[test]
fn every_error_type_that_classifies_itself_is_asked_for_the_exit_code() {
    let mut classified = Vec::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(src().join(&file)).unwrap();
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("impl ")
                && let Some((_, ty)) = rest.split_once("Classify for ")
            {
                classified.push(ty.trim_end_matches(" {").trim().to_owned());
            }
        }
    }
    assert!(classified.len() > 5, "{classified:?}");
    let commands = std::fs::read_to_string(src().join("commands/mod.rs")).unwrap();
    let missing: Vec<&String> = classified
        .iter()
        .filter(|ty| {
            !commands.contains(&format!("::{ty}>(e)")) && !commands.contains(&format!("<{ty}>(e)"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "error types that classify themselves but that commands::is_bad_input never asks: {missing:?}"
    );
}

/// Functions of library and command code (tests aside) longer than this say why in their doc
/// comment, with a sentence starting `Long`.
const LONG_FUNCTION: usize = 90;

/// `(file, line, name, lines)` of every function in `src/` (outside test modules and `tests.rs`
/// files) longer than [`LONG_FUNCTION`] whose doc comment gives no reason.
fn long_functions_without_a_reason() -> Vec<(PathBuf, usize, String, usize)> {
    let mut out = Vec::new();
    for file in rust_files(&src()) {
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(src().join(&file)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let end = (lines.iter())
            .position(|l| l.starts_with("#[cfg(test)]"))
            .unwrap_or(lines.len());
        for (i, line) in lines[..end].iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let signature = trimmed
                .strip_prefix("pub ")
                .or_else(|| trimmed.strip_prefix("pub(crate) "))
                .or_else(|| trimmed.strip_prefix("pub(super) "))
                .unwrap_or(trimmed);
            let Some(rest) = signature.strip_prefix("fn ") else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let close = format!("{indent}}}");
            let Some(len) = lines[i..end].iter().position(|l| *l == close) else {
                continue;
            };
            if len < LONG_FUNCTION {
                continue;
            }
            let doc = lines[..i]
                .iter()
                .rev()
                .take_while(|l| {
                    let t = l.trim_start();
                    t.starts_with("///") || t.starts_with("#[")
                })
                .any(|l| l.contains("Long"));
            if !doc {
                out.push((file.clone(), i + 1, name, len + 1));
            }
        }
    }
    out
}

#[test]
fn a_function_over_ninety_lines_says_why_it_is_long() {
    let found = long_functions_without_a_reason();
    assert!(
        found.is_empty(),
        "split these, or say in the doc comment why each is one function (a sentence starting `Long`):\n{}",
        found
            .iter()
            .map(|(f, l, n, len)| format!("  src/{}:{l} {n} ({len} lines)", f.display()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
