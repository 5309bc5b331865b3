//! The workload catalogue: each workload asks one question about the Rust/C boundary.
//!
//! A workload has one or more inputs (`pow` has two chains, `buffer` five sizes) and two
//! or more variants. The first variant is the *batched baseline*: one call into C that
//! does all n items. The others do the same n items with a crossing per item (or, for
//! reference, none at all). Every variant returns a checksum of its work, so the compiler
//! cannot drop the work and the tests can check that all variants did the same thing.
//!
//! Adding a workload means one C file in `csrc/`, one Rust file here, and one line in
//! [`catalogue`].

mod arena;
pub mod audit;
mod buffer;
pub(crate) mod calibrate;
mod callback;
mod cstring;
mod dylib;
mod lua;
pub mod per_call_xlto;
mod plusone;
mod pow;
mod sqlite;
mod zstd;

pub use calibrate::both_sides_loop;
pub use callback::{
    register, run_by_handle, run_closure, unregister, CallbackError, Handle, HandleRegistry,
};

use std::any::Any;
use std::rc::Rc;

/// Why a variant is left out on a machine (lives with the errors, which carry it).
pub use crate::error::Unavailability;
use crate::error::{Error, Result};
pub use audit::{LoopCode, LoopSide, MeasuredLoop};

/// What a variant stands for in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// One call into C that loops over all n items.
    Baseline,
    /// A second, independent instance of the baseline, measured like a variant: the
    /// noise floor of a paired measurement (an A/A control).
    Control,
    /// One crossing (or more) per item.
    PerCall,
    /// No crossing at all: what the same work costs when it stays in Rust.
    Reference,
}

/// A prepared variant: inputs built, resources acquired, ready to run n items.
pub trait Runner {
    /// Does the work of `n` items and returns its checksum.
    fn run(&mut self, n: u64) -> u64;
}

/// Data a workload prepares once per input and every variant of the case reads (bytes for
/// `buffer`, strings for `cstring`): one allocation, so that no variant is measured on
/// memory placed differently from the others'.
pub type Shared = Rc<dyn Any>;

/// Which copy of a variant's measured code runs. At a few nanoseconds per item, where a
/// loop sits in the binary (its alignment, which branch-predictor entries it shares, how
/// it falls in the decoded-instruction cache) moves its speed by more than a crossing
/// costs, and differently in every binary (Mytkowicz et al., "Producing Wrong Data
/// Without Doing Anything Obviously Wrong!", ASPLOS 2009). So the loops a variant times
/// (the C loop of a batched baseline, the Rust loop of a per-call variant) are built
/// [`PLACEMENTS`] times, as distinct functions whose loops start at different offsets
/// from a 64-byte boundary, the same offsets in every binary; the paired engine draws a
/// placement per subject and round, and the spread between placements becomes each
/// case's placement floor ([`crate::measure::paired`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Placement(usize);

/// How many placements a placed variant has.
pub const PLACEMENTS: usize = crate::ffi::PLACEMENTS;

impl Placement {
    /// Placement `index`, wrapped into range.
    pub fn new(index: usize) -> Placement {
        Placement(index % PLACEMENTS)
    }

    /// Every placement, in order.
    pub fn all() -> impl Iterator<Item = Placement> {
        (0..PLACEMENTS).map(Placement)
    }

    /// Its index, below [`PLACEMENTS`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// The copies of a function made by `placed!`, one per placement.
pub(crate) type Placed<F> = [F; PLACEMENTS];

/// The [`PLACEMENTS`] copies of a function generic over its placement
/// (`fn f<const K: usize>(..)` that calls `ffi::place::<K>()` first), as a table of
/// function pointers indexed by [`Placement::index`].
macro_rules! placed {
    ($f:ident) => {
        [$f::<0>, $f::<1>, $f::<2>, $f::<3>]
    };
}
pub(crate) use placed;

/// Builds a runner for one input over the case's shared data, running the code at the
/// placement given (variants that are not [`Variant::placed`] ignore it); may fail when
/// a resource is missing (a shared library) or a variant cannot be built on this machine
/// ([`Error::VariantUnavailable`]).
pub type Prepare = fn(&Input, &Shared, Placement) -> Result<Box<dyn Runner>>;

/// The shared data of workloads that need none.
pub(crate) fn nothing_shared(_: &Input) -> Shared {
    Rc::new(())
}

/// The shared data as the type its workload put in; a mismatch is a catalogue bug.
pub(crate) fn shared_as<T: 'static>(shared: &Shared) -> Rc<T> {
    shared.clone().downcast::<T>().unwrap_or_else(|_| {
        panic!("a workload's shared data is not a {}", std::any::type_name::<T>())
    })
}

/// A variant left out on this machine, and why (what to install).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unavailable {
    /// The variant.
    pub variant: String,
    /// Why it was not measured (in a report: the words).
    pub why: Unavailability,
}

/// One way of doing a workload's work.
#[derive(Clone)]
pub struct Variant {
    /// Short name, unique in its workload (`per-call`).
    pub name: &'static str,
    /// What it stands for.
    pub role: Role,
    /// One line on what it does.
    pub about: &'static str,
    /// Builds the runner.
    pub prepare: Prepare,
    /// True when `prepare` honours its [`Placement`]: the variant's measured code exists
    /// once per placement.
    pub placed: bool,
    /// What the variant needs of this machine beyond ffiprof itself (a compiler), checked
    /// before it is measured: an [`Unavailability`] leaves it out with a note. `None` for a
    /// variant that always runs.
    pub needs: Option<fn() -> Result<(), Unavailability>>,
}

impl Variant {
    /// A variant whose code exists once (not [`Variant::placed`]) and that every machine
    /// can run.
    pub(crate) fn plain(
        name: &'static str,
        role: Role,
        about: &'static str,
        prepare: Prepare,
    ) -> Variant {
        Variant { name, role, about, prepare, placed: false, needs: None }
    }

    /// Whether this machine can run the variant ([`Variant::needs`]).
    pub fn available(&self) -> Result<()> {
        match self.unavailable() {
            None => Ok(()),
            Some(why) => Err(Error::VariantUnavailable { variant: self.name.to_owned(), why }),
        }
    }

    /// Why this machine cannot run the variant, where it cannot.
    pub fn unavailable(&self) -> Option<Unavailability> {
        self.needs.and_then(|needs| needs().err())
    }

    /// The placements the variant's code exists at: all of them, or only the first.
    pub fn placements(&self) -> impl Iterator<Item = Placement> {
        Placement::all().take(if self.placed { PLACEMENTS } else { 1 })
    }
}

/// One input a workload is measured at.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Name used in benchmark ids (`chain`, `4KiB`).
    pub name: &'static str,
    /// A size or selector the workload interprets (bytes for `buffer`).
    pub value: u64,
    /// Items per measured iteration: enough that one iteration takes tens of microseconds.
    pub calls_per_iteration: u64,
}

/// A question about the boundary, with its variants and inputs.
#[derive(Clone)]
pub struct Workload {
    /// Name used on the command line and in benchmark ids.
    pub name: &'static str,
    /// One line on what it shows.
    pub about: &'static str,
    /// The inputs it is measured at; never empty.
    pub inputs: Vec<Input>,
    /// Prepares the data every variant reads at an input.
    pub share: fn(&Input) -> Shared,
    /// The variants, baseline first.
    pub variants: Vec<Variant>,
    /// The loops its placed variants time, each at every placement ([`audit`]).
    pub loops: Vec<MeasuredLoop>,
}

impl Workload {
    /// A runner of `variant` at `input`, over freshly prepared shared data (for a single
    /// variant; a paired measurement shares one preparation among all variants).
    pub fn prepare(&self, variant: &str, input: &Input) -> Result<Box<dyn Runner>> {
        (self.variant(variant)?.prepare)(input, &(self.share)(input), Placement::default())
    }

    /// The variants this machine can run, and why each of the others cannot: every
    /// consumer of the catalogue measures the first list and reports the second.
    pub fn available_variants(&self) -> (Vec<&Variant>, Vec<Unavailable>) {
        let mut here = Vec::new();
        let mut missing = Vec::new();
        for v in &self.variants {
            match v.unavailable() {
                None => here.push(v),
                Some(why) => missing.push(Unavailable { variant: v.name.to_owned(), why }),
            }
        }
        (here, missing)
    }

    /// The batched baseline.
    pub fn baseline(&self) -> &Variant {
        &self.variants[0]
    }

    /// The variant called `name`; an unknown name is an error that lists the known ones.
    pub fn variant(&self, name: &str) -> Result<&Variant> {
        self.variants.iter().find(|v| v.name == name).ok_or_else(|| Error::UnknownVariant {
            workload: self.name.to_owned(),
            name: name.to_owned(),
            known: joined(self.variants.iter().map(|v| v.name)),
        })
    }

    /// The input called `name`, or the first input when `name` is `None`; an unknown name
    /// is an error that lists the known ones.
    pub fn input(&self, name: Option<&str>) -> Result<&Input> {
        let Some(name) = name else { return Ok(&self.inputs[0]) };
        self.inputs.iter().find(|i| i.name == name).ok_or_else(|| Error::UnknownInput {
            workload: self.name.to_owned(),
            name: name.to_owned(),
            known: joined(self.inputs.iter().map(|i| i.name)),
        })
    }
}

fn joined<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Baseline => "baseline",
            Role::Control => "control",
            Role::PerCall => "per-call",
            Role::Reference => "reference",
        })
    }
}

/// Every workload, in the order they are reported.
pub fn catalogue() -> Vec<Workload> {
    vec![
        pow::workload(),
        plusone::workload(),
        dylib::workload(),
        buffer::workload(),
        cstring::workload(),
        callback::workload(),
        arena::workload(),
        sqlite::workload(),
        zstd::workload(),
        lua::workload(),
    ]
}

/// A workload by name, from the catalogue or the calibration workload (which is not
/// benchmarked).
pub fn find(name: &str) -> Result<Workload> {
    catalogue()
        .into_iter()
        .chain(std::iter::once(calibrate::workload()))
        .find(|w| w.name == name)
        .ok_or_else(|| Error::UnknownWorkload {
            name: name.to_owned(),
            known: joined(catalogue().iter().map(|w| w.name).chain(["calibrate"])),
        })
}

/// The workloads called `names`, in catalogue order; all of them when `names` is empty.
/// An unknown name is an error that lists the known ones.
pub fn select(names: &[String]) -> Result<Vec<Workload>> {
    let all = catalogue();
    if let Some(unknown) = names.iter().find(|n| !all.iter().any(|w| w.name == n.as_str())) {
        return Err(Error::UnknownWorkload {
            name: unknown.clone(),
            known: joined(all.iter().map(|w| w.name)),
        });
    }
    Ok(all.into_iter().filter(|w| names.is_empty() || names.iter().any(|n| n == w.name)).collect())
}

/// `ffiprof exec`: runs `variant` of `workload` at `input` (default: the first) for `n`
/// calls and returns its checksum, for callgrind, perf and friends.
pub fn exec(workload: &str, variant: &str, input: Option<&str>, n: u64) -> Result<u64> {
    let w = find(workload)?;
    let input = w.input(input)?;
    Ok(w.prepare(variant, input)?.run(n))
}

/// A runner made from a closure over prepared state.
struct FnRunner<F>(F);

impl<F: FnMut(u64) -> u64> Runner for FnRunner<F> {
    fn run(&mut self, n: u64) -> u64 {
        (self.0)(n)
    }
}

/// Boxes a closure as a [`Runner`].
fn runner(f: impl FnMut(u64) -> u64 + 'static) -> Result<Box<dyn Runner>> {
    Ok(Box::new(FnRunner(f)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::NoToolchain;

    fn no_clang() -> std::result::Result<(), Unavailability> {
        Err(Unavailability::Toolchain(NoToolchain::NotOnPath {
            names: vec!["clang-22".to_owned(), "clang".to_owned()],
            major: 22,
        }))
    }

    #[test]
    fn a_variant_this_machine_cannot_run_is_left_out_with_its_reason_as_data() {
        let mut plusone =
            catalogue().into_iter().find(|w| w.name == "plusone").expect("plusone exists");
        let v = plusone.variants.iter_mut().find(|v| v.name == per_call_xlto::NAME).unwrap();
        v.needs = Some(no_clang);
        let (here, missing) = plusone.available_variants();
        assert!(here.iter().all(|v| v.name != per_call_xlto::NAME));
        assert_eq!(
            missing,
            vec![Unavailable {
                variant: per_call_xlto::NAME.to_owned(),
                why: no_clang().unwrap_err()
            }]
        );
        let refused = plusone.variant(per_call_xlto::NAME).unwrap().available().unwrap_err();
        assert!(
            matches!(&refused, Error::VariantUnavailable { why, .. } if *why == no_clang().unwrap_err()),
            "{refused:?}"
        );
        assert_eq!(refused.exit_code(), 2, "what to install is the user's to do");
    }
}
