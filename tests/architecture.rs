//! The import rules of the source tree, read from the files themselves: top-level modules
//! form no cycle, the two shells (the command line and the controller) never import each
//! other, and the pure modules never import a module that does I/O beyond the data types
//! the pipeline hands them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `crate::<module>` paths used outside tests, per top-level module of `src`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if !name.ends_with(".rs") || name.contains("tests") {
                continue;
            }
            let rel = p.strip_prefix(&src).unwrap().to_string_lossy().to_string();
            let top = rel.split('/').next().unwrap().trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            let used = out.entry(top.clone()).or_default();
            for (i, _) in code.match_indices("crate::") {
                let m: String = code[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !m.is_empty() && m != top {
                    used.insert(m);
                }
            }
        }
    }
    out
}

#[test]
fn top_level_modules_form_no_cycle() {
    let g = imports();
    // Depth-first search with colours; a grey node met again closes a cycle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match colour.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = path.iter().position(|p| p == n).unwrap();
                let mut cycle = path[at..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        colour.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, colour, path) {
                return Some(c);
            }
        }
        path.pop();
        colour.insert(n.to_string(), 2);
        None
    }
    let mut colour = BTreeMap::new();
    for n in g.keys() {
        if let Some(c) = visit(n, &g, &mut colour, &mut Vec::new()) {
            panic!("module cycle: {}", c.join(" -> "));
        }
    }
    // The walk saw the modules that matter.
    for m in ["api", "pipeline", "controller", "commands", "copy", "plan"] {
        assert!(g.contains_key(m), "module {m} not found: {:?}", g.keys().collect::<Vec<_>>());
    }
}

#[test]
fn shells_do_not_import_each_other_and_pure_modules_do_no_io() {
    let g = imports();
    let uses = |a: &str, b: &str| g.get(a).is_some_and(|s| s.contains(b));
    assert!(!uses("controller", "commands"), "the controller imports the command line");
    assert!(!uses("commands", "controller"), "the command line imports the controller");
    assert!(!uses("pipeline", "commands") && !uses("pipeline", "controller") && !uses("pipeline", "cli"));
    for pure in ["api", "image", "plan", "render", "catalog"] {
        for io in ["registry", "controller", "commands", "pipeline", "cli", "collect", "admin", "telemetry"] {
            assert!(!uses(pure, io), "pure module {pure} imports {io}");
        }
    }
}
