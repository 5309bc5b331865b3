//! Flamegraphs, drawn by `inferno`: coloured by language, and differential (red where a
//! frame's share grew). Both take folded stacks ([`Profile::folded`]), computed once per
//! profile by the caller, which also writes them to disk.

use inferno::flamegraph::color::{parse_hex_color, PaletteMap};

use crate::error::{Error, Result};
use crate::stacks::{Language, Profile};

/// Fill colour of each language in flamegraphs.
pub(crate) fn language_color(language: Language) -> &'static str {
    match language {
        Language::Rust => "#e8955a",
        Language::Go => "#4fc3d9",
        Language::C => "#5b8fd9",
        Language::Cpp => "#a57fd6",
        Language::CRuntime => "#5fb878",
        Language::Kernel => "#d9534f",
        Language::Glue => "#b5b5b5",
        Language::Unknown => "#e6e0c8",
    }
}

fn color_word(language: Language) -> &'static str {
    match language {
        Language::Rust => "orange",
        Language::Go => "cyan",
        Language::C => "blue",
        Language::Cpp => "purple",
        Language::CRuntime => "green",
        Language::Kernel => "red",
        Language::Glue => "grey",
        Language::Unknown => "sand",
    }
}

/// The legend, as the flamegraph's subtitle.
pub(crate) fn legend() -> String {
    let parts: Vec<String> =
        Language::ALL.iter().map(|l| format!("{} = {}", l.name(), color_word(*l))).collect();
    format!("colours: {}", parts.join(", "))
}

/// Characters of a title that fit the image's width (1 200 px, inferno's 17 px title font)
/// with room to spare: a longer one is cut, its end marked.
const TITLE_CHARS: usize = 90;

/// `title`, cut to [`TITLE_CHARS`] where longer (a command line, a long program name).
fn fitted_title(title: &str) -> String {
    if title.chars().count() <= TITLE_CHARS {
        return title.to_owned();
    }
    let cut: String = title.chars().take(TITLE_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

fn render_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Render { what: what.to_owned(), source }
}

fn draw(
    folded: &str,
    title: &str,
    subtitle: String,
    palette: Option<&mut PaletteMap>,
    count_name: &str,
) -> Result<Vec<u8>> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = fitted_title(title);
    options.subtitle = Some(subtitle);
    options.count_name = count_name.to_owned();
    options.palette_map = palette;
    options.deterministic = true;
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .map_err(render_err(title))?;
    Ok(svg)
}

/// A flamegraph of `profile`, whose folded stacks are `folded`, each frame filled with
/// its language's colour. Without samples, an image that says so.
pub(crate) fn flamegraph(profile: &Profile, folded: &str, title: &str) -> Result<Vec<u8>> {
    flamegraph_of(profile, folded, title, "samples")
}

/// [`flamegraph`] of weights that count `count_name` (samples, microseconds).
pub(crate) fn flamegraph_of(
    profile: &Profile,
    folded: &str,
    title: &str,
    count_name: &str,
) -> Result<Vec<u8>> {
    if folded.trim().is_empty() {
        let escaped = title.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        return Ok(format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"60\">\
             <text x=\"10\" y=\"24\" font-family=\"monospace\">{escaped}</text>\
             <text x=\"10\" y=\"48\" font-family=\"monospace\">no samples</text></svg>\n"
        )
        .into_bytes());
    }
    let mut palette = PaletteMap::default();
    for (function, language) in profile.languages() {
        let color = parse_hex_color(language_color(language)).expect("valid colour constants");
        palette.insert(&function, color);
    }
    draw(folded, title, legend(), Some(&mut palette), count_name)
}

/// A differential flamegraph from folded stacks `before` to `after`: frame widths from
/// `after`, red where a frame's share grew, blue where it shrank. Counts are normalized
/// first, so two profiles of different lengths compare by share.
pub(crate) fn differential(before: &str, after: &str, title: &str) -> Result<Vec<u8>> {
    let mut diff = Vec::new();
    let options = inferno::differential::Options { normalize: true, ..Default::default() };
    inferno::differential::from_readers(options, before.as_bytes(), after.as_bytes(), &mut diff)
        .map_err(render_err(title))?;
    let text = String::from_utf8_lossy(&diff);
    let subtitle = "red: larger share after, blue: smaller share after".to_owned();
    draw(&text, title, subtitle, None, "samples")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_title_is_cut_to_fit_the_image() {
        assert_eq!(fitted_title("pow / chain / per-call"), "pow / chain / per-call");
        let long = format!("bytes live at the heap's peak: {}", "./prog --flag ".repeat(20));
        let fitted = fitted_title(&long);
        assert_eq!(fitted.chars().count(), TITLE_CHARS);
        assert!(fitted.ends_with('…') && fitted.starts_with("bytes live at the heap's peak"));
    }
    use crate::stacks::Language::*;

    #[test]
    fn flamegraph_colours_frames_by_language() {
        let profile = crate::stacks::pow_profile_for_tests();
        let svg = flamegraph(&profile, &profile.folded(), "t").unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("ffiprof::loop") && svg.contains("pow"));
        // inferno writes fills as rgb(r,g,b).
        let rgb = |hex: &str| {
            let c = parse_hex_color(hex).unwrap();
            format!("rgb({},{},{})", c.r, c.g, c.b)
        };
        assert!(svg.contains(&rgb(language_color(Rust))), "no Rust-coloured frame");
        assert!(svg.contains(&rgb(language_color(CRuntime))), "no C-runtime-coloured frame");
        assert!(svg.contains("colours: rust = orange"));
        // The legend once: as the subtitle, not in the title too.
        assert_eq!(svg.matches("colours:").count(), 1);
    }

    #[test]
    fn a_name_found_in_two_languages_is_drawn_in_each_colour() {
        let profile = Profile::from_named_stacks(&[
            (vec![("main", "app", Rust), ("work", "app", Rust)], 3),
            (vec![("start", "libc.so.6", CRuntime), ("main", "tool", C)], 2),
        ]);
        let folded = profile.folded();
        assert_eq!(folded, "main [rust];work 3\nstart;main [c] 2\n");
        let svg = String::from_utf8(flamegraph(&profile, &folded, "t").unwrap()).unwrap();
        let rgb = |hex: &str| {
            let c = parse_hex_color(hex).unwrap();
            format!("rgb({},{},{})", c.r, c.g, c.b)
        };
        for (name, language) in [("main [rust]", Rust), ("main [c]", C)] {
            let at = svg.find(&format!("<title>{name} (")).expect(name);
            // Each frame's rectangle follows its title, filled with its language's colour.
            let rect = &svg[at..(at + 300).min(svg.len())];
            assert!(rect.contains(&rgb(language_color(language))), "{name}: {rect}");
        }
    }

    #[test]
    fn differential_marks_growth() {
        let before = Profile::from_named_stacks(&[(vec![("a", "", Rust), ("b", "", C)], 10)]);
        let after = Profile::from_named_stacks(&[
            (vec![("a", "", Rust), ("b", "", C)], 5),
            (vec![("a", "", Rust), ("c", "", C)], 5),
        ]);
        let svg = differential(&before.folded(), &after.folded(), "d").unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains(">c<") || svg.contains("c ("), "the new frame is drawn");
    }
}
