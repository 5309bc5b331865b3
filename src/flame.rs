//! Rendering: flamegraphs coloured by language and differential flamegraphs (both drawn by
//! `inferno`), folded stacks, and gzipped pprof protobuf profiles that `go tool pprof`
//! and Pyroscope read.

use std::collections::HashMap;
use std::io::Write;

use flate2::write::GzEncoder;
use inferno::flamegraph::color::{parse_hex_color, PaletteMap};
use prost::Message;

use crate::error::{Error, Result};
use crate::stacks::{Language, Profile};

/// Fill colour of each language in flamegraphs.
pub fn language_color(language: Language) -> &'static str {
    match language {
        Language::Rust => "#e8955a",
        Language::Go => "#4fc3d9",
        Language::C => "#5b8fd9",
        Language::CRuntime => "#5fb878",
        Language::Kernel => "#d9534f",
        Language::Glue => "#b5b5b5",
        Language::Unknown => "#e6e0c8",
    }
}

/// The legend, as the flamegraph's subtitle.
pub fn legend() -> String {
    let parts: Vec<String> =
        Language::ALL.iter().map(|l| format!("{} = {}", l.name(), color_word(*l))).collect();
    format!("colours: {}", parts.join(", "))
}

fn color_word(language: Language) -> &'static str {
    match language {
        Language::Rust => "orange",
        Language::Go => "cyan",
        Language::C => "blue",
        Language::CRuntime => "green",
        Language::Kernel => "red",
        Language::Glue => "grey",
        Language::Unknown => "sand",
    }
}

fn render_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Render { what: what.to_owned(), source }
}

/// A flamegraph of `profile`, each frame filled with its language's colour.
pub fn flamegraph(profile: &Profile, title: &str) -> Result<Vec<u8>> {
    let mut palette = PaletteMap::default();
    for (function, language) in profile.languages() {
        let color = parse_hex_color(language_color(language)).expect("valid colour constants");
        palette.insert(function, color);
    }
    let folded = profile.folded();
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    options.subtitle = Some(legend());
    options.count_name = "samples".to_owned();
    options.palette_map = Some(&mut palette);
    options.deterministic = true;
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .map_err(render_err(title))?;
    Ok(svg)
}

/// A differential flamegraph from `before` to `after`: frame widths from `after`, red
/// where a frame's share grew, blue where it shrank. Counts are normalized first, so two
/// profiles of different lengths compare by share.
pub fn differential(before: &Profile, after: &Profile, title: &str) -> Result<Vec<u8>> {
    differential_folded(&before.folded(), &after.folded(), title)
}

/// [`differential`] from folded stacks.
pub fn differential_folded(before: &str, after: &str, title: &str) -> Result<Vec<u8>> {
    let mut diff = Vec::new();
    let options = inferno::differential::Options { normalize: true, ..Default::default() };
    inferno::differential::from_readers(options, before.as_bytes(), after.as_bytes(), &mut diff)
        .map_err(render_err(title))?;
    let text = String::from_utf8_lossy(&diff).into_owned();
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    options.subtitle = Some("red: larger share after, blue: smaller share after".to_owned());
    options.count_name = "samples".to_owned();
    options.deterministic = true;
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, text.lines(), &mut svg)
        .map_err(render_err(title))?;
    Ok(svg)
}

// The messages of pprof's profile.proto
// (github.com/google/pprof/blob/main/proto/profile.proto), the fields ffiprof fills.

#[derive(Clone, PartialEq, prost::Message)]
struct PbProfile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<PbValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<PbSample>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<PbLocation>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<PbFunction>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    time_nanos: i64,
    #[prost(int64, tag = "10")]
    duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    period_type: Option<PbValueType>,
    #[prost(int64, tag = "12")]
    period: i64,
    #[prost(int64, repeated, tag = "13")]
    comment: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PbValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PbSample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PbLocation {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<PbLine>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PbLine {
    #[prost(uint64, tag = "1")]
    function_id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PbFunction {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
    #[prost(int64, tag = "3")]
    system_name: i64,
    #[prost(int64, tag = "4")]
    filename: i64,
}

struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        // Index 0 must be the empty string.
        Strings { table: vec![String::new()], index: HashMap::from([(String::new(), 0)]) }
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// The profile as a gzipped pprof protobuf: one location per frame (function level), the
/// language and module in each function's file name slot (`rust: ffiprof`), sample values
/// in samples and in CPU nanoseconds (`period` = window / samples).
pub fn pprof_protobuf(
    profile: &Profile,
    window_nanos: i64,
    start_unix_nanos: i64,
    comment: &str,
) -> Result<Vec<u8>> {
    let mut strings = Strings::new();
    let samples_t = PbValueType { r#type: strings.id("samples"), unit: strings.id("count") };
    let cpu_t = PbValueType { r#type: strings.id("cpu"), unit: strings.id("nanoseconds") };
    let total = profile.total().max(1) as i64;
    let period = window_nanos / total;
    let function: Vec<PbFunction> = profile
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| PbFunction {
            id: i as u64 + 1,
            name: strings.id(&f.function),
            system_name: strings.id(&f.function),
            filename: strings.id(&format!("{}: {}", f.language.name(), f.module)),
        })
        .collect();
    let location: Vec<PbLocation> = (0..profile.frames.len())
        .map(|i| PbLocation { id: i as u64 + 1, line: vec![PbLine { function_id: i as u64 + 1 }] })
        .collect();
    let sample = profile
        .stacks
        .iter()
        .map(|s| PbSample {
            // pprof wants the leaf first.
            location_id: s.frames.iter().rev().map(|&i| i as u64 + 1).collect(),
            value: vec![s.weight as i64, s.weight as i64 * period],
        })
        .collect();
    let comment = vec![strings.id(comment)];
    let message = PbProfile {
        sample_type: vec![samples_t, cpu_t.clone()],
        sample,
        location,
        function,
        string_table: strings.table,
        time_nanos: start_unix_nanos,
        duration_nanos: window_nanos,
        period_type: Some(cpu_t),
        period,
        comment,
    };
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&message.encode_to_vec())
        .and_then(|_| gz.finish())
        .map_err(render_err("pprof profile"))
}

/// The stacks of an (uncompressed) pprof protobuf, such as Go's runtime/pprof writes:
/// function names leaf first (a location's inlined functions before their caller) and
/// the first sample value.
pub fn pprof_stacks(bytes: &[u8]) -> Result<Vec<(Vec<String>, i64)>> {
    let bad = |m: String| Error::Render {
        what: "pprof profile".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, m),
    };
    let p = PbProfile::decode(bytes).map_err(|e| bad(e.to_string()))?;
    let names: HashMap<u64, &str> = p
        .function
        .iter()
        .map(|f| (f.id, p.string_table.get(f.name as usize).map_or("?", String::as_str)))
        .collect();
    let locations: HashMap<u64, &PbLocation> = p.location.iter().map(|l| (l.id, l)).collect();
    let mut out = Vec::new();
    for s in &p.sample {
        let mut frames = Vec::new();
        for id in &s.location_id {
            let loc = locations.get(id).ok_or_else(|| bad(format!("location {id}")))?;
            for line in &loc.line {
                frames.push(names.get(&line.function_id).copied().unwrap_or("?").to_owned());
            }
        }
        out.push((frames, s.value.first().copied().unwrap_or(0)));
    }
    Ok(out)
}

/// What a pprof protobuf holds, for checks.
#[derive(Debug, Clone, PartialEq)]
pub struct PprofStats {
    /// Sum of the first sample value (samples).
    pub samples: i64,
    /// Function names.
    pub functions: Vec<String>,
}

/// Decodes an (uncompressed) pprof protobuf written by [`pprof_protobuf`] and checks its
/// references: every location id of a sample and every function id of a location exists.
pub fn read_pprof(bytes: &[u8]) -> Result<PprofStats> {
    let bad = |m: String| Error::Render {
        what: "pprof profile".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, m),
    };
    let p = PbProfile::decode(bytes).map_err(|e| bad(e.to_string()))?;
    let string =
        |i: i64| p.string_table.get(i as usize).cloned().ok_or_else(|| bad(format!("string {i}")));
    if p.string_table.first().map(String::as_str) != Some("") {
        return Err(bad("string_table[0] must be empty".into()));
    }
    let functions: HashMap<u64, &PbFunction> = p.function.iter().map(|f| (f.id, f)).collect();
    let locations: HashMap<u64, &PbLocation> = p.location.iter().map(|l| (l.id, l)).collect();
    for s in &p.sample {
        for id in &s.location_id {
            let loc = locations.get(id).ok_or_else(|| bad(format!("location {id}")))?;
            for line in &loc.line {
                functions
                    .get(&line.function_id)
                    .ok_or_else(|| bad(format!("function {}", line.function_id)))?;
            }
        }
    }
    Ok(PprofStats {
        samples: p.sample.iter().filter_map(|s| s.value.first()).sum(),
        functions: p.function.iter().map(|f| string(f.name)).collect::<Result<_>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stacks::Language::*;

    fn profile() -> Profile {
        Profile::from_named_stacks(&[
            (
                vec![
                    ("main", "x", Glue),
                    ("ffiprof::loop", "x", Rust),
                    ("pow", "libm.so.6", CRuntime),
                ],
                9,
            ),
            (vec![("main", "x", Glue), ("ffiprof::loop", "x", Rust)], 1),
        ])
    }

    #[test]
    fn flamegraph_colours_frames_by_language() {
        let svg = String::from_utf8(flamegraph(&profile(), "t").unwrap()).unwrap();
        assert!(svg.contains("ffiprof::loop") && svg.contains("pow"));
        // inferno writes fills as rgb(r,g,b).
        let rgb = |hex: &str| {
            let c = parse_hex_color(hex).unwrap();
            format!("rgb({},{},{})", c.r, c.g, c.b)
        };
        assert!(svg.contains(&rgb(language_color(Rust))), "no Rust-coloured frame");
        assert!(svg.contains(&rgb(language_color(CRuntime))), "no C-runtime-coloured frame");
        assert!(svg.contains("colours: rust = orange"));
    }

    #[test]
    fn protobuf_round_trips() {
        let gz = pprof_protobuf(&profile(), 10_000_000, 1, "test").unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        let p = PbProfile::decode(&raw[..]).unwrap();
        assert_eq!(p.string_table[0], "");
        assert_eq!(p.sample.len(), 2);
        let total: i64 = p.sample.iter().map(|s| s.value[0]).sum();
        assert_eq!(total, 10);
        assert_eq!(p.period, 1_000_000);
        // Leaf first: the 9-sample stack ends in pow.
        let s = p.sample.iter().find(|s| s.value[0] == 9).unwrap();
        let leaf = &p.function[(s.location_id[0] - 1) as usize];
        assert_eq!(p.string_table[leaf.name as usize], "pow");
        assert_eq!(p.string_table[leaf.filename as usize], "c-runtime: libm.so.6");
    }

    #[test]
    fn differential_marks_growth() {
        let before = Profile::from_named_stacks(&[(vec![("a", "", Rust), ("b", "", C)], 10)]);
        let after = Profile::from_named_stacks(&[
            (vec![("a", "", Rust), ("b", "", C)], 5),
            (vec![("a", "", Rust), ("c", "", C)], 5),
        ]);
        let svg = String::from_utf8(differential(&before, &after, "d").unwrap()).unwrap();
        assert!(svg.contains(">c<") || svg.contains("c ("), "the new frame is drawn");
    }
}
