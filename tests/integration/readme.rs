//! The README stays short, links every guide, and shows real output: each block marked
//! `<!-- output: NAME -->` is kept true, line by line, against a golden file
//! (`tests/data/NAME`) here, or against the command's output in the test that runs it
//! ([`shown`]). Figures differ from run to run, so lines are compared with every number
//! masked.

use std::path::Path;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// Every marked block of the README and the guides: its name and lines.
fn blocks() -> Vec<(String, Vec<String>)> {
    let mut text = readme();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut guides: Vec<_> = std::fs::read_dir(docs).unwrap().map(|e| e.unwrap().path()).collect();
    guides.sort();
    for guide in guides {
        text.push_str(&std::fs::read_to_string(guide).unwrap());
    }
    let mut found = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix("<!-- output: ") else { continue };
        let name = name.trim_end_matches("-->").trim().to_owned();
        assert!(lines.next().is_some_and(|l| l.starts_with("```")), "{name}: no block follows");
        let block: Vec<String> =
            lines.by_ref().take_while(|l| !l.starts_with("```")).map(str::to_owned).collect();
        found.push((name, block));
    }
    found
}

/// A line with its numbers masked (a sign, a decimal point, thousands separated by commas
/// or spaces), its spacing collapsed and its judgement marks left out.
fn mask(line: &str) -> String {
    let c: Vec<char> = line.trim().chars().collect();
    let digit = |i: usize| c.get(i).is_some_and(|c| c.is_ascii_digit());
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if digit(i) || (matches!(c[i], '-' | '+') && digit(i + 1)) {
            i += 1;
            loop {
                let separator = matches!(c.get(i), Some('.') | Some(','));
                if digit(i) || (separator && digit(i + 1)) {
                    i += 1;
                } else if c.get(i) == Some(&' ') && (1..=3).all(|k| digit(i + k)) && !digit(i + 4) {
                    i += 4;
                } else {
                    break;
                }
            }
            out.push('#');
        } else if c[i].is_whitespace() {
            while c.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
            out.push(' ');
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    let out = ["] *", "] ~", "] =", "] !"].iter().fold(out, |s, m| s.replace(m, "]"));
    // A time's unit follows its size (`969.00 µs`, `4.680 s`): both are the figure's.
    let words: Vec<&str> = out.split(' ').collect();
    let mut kept: Vec<String> = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        let bare = w.trim_end_matches([',', ']', ')', ';']);
        let unit = matches!(bare, "s" | "ms" | "µs" | "ns");
        if unit && i > 0 && words[i - 1].ends_with('#') {
            kept.push(format!("t{}", &w[bare.len()..]));
        } else {
            kept.push((*w).to_owned());
        }
    }
    kept.join(" ")
}

/// Asserts every line of README block `name` is a line of `actual`, numbers masked.
pub fn shown(name: &str, actual: &str) {
    let blocks: Vec<Vec<String>> =
        blocks().into_iter().filter(|(n, _)| n == name).map(|(_, b)| b).collect();
    assert!(!blocks.is_empty(), "the README has no block `{name}`");
    let real: std::collections::HashSet<String> = actual.lines().map(mask).collect();
    for line in blocks.iter().flatten().filter(|l| !l.trim().is_empty()) {
        assert!(
            real.contains(&mask(line)),
            "README block `{name}`: this line is not what the command prints:\n{line}\n\
             masked: {}\nthe command printed:\n{actual}",
            mask(line)
        );
    }
}

/// The blocks whose command a test runs and checks with [`shown`].
const CHECKED_BY_THEIR_TESTS: &[&str] = &["bench", "list", "duel", "sampler-cost"];

#[test]
fn numbers_are_masked_and_the_rest_kept() {
    assert_eq!(mask("plusone   int  1.16 [1.15, 1.17] !  880000"), "plusone int # [#, #] #");
    assert_eq!(mask("-0.14 ns [-0.18 ns, 0.08 ns]"), "# t [# t, # t]");
    assert_eq!(
        mask("mixsum::mix_each -> mix    200 000  inlined"),
        "mixsum::mix_each -> mix # inlined"
    );
    assert_ne!(mask("per-call 3.2"), mask("batched 3.2"));
    assert_eq!(mask("+0.09% [-0.10%, +0.35%]"), "#% [#%, #%]");
    assert_eq!(mask("c++ 12"), "c++ #");
    assert_eq!(mask("CPU   969.00 µs  972.00 µs  1.000"), mask("CPU   4.680 s    4.761 s  1.020"));
}

#[test]
fn the_readme_is_short_and_links_every_guide() {
    let text = readme();
    assert!(text.lines().count() <= 250, "README.md has {} lines", text.lines().count());
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    for entry in std::fs::read_dir(&docs).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(text.contains(&format!("(docs/{name})")), "README links no docs/{name}");
    }
    // Every relative link, in the README and the guides, leads to a file.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![(root.join("README.md"), text.clone())];
    for entry in std::fs::read_dir(&docs).unwrap() {
        let path = entry.unwrap().path();
        pages.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
    }
    for (page, text) in pages {
        for link in common_links(&text) {
            let target = page.parent().unwrap().join(link.split('#').next().unwrap());
            assert!(target.exists(), "{}: the link {link} leads nowhere", page.display());
        }
    }
}

fn common_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    for piece in text.split("](").skip(1) {
        let Some(end) = piece.find(')') else { continue };
        let link = &piece[..end];
        if !link.contains("://") && !link.starts_with('#') {
            links.push(link.to_owned());
        }
    }
    links
}

#[test]
fn every_output_block_is_real() {
    let blocks = blocks();
    assert!(blocks.len() >= 8, "{} blocks", blocks.len());
    for (name, _) in &blocks {
        if let Some(file) = name.strip_prefix("tests/data/") {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
            shown(name, &std::fs::read_to_string(&path).unwrap());
        } else {
            assert!(CHECKED_BY_THEIR_TESTS.contains(&name.as_str()), "no test checks `{name}`");
        }
    }
}
