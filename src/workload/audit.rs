//! What the measured loops' machine code does with their running value: the check that
//! the catalogue times the crossing and not the harness.
//!
//! A per-item barrier that goes through memory (`std::hint::black_box`) stores the value
//! and loads it again on every item, and every item then waits for the store to be
//! forwarded to the load: about 6 cycles on recent Intel cores, about 1 on AMD's Zen,
//! more than a `+1` costs and as much as a call. The catalogue's loops keep their value in
//! a register ([`crate::ffi::keep`]); this reads each loop's code, at every placement, in
//! this process (ffiprof's own loops, csrc's batched C loops, the cross-language LTO
//! library's), and finds any stack slot a loop goes through on every item. It reads code,
//! not time, so it holds on whichever CPU it runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object::{Object, ObjectSymbol, SymbolKind};
use serde::{Deserialize, Serialize};

use super::{Placement, Unavailable, Workload, PLACEMENTS};
use crate::error::{Error, Result};
use crate::machine_code::stack_round_trips;
pub use crate::machine_code::{RoundTrip, RoundTripKind};
use crate::maps::{executable_mappings, file_address, Mapping};

/// Which compiler made a loop's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoopSide {
    /// rustc, in ffiprof.
    Rust,
    /// The C compiler, csrc's batched loops in ffiprof.
    C,
    /// The cross-language LTO library: Rust and C optimised together.
    CrossLanguageLto,
}

/// Where a measured loop's code is, and which compiler made it.
#[derive(Debug, Clone, Copy)]
pub enum LoopCode {
    /// csrc's batched C loop, in ffiprof, by its C name ([`MeasuredLoop::function`]).
    C,
    /// A Rust loop of ffiprof: its copies, one per placement.
    Rust(fn() -> [usize; PLACEMENTS]),
    /// The cross-language LTO library's loop, by its exported name before `_pK`.
    CrossLanguageLto,
}

/// One measured loop of a workload: a function that exists at every placement, and the
/// variants that time it.
#[derive(Debug, Clone, Copy)]
pub struct MeasuredLoop {
    /// The function, as its source names it (`plusone::per_call_loop`,
    /// `ffiprof_plusone_loop`).
    pub function: &'static str,
    /// The variants whose time is this loop's.
    pub variants: &'static [&'static str],
    /// Why the workload itself goes through memory on every item, where it does (an
    /// out-parameter of the C API it models); `None` for a loop that must keep its values
    /// in registers.
    pub asks_for_memory: Option<&'static str>,
    /// Where its code is.
    pub code: LoopCode,
}

impl MeasuredLoop {
    /// A loop that must keep its values in registers.
    pub(crate) const fn new(
        function: &'static str,
        variants: &'static [&'static str],
        code: LoopCode,
    ) -> MeasuredLoop {
        MeasuredLoop { function, variants, asks_for_memory: None, code }
    }

    /// Which compiler made it.
    pub fn side(&self) -> LoopSide {
        match self.code {
            LoopCode::C => LoopSide::C,
            LoopCode::Rust(_) => LoopSide::Rust,
            LoopCode::CrossLanguageLto => LoopSide::CrossLanguageLto,
        }
    }

    /// Where each placement starts in this process; fails when the code is not loaded
    /// here (the LTO library without its compilers).
    fn addresses(&self) -> Result<[usize; PLACEMENTS]> {
        match self.code {
            LoopCode::C => crate::ffi::c_loop_addresses(self.function).ok_or_else(|| {
                Error::Internal(format!("ffi declares no C loop {}", self.function))
            }),
            LoopCode::Rust(copies) => Ok(copies()),
            LoopCode::CrossLanguageLto => super::per_call_xlto::addresses(self.function),
        }
    }
}

/// One placement of one measured loop, read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopAudit {
    /// The workload.
    pub workload: String,
    /// The function, as its source names it.
    pub function: String,
    /// The variants that time it.
    pub variants: Vec<String>,
    /// Which compiler made it.
    pub side: LoopSide,
    /// The placement read.
    pub placement: usize,
    /// The symbol at its address, demangled without Rust's hash or crate disambiguators
    /// (legacy and v0 mangling alike).
    pub symbol: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// Each loop in the function: where its first instruction sits in its 64-byte line,
    /// and how many instructions it has.
    pub loops: Vec<(u64, usize)>,
    /// The stack slots a loop goes through on every item.
    pub round_trips: Vec<RoundTrip>,
    /// Why the workload asks for memory, where it does.
    pub asks_for_memory: Option<String>,
}

impl LoopAudit {
    /// Round trips the workload does not ask for: the harness's, which make the loop time
    /// memory instead of the crossing.
    pub fn harness_round_trips(&self) -> &[RoundTrip] {
        if self.asks_for_memory.is_some() {
            &[]
        } else {
            &self.round_trips
        }
    }

    /// The finding in words.
    pub fn sentence(&self) -> String {
        let trips = |t: &[RoundTrip]| {
            let parts: Vec<String> = t
                .iter()
                .map(|r| match r.kind {
                    RoundTripKind::ReadModifyWrite => format!("read-modify-write of {}", r.slot),
                    RoundTripKind::StoreThenLoad => format!("store and load of {}", r.slot),
                })
                .collect();
            parts.join(", ")
        };
        match (&self.asks_for_memory, self.round_trips.is_empty(), self.loops.is_empty()) {
            (_, _, true) => "no loop in its machine code".to_owned(),
            (_, true, false) => "its values stay in registers".to_owned(),
            (Some(why), false, false) => {
                format!("{} per item, as the workload asks: {why}", trips(&self.round_trips))
            }
            (None, false, false) => format!(
                "{} per item: the loop times a memory round trip, not the crossing",
                trips(&self.round_trips)
            ),
        }
    }
}

/// Every measured loop of `workloads`, at every placement, read from this process's code;
/// and the loops whose code is not loaded here (the LTO library without its compilers),
/// with why.
pub fn audit(workloads: &[Workload]) -> Result<(Vec<LoopAudit>, Vec<Unavailable>)> {
    let mut reader = CodeReader { mappings: Vec::new(), files: HashMap::new() };
    let (mut read, mut missing) = (Vec::new(), Vec::new());
    for w in workloads {
        for l in &w.loops {
            let addresses = match l.addresses() {
                Ok(a) => a,
                Err(Error::VariantUnavailable { variant, why }) => {
                    missing.push(Unavailable { variant: format!("{}/{variant}", w.name), why });
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (placement, address) in addresses.into_iter().enumerate() {
                read.push(reader.audit(w.name, l, Placement::new(placement), address as u64)?);
            }
        }
    }
    Ok((read, missing))
}

/// The audit as `ffiprof list --machine-code` prints it: one row per loop and placement,
/// then the loops not loaded here and a last line that counts what keeps to registers.
pub fn table(read: &[LoopAudit], missing: &[Unavailable]) -> String {
    let side = |s: LoopSide| match s {
        LoopSide::Rust => "Rust",
        LoopSide::C => "C",
        LoopSide::CrossLanguageLto => "Rust+C, LTO",
    };
    // A finding longer than a terminal's last column takes is shortened in the table and
    // said in full once below it, by its number.
    const FINDING: usize = 60;
    let mut in_full: Vec<String> = Vec::new();
    let rows: Vec<Vec<String>> = read
        .iter()
        .map(|a| {
            let loops: Vec<String> =
                a.loops.iter().map(|(at, n)| format!("+{at} ({n} instr)")).collect();
            let sentence = a.sentence();
            let finding = if sentence.chars().count() <= FINDING {
                sentence
            } else {
                let n = match in_full.iter().position(|s| *s == sentence) {
                    Some(i) => i + 1,
                    None => {
                        in_full.push(sentence.clone());
                        in_full.len()
                    }
                };
                let mark = format!("… [{n}]");
                let cut: String = sentence.chars().take(FINDING - mark.chars().count()).collect();
                format!("{}{mark}", cut.trim_end())
            };
            vec![
                a.workload.clone(),
                a.function.clone(),
                a.variants.join(", "),
                side(a.side).to_owned(),
                a.placement.to_string(),
                loops.join(", "),
                finding,
            ]
        })
        .collect();
    let header = ["workload", "function", "variants", "code", "placement", "loops", "finding"];
    let mut out = crate::fmt::table(&header, &rows, header.len());
    for (i, s) in in_full.iter().enumerate() {
        out.push_str(&format!("[{}] {s}\n", i + 1));
    }
    for m in missing {
        out.push_str(&format!("not loaded here: {}: {}\n", m.variant, m.why));
    }
    let harness = read.iter().filter(|a| !a.harness_round_trips().is_empty()).count();
    out.push_str(&format!(
        "{} of {} loop copies keep their running values in registers or go through memory \
         only where the workload asks; {harness} time a memory round trip of the harness\n\
         loops: where each loop's first instruction sits in its 64-byte line, and its length\n",
        read.len() - harness,
        read.len(),
    ));
    out
}

/// Reads functions of this process by address: the mapping that holds it, its file (read
/// once) and the symbol that starts there.
struct CodeReader {
    mappings: Vec<Mapping>,
    files: HashMap<String, Arc<memmap2::Mmap>>,
}

impl CodeReader {
    /// The file at `path`, mapped once ([`crate::ffi::map_file`]): an executable with its
    /// debug information can be a hundred megabytes, of which a few pages are read.
    fn file(&mut self, path: &str) -> Result<Arc<memmap2::Mmap>> {
        if let Some(data) = self.files.get(path) {
            return Ok(data.clone());
        }
        let read = |source| Error::Read { path: PathBuf::from(path), source };
        let data = crate::ffi::map_file(&std::fs::File::open(path).map_err(read)?).map_err(read)?;
        Ok(self.files.entry(path.to_owned()).or_insert(Arc::new(data)).clone())
    }

    /// The mapping that holds `address`, reading this process's mappings again when none
    /// known does (a library loaded since).
    fn mapping(&mut self, address: u64) -> Result<Option<Mapping>> {
        let find = |m: &[Mapping]| m.iter().find(|m| m.range.contains(&address)).cloned();
        if let Some(found) = find(&self.mappings) {
            return Ok(Some(found));
        }
        let maps = std::fs::read_to_string("/proc/self/maps")
            .map_err(|source| Error::Read { path: "/proc/self/maps".into(), source })?;
        self.mappings = executable_mappings(&maps);
        Ok(find(&self.mappings))
    }

    fn audit(
        &mut self,
        workload: &str,
        l: &MeasuredLoop,
        at: Placement,
        address: u64,
    ) -> Result<LoopAudit> {
        let failed = |why: String| {
            Error::Internal(format!("reading {workload}'s {} at {address:#x}: {why}", l.function))
        };
        let mapping = self
            .mapping(address)?
            .ok_or_else(|| failed("no executable mapping holds it".into()))?;
        let data = self.file(&mapping.path)?;
        let file = object::File::parse(&**data).map_err(|e| failed(e.to_string()))?;
        let vaddr = file_address(&file, &mapping, address)
            .ok_or_else(|| failed(format!("no segment of {} holds it", mapping.path)))?;
        let symbol = file
            .symbols()
            .chain(file.dynamic_symbols())
            .find(|s| s.address() == vaddr && s.kind() == SymbolKind::Text && s.size() > 0)
            .ok_or_else(|| failed("no function symbol starts there".into()))?;
        let code = crate::machine_code::code_at(&file, vaddr, symbol.size())
            .ok_or_else(|| failed("its code is not in a text section".into()))?;
        let (loops, round_trips) = stack_round_trips(code, vaddr);
        let name = symbol.name().unwrap_or("?");
        Ok(LoopAudit {
            workload: workload.to_owned(),
            function: l.function.to_owned(),
            variants: l.variants.iter().map(|v| (*v).to_owned()).collect(),
            side: l.side(),
            placement: at.index(),
            symbol: format!("{:#}", rustc_demangle::demangle(name)),
            file: Path::new(&mapping.path).to_owned(),
            loops: loops.iter().map(|b| (b.head % 64, b.instructions)).collect(),
            round_trips,
            asks_for_memory: l.asks_for_memory.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placed_variant_has_its_loops_listed() {
        for w in super::super::catalogue() {
            for v in w.variants.iter().filter(|v| v.placed) {
                assert!(
                    w.loops.iter().any(|l| l.variants.contains(&v.name)),
                    "{}/{}: a placed variant whose loop is not in the workload's loops",
                    w.name,
                    v.name
                );
            }
            for l in &w.loops {
                for name in l.variants {
                    assert!(w.variant(name).is_ok(), "{}: {} is no variant", w.name, name);
                }
            }
        }
    }

    #[test]
    fn a_round_trip_is_excused_only_where_the_workload_asks_for_memory() {
        let trip = RoundTrip {
            kind: RoundTripKind::StoreThenLoad,
            slot: "[rsp+0x4]".to_owned(),
            at: 0x10,
        };
        let mut a = LoopAudit {
            workload: "plusone".to_owned(),
            function: "plusone::per_call_loop".to_owned(),
            variants: vec!["per-call".to_owned()],
            side: LoopSide::Rust,
            placement: 0,
            symbol: "ffiprof::workload::plusone::per_call_loop".to_owned(),
            file: PathBuf::from("ffiprof"),
            loops: vec![(16, 4)],
            round_trips: vec![trip.clone()],
            asks_for_memory: None,
        };
        assert_eq!(a.harness_round_trips(), std::slice::from_ref(&trip));
        assert!(a.sentence().contains("not the crossing"), "{}", a.sentence());
        a.asks_for_memory = Some("an out-parameter".to_owned());
        assert!(a.harness_round_trips().is_empty());
        assert!(a.sentence().contains("as the workload asks"), "{}", a.sentence());
        a.round_trips.clear();
        assert_eq!(a.sentence(), "its values stay in registers");
    }
}
