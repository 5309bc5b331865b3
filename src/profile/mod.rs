//! Profiling a workload: each chosen variant under each chosen sampler for one window,
//! then symbols, languages, the boundary summary, and the files: flamegraph, folded
//! stacks, pprof protobuf, a differential flamegraph per variant against the batched
//! baseline, and `summary.json`.
//!
//! Output layout under the output directory:
//! `flamegraphs/<workload>.<variant>.<sampler>.svg`,
//! `flamegraphs/<workload>.<variant>.diff.<sampler>.svg`,
//! `folded/<workload>.<variant>.<sampler>.folded`,
//! `profiles/<workload>.<variant>.<sampler>.pb.gz`, `summary.json` (with the input after
//! the workload's name for workloads measured at several inputs).

pub mod beside;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::flame;
use crate::fmt;
use crate::output::write_under;
use crate::pprof_proto;
use crate::sample::{self, Event, RawProfile, Sampler, SamplerKind, Unwind};
use crate::stacks::{self, BoundarySummary, Language, Profile};
use crate::symbol::ProcessSymbolizer;
use crate::workload::{Input, Placement, Variant, Workload};

/// Version of `summary.json`.
pub const SUMMARY_SCHEMA_VERSION: u32 = 1;

/// What to profile and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Samplers to use, in order. Default: pprof then perf.
    pub samplers: Vec<SamplerKind>,
    /// Sampler settings. Default: [`sample::Options::default`].
    pub sample: sample::Options,
    /// Sampling window per variant and sampler. Default: 3 s.
    pub duration: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            samplers: SamplerKind::ALL.to_vec(),
            sample: sample::Options::default(),
            duration: Duration::from_secs(3),
        }
    }
}

impl Options {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        self.sample.validate()?;
        if self.duration.is_zero() {
            return Err(Error::InvalidOption("duration must be more than 0 seconds".into()));
        }
        if self.samplers.is_empty() {
            return Err(Error::InvalidOption("no sampler chosen".into()));
        }
        Ok(())
    }
}

/// Paths of one profile's files, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileFiles {
    /// Flamegraph.
    pub flamegraph: PathBuf,
    /// Folded stacks.
    pub folded: PathBuf,
    /// Gzipped pprof protobuf.
    pub pprof: PathBuf,
    /// Differential flamegraph against the baseline (not for the baseline itself).
    pub differential: Option<PathBuf>,
}

/// One variant's samples under one sampler: where they fall and where its files are.
/// `summary.json` and `report.json` both carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerProfile {
    /// Sampler.
    pub sampler: SamplerKind,
    /// Event sampled.
    pub event: Event,
    /// How stacks were unwound.
    pub unwind: Unwind,
    /// Where the samples fall.
    pub summary: BoundarySummary,
    /// Things to know about this profile.
    pub notes: Vec<String>,
    /// Its files.
    pub files: ProfileFiles,
}

/// A [`SamplerProfile`] of a named variant, with what `ffiprof profile` measured of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantProfile {
    /// Variant name.
    pub variant: String,
    /// Calls of the variant made during the window.
    pub calls: u64,
    /// Seconds from the end of sampling to all files written.
    pub post_processing_seconds: f64,
    /// The profile.
    #[serde(flatten)]
    pub profile: SamplerProfile,
}

/// A sampler that could not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerFailure {
    /// Which.
    pub sampler: SamplerKind,
    /// Why, and what to do.
    pub error: String,
    /// Whether the user can fix it (perf_event_open refused by a setting of the machine).
    #[serde(default)]
    pub user_fixable: bool,
}

/// Everything `ffiprof profile` produced for one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSummary {
    /// [`SUMMARY_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Workload.
    pub workload: String,
    /// Input.
    pub input: String,
    /// Baseline variant.
    pub baseline: String,
    /// Window per profile, seconds.
    pub duration_seconds: f64,
    /// Where.
    pub environment: Environment,
    /// One entry per variant and sampler that ran.
    pub profiles: Vec<VariantProfile>,
    /// Samplers that could not run.
    pub failures: Vec<SamplerFailure>,
}

impl ProfileSummary {
    /// When no sampler ran: the error that says why, the user's to fix when every sampler
    /// was refused by a setting they can change.
    pub fn no_sampler(&self) -> Option<Error> {
        if !self.profiles.is_empty() {
            return None;
        }
        let why: Vec<String> =
            self.failures.iter().map(|f| format!("{}: {}", f.sampler, f.error)).collect();
        Some(Error::NoSampler {
            why: if why.is_empty() { "none was asked for".into() } else { why.join("; ") },
            user_fixable: self.failures.iter().all(|f| f.user_fixable),
        })
    }
}

/// File name stem of a profile: `<workload>.<variant>.<sampler>`, with the input after
/// the workload when the workload has more than one.
pub(crate) fn stem(
    workload: &Workload,
    input: &Input,
    variant: &str,
    sampler: SamplerKind,
) -> String {
    if workload.inputs.len() > 1 {
        format!("{}.{}.{variant}.{sampler}", workload.name, input.name)
    } else {
        format!("{}.{variant}.{sampler}", workload.name)
    }
}

/// A flamegraph and folded stacks written for a profile.
pub(crate) struct Drawn {
    /// The folded stacks (`root;...;leaf weight` lines).
    pub folded: String,
    /// The flamegraph, relative to the output directory.
    pub flamegraph_file: PathBuf,
    /// The folded stacks, relative to the output directory.
    pub folded_file: PathBuf,
}

/// Folds `profile` once and writes `flamegraphs/<name>.svg` and `folded/<name>.folded`
/// under `out`.
pub(crate) fn draw(profile: &Profile, name: &str, title: &str, out: &Path) -> Result<Drawn> {
    draw_counting(profile, name, title, "samples", out)
}

/// [`draw`] for a profile whose weights count `count_name` (microseconds, say).
pub(crate) fn draw_counting(
    profile: &Profile,
    name: &str,
    title: &str,
    count_name: &str,
    out: &Path,
) -> Result<Drawn> {
    let folded = profile.folded();
    let (flamegraph_file, folded_file) = drawn_files(name);
    let svg = flame::flamegraph_of(profile, &folded, title, count_name)?;
    write_under(out, &flamegraph_file, &svg)?;
    write_under(out, &folded_file, folded.as_bytes())?;
    Ok(Drawn { folded, flamegraph_file, folded_file })
}

/// Where [`draw`] puts the flamegraph and the folded stacks named `name`, relative to
/// the output directory.
pub(crate) fn drawn_files(name: &str) -> (PathBuf, PathBuf) {
    (
        PathBuf::from("flamegraphs").join(format!("{name}.svg")),
        PathBuf::from("folded").join(format!("{name}.folded")),
    )
}

/// What [`write_profile_files`] made of a raw profile.
pub struct Written {
    /// The profile, its summary and its files.
    pub profile: SamplerProfile,
    /// Its folded stacks, for differential flamegraphs.
    pub folded: String,
    /// The stacks themselves, symbolized.
    pub stacks: crate::stacks::Profile,
}

/// Symbolizes `raw` once, summarizes it, and writes `flamegraphs/<name>.svg`,
/// `folded/<name>.folded` and `profiles/<name>.pb.gz` under `out`.
pub fn write_profile_files(
    raw: &RawProfile,
    name: &str,
    title: &str,
    start_unix_nanos: i64,
    out: &Path,
    symbolizer: &mut ProcessSymbolizer,
) -> Result<Written> {
    let profile = stacks::build(raw, symbolizer)?;
    let summary = BoundarySummary::new(&profile, raw);
    let title = format!("{title} — {} ({}, {} samples)", raw.sampler, raw.event, summary.samples);
    let drawn = draw(&profile, name, &title, out)?;
    let pprof = PathBuf::from("profiles").join(format!("{name}.pb.gz"));
    let comment = format!("ffiprof {title}; {}", flame::legend());
    let window = raw.window.as_nanos() as i64;
    write_under(out, &pprof, &pprof_proto::encode(&profile, window, start_unix_nanos, &comment)?)?;
    Ok(Written {
        profile: SamplerProfile {
            sampler: raw.sampler,
            event: raw.event,
            unwind: raw.unwind,
            summary,
            notes: raw.notes.clone(),
            files: ProfileFiles {
                flamegraph: drawn.flamegraph_file,
                folded: drawn.folded_file,
                pprof,
                differential: None,
            },
        },
        folded: drawn.folded,
        stacks: profile,
    })
}

/// Nanoseconds since the Unix epoch, now.
pub fn unix_nanos_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Profiles one variant under one sampler and writes its files; returns its folded stacks
/// too, for differential flamegraphs.
fn profile_one(
    target: (&Workload, &Variant, &Input),
    kind: SamplerKind,
    options: &Options,
    out: &Path,
    symbolizer: &mut ProcessSymbolizer,
    make: &SamplerFactory<'_>,
) -> Result<(VariantProfile, String)> {
    let (workload, variant, input) = target;
    let mut runner = (variant.prepare)(input, &(workload.share)(input), Placement::default())?;
    // One untimed round first: libraries loaded, pages touched, before the window.
    std::hint::black_box(runner.run(input.calls_per_iteration));
    let mut sampler = make(kind, &options.sample)?;
    let start_unix = unix_nanos_now();
    let (raw, calls) = sample::record(
        sampler.as_mut(),
        runner.as_mut(),
        input.calls_per_iteration,
        options.duration,
    )?;
    let done_sampling = Instant::now();
    let name = stem(workload, input, variant.name, kind);
    let title = format!("{} / {} / {}", workload.name, input.name, variant.name);
    let written = write_profile_files(&raw, &name, &title, start_unix, out, symbolizer)?;
    let result = VariantProfile {
        variant: variant.name.to_owned(),
        calls,
        post_processing_seconds: done_sampling.elapsed().as_secs_f64(),
        profile: written.profile,
    };
    Ok((result, written.folded))
}

/// The variants `ffiprof profile` samples: all of them that this machine can run, or the
/// one asked for and the baseline (for the differential flamegraph); one asked for that
/// cannot run here is an error that says what to install.
pub fn variants_to_profile(
    workload: &Workload,
    variant: Option<&str>,
) -> Result<Vec<&'static str>> {
    let baseline = workload.baseline().name;
    match variant {
        None => Ok(workload.available_variants().0.iter().map(|v| v.name).collect()),
        Some(name) => {
            let v = workload.variant(name)?;
            v.available()?;
            Ok(if v.name == baseline { vec![baseline] } else { vec![baseline, v.name] })
        }
    }
}

/// Makes a sampler of a kind: [`sample::sampler`], or a fake in tests.
pub type SamplerFactory<'a> =
    dyn Fn(SamplerKind, &sample::Options) -> Result<Box<dyn Sampler>> + 'a;

/// Profiles `variants` of `workload` at `input` under every sampler of `options` and
/// writes their files under `out` ([`write_summary`] adds `summary.json`). A sampler that cannot run is recorded as a
/// failure and the others go on; an error in the workload itself stops everything.
pub fn profile_workload(
    workload: &Workload,
    variant_names: &[&str],
    input: &Input,
    options: &Options,
    out: &Path,
) -> Result<ProfileSummary> {
    profile_workload_with(workload, variant_names, input, options, out, &sample::sampler)
}

/// [`profile_workload`] with samplers made by `make`.
pub fn profile_workload_with(
    workload: &Workload,
    variant_names: &[&str],
    input: &Input,
    options: &Options,
    out: &Path,
    make: &SamplerFactory<'_>,
) -> Result<ProfileSummary> {
    options.validate()?;
    std::fs::create_dir_all(out).map_err(|source| Error::Write { path: out.to_owned(), source })?;
    let baseline = workload.baseline();
    let variants =
        variant_names.iter().map(|name| workload.variant(name)).collect::<Result<Vec<_>>>()?;
    let mut symbolizer = ProcessSymbolizer::new();
    let mut profiles = Vec::new();
    let mut failures: Vec<SamplerFailure> = Vec::new();
    let mut folded: HashMap<(String, SamplerKind), String> = HashMap::new();
    for &kind in &options.samplers {
        for variant in &variants {
            let target = (workload, *variant, input);
            match profile_one(target, kind, options, out, &mut symbolizer, make) {
                Ok((result, stacks)) => {
                    folded.insert((variant.name.to_owned(), kind), stacks);
                    profiles.push(result);
                }
                Err(e @ (Error::PerfOpen { .. } | Error::PerfSetup { .. } | Error::Pprof(_))) => {
                    let user_fixable = e.is_usage();
                    failures.push(SamplerFailure {
                        sampler: kind,
                        error: e.to_string(),
                        user_fixable,
                    });
                    break; // the same sampler will fail for the other variants too
                }
                Err(e) => return Err(e),
            }
        }
    }
    for p in &mut profiles {
        if p.variant == baseline.name {
            continue;
        }
        let sampler = p.profile.sampler;
        let (Some(before), Some(after)) = (
            folded.get(&(baseline.name.to_owned(), sampler)),
            folded.get(&(p.variant.clone(), sampler)),
        ) else {
            continue;
        };
        let diff_stem = stem(workload, input, &format!("{}.diff", p.variant), sampler);
        let rel = PathBuf::from("flamegraphs").join(format!("{diff_stem}.svg"));
        let title = format!("{}: {} -> {} ({sampler})", workload.name, baseline.name, p.variant);
        write_under(out, &rel, &flame::differential(before, after, &title)?)?;
        p.profile.files.differential = Some(rel);
    }
    let summary = ProfileSummary {
        schema_version: SUMMARY_SCHEMA_VERSION,
        workload: workload.name.to_owned(),
        input: input.name.to_owned(),
        baseline: baseline.name.to_owned(),
        duration_seconds: options.duration.as_secs_f64(),
        environment: Environment::detect(),
        profiles,
        failures,
    };
    Ok(summary)
}

/// Writes `summary.json` under `out`.
pub fn write_summary(summary: &ProfileSummary, out: &Path) -> Result<PathBuf> {
    let json = serde_json::to_string_pretty(summary)
        .map_err(|source| Error::Serialize { what: "profile summary", source })?;
    write_under(out, Path::new("summary.json"), json.as_bytes())?;
    Ok(out.join("summary.json"))
}

impl ProfileSummary {
    /// The summary as a plain-text table.
    pub fn table(&self) -> String {
        let pct = |v| fmt::pct(v, 1);
        let header = [
            "variant",
            "sampler",
            "event",
            "samples",
            "Hz (asked)",
            "lost",
            "leaf rust",
            "leaf c",
            "leaf c-rt",
            "C side",
            "crossings",
            "to root",
            "unknown",
        ];
        let rows: Vec<Vec<String>> = self
            .profiles
            .iter()
            .map(|v| {
                let p = &v.profile;
                let s = &p.summary;
                let leaf = |l: Language| pct(s.leaf_share.get(&l).copied().unwrap_or(0.0));
                vec![
                    v.variant.clone(),
                    p.sampler.to_string(),
                    p.event.to_string(),
                    s.samples.to_string(),
                    format!("{:.0} ({})", s.effective_hz, s.requested_hz),
                    s.lost.to_string(),
                    leaf(Language::Rust),
                    leaf(Language::C),
                    leaf(Language::CRuntime),
                    pct(s.c_side_share),
                    format!("{:.2}", s.crossings_per_stack),
                    pct(s.reaches_root),
                    pct(s.with_unknown_frames),
                ]
            })
            .collect();
        fmt::table(&header, &rows, 3)
    }
}
