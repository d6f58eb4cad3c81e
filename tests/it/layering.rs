//! The architecture as facts the test suite checks, not prose: the core crate is pure, each
//! outside dependency is known to one module, modules do not import each other in a circle, and
//! rooms stay small. ARCHITECTURE.md states these rules; this is where they are enforced.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("a source directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A file's code without its unit tests (a `tests.rs` module, or what follows `#[cfg(test)]`).
fn code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).expect("a readable source file");
    // An inline test module only: `mod tests;` declares a file of its own, and what follows it
    // is still code.
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Code only: comment lines dropped (a module's docs may name what it does not use).
fn without_comments(code: &str) -> String {
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn the_core_crate_depends_on_no_io_crate() {
    let manifest = std::fs::read_to_string(root().join("spanfold-core/Cargo.toml"))
        .expect("the core crate's manifest");
    let deps: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] table")
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    assert!(deps.contains(&"serde"), "the table was read: {deps:?}");
    for io in [
        "sled",
        "gix",
        "tokio",
        "tonic",
        "axum",
        "hyper",
        "clap",
        "ureq",
        "prost",
        "opentelemetry-proto",
        "tokio-rustls",
        "parking_lot",
        "tracing",
    ] {
        assert!(!deps.contains(&io), "spanfold-core depends on {io}");
    }
}

#[test]
fn the_core_does_no_io_and_reads_no_clock() {
    let core = sources(&root().join("spanfold-core/src"));
    assert!(core.len() > 10, "the core's files were found");
    for file in core {
        let code = without_comments(&code(&file));
        for io in [
            "std::fs",
            "std::net",
            "std::process",
            "std::thread",
            "std::env",
            "SystemTime::now",
            "Instant::now",
            "std::io::stdin",
            "println!",
            "eprintln!",
        ] {
            assert!(
                !code.contains(io),
                "{} uses {io}: the core takes time and data as arguments",
                relative(&file)
            );
        }
    }
}

/// Each outside crate, and the only places in `src/` that may name it.
const ONLY_MODULE: &[(&str, &[&str])] = &[
    ("sled::", &["src/store/"]),
    ("gix::", &["src/git"]),
    (
        "axum::",
        &[
            "src/server/http.rs",
            "src/server/api",
            "src/server/otlp_http.rs",
        ],
    ),
    ("clap::", &["src/cli/", "src/main.rs", "src/bin/"]),
    ("ureq::", &["src/client.rs"]),
    ("tonic::", &["src/otlp/", "src/bin/"]),
    ("prost::", &["src/otlp/", "src/bin/"]),
    ("opentelemetry_proto::", &["src/otlp/", "src/bin/"]),
    ("rustls", &["src/tls.rs"]),
];

#[test]
fn each_outside_crate_is_known_to_one_module() {
    for file in sources(&root().join("src")) {
        let name = relative(&file);
        let code = without_comments(&code(&file));
        for (needle, allowed) in ONLY_MODULE {
            let named = code.contains(needle) || code.contains(&format!("use {needle}"));
            assert!(
                !named || allowed.iter().any(|a| name.starts_with(a)),
                "{name} names {needle}, which only {allowed:?} may know"
            );
        }
    }
}

/// The top-level module a file belongs to (`src/server/http.rs` → `server`).
fn module_of(base: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(base).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main" | "bin")).then(|| name.to_owned())
}

/// Which top-level modules each module names through `crate::`.
fn imports(base: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(base) {
        let Some(module) = module_of(base, &file) else {
            continue;
        };
        let code = without_comments(&code(&file));
        let named = graph.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if rest.starts_with('{') {
                // `use crate::{a, b::c}`: every first segment in the braces.
                let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
                for part in group.split(',') {
                    let first = part.trim().split("::").next().unwrap_or("");
                    named.insert(first.trim().to_owned());
                }
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                    .unwrap_or(rest.len());
                named.insert(rest[..end].to_owned());
            }
        }
        named.remove(&module);
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for named in graph.values_mut() {
        named.retain(|m| modules.contains(m));
    }
    graph
}

/// A circle of imports, if there is one (depth-first search).
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == m) {
            let mut found = path[start..].to_vec();
            found.push(m.to_owned());
            return Some(found);
        }
        if !done.insert(m.to_owned()) {
            return None;
        }
        path.push(m.to_owned());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_modules_import_each_other_in_a_circle() {
    for base in [root().join("src"), root().join("spanfold-core/src")] {
        let graph = imports(&base);
        assert!(graph.len() > 5, "modules of {} found", base.display());
        assert_eq!(
            circle(&graph),
            None,
            "an import circle in {}",
            base.display()
        );
    }
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_owned(), to.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        circle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

/// Functions longer than 100 lines in a file's code (unit tests aside), by their first line.
fn long_functions(code: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut long = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let is_fn = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "async fn ",
        ]
        .iter()
        .chain(&["pub async fn ", "pub(super) async fn ", "const fn "])
        .any(|p| trimmed.starts_with(p));
        if !is_fn || trimmed.ends_with(';') || trimmed.ends_with('}') {
            continue;
        }
        let close = format!("{indent}}}");
        let end = lines[i..]
            .iter()
            .position(|l| *l == close)
            .map_or(lines.len(), |n| i + n);
        if end - i + 1 > 100 {
            long.push((i + 1, trimmed.to_owned()));
        }
    }
    long
}

#[test]
fn rooms_stay_small() {
    for base in [root().join("src"), root().join("spanfold-core/src")] {
        for file in sources(&base) {
            let name = relative(&file);
            let text = std::fs::read_to_string(&file).expect("readable");
            assert!(
                text.lines().count() <= 800,
                "{name} has {} lines; split it by job",
                text.lines().count()
            );
            let long = long_functions(&code(&file));
            assert!(
                long.is_empty(),
                "{name}: functions over 100 lines: {long:?}"
            );
        }
    }
}

#[test]
fn a_long_function_is_seen() {
    let body = "    x();\n".repeat(100);
    let code = format!("fn short() {{\n}}\n\npub fn long() {{\n{body}}}\n");
    assert_eq!(
        long_functions(&code),
        vec![(4, "pub fn long() {".to_owned())]
    );
}
