//! The pprof protobuf format (`profile.proto`,
//! <https://github.com/google/pprof/blob/main/proto/profile.proto>): ffiprof writes its
//! profiles in it for `go tool pprof` and Pyroscope, and reads Go's runtime/pprof
//! profiles from it for the cgo reference. Only the fields ffiprof fills or reads are
//! declared; prost skips the others when decoding.

use std::collections::HashMap;
use std::io::{Read, Write};

use flate2::write::GzEncoder;
use prost::Message;

use crate::error::{Error, Result};
use crate::stacks::Profile;

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

fn invalid(what: String) -> Error {
    Error::Render {
        what: "pprof profile".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, what),
    }
}

/// The profile as a gzipped pprof protobuf: one location per frame (function level), the
/// language and module in each function's file name slot (`rust: ffiprof`), sample values
/// in samples and in CPU nanoseconds: each sample's own CPU time where the sampler
/// measured it ([`crate::stacks::Stack::cpu_nanos`]), else window / samples (hardware
/// cycles); `period` is their mean.
pub(crate) fn encode(
    profile: &Profile,
    window_nanos: i64,
    start_unix_nanos: i64,
    comment: &str,
) -> Result<Vec<u8>> {
    let mut strings = Strings::new();
    let samples_t = PbValueType { r#type: strings.id("samples"), unit: strings.id("count") };
    let cpu_t = PbValueType { r#type: strings.id("cpu"), unit: strings.id("nanoseconds") };
    let measured = profile.cpu_nanos() > 0;
    let samples = profile.total().max(1) as i64;
    let period =
        if measured { profile.cpu_nanos() as i64 / samples } else { window_nanos / samples };
    let (function, location) = tables(profile, &mut strings);
    let sample = profile
        .stacks()
        .iter()
        .map(|s| PbSample {
            // pprof wants the leaf first.
            location_id: s.frames.iter().rev().map(|&i| i.index() as u64 + 1).collect(),
            value: vec![
                s.weight as i64,
                if measured { s.cpu_nanos as i64 } else { s.weight as i64 * period },
            ],
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
        .map_err(|source| Error::Render { what: "pprof profile".into(), source })
}

/// One function and one location per frame of `profile`, the language and module in the
/// function's file name slot.
fn tables(profile: &Profile, strings: &mut Strings) -> (Vec<PbFunction>, Vec<PbLocation>) {
    let function = profile
        .frames()
        .iter()
        .enumerate()
        .map(|(i, f)| PbFunction {
            id: i as u64 + 1,
            name: strings.id(&f.function),
            system_name: strings.id(&f.function),
            filename: strings.id(&format!("{}: {}", f.language.name(), f.module)),
        })
        .collect();
    let location = (0..profile.frames().len())
        .map(|i| PbLocation { id: i as u64 + 1, line: vec![PbLine { function_id: i as u64 + 1 }] })
        .collect();
    (function, location)
}

/// `profile`'s stacks as a gzipped pprof protobuf with sample types `types` ((type,
/// unit) pairs) and each stack's `values` in that order (a heap profile's
/// `alloc_space`, say); the last type is the one pprof shows first.
pub(crate) fn encode_values(
    profile: &Profile,
    types: &[(&str, &str)],
    values: &[Vec<i64>],
    comment: &str,
) -> Result<Vec<u8>> {
    let mut strings = Strings::new();
    let sample_type: Vec<PbValueType> = types
        .iter()
        .map(|(t, u)| PbValueType { r#type: strings.id(t), unit: strings.id(u) })
        .collect();
    let (function, location) = tables(profile, &mut strings);
    let sample = profile
        .stacks()
        .iter()
        .zip(values)
        .map(|(s, v)| PbSample {
            location_id: s.frames.iter().rev().map(|&i| i.index() as u64 + 1).collect(),
            value: v.clone(),
        })
        .collect();
    let comment = vec![strings.id(comment)];
    let message = PbProfile {
        sample_type,
        sample,
        location,
        function,
        string_table: strings.table,
        time_nanos: 0,
        duration_nanos: 0,
        period_type: None,
        period: 0,
        comment,
    };
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&message.encode_to_vec())
        .and_then(|_| gz.finish())
        .map_err(|source| Error::Render { what: "pprof profile".into(), source })
}

/// A decoded profile: its stacks by function name and its function table.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Function names, leaf first (a location's inlined functions before their caller),
    /// with the sample's first value.
    pub stacks: Vec<(Vec<String>, i64)>,
    /// Every function's name, in table order.
    pub functions: Vec<String>,
    /// The sum of the sample values of type `cpu` (nanoseconds), where there is one.
    pub cpu_nanos: Option<i64>,
    /// Each sample type's name with the sum of its values over the samples.
    pub sums: Vec<(String, i64)>,
}

impl Decoded {
    /// Sum of the first sample value (samples, for ffiprof's and Go's CPU profiles).
    pub fn samples(&self) -> i64 {
        self.stacks.iter().map(|(_, n)| n).sum()
    }
}

/// Decodes a pprof protobuf, gzipped (as files are) or not, and checks its references:
/// string 0 is empty, every location of a sample and every function of a location exists.
pub fn decode(bytes: &[u8]) -> Result<Decoded> {
    let mut raw = Vec::new();
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .map_err(|source| Error::Render { what: "pprof profile".into(), source })?;
        &raw[..]
    } else {
        bytes
    };
    let p = PbProfile::decode(bytes).map_err(|e| invalid(e.to_string()))?;
    if p.string_table.first().map(String::as_str) != Some("") {
        return Err(invalid("string_table[0] must be empty".into()));
    }
    let string = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| p.string_table.get(i))
            .cloned()
            .ok_or_else(|| invalid(format!("string {i}")))
    };
    let functions: HashMap<u64, String> =
        p.function.iter().map(|f| Ok((f.id, string(f.name)?))).collect::<Result<_>>()?;
    let locations: HashMap<u64, &PbLocation> = p.location.iter().map(|l| (l.id, l)).collect();
    let mut cpu = None;
    let mut sums = Vec::new();
    for (k, t) in p.sample_type.iter().enumerate() {
        let sum = p.sample.iter().filter_map(|s| s.value.get(k)).sum::<i64>();
        if string(t.r#type)? == "cpu" {
            cpu = Some(sum);
        }
        sums.push((string(t.r#type)?, sum));
    }
    let mut stacks = Vec::with_capacity(p.sample.len());
    for s in &p.sample {
        let mut frames = Vec::new();
        for id in &s.location_id {
            let loc = locations.get(id).ok_or_else(|| invalid(format!("location {id}")))?;
            for line in &loc.line {
                let name = functions
                    .get(&line.function_id)
                    .ok_or_else(|| invalid(format!("function {}", line.function_id)))?;
                frames.push(name.clone());
            }
        }
        stacks.push((frames, s.value.first().copied().unwrap_or(0)));
    }
    Ok(Decoded {
        stacks,
        functions: p.function.iter().map(|f| string(f.name)).collect::<Result<_>>()?,
        cpu_nanos: cpu,
        sums,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let profile = crate::stacks::pow_profile_for_tests();
        let gz = encode(&profile, 10_000_000, 1, "test").unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut raw).unwrap();
        let p = PbProfile::decode(&raw[..]).unwrap();
        assert_eq!(p.period, 1_000_000);
        let leaf_of_9 = p.sample.iter().find(|s| s.value[0] == 9).unwrap().location_id[0];
        let leaf = &p.function[(leaf_of_9 - 1) as usize];
        assert_eq!(p.string_table[leaf.filename as usize], "c-runtime: libm.so.6");

        let decoded = decode(&gz).unwrap();
        assert_eq!(decoded.samples(), 10);
        // Leaf first: the 9-sample stack ends in pow.
        let nine = decoded.stacks.iter().find(|(_, n)| *n == 9).unwrap();
        assert_eq!(nine.0, ["pow", "ffiprof::loop", "main"]);
        assert_eq!(decode(&raw).unwrap(), decoded, "plain and gzipped bytes decode alike");
    }

    #[test]
    fn samples_weigh_their_own_cpu_time_where_it_was_measured() {
        let mut profile = crate::stacks::pow_profile_for_tests();
        // Without measured CPU time: window / samples each (10 ms over 10 samples).
        assert_eq!(
            decode(&encode(&profile, 10_000_000, 1, "t").unwrap()).unwrap().cpu_nanos,
            Some(10_000_000)
        );
        // Three busy threads in a 10 ms window used 30 ms: each stack's own CPU time.
        for (k, stack) in profile.stacks_mut().iter_mut().enumerate() {
            stack.cpu_nanos = stack.weight * 3_000_000 + k as u64;
        }
        let expected = profile.cpu_nanos() as i64;
        let gz = encode(&profile, 10_000_000, 1, "t").unwrap();
        assert_eq!(decode(&gz).unwrap().cpu_nanos, Some(expected));
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut raw).unwrap();
        assert_eq!(PbProfile::decode(&raw[..]).unwrap().period, expected / 10);
    }

    #[test]
    fn dangling_references_are_refused() {
        let p = PbProfile {
            string_table: vec![String::new()],
            sample: vec![PbSample { location_id: vec![7], value: vec![1] }],
            ..Default::default()
        };
        let err = decode(&p.encode_to_vec()).unwrap_err().to_string();
        assert!(err.contains("location 7"), "{err}");
    }
}
