//! A package's binary or example built by cargo, for every command that runs a program
//! (`record`, `crossings`, `memory`, `xlto`): which target (`cargo metadata`), and its
//! release build by a [`Recipe`] (`cargo build --message-format=json`, read for the
//! executable and for whether anything compiled). Bad input is the user's to fix, in
//! cargo's words: no package, no such target, several binaries and no `--bin`, a failing
//! build.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The kind of target built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A `[[bin]]`.
    Bin,
    /// An `[[example]]`.
    Example,
}

impl Kind {
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Kind::Bin => "--bin",
            Kind::Example => "--example",
        }
    }
}

/// The target to build: its package, kind and name, and where cargo builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The package's name.
    pub package: String,
    /// Binary or example.
    pub kind: Kind,
    /// The target's name.
    pub name: String,
    /// The manifest cargo was pointed at (absent: the current directory's).
    pub manifest_path: Option<PathBuf>,
    /// The workspace's target directory.
    pub target_directory: PathBuf,
    /// Feature flags given to every build (`--features F`, `--all-features`,
    /// `--no-default-features`).
    #[serde(default)]
    pub feature_args: Vec<String>,
}

/// The cargo to run: `$CARGO` where set (as under `cargo run`), else `cargo`.
pub(crate) fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn manifest_args(manifest: Option<&Path>) -> Vec<OsString> {
    manifest.map_or_else(Vec::new, |m| vec!["--manifest-path".into(), m.into()])
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    target_directory: PathBuf,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    targets: Vec<MetaTarget>,
}

#[derive(Deserialize)]
struct MetaTarget {
    name: String,
    kind: Vec<String>,
}

/// Finds the target to build: `wanted` (a kind and a name), or the only binary (of
/// `package` where given, else of the workspace). Bad input (no Cargo.toml, no such
/// package or target, several binaries and no `--bin`) is the user's to fix.
pub fn find_target(
    manifest: Option<&Path>,
    package: Option<&str>,
    wanted: Option<(Kind, &str)>,
) -> Result<Target> {
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .args(manifest_args(manifest))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::MissingTool {
            tool: "cargo".into(),
            install: format!("it could not be run ({e}); ffiprof builds the package with cargo"),
        })?;
    if !out.status.success() {
        return Err(Error::InvalidOption(format!(
            "cargo cannot read the package: {}",
            crate::fmt::last_lines(&String::from_utf8_lossy(&out.stderr), 5).trim()
        )));
    }
    let meta: Metadata = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::Internal(format!("cargo metadata wrote what ffiprof cannot read: {e}"))
    })?;
    choose(meta, manifest, package, wanted)
}

fn choose(
    mut meta: Metadata,
    manifest: Option<&Path>,
    package: Option<&str>,
    wanted: Option<(Kind, &str)>,
) -> Result<Target> {
    if let Some(p) = package {
        let known: Vec<String> = meta.packages.iter().map(|x| x.name.clone()).collect();
        meta.packages.retain(|x| x.name == p);
        if meta.packages.is_empty() {
            return Err(Error::InvalidOption(format!(
                "the workspace has no package `{p}` (it has: {})",
                known.join(", ")
            )));
        }
    }
    let of_kind = |kind: Kind| -> Vec<(String, String)> {
        let k = match kind {
            Kind::Bin => "bin",
            Kind::Example => "example",
        };
        let mut found: Vec<(String, String)> = meta
            .packages
            .iter()
            .flat_map(|p| p.targets.iter().map(move |t| (p, t)))
            .filter(|(_, t)| t.kind.iter().any(|x| x == k))
            .map(|(p, t)| (p.name.clone(), t.name.clone()))
            .collect();
        found.sort();
        found
    };
    let names = |v: &[(String, String)]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(", ")
        }
    };
    let (kind, found) = match wanted {
        Some((kind, name)) => {
            let all = of_kind(kind);
            let found: Vec<_> = all.iter().filter(|(_, t)| t == name).cloned().collect();
            if found.is_empty() {
                return Err(Error::InvalidOption(format!(
                    "the package has no {} `{name}` (it has: {})",
                    if kind == Kind::Bin { "binary" } else { "example" },
                    names(&all)
                )));
            }
            (kind, found)
        }
        None => {
            let bins = of_kind(Kind::Bin);
            if bins.len() != 1 {
                return Err(Error::InvalidOption(format!(
                    "say which program to build: --bin NAME (binaries: {}) or --example NAME \
                     (examples: {})",
                    names(&bins),
                    names(&of_kind(Kind::Example))
                )));
            }
            (Kind::Bin, bins)
        }
    };
    let (package, name) = found.into_iter().next().expect("one target found");
    Ok(Target {
        package,
        kind,
        name,
        manifest_path: manifest.map(Path::to_owned),
        target_directory: meta.target_directory,
        feature_args: Vec::new(),
    })
}

/// Which target of which package to build and run, as cargo's own flags say it
/// (`--manifest-path`, `--package`, `--bin`, `--example`, `--features`, `--all-features`,
/// `--no-default-features`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Selection {
    /// The package's Cargo.toml (absent: cargo's own search from the current directory).
    pub manifest_path: Option<PathBuf>,
    /// The package, in a workspace of several.
    pub package: Option<String>,
    /// A binary, by name.
    pub bin: Option<String>,
    /// An example, by name.
    pub example: Option<String>,
    /// Features, as cargo takes them.
    pub features: Vec<String>,
    /// Every feature.
    pub all_features: bool,
    /// Without the default features.
    pub no_default_features: bool,
}

impl Selection {
    /// True where any of cargo's flags was given: the program is the package's target.
    pub fn given(&self) -> bool {
        self.manifest_path.is_some()
            || self.package.is_some()
            || self.bin.is_some()
            || self.example.is_some()
    }

    /// The kind and name asked for.
    pub fn wanted(&self) -> Option<(Kind, &str)> {
        match (&self.bin, &self.example) {
            (Some(name), _) => Some((Kind::Bin, name)),
            (None, Some(name)) => Some((Kind::Example, name)),
            (None, None) => None,
        }
    }

    /// The target selected, found through cargo metadata, with the feature flags to build
    /// it with.
    pub fn find_target(&self) -> Result<Target> {
        let mut target =
            find_target(self.manifest_path.as_deref(), self.package.as_deref(), self.wanted())?;
        target.feature_args = self.feature_args();
        Ok(target)
    }

    /// The feature flags for cargo.
    pub fn feature_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for f in &self.features {
            args.extend(["--features".to_owned(), f.clone()]);
        }
        if self.all_features {
            args.push("--all-features".into());
        }
        if self.no_default_features {
            args.push("--no-default-features".into());
        }
        args
    }
}

/// The program a command runs: `command` itself where no cargo flag was given; else the
/// selected target, built in release (an up-to-date build is reused), followed by
/// `command` as its arguments. `say` hears what was built, and where the release profile
/// leaves the executable without debug information (names and inlined frames then come
/// from the symbol table alone).
pub fn program(
    selection: &Selection,
    command: Vec<OsString>,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<OsString>> {
    if !selection.given() {
        return Ok(command);
    }
    let target = selection.find_target()?;
    crate::progress::stage("building the program with cargo");
    let built = build(&target, &Recipe::release())?;
    say(&format!(
        "built {} ({} of {} units compiled, {:.1} s)",
        built.executable.display(),
        built.compiled,
        built.units,
        built.seconds
    ));
    let built = if has_debug_info(&built.executable) {
        built
    } else {
        // As cargo-flamegraph does: the profile's own settings, with line tables and
        // symbols, which the samplers and the heap census read.
        crate::progress::stage("building the program again with line tables");
        let lined = build(&target, &Recipe::with_line_tables())?;
        say(&format!(
            "the release profile builds it without debug information: built again with line \
             tables ({}; {} of {} units compiled, {:.1} s), so that inlined frames, source \
             files and the allocator inlined into Rust code are seen; add `debug = \
             \"line-tables-only\"` under [profile.release] in Cargo.toml to build it once",
            LINE_TABLES.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
            lined.compiled,
            lined.units,
            lined.seconds
        ));
        lined
    };
    Ok(std::iter::once(built.executable.into_os_string()).chain(command).collect())
}

/// Cargo's settings that add line tables to the release profile and keep its symbols.
const LINE_TABLES: &[(&str, &str)] =
    &[("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only"), ("CARGO_PROFILE_RELEASE_STRIP", "none")];

/// True where the executable carries DWARF line tables.
fn has_debug_info(path: &Path) -> bool {
    use object::{Object, ObjectSection};
    let Ok(file) = std::fs::File::open(path) else { return false };
    let Ok(data) = crate::ffi::map_file(&file) else { return false };
    object::File::parse(&*data)
        .is_ok_and(|f| f.section_by_name(".debug_line").is_some_and(|s| s.size() > 0))
}

/// One build of the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    /// The cargo command, as a shell would read it, environment first.
    pub command: String,
    /// The executable built.
    pub executable: PathBuf,
    /// Seconds cargo took.
    pub seconds: f64,
    /// Units cargo compiled (0: everything was up to date, nothing compiled).
    pub compiled: usize,
    /// Units in all.
    pub units: usize,
}

/// How to build: the environment cargo gets beyond ffiprof's own, and the target directory.
pub struct Recipe {
    /// Variables set for cargo.
    pub env: Vec<(String, OsString)>,
    /// `--target-dir`, where not the workspace's own.
    pub target_dir: Option<PathBuf>,
}

impl Recipe {
    /// The package's ordinary release build: nothing changed.
    pub fn release() -> Recipe {
        Recipe { env: Vec::new(), target_dir: None }
    }

    /// The release build with line tables and symbols ([`LINE_TABLES`]).
    pub fn with_line_tables() -> Recipe {
        let env = LINE_TABLES.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        Recipe { env, target_dir: None }
    }
}

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    fresh: Option<bool>,
    #[serde(default)]
    executable: Option<PathBuf>,
    #[serde(default)]
    target: Option<MetaTarget>,
}

/// Builds `target` in release by `recipe`. A failing build is the user's to fix: its last
/// lines are in the error.
pub fn build(target: &Target, recipe: &Recipe) -> Result<Build> {
    let mut args: Vec<OsString> =
        ["build", "--release", "--message-format=json-render-diagnostics"]
            .map(OsString::from)
            .to_vec();
    args.extend(["-p".into(), target.package.clone().into()]);
    args.extend([target.kind.flag().into(), target.name.clone().into()]);
    args.extend(manifest_args(target.manifest_path.as_deref()));
    args.extend(target.feature_args.iter().map(OsString::from));
    if let Some(dir) = &recipe.target_dir {
        args.extend(["--target-dir".into(), dir.clone().into()]);
    }
    let shown: Vec<String> = recipe
        .env
        .iter()
        .map(|(k, v)| format!("{k}={}", shell_quote(&v.to_string_lossy())))
        .chain(std::iter::once("cargo".to_owned()))
        .chain(args.iter().map(|a| shell_quote(&a.to_string_lossy())))
        .collect();
    let command = shown.join(" ");
    let start = Instant::now();
    let out = Command::new(cargo())
        .args(&args)
        .envs(recipe.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Internal(format!("cannot run cargo: {e}")))?;
    let seconds = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(Error::UserBuild {
            command,
            status: crate::ffi::shell_status(out.status),
            tail: crate::fmt::last_lines(&String::from_utf8_lossy(&out.stderr), 20),
        });
    }
    let (mut executable, mut compiled, mut units) = (None, 0, 0);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(m) = serde_json::from_str::<Message>(line) else { continue };
        if m.reason != "compiler-artifact" {
            continue;
        }
        units += 1;
        compiled += usize::from(m.fresh == Some(false));
        if m.target.as_ref().is_some_and(|t| t.name == target.name) && m.executable.is_some() {
            executable = m.executable;
        }
    }
    let executable = executable.ok_or_else(|| {
        Error::Internal(format!("cargo built {} but named no executable for it", target.name))
    })?;
    Ok(Build { command, executable, seconds, compiled, units })
}

/// `s` quoted for a POSIX shell where it needs it.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(targets: &[(&str, &str, &str)]) -> Metadata {
        let mut packages: Vec<Package> = Vec::new();
        for &(p, kind, name) in targets {
            let t = MetaTarget { name: name.into(), kind: vec![kind.into()] };
            match packages.iter_mut().find(|x| x.name == p) {
                Some(x) => x.targets.push(t),
                None => packages.push(Package { name: p.into(), targets: vec![t] }),
            }
        }
        Metadata { packages, target_directory: "target".into() }
    }

    #[test]
    fn the_only_binary_is_chosen_and_several_need_a_name() {
        let one = meta(&[("app", "bin", "app"), ("app", "lib", "app"), ("app", "example", "demo")]);
        let t = choose(one, None, None, None).unwrap();
        assert_eq!((t.package.as_str(), t.kind, t.name.as_str()), ("app", Kind::Bin, "app"));
        let two = || meta(&[("a", "bin", "one"), ("b", "bin", "two"), ("b", "example", "ex")]);
        let err = choose(two(), None, None, None).unwrap_err().to_string();
        assert!(err.contains("--bin NAME (binaries: one, two)"), "{err}");
        assert!(err.contains("(examples: ex)"), "{err}");
        let t = choose(two(), None, None, Some((Kind::Bin, "two"))).unwrap();
        assert_eq!(t.package, "b");
        let t = choose(two(), None, None, Some((Kind::Example, "ex"))).unwrap();
        assert_eq!((t.kind, t.name.as_str()), (Kind::Example, "ex"));
        let err = choose(two(), None, None, Some((Kind::Bin, "three"))).unwrap_err();
        assert!(err.is_usage() && err.to_string().contains("no binary `three`"), "{err}");
        let none = meta(&[("lib", "lib", "lib")]);
        assert!(choose(none, None, None, None).unwrap_err().to_string().contains("binaries: none"));
    }

    #[test]
    fn commands_are_shown_as_a_shell_reads_them() {
        assert_eq!(shell_quote("--release"), "--release");
        assert_eq!(shell_quote("-flto=thin -g"), "'-flto=thin -g'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
