//! Splitting catalog files into blobs and reading the fields selection needs.
//!
//! YAML files are cut at `---` document markers (which YAML forbids inside content) so
//! documents parse independently, in parallel across cores; JSON streams are read with
//! serde_json's stream reader. Large values (icons, CSV descriptions, bundle objects) are
//! skipped, not kept: the blob's text stays in the file bytes.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

use super::{CatalogError, SourceFile, Span};

/// A blob: its fields and where its text is.
pub(super) struct Blob {
    pub meta: Meta,
    pub span: Span,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Meta {
    #[serde(default)]
    pub schema: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub package: String,
    #[serde(default)]
    pub default_channel: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub image: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub entries: Vec<EntryMeta>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub related_images: Vec<RelatedMeta>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub properties: Vec<PropMeta>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct EntryMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub replaces: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub skips: Vec<String>,
    #[serde(default)]
    pub skip_range: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct RelatedMeta {
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub image: String,
}

#[derive(Deserialize)]
pub(super) struct PropMeta {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub value: PropValue,
}

/// The few property fields selection uses; anything else (bundle objects, CSV metadata) is
/// skipped without being stored.
#[derive(Default)]
pub(super) struct PropValue {
    pub package_name: Option<String>,
    pub version: Option<String>,
    pub version_range: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
}

impl PropValue {
    pub fn gvk(self) -> super::Gvk {
        super::Gvk {
            group: self.group.unwrap_or_default(),
            version: self.version.unwrap_or_default(),
            kind: self.kind.unwrap_or_default(),
        }
    }
}

impl<'de> Deserialize<'de> for PropValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PropValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a property value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PropValue, A::Error> {
                let mut v = PropValue::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "packageName" => &mut v.package_name,
                        "version" => &mut v.version,
                        "versionRange" => &mut v.version_range,
                        "group" => &mut v.group,
                        "kind" => &mut v.kind,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value::<Lenient>()?.0;
                }
                Ok(v)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<PropValue, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(PropValue::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<PropValue, E> {
                Ok(PropValue::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<PropValue, E> {
                Ok(PropValue::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<PropValue, E> {
                Ok(PropValue::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<PropValue, E> {
                Ok(PropValue::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<PropValue, E> {
                Ok(PropValue::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<PropValue, E> {
                Ok(PropValue::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A scalar read as a string whatever its YAML type (`version: 1.0` is a string to opm).
struct Lenient(Option<String>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Lenient, E> {
                Ok(Lenient(Some(s.to_string())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Lenient, E> {
                Ok(Lenient(Some(s)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Lenient, E> {
                Ok(Lenient(Some(n.to_string())))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Lenient, E> {
                Ok(Lenient(Some(n.to_string())))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Lenient, E> {
                Ok(Lenient(Some(n.to_string())))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Lenient, E> {
                Ok(Lenient(Some(b.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(V)
    }
}

fn lenient_string<'de, D: de::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Lenient::deserialize(d)?.0.unwrap_or_default())
}

fn null_as_default<'de, D: de::Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Byte ranges of the YAML documents of a file: cut at lines starting with `---` (or ended
/// by `...`); documents holding only blank lines and comments are dropped.
pub(super) fn yaml_documents(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    let push = |s: usize, e: usize, docs: &mut Vec<(usize, usize)>| {
        if has_content(&bytes[s..e]) {
            docs.push((s, e));
        }
    };
    while pos < bytes.len() {
        let line_end = bytes[pos..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| pos + i + 1);
        let line = &bytes[pos..line_end];
        let marker = |m: &[u8]| line.starts_with(m) && line.get(3).is_none_or(|c| c.is_ascii_whitespace());
        if marker(b"---") {
            push(start, pos, &mut docs);
            // Content may follow the marker on the same line (`--- {..}`).
            start = pos + 3;
        } else if marker(b"...") {
            push(start, pos, &mut docs);
            start = line_end;
        }
        pos = line_end;
    }
    push(start, bytes.len(), &mut docs);
    docs
}

fn has_content(text: &[u8]) -> bool {
    text.split(|b| *b == b'\n').any(|l| {
        let t = l.trim_ascii();
        !t.is_empty() && !t.starts_with(b"#") && !t.starts_with(b"%")
    })
}

struct Job {
    file: u32,
    start: usize,
    end: usize,
}

/// Parses every file's blobs, YAML documents spread over the available cores.
pub(super) fn parse_files(files: &[SourceFile]) -> Result<Vec<Blob>, CatalogError> {
    let mut jobs = Vec::new();
    let mut json_files = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if f.yaml {
            jobs.extend(yaml_documents(&f.bytes).into_iter().map(|(start, end)| Job { file: i as u32, start, end }));
        } else {
            json_files.push(i);
        }
    }
    // Documents vary from a few bytes to megabytes: threads take the next document from a
    // shared counter rather than equal-count chunks, so one large package does not leave a
    // core idle.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let yaml: Vec<Result<Vec<Blob>, CatalogError>> = std::thread::scope(|s| {
        let (jobs, next) = (&jobs, &next);
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(j) = jobs.get(i) else { break };
                        out.push(parse_yaml_doc(files, j)?);
                    }
                    Ok(out)
                })
            })
            .collect();
        let json: Vec<Result<Vec<Blob>, CatalogError>> =
            json_files.iter().map(|&i| parse_json_stream(&files[i], i as u32)).collect();
        let mut out: Vec<_> = handles.into_iter().map(|h| h.join().expect("catalog parser thread panicked")).collect();
        out.extend(json);
        out
    });
    let mut blobs = Vec::new();
    for part in yaml {
        blobs.extend(part?);
    }
    // Keep file order: parallel chunks and JSON files were collected separately.
    blobs.sort_by_key(|b| (b.span.file, b.span.start));
    Ok(blobs)
}

/// Catalog documents are large and trusted as much as the image they come from: a channel
/// with thousands of skips is hundreds of thousands of nodes, above the parser's defaults.
pub fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 64 << 20;
    budget.max_nodes = 32 << 20;
    budget.max_total_scalar_bytes = 1 << 30;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

fn line_of(bytes: &[u8], at: usize) -> usize {
    bytes[..at.min(bytes.len())].iter().filter(|b| **b == b'\n').count() + 1
}

fn parse_yaml_doc(files: &[SourceFile], j: &Job) -> Result<Blob, CatalogError> {
    let f = &files[j.file as usize];
    let text = std::str::from_utf8(&f.bytes[j.start..j.end]).map_err(|e| CatalogError::Parse {
        path: format!("{}:{}", f.path, line_of(&f.bytes, j.start + e.valid_up_to())),
        message: "not UTF-8".into(),
    })?;
    let elided = elide_unread(text);
    let parsed = match serde_saphyr::from_str_with_options::<Meta>(&elided, yaml_options()) {
        Ok(m) => Ok(m),
        // Elision never changes the document's structure; should a parse still fail, the error
        // comes from the text as written.
        Err(_) if matches!(elided, std::borrow::Cow::Owned(_)) => {
            serde_saphyr::from_str_with_options(text, yaml_options())
        }
        Err(e) => Err(e),
    };
    let meta = parsed.map_err(|e| CatalogError::Parse {
        path: format!("{}:{}", f.path, line_of(&f.bytes, j.start)),
        message: e.to_string().lines().next().unwrap_or_default().to_string(),
    })?;
    Ok(Blob { meta, span: Span { file: j.file, start: j.start, end: j.end } })
}

/// Lines at least this long are looked at by [`elide_unread`].
const LONG_LINE: usize = 256;

/// The document with the base64 values selection never reads (`data:` of bundle objects,
/// `base64data:` of icons, nearly all of a catalog's bytes) replaced by `x`, so the YAML
/// scanner does not walk them. Only a one-token value on a `data:`/`base64data:` line is
/// replaced: a plain scalar stays a plain scalar, and inside a quoted or block scalar the
/// text changes but not the structure. Pure.
pub(super) fn elide_unread(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        let end = memchr_newline(&bytes[pos..]).map_or(bytes.len(), |i| pos + i);
        if end - pos >= LONG_LINE
            && let Some(value_at) = unread_value(&bytes[pos..end])
        {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len() / 8));
            o.push_str(&text[copied..pos + value_at]);
            o.push('x');
            copied = end;
        }
        pos = end + 1;
    }
    match out {
        None => std::borrow::Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            std::borrow::Cow::Owned(o)
        }
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

/// Where the value of a `data: <base64>` or `base64data: <base64>` line starts: a value that
/// starts as a plain scalar and holds no blank or flow indicator is one token to the end of
/// the line, whatever context it is in.
fn unread_value(line: &[u8]) -> Option<usize> {
    let indent = line.iter().take_while(|c| **c == b' ').count();
    let mut at = indent;
    if line[at..].starts_with(b"- ") {
        at += 2;
    }
    let rest = &line[at..];
    let key = [&b"data: "[..], &b"base64data: "[..]].into_iter().find(|k| rest.starts_with(k))?;
    let value_at = at + key.len();
    let value = line[value_at..].strip_suffix(b"\r").unwrap_or(&line[value_at..]);
    let first = *value.first()?;
    let plain = first.is_ascii_alphanumeric() || first == b'+' || first == b'/';
    let one_token = memchr::memchr3(b' ', b'\t', b',', value).is_none() && memchr::memchr2(b']', b'}', value).is_none();
    (plain && one_token).then_some(value_at)
}

fn parse_json_stream(f: &SourceFile, file: u32) -> Result<Vec<Blob>, CatalogError> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(&f.bytes).into_iter::<Meta>();
    loop {
        let start = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(meta)) => {
                let end = stream.byte_offset();
                // byte_offset before the value includes leading whitespace; trim it.
                let skip = f.bytes[start..end].iter().take_while(|b| b.is_ascii_whitespace()).count();
                out.push(Blob { meta, span: Span { file, start: start + skip, end } });
            }
            Some(Err(e)) => {
                return Err(CatalogError::Parse { path: format!("{}:{}", f.path, e.line()), message: e.to_string() });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What selection reads from a blob, to compare two parses.
    fn fingerprint(m: &Meta) -> String {
        let entries: Vec<String> =
            m.entries.iter().map(|e| format!("{}<{:?}|{:?}|{:?}", e.name, e.replaces, e.skips, e.skip_range)).collect();
        let related: Vec<String> = m.related_images.iter().map(|r| format!("{}={}", r.name, r.image)).collect();
        let props: Vec<String> = m
            .properties
            .iter()
            .map(|p| {
                let v = &p.value;
                format!("{}:{:?}{:?}{:?}{:?}{:?}", p.kind, v.package_name, v.version, v.version_range, v.group, v.kind)
            })
            .collect();
        format!(
            "{}|{}|{}|{:?}|{}|{entries:?}|{related:?}|{props:?}",
            m.schema, m.name, m.package, m.default_channel, m.image
        )
    }

    fn parse(text: &str) -> Meta {
        serde_saphyr::from_str_with_options(text, yaml_options()).unwrap()
    }

    #[test]
    fn unread_values_are_elided_without_changing_what_is_read() {
        let long = "QUJD".repeat(200);
        let doc = format!(
            "schema: olm.bundle\nname: b.v1\npackage: b\nimage: r/b@sha256:1\nproperties:\n- type: olm.package\n  value:\n    packageName: b\n    version: 1.0.0\n- type: olm.bundle.object\n  value:\n    data: {long}\n- type: olm.bundle.object\n  value:\n    data: {long}==\n"
        );
        let elided = elide_unread(&doc);
        assert!(matches!(elided, std::borrow::Cow::Owned(_)));
        assert!(elided.len() < 300, "{elided}");
        assert_eq!(elided.matches("data: x\n").count(), 2);
        assert_eq!(fingerprint(&parse(&elided)), fingerprint(&parse(&doc)));
        // Short documents and values that are more than one token are left alone.
        assert!(matches!(elide_unread("schema: olm.package\nname: p\n"), std::borrow::Cow::Borrowed(_)));
        for kept in [
            format!("description: |\n  data: {long} and more\n"),
            format!("value: {{data: {long}, other: y}}\n"),
            format!("data: \"{long}\"\n"),
            format!("data: [{long}]\n"),
        ] {
            assert!(matches!(elide_unread(&kept), std::borrow::Cow::Borrowed(_)), "{kept}");
        }
        // Inside a block or a quoted scalar the text changes, the structure does not.
        for inside in [
            format!("name: nm\ndescription: |\n  data: {long}\n  tail\nimage: i\n"),
            format!("name: nm\ndescription: \"first\n  data: {long}\n  last\"\nimage: i\n"),
            format!("name: nm\nicon:\n  base64data: {long}\n  mediatype: image/png\nimage: i\n"),
        ] {
            let e = elide_unread(&inside);
            assert!(matches!(e, std::borrow::Cow::Owned(_)), "{inside}");
            assert_eq!((parse(&e).name, parse(&e).image), ("nm".to_string(), "i".to_string()));
        }
    }

    /// Every YAML document of every real catalog reads the same with and without elision.
    #[test]
    fn real_catalogs_read_the_same_elided() {
        let base = std::env::var_os("IMAGESET_SHARED_DATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
            .join("fbc");
        let mut stack = vec![base];
        let (mut docs, mut changed) = (0, 0);
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                if !matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                    continue;
                }
                let bytes = std::fs::read(&p).unwrap();
                let Ok(text) = std::str::from_utf8(&bytes) else { continue };
                for (s, e) in yaml_documents(&bytes) {
                    let doc = &text[s..e];
                    let Ok(original) = serde_saphyr::from_str_with_options::<Meta>(doc, yaml_options()) else {
                        continue;
                    };
                    let elided = elide_unread(doc);
                    if matches!(elided, std::borrow::Cow::Owned(_)) {
                        changed += 1;
                        let again: Meta = serde_saphyr::from_str_with_options(&elided, yaml_options())
                            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                        assert_eq!(fingerprint(&again), fingerprint(&original), "{}", p.display());
                    }
                    docs += 1;
                }
            }
        }
        assert!(docs > 500 && changed > 50, "{docs} documents, {changed} elided");
    }
}
