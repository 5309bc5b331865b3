//! `ffiprof xlto`: cross-language LTO tried on the user's own program.
//!
//! A Rust program whose C comes from `cc`-built `-sys` crates can have its C inlined into
//! its Rust by the linker, given the clang and lld of rustc's LLVM: the experiment a user
//! would run by hand, run for them and measured exactly. The stages, in the order data
//! flows: [`cargo`] finds the target and builds it twice, as cargo would (its own target
//! directory, so an up-to-date build is reused) and with cross-language LTO (a target
//! directory of its own, reused on the next call); [`crate::crossings`] counts each
//! build's crossings under callgrind; [`diff`] says which crossings are gone and why the
//! others remain; [`crate::measure::programs`] times the two binaries against each other
//! in paired rounds with an A/A control; [`schema`] is `xlto.json`, and `render` its words:
//! `xlto.md` and the terminal's.

pub mod cargo;
pub mod diff;
pub(crate) mod render;
pub mod schema;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::crossings::{self, Census, CostSource};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::measure::programs::{self, Program};
use crate::output::{write_under, Staging};
use crate::workload::per_call_xlto::Toolchain;

pub use crate::cargo::{Build, Kind, Target};
pub use diff::{Objects, Reason, Remaining, Removed, WhyRemains};
pub use schema::{Builds, Xlto, XLTO_FILE, XLTO_SCHEMA_VERSION};

/// What to build, run and where to write.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The package and its binary or example (default: the workspace's only binary), and
    /// the features to build it with, as cargo's flags name them.
    pub selection: crate::cargo::Selection,
    /// The program's arguments.
    pub args: Vec<OsString>,
    /// The output directory (replaced whole when complete).
    pub out: PathBuf,
    /// How the two builds are timed.
    pub rounds: programs::Options,
    /// Also build the C with the same clang without LTO, and count that build: the
    /// compiler's share of the change, apart from the inlining's. Default: true.
    pub compiler_control: bool,
}

impl Options {
    /// Options with the defaults, writing to `out`.
    pub fn new(out: PathBuf) -> Options {
        let rounds = programs::Options { fail_on_status: false, ..programs::Options::default() };
        Options {
            selection: crate::cargo::Selection::default(),
            args: Vec::new(),
            out,
            rounds,
            compiler_control: true,
        }
    }
}

/// A finished experiment.
pub struct Outcome {
    /// What it found.
    pub xlto: Xlto,
    /// Its directory.
    pub out: PathBuf,
}

/// The directories of the censuses inside the output directory: the release build's, the
/// LTO build's, the compiler control's.
pub const CENSUS_DIRS: [&str; 3] = ["release", "xlto", "clang-without-lto"];

/// Where the LTO build goes: a directory of its own inside the workspace's target
/// directory, so that the ordinary build is never disturbed and both are reused.
pub fn lto_target_dir(target: &Target) -> PathBuf {
    target.target_directory.join("ffiprof-xlto")
}

/// Counts the crossings of `executable` run with `args` into `out`.
fn census(
    executable: &Path,
    args: &[OsString],
    out: PathBuf,
    costs: CostSource,
) -> Result<crossings::Census> {
    let mut command = vec![executable.as_os_str().to_owned()];
    command.extend(args.iter().cloned());
    let mut options = crossings::Options::new(crossings::Source::Run(command), out);
    options.native_runs = 0;
    options.costs = costs;
    Ok(crossings::count(&options)?.census)
}

/// The builds: as cargo would, with cross-language LTO, and the compiler control where
/// asked; what the LTO link was given.
struct Built {
    release: Build,
    lto: Build,
    control: Option<Build>,
    objects: Objects,
}

fn build_all(
    target: &Target,
    toolchain: &Toolchain,
    control: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<Built> {
    progress(&format!("building {} in release, as cargo would", target.name));
    let release = crate::cargo::build(target, &crate::cargo::Recipe::release())?;
    progress(&format!("building {} in release with cross-language LTO", target.name));
    let lto_dir = lto_target_dir(target);
    let lto = crate::cargo::build(target, &cargo::cross_language_lto(toolchain, lto_dir.clone()))?;
    let objects = Objects::read(&lto_dir.join("release").join("build"));
    let control = if control {
        progress(&format!("building {} in release, its C by clang without LTO", target.name));
        let dir = target.target_directory.join("ffiprof-xlto-clang");
        Some(crate::cargo::build(target, &cargo::clang_without_lto(toolchain, dir))?)
    } else {
        None
    };
    Ok(Built { release, lto, control, objects })
}

/// Each build's census into its directory under `dir`: release, LTO, and the control's.
fn count_all(
    built: &Built,
    args: &[OsString],
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(Census, Census, Option<Census>)> {
    progress("counting the release build's crossings under callgrind");
    let measure = CostSource::Measure(crossings::DEFAULT_COST_BUDGET);
    let before =
        census(&built.release.executable, args, dir.join(CENSUS_DIRS[0]), measure.clone())?;
    // The cost per call is the machine's, not the build's: measured once.
    let costs = before.cost_model.clone().map_or(measure, CostSource::Given);
    progress("counting the LTO build's crossings under callgrind");
    let after = census(&built.lto.executable, args, dir.join(CENSUS_DIRS[1]), costs.clone())?;
    let control = match &built.control {
        Some(b) => {
            progress("counting the compiler control's crossings under callgrind");
            Some(census(&b.executable, args, dir.join(CENSUS_DIRS[2]), costs)?)
        }
        None => None,
    };
    Ok((before, after, control))
}

/// Runs the experiment (see the module docs). Bad input (an unwritable `--out`, no
/// valgrind, no matching clang and lld, no package or no such target, a build that
/// fails) ends it before anything is written; `progress` hears each stage begin.
pub fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> Result<Outcome> {
    options.rounds.validate()?;
    let staging = Staging::new(&options.out)?;
    let target = options.selection.find_target()?;
    let toolchain = crate::workload::per_call_xlto::toolchain().map_err(Error::Toolchain)?;
    crate::valgrind::version("the census runs each build under callgrind")?;
    let built = build_all(&target, &toolchain, options.compiler_control, progress)?;
    let (before, after, control) = count_all(&built, &options.args, staging.path(), progress)?;
    progress("timing the two builds against each other in paired rounds");
    let argv = |exe: &Path| {
        let mut v = vec![exe.as_os_str().to_owned()];
        v.extend(options.args.iter().cloned());
        v
    };
    let programs = [
        Program { name: "release".into(), argv: argv(&built.release.executable) },
        Program { name: "xlto".into(), argv: argv(&built.lto.executable) },
    ];
    let timing = programs::timed(&programs, &options.rounds)?;
    let control = built.control.zip(control).map(|(build, census)| schema::Control {
        instructions: census.totals.program_instructions,
        rust_to_c_calls: diff::rust_to_c_calls(&census),
        build,
        census: CENSUS_DIRS[2].to_owned(),
    });
    let code = diff::Code::open(&built.lto.executable);
    let xlto = schema::assemble(schema::Parts {
        environment: Environment::detect(),
        target,
        toolchain: toolchain.versions,
        builds: Builds { release: built.release, xlto: built.lto },
        objects: built.objects,
        args: options.args.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
        before: &before,
        after: &after,
        control,
        timing,
        code: code.as_ref(),
    });
    write_under(staging.path(), Path::new(XLTO_FILE), xlto.to_json()?.as_bytes())?;
    write_under(staging.path(), Path::new("xlto.md"), xlto.markdown().as_bytes())?;
    let out = staging.commit()?;
    Ok(Outcome { xlto, out })
}
