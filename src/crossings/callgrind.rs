//! Reading what callgrind writes: the call graph of one process, as calls and inclusive
//! instructions per caller -> callee edge, and each function's own instructions.
//!
//! The format is valgrind's "Callgrind Format, Version 1" (valgrind's manual, chapter
//! "Callgrind Format Specification"). What this reader relies on:
//! - header lines `key: value` (`cmd:`, `pid:`, `positions:`, `events:`, `summary:`,
//!   `totals:`), anywhere in the file;
//! - position lines `ob=`, `fl=`/`fi=`/`fe=`, `fn=` for the code that follows, and `cob=`,
//!   `cfi=`/`cfl=`, `cfn=` for the target of the next call; each may be compressed, `(7)
//!   name` defining id 7 and `(7)` using it, one id space per kind (`cob` shares `ob`'s,
//!   `cfi`/`cfl` share `fl`'s, `cfn` shares `fn`'s);
//! - cost lines: as many subpositions as `positions:` names (absolute, `0x..`, or relative
//!   `+n`, `-n`, `*`, which this reader does not need to resolve), then one count per
//!   event of `events:`, missing counts being zero;
//! - `calls=COUNT TARGET` followed by one cost line whose counts are the call's inclusive
//!   cost; a call without `cob=` stays in the caller's object.
//!
//! Functions are keyed by object and name. The reader never panics: a line it cannot
//! read is counted in [`CallGraph::unreadable_lines`] and skipped, counts saturate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A function of the call graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Function {
    /// Its name as callgrind wrote it (demangled), or `0x...` for code without a symbol.
    pub name: String,
    /// The object file it lives in (a path), empty when callgrind did not say.
    pub object: String,
    /// Its source file, `None` where callgrind had no debug info (`???`).
    pub file: Option<String>,
    /// Instructions executed in it, excluding its calls.
    pub self_instructions: u64,
}

/// A function of one [`CallGraph`]: its index in [`CallGraph::functions`]. Vectors of a
/// graph's functions (their languages, their edges) are indexed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FnId(pub u32);

impl<T> std::ops::Index<FnId> for Vec<T> {
    type Output = T;
    fn index(&self, id: FnId) -> &T {
        &self[id.0 as usize]
    }
}

impl<T> std::ops::IndexMut<FnId> for Vec<T> {
    fn index_mut(&mut self, id: FnId) -> &mut T {
        &mut self[id.0 as usize]
    }
}

/// Calls from one function to another, summed over call sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edge {
    /// The caller.
    pub caller: FnId,
    /// The callee.
    pub callee: FnId,
    /// Calls made.
    pub calls: u64,
    /// Instructions executed inside those calls (the callee and everything below it).
    pub inclusive: u64,
}

/// The call graph of one callgrind output file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CallGraph {
    /// The command line (`cmd:`).
    pub command: String,
    /// The process id (`pid:`), where given.
    pub pid: Option<u32>,
    /// The event counted (`Ir` for instructions).
    pub event: String,
    /// The program's total of that event: `totals:` or `summary:`, else the sum of every
    /// function's own count.
    pub total: u64,
    /// Every function that executed or was called.
    pub functions: Vec<Function>,
    /// Every caller -> callee pair, once.
    pub edges: Vec<Edge>,
    /// Lines that could not be read and were skipped (0 for what callgrind writes).
    pub unreadable_lines: u64,
    /// The total the file states (`summary:`, `totals:`), where it states one.
    pub stated_total: Option<u64>,
    /// Every function's own count, summed: equal to the stated total in a whole file.
    pub counted_total: u64,
}

impl CallGraph {
    /// Why the file is not whole, where its costs do not add up to the total it states
    /// (a file cut short holds its header's `summary:` but not all the costs after it).
    pub(crate) fn incomplete(&self) -> Option<String> {
        let stated = self.stated_total?;
        (stated != self.counted_total).then(|| {
            format!(
                "its costs add up to {} {} where its `summary:`/`totals:` line states {stated}: \
                 the file is cut short or inconsistent",
                self.counted_total, self.event
            )
        })
    }
}

/// The kinds of compressed names: objects, files, functions.
#[derive(Default)]
struct Names {
    objects: HashMap<u64, String>,
    files: HashMap<u64, String>,
    functions: HashMap<u64, String>,
}

/// Reads a name spec's value: `(id) name` defines id, `(id)` refers to it, anything else
/// is the name itself. `None` for a reference to an id never defined.
fn name(value: &str, table: &mut HashMap<u64, String>) -> Option<String> {
    let trimmed = value.trim_start();
    if let Some(rest) = trimmed.strip_prefix('(') {
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            let close = rest.find(')')?;
            let id: u64 = rest[..close].parse().ok()?;
            let tail = rest[close + 1..].trim();
            if tail.is_empty() {
                return table.get(&id).cloned();
            }
            table.insert(id, tail.to_owned());
            return Some(tail.to_owned());
        }
    }
    Some(value.trim().to_owned())
}

/// One cost line: the count of event `event` after `positions` subpositions.
fn cost(line: &str, positions: usize, event: usize) -> Option<u64> {
    let mut fields = line.split_ascii_whitespace();
    for _ in 0..positions {
        let p = fields.next()?;
        let ok = p == "*"
            || p.strip_prefix(['+', '-'])
                .map_or_else(|| number(p).is_some(), |r| number(r).is_some());
        if !ok {
            return None;
        }
    }
    let mut counts = fields.map(|f| f.parse::<u64>().ok());
    match counts.nth(event) {
        None => Some(0),
        Some(v) => v,
    }
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A function's name without the `'2` that callgrind appends to a recursive function's
/// deeper levels: each level is the same function.
fn recursion_level(name: &str) -> &str {
    match name.rsplit_once('\'') {
        Some((head, level))
            if !head.is_empty()
                && !level.is_empty()
                && level.bytes().all(|b| b.is_ascii_digit()) =>
        {
            head
        }
        _ => name,
    }
}

/// A file's source name as the language rules want it: `???` is none.
fn source(file: &str) -> Option<String> {
    (!file.is_empty() && file != "???").then(|| file.to_owned())
}

#[derive(Default)]
struct Builder {
    graph: CallGraph,
    index: HashMap<(String, String), FnId>,
    edges: HashMap<(FnId, FnId), usize>,
}

impl Builder {
    fn function(&mut self, object: &str, name: &str, file: Option<&str>) -> FnId {
        let key = (object.to_owned(), name.to_owned());
        if let Some(&i) = self.index.get(&key) {
            let f = &mut self.graph.functions[i];
            if f.file.is_none() {
                f.file = file.and_then(source);
            }
            return i;
        }
        self.graph.functions.push(Function {
            name: name.to_owned(),
            object: object.to_owned(),
            file: file.and_then(source),
            self_instructions: 0,
        });
        let i = FnId(self.graph.functions.len() as u32 - 1);
        self.index.insert(key, i);
        i
    }

    fn call(&mut self, caller: FnId, callee: FnId, calls: u64, inclusive: u64) {
        let n = self.graph.edges.len();
        let i = *self.edges.entry((caller, callee)).or_insert(n);
        if i == n {
            self.graph.edges.push(Edge { caller, callee, calls: 0, inclusive: 0 });
        }
        let e = &mut self.graph.edges[i];
        e.calls = e.calls.saturating_add(calls);
        e.inclusive = e.inclusive.saturating_add(inclusive);
    }
}

/// A `--from` file that exists and starts as callgrind's output does, checked before
/// anything is written.
pub(crate) fn check_file(path: &Path) -> Result<()> {
    use std::io::Read as _;
    let missing = |source| Error::InputUnreadable { path: path.to_owned(), source };
    let mut head = Vec::with_capacity(64 * 1024);
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(missing)?;
    match not_callgrind(&head) {
        None => Ok(()),
        Some(reason) => Err(Error::NotCallgrind { path: path.to_owned(), reason }),
    }
}

/// Reads callgrind's files, one call graph each.
pub(crate) fn read_graphs(files: &[PathBuf]) -> Result<Vec<CallGraph>> {
    let mut graphs = Vec::with_capacity(files.len());
    for f in files {
        let bytes = std::fs::read(f)
            .map_err(|source| Error::InputUnreadable { path: f.clone(), source })?;
        let graph = parse(&bytes);
        if let Some(what) = graph.incomplete() {
            return Err(Error::InputIncomplete { path: f.clone(), what });
        }
        graphs.push(graph);
    }
    Ok(graphs)
}

/// Why `head` (a file's first bytes) is not the start of a callgrind output file, if it is
/// not. The callgrind format (valgrind's manual, "Callgrind Format Specification") puts a
/// header first: an optional `# callgrind format` line, then header lines, of which
/// `events:` is mandatory and comes before any cost line.
pub(crate) fn not_callgrind(head: &[u8]) -> Option<String> {
    if head.is_empty() {
        return Some("the file is empty".into());
    }
    let text = String::from_utf8_lossy(head);
    for line in text.lines().map(str::trim) {
        if line.starts_with("events:") {
            return None;
        }
        // The header lines the format defines before `events:`.
        const HEADER: [&str; 8] =
            ["version", "creator", "pid", "cmd", "part", "desc", "positions", "thread"];
        let header = line.is_empty()
            || line.starts_with('#')
            || line.split_once(':').is_some_and(|(key, _)| HEADER.contains(&key.trim()));
        if !header {
            return Some(format!("line `{}` comes before any `events:` header", shorten(line)));
        }
    }
    Some("no `events:` header line".into())
}

fn shorten(line: &str) -> String {
    let cut: String = line.chars().take(40).collect();
    if cut.len() < line.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

/// The reader's state while it goes through a file's lines.
#[derive(Default)]
struct Reader {
    b: Builder,
    names: Names,
    positions: usize,
    event_names: Vec<String>,
    event: usize,
    stated_total: Option<u64>,
    object: String,
    file: String,
    current: Option<FnId>,
    /// The next call's target object, file and function.
    call_object: Option<String>,
    call_file: Option<String>,
    call_fn: Option<String>,
    /// The call waiting for its cost line: callee and calls.
    pending: Option<(FnId, u64)>,
}

impl Reader {
    /// A cost line: the cost of the pending call, or the current function's own.
    fn cost_line(&mut self, line: &str) {
        let c = cost(line, self.positions, self.event);
        match (self.pending.take(), c, self.current) {
            (Some((callee, calls)), Some(inclusive), Some(caller)) => {
                self.b.call(caller, callee, calls, inclusive)
            }
            (None, Some(c), Some(f)) => {
                let s = &mut self.b.graph.functions[f].self_instructions;
                *s = s.saturating_add(c);
            }
            _ => self.b.graph.unreadable_lines += 1,
        }
    }

    /// A `calls=` line: the call waits for its cost line.
    fn calls_line(&mut self, value: &str) {
        let count = value.split_ascii_whitespace().next().and_then(|c| c.parse().ok());
        match (count, self.call_fn.take()) {
            (Some(count), Some(callee)) => {
                let obj = self.call_object.take().unwrap_or_else(|| self.object.clone());
                // The target's file is only known for sure from its own `fn=` block;
                // until then the call's `cfi=` stands in.
                let target_file = self.call_file.take();
                let i = self.b.function(&obj, recursion_level(&callee), target_file.as_deref());
                self.pending = Some((i, count));
            }
            _ => {
                self.b.graph.unreadable_lines += 1;
                // Its cost line belongs to no call we can name: skip it too.
                self.pending = None;
                self.call_object = None;
                self.call_file = None;
            }
        }
    }

    /// A `key=value` position line (object, file, function, call target).
    fn position_line(&mut self, key: &str, value: &str) {
        let names = &mut self.names;
        match key {
            "ob" => self.object = name(value, &mut names.objects).unwrap_or_default(),
            "fl" | "fi" | "fe" => self.file = name(value, &mut names.files).unwrap_or_default(),
            "fn" => {
                self.current = name(value, &mut names.functions)
                    .map(|n| self.b.function(&self.object, recursion_level(&n), Some(&self.file)));
                if self.current.is_none() {
                    self.b.graph.unreadable_lines += 1;
                }
            }
            "cob" => self.call_object = name(value, &mut names.objects),
            "cfi" | "cfl" => self.call_file = name(value, &mut names.files),
            "cfn" => self.call_fn = name(value, &mut names.functions),
            "calls" => self.calls_line(value),
            "jump" | "jcnd" => {}
            _ => self.b.graph.unreadable_lines += 1,
        }
    }

    /// A `key: value` header line.
    fn header_line(&mut self, key: &str, value: &str) {
        match key {
            "cmd" => self.b.graph.command = value.to_owned(),
            "pid" => self.b.graph.pid = value.parse().ok(),
            "positions" => self.positions = value.split_ascii_whitespace().count().max(1),
            "events" => {
                self.event_names = value.split_ascii_whitespace().map(str::to_owned).collect();
                self.event = self.event_names.iter().position(|e| e == "Ir").unwrap_or(0);
            }
            "summary" | "totals" => {
                let t = value.split_ascii_whitespace().nth(self.event).and_then(|v| v.parse().ok());
                if t.is_some() {
                    self.stated_total = t;
                }
            }
            _ => {}
        }
    }

    fn line(&mut self, line: &str) {
        let first = line.as_bytes()[0];
        if self.pending.is_some() || first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'*') {
            self.cost_line(line);
        } else if let Some((key, value)) = line.split_once('=') {
            self.position_line(key, value);
        } else if let Some((key, value)) = line.split_once(':') {
            self.header_line(key.trim(), value.trim());
        } else {
            self.b.graph.unreadable_lines += 1;
        }
    }

    fn finish(mut self) -> CallGraph {
        if self.pending.is_some() {
            self.b.graph.unreadable_lines += 1;
        }
        let mut graph = self.b.graph;
        graph.event = self.event_names.get(self.event).cloned().unwrap_or_else(|| "Ir".into());
        graph.counted_total =
            graph.functions.iter().fold(0u64, |a, f| a.saturating_add(f.self_instructions));
        graph.stated_total = self.stated_total;
        graph.total = self.stated_total.unwrap_or(graph.counted_total);
        graph
    }
}

/// Reads one callgrind output file. Never fails: what cannot be read is skipped and
/// counted.
pub(crate) fn parse(bytes: &[u8]) -> CallGraph {
    let text = String::from_utf8_lossy(bytes);
    let mut reader = Reader { positions: 1, ..Reader::default() };
    for raw in text.lines() {
        let line = raw.trim_end();
        if !(line.is_empty() || line.starts_with('#')) {
            reader.line(line);
        }
    }
    reader.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 42
cmd:  ./prog --flag
part: 1

positions: line
events: Ir
summary: 820

ob=(1) /bin/prog
fl=(1) main.rs
fn=(1) prog::main
16 20
cfl=(2) lib.c
cfn=(2) work
calls=1 50
16 400
cfn=(2)
calls=3 50
+2 400
cob=(2) /lib/libm.so.6
cfi=(3) ???
cfn=(3) pow
calls=2 0
* 700

fl=(2)
fn=(2)
51 100
cob=(1)
cfi=(1)
cfn=(1)
calls=2 16
51 300

ob=(2)
fl=(3)
fn=(3)
0 700
totals: 820
";

    #[test]
    fn a_file_cut_short_is_told_by_its_own_summary() {
        // Cut after pow's call from main: main's and work's costs are missing.
        let cut = &SAMPLE[..SAMPLE.find("fl=(2)\nfn=(2)").unwrap()];
        let g = parse(cut.as_bytes());
        let why = g.incomplete().expect("a cut file is incomplete");
        assert!(why.contains("add up to 20 Ir") && why.contains("states 820"), "{why}");
        // Without a stated total there is nothing to hold the costs against.
        let no_summary = SAMPLE.replace("summary: 820\n", "").replace("totals: 820\n", "");
        assert_eq!(parse(no_summary.as_bytes()).incomplete(), None);
    }

    fn find<'a>(g: &'a CallGraph, name: &str) -> (FnId, &'a Function) {
        let (i, f) = g.functions.iter().enumerate().find(|(_, f)| f.name == name).unwrap();
        (FnId(i as u32), f)
    }

    #[test]
    fn reads_functions_edges_and_totals() {
        let g = parse(SAMPLE.as_bytes());
        assert_eq!(g.unreadable_lines, 0);
        assert_eq!((g.pid, g.command.as_str(), g.total), (Some(42), "./prog --flag", 820));
        assert_eq!(g.incomplete(), None, "every function's own count adds up to the summary");
        let (main, m) = find(&g, "prog::main");
        let (work, w) = find(&g, "work");
        let (pow, p) = find(&g, "pow");
        assert_eq!((m.self_instructions, m.file.as_deref()), (20, Some("main.rs")));
        assert_eq!(
            (w.self_instructions, w.file.as_deref(), w.object.as_str()),
            (100, Some("lib.c"), "/bin/prog")
        );
        assert_eq!(
            (p.object.as_str(), p.file.as_deref(), p.self_instructions),
            ("/lib/libm.so.6", None, 700)
        );
        let edge = |a, b| g.edges.iter().find(|e| e.caller == a && e.callee == b).copied().unwrap();
        assert_eq!((edge(main, work).calls, edge(main, work).inclusive), (4, 800));
        assert_eq!((edge(main, pow).calls, edge(main, pow).inclusive), (2, 700));
        assert_eq!((edge(work, main).calls, edge(work, main).inclusive), (2, 300));
        assert_eq!(g.edges.len(), 3);
    }

    #[test]
    fn recursion_levels_are_one_function() {
        assert_eq!(recursion_level("msort_with_tmp.part.0'2"), "msort_with_tmp.part.0");
        assert_eq!(recursion_level("f'"), "f'");
        assert_eq!(recursion_level("'2"), "'2");
        assert_eq!(recursion_level("a::b"), "a::b");
    }

    #[test]
    fn two_positions_and_a_second_event() {
        let text = "positions: instr line\nevents: Dr Ir\nob=a\nfl=x.c\nfn=f\n0x10 3 5 7\n+3 * 1 2\ncfn=g\ncalls=9 0x20\n* * 4 90\n";
        let g = parse(text.as_bytes());
        assert_eq!(g.unreadable_lines, 0);
        assert_eq!(find(&g, "f").1.self_instructions, 9);
        assert_eq!(g.edges[0].calls, 9);
        assert_eq!(g.edges[0].inclusive, 90);
        assert_eq!(g.event, "Ir");
        assert_eq!(g.total, 9);
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let text = "events: Ir\nfn=(9)\n12 4\ncalls=x 1\nwhat is this\ncfn=(3) g\ncalls=2 1\n";
        let g = parse(text.as_bytes());
        assert!(g.unreadable_lines >= 3, "{g:?}");
        assert!(g.edges.is_empty());
    }

    /// A small deterministic generator (xorshift), so the property runs the same inputs
    /// everywhere.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn never_panics_on_generated_truncated_or_mutated_input() {
        let pieces = [
            "fn=",
            "cfn=",
            "cob=",
            "cfi=",
            "ob=",
            "fl=",
            "fi=",
            "fe=",
            "calls=",
            "(",
            ")",
            "(1)",
            "(18446744073709551615)",
            "(99999999999999999999999)",
            " ",
            "\n",
            "0x",
            "+",
            "-",
            "*",
            "18446744073709551615",
            "1",
            "42",
            "summary:",
            "totals:",
            "events:",
            "positions:",
            "instr line",
            "Ir",
            "#",
            "=",
            ":",
            "\u{fffd}",
            "é",
            "\t",
            "jump=",
            "jcnd=",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let sample = SAMPLE.as_bytes();
        for round in 0..4000 {
            let mut bytes: Vec<u8> = match round % 3 {
                // Truncated at every kind of place.
                0 => sample[..rng.below(sample.len() + 1)].to_vec(),
                // Mutated bytes.
                1 => {
                    let mut b = sample.to_vec();
                    for _ in 0..1 + rng.below(12) {
                        let i = rng.below(b.len());
                        b[i] = rng.next() as u8;
                    }
                    b
                }
                // Built from the format's own pieces.
                _ => (0..rng.below(200))
                    .flat_map(|_| pieces[rng.below(pieces.len())].bytes())
                    .collect(),
            };
            if round % 7 == 0 {
                bytes.extend((0..rng.below(64)).map(|_| rng.next() as u8));
            }
            let g = parse(&bytes);
            for e in &g.edges {
                let n = g.functions.len();
                assert!((e.caller.0 as usize) < n && (e.callee.0 as usize) < n);
            }
        }
    }

    #[test]
    fn callgrind_headers_are_told_from_other_files() {
        let ours = b"# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 7\ncmd: ./p\npart: 1\n\npositions: line\nevents: Ir\nsummary: 10\n";
        assert_eq!(not_callgrind(ours), None);
        assert_eq!(not_callgrind(b"events: Ir\n"), None);
        let passwd =
            b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n";
        assert!(not_callgrind(passwd).unwrap().contains("before any `events:`"));
        assert!(not_callgrind(b"").unwrap().contains("empty"));
        assert!(not_callgrind(b"version: 1\ncmd: x\n").unwrap().contains("no `events:`"));
        assert!(not_callgrind(b"fn=main\n16 3\n").is_some());
    }
}
