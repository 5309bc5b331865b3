//! The heap census in words and pictures: the terminal summary, `memory.md`, flamegraphs
//! of the bytes live at the peak and at exit coloured by language, folded stacks, and a
//! pprof heap profile (`alloc_objects`, `alloc_space`, `inuse_objects`, `inuse_space` at
//! the peak) that `go tool pprof` reads.

use std::fmt::Write as _;

use super::schema::{Figures, MemoryCensus, Site, MEMORY_FILE};
use super::sites::Placed;
use crate::error::Result;
use crate::fmt::{self, pct};
use crate::stacks::{NamedStack, Profile};

/// Every allocation point's stack (root first, the site last) with its figures, for the
/// flamegraphs and the pprof profile.
#[derive(Debug, Default)]
pub(crate) struct Stacks {
    stacks: Vec<(Vec<Placed>, Figures)>,
}

impl Stacks {
    pub(crate) fn push(&mut self, stack: Vec<Placed>, figures: Figures) {
        self.stacks.push((stack, figures));
    }

    /// A profile of the stacks weighted by `weight`, those of weight 0 left out.
    fn profile(&self, weight: impl Fn(&Figures) -> u64) -> (Profile, Vec<&Figures>) {
        let kept: Vec<&(Vec<Placed>, Figures)> =
            self.stacks.iter().filter(|(_, f)| weight(f) > 0).collect();
        let named: Vec<NamedStack<'_>> = kept
            .iter()
            .map(|(stack, f)| {
                let frames = stack
                    .iter()
                    .map(|p| (p.function.as_str(), p.module.as_str(), p.language))
                    .collect();
                (frames, weight(f))
            })
            .collect();
        (Profile::from_named_stacks(&named), kept.iter().map(|(_, f)| f).collect())
    }
}

fn amount(b: u64, k: u64) -> String {
    format!("{} in {} block{}", fmt::bytes(b), fmt::count(k), if k == 1 { "" } else { "s" })
}

/// One sentence on a C-side site.
fn site_sentence(s: &Site) -> String {
    let f = &s.figures;
    let caller = match &s.rust_caller {
        Some(r) => format!(", asked for under {r}"),
        None if s.language.is_c_side() => {
            ", with no Rust frame above it (a C thread, or C's own start)".to_owned()
        }
        None => String::new(),
    };
    let exit = if f.blocks_at_exit == 0 {
        "frees all of it by exit".to_owned()
    } else {
        format!("never frees {}", amount(f.bytes_at_exit, f.blocks_at_exit))
    };
    let module = if s.module.is_empty() { String::new() } else { format!(", {}", s.module) };
    format!(
        "{} ({}{module}) holds {} at the peak{caller}, and {exit} ({} allocated in all)",
        s.function,
        s.language.name(),
        amount(f.bytes_at_peak, f.blocks_at_peak),
        amount(f.bytes, f.blocks)
    )
}

/// Each language's share of `what` (bytes at the peak, or at exit).
fn shares(c: &MemoryCensus, what: fn(&Figures) -> u64) -> String {
    shares_of(c, &c.by_language, what)
}

/// Each name's share of `what` in `by`.
fn shares_of(
    c: &MemoryCensus,
    by: &std::collections::BTreeMap<String, Figures>,
    what: fn(&Figures) -> u64,
) -> String {
    let total = what(&c.totals);
    if total == 0 {
        return "nothing".to_owned();
    }
    let mut parts: Vec<(u64, String)> = by
        .iter()
        .filter(|(_, f)| what(f) > 0)
        .map(|(l, f)| {
            (
                what(f),
                format!("{l} {} ({})", pct(what(f) as f64 / total as f64, 1), fmt::bytes(what(f))),
            )
        })
        .collect();
    parts.sort_by_key(|p| std::cmp::Reverse(p.0));
    parts.into_iter().map(|p| p.1).collect::<Vec<_>>().join(", ")
}

/// Who served, or who took back, in words.
fn served(f: super::schema::Family) -> &'static str {
    match f {
        super::schema::Family::Rust => "Rust",
        super::schema::Family::C => "C's malloc",
        super::schema::Family::Cxx => "C++'s new",
        super::schema::Family::Unknown => "an allocator not told",
    }
}

fn freed(f: super::schema::Family) -> &'static str {
    match f {
        super::schema::Family::Rust => "Rust's allocator",
        super::schema::Family::C => "C's free()",
        super::schema::Family::Cxx => "C++'s delete",
        super::schema::Family::Unknown => "an allocator not told",
    }
}

fn under(r: &Option<String>) -> String {
    r.as_ref().map_or(String::new(), |r| format!(" under {r}"))
}

/// One sentence per crossed free and invalid free (the most bytes first), and the count
/// of frees by the family that served the block.
fn ownership_sentences(c: &MemoryCensus, n: usize) -> Vec<String> {
    let Some(o) = &c.ownership else { return Vec::new() };
    let mut lines = Vec::new();
    let total: u64 = o.frees.iter().map(|p| p.blocks).sum();
    let crossed: u64 = o.crossed_frees.iter().map(|p| p.blocks).sum();
    lines.push(format!(
        "{} of {} freed blocks went back to another allocator than the one that served them",
        fmt::count(crossed),
        fmt::count(total)
    ));
    for x in o.crossed_frees.iter().take(n) {
        lines.push(format!(
            "{} block{} ({}) allocated by {} in {}{} were freed by {} in {}{}",
            fmt::count(x.blocks),
            if x.blocks == 1 { "" } else { "s" },
            fmt::bytes(x.bytes),
            served(x.allocated_by),
            x.alloc_function,
            under(&x.alloc_rust_caller),
            freed(x.freed_by),
            x.free_function,
            under(&x.free_rust_caller)
        ));
    }
    for u in &o.unknown {
        let side = match u.side {
            super::schema::UnknownSide::Allocation => "allocation",
            super::schema::UnknownSide::Free => "free",
        };
        lines.push(format!(
            "{} freed block{} ({}) are not checked, their {side}'s allocator not told: {}; \
             none of them is called crossed",
            fmt::count(u.blocks),
            if u.blocks == 1 { "" } else { "s" },
            fmt::bytes(u.bytes),
            u.reason
        ));
    }
    for i in &o.invalid_frees {
        let what = match i.kind {
            super::schema::InvalidFreeKind::DoubleFree => "double free",
            super::schema::InvalidFreeKind::NeverAllocated => {
                "free of an address no allocation the census saw returned"
            }
        };
        lines.push(format!(
            "{what}: {} time{} in {}{}",
            fmt::count(i.count),
            if i.count == 1 { "" } else { "s" },
            i.function,
            under(&i.rust_caller)
        ));
    }
    lines
}

/// The C-side sites worth a sentence: the most bytes at the peak or at exit first.
fn c_sites(c: &MemoryCensus, n: usize) -> Vec<&Site> {
    largest(c, n, |s| s.language.is_c_side())
}

/// The Rust sites worth a sentence, Rust's leaks among them (`CString::into_raw` strings
/// never taken back), the most bytes at the peak or at exit first.
fn rust_sites(c: &MemoryCensus, n: usize) -> Vec<&Site> {
    largest(c, n, |s| s.language == crate::stacks::Language::Rust)
}

/// The `n` sites `keep` keeps with the most bytes at the peak or at exit (then in all).
fn largest(c: &MemoryCensus, n: usize, keep: impl Fn(&Site) -> bool) -> Vec<&Site> {
    let mut v: Vec<&Site> = c.sites.iter().filter(|s| keep(s)).collect();
    v.sort_by(|a, b| {
        let key =
            |s: &Site| (s.figures.bytes_at_peak.max(s.figures.bytes_at_exit), s.figures.bytes);
        key(b).cmp(&key(a))
    });
    v.truncate(n);
    v
}

impl MemoryCensus {
    /// The headline: the heap in all, at its peak, at exit.
    pub fn headline(&self) -> String {
        let t = &self.totals;
        format!(
            "heap of `{}`: {} process{}; {} allocated; at its peak {} live; at exit {} never \
             freed",
            self.command.join(" "),
            self.processes.len(),
            if self.processes.len() == 1 { "" } else { "es" },
            amount(t.bytes, t.blocks),
            amount(t.bytes_at_peak, t.blocks_at_peak),
            amount(t.bytes_at_exit, t.blocks_at_exit)
        )
    }

    /// The terminal summary.
    pub fn text(&self) -> String {
        let mut s = format!("{}\n", self.headline());
        let _ = writeln!(s, "at the peak: {}", shares(self, |f| f.bytes_at_peak));
        let _ = writeln!(s, "at exit: {}", shares(self, |f| f.bytes_at_exit));
        if !self.rust_heap_seen {
            let _ = writeln!(s, "Rust's heap is not seen; C's is (see the note)");
        }
        if self.by_requester != self.by_language && !self.by_requester.is_empty() {
            let asked = shares_of(self, &self.by_requester, |f| f.bytes);
            let served = shares_of(self, &self.by_allocator, |f| f.bytes);
            let _ = writeln!(s, "allocated in all, by who asked: {asked}");
            let _ = writeln!(s, "allocated in all, by who served: {served}");
        }
        let owned = ownership_sentences(self, 8);
        if let Some((first, rest)) = owned.split_first() {
            let _ = writeln!(s, "\nownership: {first}");
            for line in rest {
                let _ = writeln!(s, "- {line}");
            }
        }
        for (side, sites) in [("C-side", c_sites(self, 8)), ("Rust", rust_sites(self, 5))] {
            if !sites.is_empty() {
                let _ = writeln!(s, "\nthe largest {side} sites:");
                for site in sites {
                    let _ = writeln!(s, "- {}", site_sentence(site));
                }
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }

    /// `memory.md`.
    pub fn markdown(&self) -> String {
        let mut s = format!("# Heap census\n\n{}.\n\n", self.headline());
        let _ = writeln!(s, "- At the peak: {}.", shares(self, |f| f.bytes_at_peak));
        let _ = writeln!(s, "- At exit: {}.", shares(self, |f| f.bytes_at_exit));
        let _ = writeln!(s, "\n## By language\n");
        s.push_str("| language | allocated | blocks | at peak | blocks | at exit | blocks |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for (l, f) in &self.by_language {
            let _ = writeln!(s, "| {l} | {} |", figures_cells(f));
        }
        let owned = ownership_sentences(self, 50);
        if let Some((first, rest)) = owned.split_first() {
            let _ = writeln!(s, "\n## Ownership\n\n{first}.\n");
            for line in rest {
                let _ = writeln!(s, "- {line}.");
            }
        }
        let _ = writeln!(s, "\n## The C side, in sentences\n");
        for site in c_sites(self, 20) {
            let _ = writeln!(s, "- {}.", site_sentence(site));
        }
        let _ = writeln!(s, "\n## The Rust side, in sentences\n");
        for site in rust_sites(self, 20) {
            let _ = writeln!(s, "- {}.", site_sentence(site));
        }
        let _ = writeln!(s, "\n## Sites\n");
        s.push_str(
            "| site | language | Rust caller | allocated | blocks | at peak | blocks | at exit | \
             blocks |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for site in &self.sites {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                site.function.replace('|', "\\|"),
                site.language.name(),
                site.rust_caller.as_deref().unwrap_or("").replace('|', "\\|"),
                figures_cells(&site.figures)
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }
}

fn figures_cells(f: &Figures) -> String {
    [f.bytes, f.blocks, f.bytes_at_peak, f.blocks_at_peak, f.bytes_at_exit, f.blocks_at_exit]
        .iter()
        .map(|&n| fmt::count(n))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Every file of the census directory: name and contents.
pub(crate) fn files(c: &MemoryCensus, stacks: &Stacks) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mut files =
        vec![(MEMORY_FILE, c.to_json()?.into_bytes()), ("memory.md", c.markdown().into_bytes())];
    let (peak, _) = stacks.profile(|f| f.bytes_at_peak);
    let (exit, _) = stacks.profile(|f| f.bytes_at_exit);
    let (peak_folded, exit_folded) = (peak.folded(), exit.folded());
    let title = |what: &str| format!("{what}: {}", c.command.join(" "));
    files.push((
        "peak.svg",
        crate::flame::flamegraph(&peak, &peak_folded, &title("bytes live at the heap's peak"))?,
    ));
    files.push((
        "exit.svg",
        crate::flame::flamegraph(&exit, &exit_folded, &title("bytes never freed (live at exit)"))?,
    ));
    files.push(("peak.folded", peak_folded.into_bytes()));
    files.push(("exit.folded", exit_folded.into_bytes()));
    let (all, figures) = stacks.profile(|f| f.blocks.max(f.blocks_at_peak));
    let values: Vec<Vec<i64>> = figures
        .iter()
        .map(|f| {
            vec![f.blocks as i64, f.bytes as i64, f.blocks_at_peak as i64, f.bytes_at_peak as i64]
        })
        .collect();
    let types = [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ];
    let comment = format!("ffiprof memory: {} (in use: at the heap's peak)", c.command.join(" "));
    files.push((
        "memory.pb.gz",
        crate::pprof_proto::encode_values(&all, &types, &values, &comment)?,
    ));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_with_binary_units() {
        assert_eq!(fmt::bytes(0), "0 B");
        assert_eq!(fmt::bytes(1023), "1023 B");
        assert_eq!(fmt::bytes(1536), "1.5 KiB");
        assert_eq!(fmt::bytes(7_900_000), "7.5 MiB");
    }
}
