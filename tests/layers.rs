//! The code's map holds (issue 12): every module imports only from its own layer or the layers
//! below it (as `src/lib.rs` and the README list them), and no two modules import each other.
//! Read from the source text, independently of the compiler.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The layers, bottom first, as `src/lib.rs` declares them.
const LAYERS: &[&[&str]] = &[
    &[
        "bytes",
        "config",
        "digest",
        "failpoint",
        "fsutil",
        "localtime",
        "report",
    ],
    &["frontmatter", "links", "note", "warc"],
    &["browser", "fetch", "store", "vault"],
    &["annotate", "copies", "history", "scan", "snapshot"],
    &[
        "compost",
        "linkcheck",
        "profiles",
        "remote",
        "restore",
        "upkeep",
        "wacz",
    ],
    &["watch"],
    &["cli"],
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| {
            panic!("module {module} is in no layer: add it to src/lib.rs, the README and LAYERS")
        })
}

/// Top-level module → the top-level modules its code (tests left out) names as `crate::x`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            let deps = out.entry(module.clone()).or_default();
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    deps.insert(name);
                }
            }
        }
    }
    out
}

#[test]
fn every_module_imports_only_from_its_layer_or_below() {
    let mut wrong = Vec::new();
    for (module, deps) in imports() {
        for dep in deps {
            if layer(&dep) > layer(&module) {
                wrong.push(format!(
                    "{module} (layer {}) imports {dep} (layer {})",
                    layer(&module),
                    layer(&dep)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that point up: {wrong:#?}");
}

#[test]
fn no_modules_import_each_other() {
    let graph = imports();
    // Depth-first search for a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            return Some(path[i..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for dep in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(dep, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        let cycle = visit(module, &graph, &mut Vec::new(), &mut done);
        assert!(cycle.is_none(), "modules that import each other: {cycle:?}");
    }
}

#[test]
fn the_readme_map_names_every_module() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let map = readme
        .split("## Layout of the code")
        .nth(1)
        .expect("the README has a `Layout of the code` section");
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            map.contains(&format!("`{module}`")),
            "the README's map lacks `{module}`"
        );
    }
}
