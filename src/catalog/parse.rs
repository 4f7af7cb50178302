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
    let meta: Meta = serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| CatalogError::Parse {
        path: format!("{}:{}", f.path, line_of(&f.bytes, j.start)),
        message: e.to_string().lines().next().unwrap_or_default().to_string(),
    })?;
    Ok(Blob { meta, span: Span { file: j.file, start: j.start, end: j.end } })
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
