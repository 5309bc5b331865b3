//! Profiles: weighted stacks of symbolized frames, each frame with a language (decided by
//! [`crate::language`]'s rules), and the boundary summary computed from them.
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::language::THREAD_ROOTS;
pub use crate::language::{boundary_marks, classify, classify_go, Entered, Language};
use crate::sample::RawProfile;
pub use crate::symbol::{Frame, ProcessSymbolizer};

/// A frame as profiles keep it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FrameInfo {
    /// Function name, or `[unknown]` / `[module]` when unsymbolized.
    pub function: String,
    /// Module file name.
    pub module: String,
    /// Language.
    pub language: Language,
    /// Inlined into its caller.
    pub inlined: bool,
}

/// A frame of a [`Profile`]: its place among the profile's distinct frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameId(usize);

impl FrameId {
    /// Its position in [`Profile::frames`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// A stack of a [`Profile`]: its place among the profile's stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileStackId(usize);

impl ProfileStackId {
    /// Its position in [`Profile::stacks`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// A stack of frames, root first, with its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// Its frames, root first.
    pub frames: Vec<FrameId>,
    /// Samples it stands for.
    pub weight: u64,
    /// The CPU time those samples stand for, nanoseconds (each sample's own period); 0
    /// where the sampler does not measure it (hardware cycles).
    pub cpu_nanos: u64,
}

/// A frame given by (function, module, language), for hand-made profiles.
pub(crate) type NamedFrame<'a> = (&'a str, &'a str, Language);
/// A hand-made stack, root first, with its weight.
pub(crate) type NamedStack<'a> = (Vec<NamedFrame<'a>>, u64);

/// A symbolized profile: distinct frames, and stacks of them.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    frames: Vec<FrameInfo>,
    stacks: Vec<Stack>,
}

impl Profile {
    /// Its distinct frames, in [`FrameId`] order.
    pub fn frames(&self) -> &[FrameInfo] {
        &self.frames
    }

    /// The frame `id`.
    pub fn frame(&self, id: FrameId) -> &FrameInfo {
        &self.frames[id.0]
    }

    /// Its stacks, in [`ProfileStackId`] order.
    pub fn stacks(&self) -> &[Stack] {
        &self.stacks
    }

    /// The stack `id`.
    pub fn stack(&self, id: ProfileStackId) -> &Stack {
        &self.stacks[id.0]
    }

    /// The stacks, to change their weights.
    #[cfg(test)]
    pub(crate) fn stacks_mut(&mut self) -> &mut [Stack] {
        &mut self.stacks
    }

    /// Builds a profile from frames given as (function, module, language) lists, root
    /// first. For tests and for the deterministic fake sampler.
    pub fn from_named_stacks(stacks: &[NamedStack<'_>]) -> Profile {
        let mut profile = Profile::default();
        let mut index: HashMap<FrameInfo, FrameId> = HashMap::new();
        for (frames, weight) in stacks {
            let ids = frames
                .iter()
                .map(|(f, m, l)| {
                    let info = FrameInfo {
                        function: (*f).to_owned(),
                        module: (*m).to_owned(),
                        language: *l,
                        inlined: false,
                    };
                    intern(&mut profile.frames, &mut index, info)
                })
                .collect();
            profile.stacks.push(Stack { frames: ids, weight: *weight, cpu_nanos: 0 });
        }
        profile
    }

    /// Total weight.
    pub fn total(&self) -> u64 {
        self.stacks.iter().map(|s| s.weight).sum()
    }

    /// Total CPU time of the samples, nanoseconds (0 when the sampler did not measure it).
    pub fn cpu_nanos(&self) -> u64 {
        self.stacks.iter().map(|s| s.cpu_nanos).sum()
    }

    /// Each frame's name in folded stacks and flamegraphs: its function (`;` written as
    /// `:`), followed by ` [language]` where the same function name is found in frames of
    /// more than one language (a C `main` and a Rust `main`, say), so that a name stands
    /// for one language and is drawn in its colour.
    pub fn labels(&self) -> Vec<String> {
        let mut languages: HashMap<&str, Vec<Language>> = HashMap::new();
        for f in &self.frames {
            let seen = languages.entry(f.function.as_str()).or_default();
            if !seen.contains(&f.language) {
                seen.push(f.language);
            }
        }
        self.frames
            .iter()
            .map(|f| {
                let name = f.function.replace(';', ":");
                if languages[f.function.as_str()].len() > 1 {
                    format!("{name} [{}]", f.language.name())
                } else {
                    name
                }
            })
            .collect()
    }

    /// Folded stacks (`root;...;leaf weight`), one line per distinct stack, sorted; frames
    /// named by [`Profile::labels`].
    pub fn folded(&self) -> String {
        let labels = self.labels();
        let mut merged: HashMap<String, u64> = HashMap::new();
        for stack in &self.stacks {
            let line =
                stack.frames.iter().map(|&i| labels[i.0].as_str()).collect::<Vec<_>>().join(";");
            *merged.entry(line).or_default() += stack.weight;
        }
        let mut lines: Vec<_> = merged.into_iter().collect();
        lines.sort();
        let mut out = String::new();
        for (line, weight) in lines {
            let _ = writeln!(out, "{line} {weight}");
        }
        out
    }

    /// A copy whose stacks each end in `leaf` (when one is given) and weigh what
    /// `weigh` says; the stacks that then weigh nothing are left out.
    pub(crate) fn reweighed(
        &self,
        leaf: Option<FrameInfo>,
        weigh: impl Fn(&Stack) -> u64,
    ) -> Profile {
        let mut frames = self.frames.clone();
        let leaf = leaf.map(|info| match frames.iter().position(|f| *f == info) {
            Some(i) => FrameId(i),
            None => {
                frames.push(info);
                FrameId(frames.len() - 1)
            }
        });
        let stacks = self
            .stacks
            .iter()
            .map(|s| Stack {
                frames: s.frames.iter().copied().chain(leaf).collect(),
                weight: weigh(s),
                cpu_nanos: s.cpu_nanos,
            })
            .filter(|s| s.weight > 0)
            .collect();
        Profile { frames, stacks }
    }

    /// Sets each stack's CPU nanoseconds, in order (for hand-made profiles).
    #[cfg(test)]
    pub(crate) fn set_cpu_nanos(&mut self, nanos: &[u64]) {
        for (s, &n) in self.stacks.iter_mut().zip(nanos) {
            s.cpu_nanos = n;
        }
    }

    /// Several profiles as one, each stack under its part's `root` frame when one is
    /// given (a thread's name, say).
    pub fn merged<'p>(
        parts: impl IntoIterator<Item = (&'p Profile, Option<FrameInfo>)>,
    ) -> Profile {
        let mut out = Profile::default();
        let mut index: HashMap<FrameInfo, FrameId> = HashMap::new();
        for (part, root) in parts {
            let root = root.map(|r| intern(&mut out.frames, &mut index, r));
            let ids: Vec<FrameId> = part
                .frames
                .iter()
                .map(|f| intern(&mut out.frames, &mut index, f.clone()))
                .collect();
            for stack in &part.stacks {
                let frames =
                    root.into_iter().chain(stack.frames.iter().map(|&i| ids[i.0])).collect();
                out.stacks.push(Stack { frames, weight: stack.weight, cpu_nanos: stack.cpu_nanos });
            }
        }
        out
    }

    /// The language of each frame name in [`Profile::folded`]: one each, as
    /// [`Profile::labels`] makes them.
    pub fn languages(&self) -> HashMap<String, Language> {
        self.labels().into_iter().zip(self.frames.iter().map(|f| f.language)).collect()
    }
}

fn intern(
    frames: &mut Vec<FrameInfo>,
    index: &mut HashMap<FrameInfo, FrameId>,
    info: FrameInfo,
) -> FrameId {
    *index.entry(info.clone()).or_insert_with(|| {
        frames.push(info);
        FrameId(frames.len() - 1)
    })
}

/// Lookup address of stack position `i` when position `exact` holds the exact
/// instruction pointer: return addresses are looked up one byte back, inside the call.
fn lookup(addrs: &[u64], i: usize, exact: usize) -> u64 {
    if i == exact {
        addrs[i]
    } else {
        addrs[i].saturating_sub(1)
    }
}

/// Where the interrupted code starts in a pprof stack: after pprof's signal handler and
/// the signal trampoline that called it.
fn after_signal_frames(addrs: &[u64], sym: &ProcessSymbolizer) -> usize {
    let handler = (0..addrs.len()).position(|i| {
        sym.frames(lookup(addrs, i, usize::MAX))
            .iter()
            .any(|f| f.function.as_deref().is_some_and(|n| n.contains("perf_signal_handler")))
    });
    match handler {
        // The frame after the handler is the trampoline it returns to; the interrupted
        // frame follows it.
        Some(h) => (h + 2).min(addrs.len()),
        None => 0,
    }
}

/// Symbolizes a raw profile and classifies its frames.
pub fn build(raw: &RawProfile, sym: &mut ProcessSymbolizer) -> Result<Profile> {
    // First pass: every address as a return address, to find pprof's handler frames.
    let mut wanted: Vec<u64> = Vec::new();
    for s in &raw.samples {
        for i in 0..s.addrs.len() {
            wanted.push(lookup(&s.addrs, i, if raw.has_signal_frames { usize::MAX } else { 0 }));
        }
    }
    sym.resolve(&wanted)?;
    let starts: Vec<usize> = raw
        .samples
        .iter()
        .map(|s| if raw.has_signal_frames { after_signal_frames(&s.addrs, sym) } else { 0 })
        .collect();
    // Second pass: the exact leaf of each trimmed pprof stack.
    let leaves: Vec<u64> = raw
        .samples
        .iter()
        .zip(&starts)
        .filter_map(|(s, &start)| s.addrs.get(start).copied())
        .collect();
    sym.resolve(&leaves)?;

    let mut builder = ProfileBuilder::default();
    let mut at = Vec::new();
    for (s, &start) in raw.samples.iter().zip(&starts) {
        at.clear();
        at.extend((start..s.addrs.len()).map(|i| lookup(&s.addrs, i, start)));
        builder.push(at.iter().map(|&addr| (addr, sym.frames(addr))), s.weight, s.cpu_nanos);
    }
    Ok(builder.finish())
}

/// Assembles a [`Profile`] from symbolized stacks, interning frames.
#[derive(Default)]
pub(crate) struct ProfileBuilder {
    profile: Profile,
    index: HashMap<FrameInfo, FrameId>,
}

impl ProfileBuilder {
    /// Adds one stack, given leaf first as (lookup address, the frames symbolized there,
    /// innermost first). Frames are classified; whatever an unwinder found below the
    /// outermost thread root is dropped. Returns the stack's index in
    /// [`Profile::stacks`], or `None` when no frame was left.
    pub(crate) fn push<'f>(
        &mut self,
        leaf_first: impl Iterator<Item = (u64, &'f [Frame])>,
        weight: u64,
        cpu_nanos: u64,
    ) -> Option<ProfileStackId> {
        let mut ids = Vec::new();
        for (addr, frames) in leaf_first {
            ids.extend(self.frame_ids(addr, frames).into_iter().rev());
        }
        self.push_ids(ids, weight, cpu_nanos)
    }

    /// The frames symbolized at one lookup address (innermost first), classified and
    /// interned: their indices, outermost first. A caller that sees the same address many
    /// times can keep them and use [`ProfileBuilder::push_ids`].
    pub(crate) fn frame_ids(&mut self, addr: u64, frames: &[Frame]) -> Vec<FrameId> {
        frames
            .iter()
            .rev()
            .map(|frame| {
                let language = classify(addr, frame);
                let function = match (&frame.function, &frame.module) {
                    (Some(f), _) => f.clone(),
                    (None, Some(m)) => format!("[{m}]"),
                    (None, None) => "[unknown]".to_owned(),
                };
                let info = FrameInfo {
                    function,
                    module: frame.module.clone().unwrap_or_default(),
                    language,
                    inlined: frame.inlined,
                };
                intern(&mut self.profile.frames, &mut self.index, info)
            })
            .collect()
    }

    /// Adds a stack of interned frames given leaf first (as [`ProfileBuilder::push`]
    /// does, with its root trimming).
    pub(crate) fn push_ids(
        &mut self,
        mut ids: Vec<FrameId>,
        weight: u64,
        cpu_nanos: u64,
    ) -> Option<ProfileStackId> {
        ids.reverse();
        // An unwinder may step past the thread's root into garbage: drop what lies
        // below the outermost thread root.
        if let Some(root) = ids
            .iter()
            .position(|&i| THREAD_ROOTS.contains(&self.profile.frame(i).function.as_str()))
        {
            ids.drain(..root);
        }
        if ids.is_empty() {
            return None;
        }
        self.profile.stacks.push(Stack { frames: ids, weight, cpu_nanos });
        Some(ProfileStackId(self.profile.stacks.len() - 1))
    }

    /// Adds `weight` samples of `cpu_nanos` to stack `index` (as
    /// [`ProfileBuilder::push_ids`] returned it).
    pub(crate) fn add_weight(&mut self, index: ProfileStackId, weight: u64, cpu_nanos: u64) {
        if let Some(stack) = self.profile.stacks.get_mut(index.0) {
            stack.weight += weight;
            stack.cpu_nanos += cpu_nanos;
        }
    }

    /// The profile.
    pub(crate) fn finish(self) -> Profile {
        self.profile
    }
}

/// Where a profile's samples fall, and how trustworthy its stacks are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundarySummary {
    /// Samples (total weight).
    pub samples: u64,
    /// Samples per second asked for.
    pub requested_hz: u64,
    /// Samples per second obtained over the window.
    pub effective_hz: f64,
    /// Length of the sampling window, seconds.
    pub window_seconds: f64,
    /// Samples the kernel reported lost.
    pub lost: u64,
    /// Share of samples whose leaf frame is in each language.
    pub leaf_share: BTreeMap<Language, f64>,
    /// Share of samples whose innermost non-glue frame is on the C side (C or C runtime).
    pub c_side_share: f64,
    /// Mean number of Rust <-> C-side transitions per stack (glue and unknown frames
    /// skipped).
    pub crossings_per_stack: f64,
    /// Share of stacks whose root frame is a thread root (`_start`, `start_thread`,
    /// `clone3`): the unwinder got all the way down.
    pub reaches_root: f64,
    /// Share of stacks with at least one unknown frame.
    pub with_unknown_frames: f64,
}

impl BoundarySummary {
    /// Summarizes `profile`, recorded as `raw` says.
    pub fn new(profile: &Profile, raw: &RawProfile) -> BoundarySummary {
        Self::from_parts(profile, raw.requested_hz, raw.window, raw.lost)
    }

    /// Summarizes `profile`, sampled at `requested_hz` over `window` with `lost` samples lost.
    pub fn from_parts(
        profile: &Profile,
        requested_hz: u64,
        window: std::time::Duration,
        lost: u64,
    ) -> BoundarySummary {
        let total = profile.total();
        let share = |w: u64| if total == 0 { 0.0 } else { w as f64 / total as f64 };
        let mut leaf: HashMap<Language, u64> = HashMap::new();
        let (mut c_side, mut crossings, mut rooted, mut unknown) = (0u64, 0u64, 0u64, 0u64);
        for stack in profile.stacks() {
            let langs: Vec<Language> =
                stack.frames.iter().map(|&i| profile.frame(i).language).collect();
            if let Some(l) = langs.last() {
                *leaf.entry(*l).or_default() += stack.weight;
            }
            let sides: Vec<bool> =
                langs.iter().filter(|l| l.is_code()).map(|l| l.is_c_side()).collect();
            if sides.last() == Some(&true) {
                c_side += stack.weight;
            }
            crossings += stack.weight * sides.windows(2).filter(|w| w[0] != w[1]).count() as u64;
            let root = stack.frames.first().map(|&i| profile.frame(i).function.as_str());
            if root.is_some_and(|r| THREAD_ROOTS.contains(&r)) {
                rooted += stack.weight;
            }
            if langs.contains(&Language::Unknown) {
                unknown += stack.weight;
            }
        }
        let window_seconds = window.as_secs_f64();
        BoundarySummary {
            samples: total,
            requested_hz,
            effective_hz: if window_seconds > 0.0 { total as f64 / window_seconds } else { 0.0 },
            window_seconds,
            lost,
            leaf_share: leaf.into_iter().map(|(l, w)| (l, share(w))).collect(),
            c_side_share: share(c_side),
            crossings_per_stack: share(crossings),
            reaches_root: share(rooted),
            with_unknown_frames: share(unknown),
        }
    }
}

/// A small hand-made profile for unit tests: a Rust loop calling libm's pow (9 samples
/// in pow, 1 in the loop).
#[cfg(test)]
pub(crate) fn pow_profile_for_tests() -> Profile {
    use Language::*;
    Profile::from_named_stacks(&[
        (
            vec![("main", "x", Glue), ("ffiprof::loop", "x", Rust), ("pow", "libm.so.6", CRuntime)],
            9,
        ),
        (vec![("main", "x", Glue), ("ffiprof::loop", "x", Rust)], 1),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use Language::*;

    fn frame(function: &str, module: &str, file: Option<&str>) -> Frame {
        Frame {
            function: Some(function.to_owned()),
            module: Some(module.to_owned()),
            file: file.map(str::to_owned),
            line: None,
            inlined: false,
        }
    }

    #[test]
    fn boundary_marks_tell_calls_into_c_from_callbacks_and_thread_starts() {
        use Entered::*;
        // start_thread -> Rust thread main -> sort (Rust) -> PLT -> qsort -> msort ->
        // comparator (Rust) -> memcmp.
        let langs = [CRuntime, Rust, Rust, Glue, CRuntime, CRuntime, Rust, CRuntime];
        assert_eq!(
            boundary_marks(&langs),
            [None, None, None, None, Some(FromRust), None, Some(CalledBack), Some(FromRust)]
        );
        // Unknown frames are looked through; C with no Rust above calling Rust is a start.
        assert_eq!(boundary_marks(&[C, Unknown, Rust]), [None, None, None]);
        assert_eq!(
            boundary_marks(&[Rust, C, Unknown, Rust]),
            [None, Some(FromRust), None, Some(CalledBack)]
        );
    }

    #[test]
    fn classifies_by_the_documented_rules() {
        assert_eq!(classify(0xffff_ffff_8100_0000, &frame("x", "", None)), Kernel);
        let none = Frame { function: None, module: None, file: None, line: None, inlined: false };
        assert_eq!(classify(1, &none), Unknown);
        assert_eq!(classify(1, &frame("pow@plt", "ffiprof", None)), Glue);
        assert_eq!(classify(1, &frame("main", "ffiprof", None)), Glue);
        assert_eq!(classify(1, &frame("ffiprof::ffi::closure_trampoline", "ffiprof", None)), Glue);
        assert_eq!(classify(1, &frame("pow", "libm.so.6", None)), CRuntime);
        assert_eq!(classify(1, &frame("__libc_start_call_main", "ffiprof", None)), CRuntime);
        assert_eq!(
            classify(1, &frame("ffiprof::workload::pow::per_call", "ffiprof", Some("src/x.rs"))),
            Rust
        );
        assert_eq!(classify(1, &frame("core::ptr::drop", "ffiprof", None)), Rust);
        assert_eq!(classify(1, &frame("ffiprof_pow_loop", "ffiprof", Some("csrc/pow.c"))), C);
        assert_eq!(classify(1, &frame("ffiprof_dyn_plusone", "libffiprof_dyn.so", None)), C);
    }

    #[test]
    fn cpp_is_told_by_its_sources_and_its_demangled_names() {
        let cpp = |name: &str, file: Option<&str>| classify(1, &frame(name, "libapp.so", file));
        // Sources and headers, whatever the name.
        assert_eq!(cpp("parse", Some("src/parser.cpp")), Cpp);
        assert_eq!(cpp("parse", Some("lib/Parser.CC")), Cpp);
        assert_eq!(cpp("push_back", Some("/usr/include/c++/12/bits/stl_vector.h")), Cpp);
        assert_eq!(cpp("Table::get", Some("include/table.hpp")), Cpp);
        assert_eq!(cpp("extern_c_entry", Some("bridge.cc")), Cpp);
        // Demangled Itanium names: a parameter list at the end, with qualifiers and
        // gcc's clone suffixes.
        assert_eq!(cpp("app::Table::get(unsigned long) const", None), Cpp);
        assert_eq!(cpp("std::vector<int, std::allocator<int> >::push_back(int&&)", None), Cpp);
        assert_eq!(cpp("walk(tree_node*) [clone .cold]", None), Cpp);
        assert_eq!(cpp("S::operator()() const &", None), Cpp);
        assert_eq!(cpp("f() [clone .constprop.0] [clone .isra.0]", None), Cpp);
        // Left mangled (a name the demangler could not read): Itanium is C++, Rust's
        // legacy mangling (hash segment last) is not.
        assert_eq!(
            cpp("_ZSt4swapImENSt9enable_ifIXsrSt6__and_IJEEE5valueEvE4typeERS4_", None),
            Cpp
        );
        assert_eq!(cpp("_ZN3app4main17h0123456789abcdefE", None), Rust);
        // Rust paths and C names are not C++.
        assert_eq!(cpp("<F as core::ops::function::FnOnce<()>>::call_once", None), Rust);
        assert_eq!(cpp("core::ptr::drop_in_place<fn(u8)>", None), Rust);
        assert_eq!(cpp("app::run::{{closure}}", None), Rust);
        assert_eq!(cpp("sqlite3_step", Some("sqlite3.c")), C);
        assert_eq!(cpp("(anonymous)", None), C);
        assert_eq!(cpp("app::main", Some("src/main.rs")), Rust);
        // libstdc++ itself is the C runtime's side, as libc is.
        assert_eq!(
            classify(1, &frame("std::__throw_bad_alloc()", "libstdc++.so.6", None)),
            CRuntime
        );
        assert!(Cpp.is_c_side() && Cpp.is_code() && Cpp.is_c_library());
    }

    fn summary(stacks: &[NamedStack<'_>]) -> BoundarySummary {
        let profile = Profile::from_named_stacks(stacks);
        let raw = RawProfile {
            sampler: crate::sample::SamplerKind::Perf,
            event: crate::sample::Event::CpuClock,
            unwind: crate::sample::Unwind::KernelFramePointer,
            requested_hz: 1000,
            window: std::time::Duration::from_secs(2),
            lost: 3,
            notes: vec![],
            samples: vec![],
            has_signal_frames: false,
        };
        BoundarySummary::new(&profile, &raw)
    }

    #[test]
    fn summary_counts_sides_crossings_and_roots() {
        let s = summary(&[
            // Rust -> C -> libm: one crossing (C and C runtime are one side).
            (
                vec![
                    ("_start", "x", CRuntime),
                    ("main", "x", Glue),
                    ("r", "x", Rust),
                    ("c", "x", C),
                    ("pow", "m", CRuntime),
                ],
                3,
            ),
            // Rust only, leaf in Rust, no root.
            (vec![("r", "x", Rust)], 1),
            // C calling back into Rust: two crossings, leaf Rust; an unknown frame.
            (
                vec![
                    ("_start", "x", CRuntime),
                    ("r", "x", Rust),
                    ("c", "x", C),
                    ("[unknown]", "", Unknown),
                    ("cb", "x", Rust),
                ],
                4,
            ),
        ]);
        assert_eq!(s.samples, 8);
        assert_eq!(s.effective_hz, 4.0);
        assert_eq!(s.lost, 3);
        assert_eq!(s.leaf_share[&CRuntime], 3.0 / 8.0);
        assert_eq!(s.leaf_share[&Rust], 5.0 / 8.0);
        assert_eq!(s.c_side_share, 3.0 / 8.0);
        // _start is C runtime: stack 1 has _start->r (1), r->c (1): 2; stack 3: 1+1+1 = 3.
        assert_eq!(s.crossings_per_stack, (3.0 * 2.0 + 0.0 + 4.0 * 3.0) / 8.0);
        assert_eq!(s.reaches_root, 7.0 / 8.0);
        assert_eq!(s.with_unknown_frames, 4.0 / 8.0);
    }

    #[test]
    fn folded_is_root_first_and_merged() {
        let p = Profile::from_named_stacks(&[
            (vec![("a", "", Rust), ("b;x", "", C)], 2),
            (vec![("a", "", Rust), ("b;x", "", C)], 3),
            (vec![("a", "", Rust)], 1),
        ]);
        assert_eq!(p.folded(), "a 1\na;b:x 5\n");
    }
}
