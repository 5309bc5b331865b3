//! The recording as a Firefox Profiler processed profile (crate `fxprof-processed-profile`,
//! the format samply writes): one category per language, so the Rust/C split shows as the
//! category colours, and a subcategory where a frame was entered across the boundary ("C
//! called from Rust", "Rust called back from C"); one process per pid and one track per
//! thread; frames already symbolized, as labels; each sample at its time, with its CPU
//! time where the event measures it. Off-CPU samples (`record --off-cpu`) go on a track of
//! their own beside their thread's, each weighted by the microseconds it stands for.

use std::collections::HashMap;

use fxprof_processed_profile::{
    CategoryColor, CategoryPairHandle, CpuDelta, Frame, FrameFlags, FrameInfo,
    Profile as FxProfile, ReferenceTimestamp, SamplingInterval, Timestamp,
};

use crate::sample::Event;
use crate::stacks::{boundary_marks, Entered, Language, Profile, ProfileStackId};

use super::intern::ThreadLog;
use super::samples::SampleRecord;
use super::table::StackId;
use crate::ids::Pid;
use crate::ids::Tid;

/// One thread's part: its log, its symbolized profile, and where each of the recording's
/// stacks is in the profile (None when nothing was left of it).
pub(crate) struct ThreadPart<'a> {
    /// Thread id.
    pub tid: Tid,
    /// What was recorded.
    pub log: &'a ThreadLog,
    /// Symbolized.
    pub profile: &'a Profile,
    /// The profile's stack of each of the recording's stacks.
    pub stacks: &'a HashMap<StackId, Option<ProfileStackId>>,
    /// Its off-CPU profile and where each stack is in it, when there are off-CPU samples.
    pub off_cpu: Option<OffCpuPart<'a>>,
}

/// A thread's off-CPU profile, and the profile's stack of each of the recording's stacks.
pub(crate) type OffCpuPart<'a> = (&'a Profile, &'a HashMap<StackId, Option<ProfileStackId>>);

fn color(language: Language) -> CategoryColor {
    match language {
        Language::Rust => CategoryColor::Orange,
        Language::Go => CategoryColor::LightBlue,
        Language::C => CategoryColor::Blue,
        Language::Cpp => CategoryColor::Purple,
        Language::CRuntime => CategoryColor::Green,
        Language::Kernel => CategoryColor::Red,
        Language::Glue => CategoryColor::Gray,
        Language::Unknown => CategoryColor::DarkGray,
    }
}

/// Each language's category, and its subcategory for frames entered across the boundary.
fn categories(fx: &mut FxProfile) -> HashMap<(Language, Option<Entered>), CategoryPairHandle> {
    let mut categories = HashMap::new();
    for l in Language::ALL {
        let category = fx.add_category(l.name(), color(l));
        categories.insert((l, None), category.into());
        if l.is_c_side() {
            let called = fx.add_subcategory(category, "called from Rust");
            categories.insert((l, Some(Entered::FromRust)), called);
        }
        if l == Language::Rust {
            let back = fx.add_subcategory(category, "called back from C");
            categories.insert((l, Some(Entered::CalledBack)), back);
        }
    }
    categories
}

/// The frames of `profile`'s stack `s`, root first, each in its language's category
/// (and subcategory where it was entered across the boundary).
fn frame_infos(
    fx: &mut FxProfile,
    categories: &HashMap<(Language, Option<Entered>), CategoryPairHandle>,
    profile: &Profile,
    s: ProfileStackId,
) -> Vec<FrameInfo> {
    let indices = &profile.stack(s).frames;
    let languages: Vec<Language> = indices.iter().map(|&f| profile.frame(f).language).collect();
    let marks = boundary_marks(&languages);
    indices
        .iter()
        .zip(marks)
        .map(|(&f, mark)| {
            let frame = profile.frame(f);
            let pair = categories
                .get(&(frame.language, mark))
                .or_else(|| categories.get(&(frame.language, None)))
                .copied()
                .expect("every language has a category");
            FrameInfo {
                frame: Frame::Label(fx.intern_string(&frame.function)),
                category_pair: pair,
                flags: FrameFlags::empty(),
            }
        })
        .collect()
}

/// Builds the Firefox Profiler profile from the threads and every sample of the recording
/// in time order (samples of threads not among `threads` are left out). `start` is the
/// window's start, CLOCK_MONOTONIC nanoseconds, which is `start_unix_nanos` since the Unix
/// epoch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build(
    product: &str,
    threads: &[ThreadPart<'_>],
    samples: impl Iterator<Item = (Tid, SampleRecord)>,
    process_names: &HashMap<Pid, String>,
    start: u64,
    start_unix_nanos: i64,
    frequency: u64,
    event: Event,
) -> FxProfile {
    let mut fx = FxProfile::new(
        product,
        ReferenceTimestamp::from_millis_since_unix_epoch(start_unix_nanos as f64 / 1e6),
        SamplingInterval::from_hz(frequency as f32),
    );
    let categories = categories(&mut fx);
    let mut processes = HashMap::new();
    let at = |t: u64| Timestamp::from_nanos_since_reference(t.saturating_sub(start));
    // Each thread's track (and its off-CPU track), and its Firefox stack of each of its
    // profile's stacks.
    let mut tracks = HashMap::new();
    for (i, part) in threads.iter().enumerate() {
        let pid = part.log.pid;
        let process = *processes.entry(pid).or_insert_with(|| {
            let name = process_names.get(&pid).cloned().unwrap_or_else(|| format!("pid {pid}"));
            fx.add_process(&name, pid.0, at(start))
        });
        let first = part.log.first.unwrap_or(start);
        let thread = fx.add_thread(process, part.tid.0, at(first), part.tid == pid.main_thread());
        let name = part.log.name.clone().unwrap_or_else(|| format!("tid {}", part.tid));
        fx.set_thread_name(thread, &name);
        let off = part.off_cpu.map(|_| {
            let off = fx.add_thread(process, part.tid.0, at(first), false);
            fx.set_thread_name(off, &format!("{name} off CPU (µs blocked)"));
            off
        });
        tracks.insert(part.tid, (i, [Some(thread), off], [HashMap::new(), HashMap::new()]));
    }
    for (tid, sample) in samples {
        let Some((i, handles_of, known)) = tracks.get_mut(&tid) else { continue };
        let part = &threads[*i];
        let side = usize::from(sample.off_cpu);
        let (Some(thread), Some((profile, stacks))) = (
            handles_of[side],
            if sample.off_cpu { part.off_cpu } else { Some((part.profile, part.stacks)) },
        ) else {
            continue;
        };
        let stack = stacks.get(&sample.stack).copied().flatten();
        let handle = stack.and_then(|s| {
            *known[side].entry(s).or_insert_with(|| {
                let frames = frame_infos(&mut fx, &categories, profile, s);
                fx.intern_stack_frames(thread, frames.into_iter())
            })
        });
        let (cpu, weight) = match event {
            _ if sample.off_cpu => {
                (CpuDelta::ZERO, i32::try_from(sample.period / 1000).unwrap_or(i32::MAX))
            }
            Event::CpuClock => (CpuDelta::from_nanos(sample.period), 1),
            _ => (CpuDelta::ZERO, 1),
        };
        fx.add_sample(thread, at(sample.time), handle, cpu, weight);
    }
    fx.set_symbolicated(true);
    fx
}
