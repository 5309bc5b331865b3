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
//! in paired rounds with an A/A control; [`report`] writes `xlto.json` and `xlto.md` and
//! the words on the terminal.

pub mod cargo;
pub mod diff;
pub mod report;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::crossings::{self, CostSource};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::measure::programs::{self, Program};
use crate::output::{write_under, Staging};

pub use cargo::{Build, Kind, Target};
pub use diff::{Objects, Remaining, Removed};
pub use report::{Builds, Xlto, XLTO_FILE, XLTO_SCHEMA_VERSION};

/// What to build, run and where to write.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The package's Cargo.toml (default: cargo's own search from the current directory).
    pub manifest_path: Option<PathBuf>,
    /// The binary or example (default: the workspace's only binary).
    pub target: Option<(Kind, String)>,
    /// The program's arguments.
    pub args: Vec<OsString>,
    /// The output directory (replaced whole when complete).
    pub out: PathBuf,
    /// How the two builds are timed.
    pub rounds: programs::Options,
}

impl Options {
    /// Options with the defaults, writing to `out`.
    pub fn new(out: PathBuf) -> Options {
        let rounds = programs::Options { fail_on_status: false, ..programs::Options::default() };
        Options { manifest_path: None, target: None, args: Vec::new(), out, rounds }
    }
}

/// A finished experiment.
pub struct Outcome {
    /// What it found.
    pub xlto: Xlto,
    /// Its directory.
    pub out: PathBuf,
}

/// The directories of the two censuses inside the output directory.
pub const CENSUS_DIRS: [&str; 2] = ["release", "xlto"];

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

/// Runs the experiment (see the module docs). Bad input (an unwritable `--out`, no
/// valgrind, no matching clang and lld, no package or no such target, a build that
/// fails) ends it before anything is written; `progress` hears each stage begin.
pub fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> Result<Outcome> {
    options.rounds.validate()?;
    let staging = Staging::new(&options.out)?;
    let wanted = options.target.as_ref().map(|(k, n)| (*k, n.as_str()));
    let target = cargo::find_target(options.manifest_path.as_deref(), wanted)?;
    let toolchain = crate::workload::xlto::toolchain().map_err(Error::Toolchain)?;
    crate::valgrind::version("the census runs each build under callgrind")?;
    progress(&format!("building {} in release, as cargo would", target.name));
    let release = cargo::build(&target, &cargo::Recipe::release())?;
    progress(&format!("building {} in release with cross-language LTO", target.name));
    let lto_dir = lto_target_dir(&target);
    let lto =
        cargo::build(&target, &cargo::Recipe::cross_language_lto(&toolchain, lto_dir.clone()))?;
    let objects = Objects::read(&lto_dir.join("release").join("build"));
    progress("counting the release build's crossings under callgrind");
    let [before_dir, after_dir] = CENSUS_DIRS.map(|d| staging.path().join(d));
    let measure = CostSource::Measure(crossings::DEFAULT_COST_BUDGET);
    let before = census(&release.executable, &options.args, before_dir, measure.clone())?;
    progress("counting the LTO build's crossings under callgrind");
    // The cost per call is the machine's, not the build's: measured once.
    let costs = before.cost_model.clone().map_or(measure, CostSource::Given);
    let after = census(&lto.executable, &options.args, after_dir, costs)?;
    progress("timing the two builds against each other in paired rounds");
    let argv = |exe: &Path| {
        let mut v = vec![exe.as_os_str().to_owned()];
        v.extend(options.args.iter().cloned());
        v
    };
    let programs = [
        Program { name: "release".into(), argv: argv(&release.executable) },
        Program { name: "xlto".into(), argv: argv(&lto.executable) },
    ];
    let timing = programs::timed(&programs, &options.rounds)?;
    let xlto = report::assemble(report::Parts {
        environment: Environment::detect(),
        target,
        toolchain: toolchain.versions,
        builds: Builds { release, xlto: lto },
        objects,
        args: options.args.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
        before: &before,
        after: &after,
        timing,
    });
    write_under(staging.path(), Path::new(XLTO_FILE), xlto.to_json()?.as_bytes())?;
    write_under(staging.path(), Path::new("xlto.md"), xlto.markdown().as_bytes())?;
    let out = staging.commit()?;
    Ok(Outcome { xlto, out })
}
