//! Helm's `chartutil` on a chart tree: `ProcessDependencies` (aliases, `condition`, `tags`,
//! disabled subcharts removed, `import-values`) and `CoalesceValues` (a parent's values for a
//! subchart override the subchart's own, `null` removes a default, `global` flows down).

use std::collections::BTreeSet;
use std::rc::Rc;

use super::Chart;
use super::chart::{Dependency, File, Metadata};
use super::gofmt;
use super::semver;
use super::value::{Key, MapRef, Value};
use super::yaml_in;

/// A chart being rendered: its (possibly renamed) metadata, values and enabled subcharts.
pub struct Work<'a> {
    pub meta: Metadata,
    pub values: Value,
    pub templates: &'a [File],
    pub files: &'a [File],
    pub deps: Vec<Work<'a>>,
}

impl<'a> Work<'a> {
    /// The working copy of a loaded chart, with fresh (unshared) values.
    pub fn new(c: &'a Chart) -> Result<Work<'a>, String> {
        let values = match &c.parts.values {
            Some(n) => yaml_in::to_value(n)?,
            None => Value::Nil,
        };
        let values = if matches!(values, Value::Nil) && c.parts.values.is_some() { Value::new_map() } else { values };
        Ok(Work {
            meta: c.parts.meta.clone(),
            values,
            templates: &c.parts.templates,
            files: &c.parts.files,
            deps: c.parts.dependencies.iter().map(Work::new).collect::<Result<_, _>>()?,
        })
    }

    fn copy(&self) -> Work<'a> {
        Work {
            meta: self.meta.clone(),
            values: self.values.deep_copy(),
            templates: self.templates,
            files: self.files,
            deps: self.deps.iter().map(Work::copy).collect(),
        }
    }
}

fn new_map() -> MapRef {
    match Value::new_map() {
        Value::Map(m) => m,
        _ => unreachable!("new_map is a map"),
    }
}

fn as_map(v: &Value) -> Option<MapRef> {
    match v {
        Value::Map(m) => Some(m.clone()),
        _ => None,
    }
}

/// `CoalesceValues(chart, vals)`.
pub fn coalesce_values(c: &Work, vals: &Value) -> Result<MapRef, String> {
    let dest = as_map(&vals.deep_copy()).unwrap_or_else(new_map);
    coalesce(c, &dest, false)?;
    Ok(dest)
}

fn coalesce(c: &Work, dest: &MapRef, merge: bool) -> Result<(), String> {
    coalesce_own(c, dest, merge);
    for sub in &c.deps {
        let name = sub.meta.name.as_str();
        let existing = dest.borrow().get(name).cloned();
        let dv = match existing {
            None => {
                let m = new_map();
                dest.borrow_mut().insert(Key::from(name), Value::Map(m.clone()));
                m
            }
            Some(Value::Map(m)) => m,
            Some(other) => return Err(format!("type mismatch on {name}: {}", gofmt::sprintf("%t", &[other]))),
        };
        coalesce_globals(&dv, dest);
        coalesce(sub, &dv, merge)?;
    }
    Ok(())
}

fn coalesce_own(c: &Work, v: &MapRef, merge: bool) {
    let Value::Map(vc) = c.values.deep_copy() else { return };
    let entries: Vec<(Key, Value)> = vc.borrow().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (key, val) in entries {
        let existing = v.borrow().get(&key).cloned();
        match existing {
            Some(value) => {
                if value.is_nil() && !merge {
                    v.borrow_mut().remove(&key);
                } else if let (Value::Map(dv), Value::Map(sv)) = (&value, &val) {
                    let merge = merge || c.deps.iter().any(|d| *d.meta.name == *key);
                    coalesce_tables(dv, sv, merge);
                }
            }
            None => {
                v.borrow_mut().insert(key, val);
            }
        }
    }
}

fn coalesce_globals(dest: &MapRef, src: &MapRef) {
    let dg = match dest.borrow().get("global") {
        None => new_map(),
        Some(Value::Map(m)) => m.clone(),
        Some(_) => return,
    };
    let sg = match src.borrow().get("global") {
        None => new_map(),
        Some(Value::Map(m)) => m.clone(),
        Some(_) => return,
    };
    if !Rc::ptr_eq(&dg, &sg) {
        let entries: Vec<(Key, Value)> = sg.borrow().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (key, val) in entries {
            if let Value::Map(vm) = &val {
                let vv = new_map();
                *vv.borrow_mut() = vm.borrow().clone();
                let existing = dg.borrow().get(&key).cloned();
                match existing {
                    Some(Value::Map(destv)) => {
                        coalesce_tables(&vv, &destv, true);
                        dg.borrow_mut().insert(key, Value::Map(vv));
                    }
                    Some(_) => {}
                    None => {
                        dg.borrow_mut().insert(key, Value::Map(vv));
                    }
                }
            } else if matches!(dg.borrow().get(&key), Some(Value::Map(_))) {
                // A table is never replaced by a scalar.
            } else {
                dg.borrow_mut().insert(key, val);
            }
        }
    }
    dest.borrow_mut().insert(Key::from("global"), Value::Map(dg));
}

/// `coalesceTablesFullKey`: `dst` wins; `merge` keeps nulls instead of deleting keys.
fn coalesce_tables(dst: &MapRef, src: &MapRef, merge: bool) {
    if Rc::ptr_eq(dst, src) {
        return;
    }
    let non_nil: BTreeSet<Key> = src.borrow().iter().filter(|(_, v)| !v.is_nil()).map(|(k, _)| k.clone()).collect();
    let nil_keys: Vec<Key> = dst.borrow().iter().filter(|(_, v)| v.is_nil()).map(|(k, _)| k.clone()).collect();
    for k in nil_keys {
        src.borrow_mut().insert(k, Value::Nil);
    }
    let entries: Vec<(Key, Value)> = src.borrow().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (key, val) in entries {
        let dv = dst.borrow().get(&key).cloned();
        match dv {
            Some(dv) if !merge && dv.is_nil() && non_nil.contains(&key) => {
                dst.borrow_mut().remove(&key);
            }
            None => {
                dst.borrow_mut().insert(key, val);
            }
            Some(Value::Map(dm)) => {
                if let Value::Map(sm) = &val {
                    coalesce_tables(&dm, sm, merge);
                }
            }
            Some(_) => {}
        }
    }
}

/// `Values.Table(path)`.
fn table(v: &MapRef, path: &str) -> Option<MapRef> {
    let mut cur = v.clone();
    for part in path.split('.') {
        let next = match cur.borrow().get(part) {
            Some(Value::Map(m)) => m.clone(),
            _ => return None,
        };
        cur = next;
    }
    Some(cur)
}

/// `Values.PathValue(path)`: a non-table value.
fn path_value(v: &MapRef, path: &str) -> Option<Value> {
    let (tbl, key) = match path.rsplit_once('.') {
        Some((t, k)) => (table(v, t)?, k),
        None => (v.clone(), path),
    };
    let val = tbl.borrow().get(key).cloned()?;
    if matches!(val, Value::Map(_)) { None } else { Some(val) }
}

/// `ProcessDependencies(chart, {})`.
pub fn process_dependencies(c: &mut Work) -> Result<(), String> {
    let top = Value::new_map();
    process_enabled(c, &top, "")?;
    process_imports(c)
}

fn alias_dependency<'a>(charts: &[Work<'a>], dep: &Dependency) -> Option<Work<'a>> {
    let c = charts.iter().find(|c| c.meta.name == dep.name && semver::compatible(&dep.version, &c.meta.version))?;
    let mut out = c.copy();
    if !dep.alias.is_empty() {
        out.meta.name = dep.alias.clone();
    }
    Some(out)
}

fn process_enabled(c: &mut Work, v: &Value, path: &str) -> Result<(), String> {
    let Some(mut reqs) = c.meta.dependencies.take() else { return Ok(()) };
    let mut chart_deps: Vec<Work> = Vec::new();
    for existing in &c.deps {
        if !reqs.iter().any(|r| existing.meta.name == r.name && semver::compatible(&r.version, &existing.meta.version))
        {
            chart_deps.push(existing.copy());
        }
    }
    for r in reqs.iter_mut() {
        if let Some(d) = alias_dependency(&c.deps, r) {
            chart_deps.push(d);
        }
        if !r.alias.is_empty() {
            r.name = r.alias.clone();
        }
    }
    c.deps = chart_deps;
    for r in reqs.iter_mut() {
        r.enabled = true;
    }
    let cvals = coalesce_values(c, v)?;
    // Tags.
    if let Some(tags) = table(&cvals, "tags") {
        for r in reqs.iter_mut() {
            let (mut has_true, mut has_false) = (false, false);
            for t in &r.tags {
                if let Some(Value::Bool(b)) = tags.borrow().get(t.as_str()) {
                    if *b {
                        has_true = true;
                    } else {
                        has_false = true;
                    }
                }
            }
            r.enabled = has_true || !has_false;
        }
    }
    // Conditions.
    for r in reqs.iter_mut() {
        for cond in r.condition.trim().split(',') {
            if cond.is_empty() {
                continue;
            }
            if let Some(Value::Bool(b)) = path_value(&cvals, &format!("{path}{cond}")) {
                r.enabled = b;
                break;
            }
        }
    }
    let removed: BTreeSet<String> = reqs.iter().filter(|r| !r.enabled).map(|r| r.name.clone()).collect();
    c.deps.retain(|d| !removed.contains(&d.meta.name));
    reqs.retain(|r| !removed.contains(&r.name));
    let cvals = Value::Map(cvals);
    for d in c.deps.iter_mut() {
        let sub = format!("{path}{}.", d.meta.name);
        process_enabled(d, &cvals, &sub)?;
    }
    c.meta.dependencies = if reqs.is_empty() { None } else { Some(reqs) };
    Ok(())
}

fn process_imports(c: &mut Work) -> Result<(), String> {
    for d in c.deps.iter_mut() {
        process_imports(d)?;
    }
    let Some(mut reqs) = c.meta.dependencies.take() else { return Ok(()) };
    let cvals = coalesce_values(c, &Value::Nil)?;
    let b = new_map();
    for r in reqs.iter_mut() {
        let mut out = Vec::new();
        for iv in &r.import_values {
            let (child, parent) = match iv {
                yaml_in::Node::Map(_) => {
                    let v = yaml_in::to_value(iv).unwrap_or(Value::Nil);
                    let g = |k: &str| gofmt::to_v(&v.get(k).unwrap_or(Value::Nil));
                    (g("child"), g("parent"))
                }
                yaml_in::Node::Str(s) => (format!("exports.{s}"), ".".to_string()),
                _ => continue,
            };
            out.push(yaml_in::Node::Map(vec![
                ("child".into(), yaml_in::Node::Str(child.clone())),
                ("parent".into(), yaml_in::Node::Str(parent.clone())),
            ]));
            let Some(vv) = table(&cvals, &format!("{}.{child}", r.name)) else { continue };
            let mapped = if parent == "." {
                vv
            } else {
                let mut cur = Value::Map(vv);
                for p in parent.split('.').rev() {
                    cur = super::value::map_of(vec![(p, cur)]);
                }
                as_map(&cur).unwrap_or_else(new_map)
            };
            coalesce_tables(&b, &mapped, false);
        }
        r.import_values = out;
    }
    c.meta.dependencies = Some(reqs);
    let trimmed = trim_nil(&Value::Map(cvals));
    if let Value::Map(t) = &trimmed {
        coalesce_tables(t, &b, false);
    }
    c.values = trimmed;
    Ok(())
}

fn trim_nil(v: &Value) -> Value {
    match v {
        Value::Map(m) => Value::map_from(
            m.borrow().iter().filter(|(_, v)| !v.is_nil()).map(|(k, v)| (k.clone(), trim_nil(v))).collect(),
        ),
        Value::List(l) => Value::list(l.iter().map(Value::deep_copy).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::yaml_out::to_json;
    use super::*;

    fn chart(yaml: &str, values: &str, deps: Vec<Chart>) -> Chart {
        let meta = super::super::chart::parts_from_files(vec![File {
            name: "Chart.yaml".into(),
            data: yaml.as_bytes().into(),
        }])
        .unwrap()
        .meta;
        let parts = super::super::chart::Parts {
            meta,
            values: Some(yaml_in::parse(values).unwrap()),
            dependencies: deps,
            ..Default::default()
        };
        Chart::from_parts(parts)
    }

    #[test]
    fn subchart_values_globals_and_conditions() {
        let sub = chart(
            "apiVersion: v2\nname: sub\nversion: 1.0.0\n",
            "image: {tag: a}\nkeep: 1\ndrop: 2\nglobal: {g: sub}\n",
            vec![],
        );
        let extra = chart("apiVersion: v2\nname: extra\nversion: 0.1.0\n", "x: 1\n", vec![]);
        let top = chart(
            "apiVersion: v2\nname: top\nversion: 1.0.0\ndependencies:\n- {name: sub, version: 1.x.x, alias: s}\n- {name: extra, version: '*', condition: extra.enabled}\n",
            "s: {image: {tag: b}, drop: null}\nextra: {enabled: false}\nglobal: {g: top, h: 1}\n",
            vec![sub, extra],
        );
        let mut w = Work::new(&top).unwrap();
        process_dependencies(&mut w).unwrap();
        assert_eq!(w.deps.len(), 1);
        assert_eq!(w.deps[0].meta.name, "s");
        let vals = coalesce_values(&w, &Value::Nil).unwrap();
        let s = to_json(&Value::Map(vals), false, false).unwrap();
        // The parent's `null` for `drop` is lost when ProcessDependencies bakes the coalesced
        // values into the parent, so the subchart default comes back: Helm's own behaviour on
        // this code path.
        assert!(s.contains(r#""s":{"drop":2,"global":{"g":"top","h":1},"image":{"tag":"b"},"keep":1}"#), "{s}");
        assert!(!s.contains(r#""extra":{"enabled":false,"x""#), "{s}");
    }
}
