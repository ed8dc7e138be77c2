//! The crate's modules read top down: every `crate::…` and `super::…` path in `src/` goes
//! to a module of a lower layer (or within the same top-level module), and no two source
//! files import each other, directly or through others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules, lowest layer first; a module may use only modules of lower layers.
const LAYERS: &[&[&str]] = &[
    &["error", "float"],
    &["gemm", "params"],
    &["family", "normaliser"],
    &["config", "io"],
    &["npy", "optim"],
    &["nn"],
    &["theory", "checkpoint"],
    &["analysis", "candle", "run"],
    &["engine", "train_state"],
    &["train"],
    &["bench", "experiment"],
    &["export"],
    &["plot"],
    &["report"],
    &["cli"],
];

/// Every module of `src/` (path like `nn::attention`) with its source text, comments removed.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                walk(&path, &[prefix, &[name]].concat(), out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module = match name.as_str() {
                    "mod" => prefix.to_vec(),
                    "lib" | "main" if prefix.is_empty() => continue,
                    _ => [prefix, &[name]].concat(),
                };
                let text = std::fs::read_to_string(&path).unwrap();
                let code: Vec<&str> = text.lines().map(|l| l.split("//").next().unwrap()).collect();
                out.insert(module.join("::"), code.join("\n"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &[], &mut out);
    out
}

/// The paths after each `crate::` or `super::` in `code` (groups `a::{b, c::d}` expanded
/// one level), as segments; `super` is resolved against `module`.
fn paths(code: &str, module: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for head in ["crate::", "super::"] {
        for (at, _) in code.match_indices(head) {
            if at > 0 && code[..at].ends_with(|c: char| ident(c) || c == ':') {
                continue;
            }
            // `super` of `a::b` is `a`, whether b is a file or a folder with mod.rs
            let mut base: Vec<String> = if head == "crate::" {
                vec![]
            } else {
                let mut m: Vec<String> = module.split("::").map(String::from).collect();
                m.pop();
                m
            };
            let rest = &code[at + head.len()..];
            let mut i = 0;
            loop {
                let len = rest[i..].find(|c: char| !ident(c)).unwrap_or(rest.len() - i);
                if len == 0 {
                    break;
                }
                base.push(rest[i..i + len].to_string());
                i += len;
                if !rest[i..].starts_with("::") {
                    break;
                }
                i += 2;
            }
            if rest[i..].starts_with('{') {
                let group = &rest[i + 1..rest[i..].find('}').map_or(rest.len(), |e| i + e)];
                for item in group.split(',') {
                    let first = item.trim().split(|c: char| !ident(c)).next().unwrap_or("");
                    if !first.is_empty() && first != "self" {
                        out.push([base.clone(), vec![first.to_string()]].concat());
                    }
                }
            }
            out.push(base);
        }
    }
    out
}

/// Imports between modules: each module and the modules (files) its paths reach.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let mut graph = BTreeMap::new();
    for (module, code) in &modules {
        let mut to = BTreeSet::new();
        for path in paths(code, module) {
            let reached = (1..=path.len()).rev().map(|k| path[..k].join("::")).find(|c| modules.contains_key(c));
            if let Some(r) = reached
                && r != *module
                && !module.starts_with(&format!("{r}::"))
            {
                to.insert(r);
            }
        }
        graph.insert(module.clone(), to);
    }
    graph
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap()
}

/// Imports from one top-level module to another of the same or a higher layer.
fn upward_imports(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let layer = |m: &str| {
        LAYERS.iter().position(|l| l.contains(&top(m))).unwrap_or_else(|| panic!("module `{}` is in no layer", top(m)))
    };
    let mut upward = Vec::new();
    for (from, tos) in graph {
        for to in tos.iter().filter(|t| top(t) != top(from)) {
            if layer(to) >= layer(from) {
                upward.push(format!("{from} → {to}"));
            }
        }
    }
    upward
}

/// Modules that can reach themselves through the imports.
fn modules_on_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut on_cycle = Vec::new();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = stack.pop() {
            if m == start {
                on_cycle.push(start.clone());
                break;
            }
            if seen.insert(m) {
                stack.extend(graph.get(m).into_iter().flatten());
            }
        }
    }
    on_cycle
}

#[test]
fn every_import_goes_down_the_layers() {
    let graph = graph();
    assert!(graph.len() > 50, "found only {} modules", graph.len());
    let upward = upward_imports(&graph);
    assert!(upward.is_empty(), "imports that do not go down the layers: {upward:?}");
}

#[test]
fn no_source_files_import_each_other_even_through_others() {
    let on_cycle = modules_on_cycles(&graph());
    assert!(on_cycle.is_empty(), "modules on an import cycle: {on_cycle:?}");
}

#[test]
fn the_checks_find_a_planted_cycle_and_upward_import() {
    // the parser reads both kinds of path in a known file
    let modules = modules();
    let found = paths(&modules["nn::attention"], "nn::attention");
    let joined: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert!(joined.contains(&"nn::linear::linear_forward".to_string()), "{joined:?}");
    assert!(joined.contains(&"config::ModelConfig".to_string()), "{joined:?}");
    // a graph with engine → train → engine is caught twice
    let mut planted = graph();
    assert!(planted["nn::attention"].contains("nn::linear") && planted["nn::attention"].contains("config"));
    planted.get_mut("engine").unwrap().insert("train".into());
    assert_eq!(modules_on_cycles(&planted), ["engine", "train"]);
    assert_eq!(upward_imports(&planted), ["engine → train"]);
}
