//! Helpers shared by the integration tests: the binary under test and what it printed,
//! the check of a usage error, optional tools, test programs built from source, and the
//! examples.

use std::io::Write;
use std::process::{Command, ExitStatus};

/// The `ffiprof` binary this build made.
pub fn ffiprof() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ffiprof"))
}

/// A command that has finished: its status and what it printed, for assertions that
/// name the command and show its output when they fail.
pub struct Ran {
    what: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Ran {
    fn context(&self) -> String {
        format!(
            "{}: {}\nstdout:\n{}\nstderr:\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }

    /// Asserts that it exited with status 0.
    pub fn success(self) -> Ran {
        assert!(self.status.success(), "{}", self.context());
        self
    }

    /// Asserts that it exited with `code`.
    pub fn code(self, code: i32) -> Ran {
        assert_eq!(self.status.code(), Some(code), "{}", self.context());
        self
    }

    /// Asserts a usage error: exit status 2, and standard error names `message`.
    pub fn usage_error(self, message: &str) -> Ran {
        self.code(2).stderr_has(message)
    }

    /// Asserts that its standard output contains `needle`.
    pub fn stdout_has(self, needle: &str) -> Ran {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}: {}", self.context());
        self
    }

    /// Asserts that its standard error contains `needle`.
    pub fn stderr_has(self, needle: &str) -> Ran {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}: {}", self.context());
        self
    }

    /// Asserts that its standard error does not contain `needle`.
    pub fn stderr_lacks(self, needle: &str) -> Ran {
        assert!(!self.stderr.contains(needle), "stderr has {needle:?}: {}", self.context());
        self
    }
}

/// Runs `cmd` to its end (standard input closed) and returns what it did.
pub fn run(cmd: &mut Command) -> Ran {
    let out =
        cmd.stdin(std::process::Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    Ran {
        what: format!("{cmd:?}"),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `ffiprof ARGS` is a usage error: exit status 2, and standard error names `message`.
pub fn usage_error(args: &[&str], message: &str) {
    run(ffiprof().args(args)).usage_error(message);
}

/// The values of the href and src attributes of an HTML page.
pub fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            out.push(rest[..rest.find('"').unwrap_or(rest.len())].to_owned());
        }
    }
    out
}

/// True under CI (`CI` set, and not to `false` or `0`), where no test may skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Skips a test that cannot run here, saying why: under CI (where nothing may skip) the
/// test fails with the reason instead; elsewhere `SKIPPED test: why` is written past the
/// test harness's capture, so `cargo test` shows it even when the test passes.
pub fn skip(test: &str, why: &str) {
    assert!(!under_ci(), "{test}: {why}; CI must give the test what it needs");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Whether the optional tool `program` runs here (`program version_arg` succeeds). When it
/// does not, under CI the test fails; elsewhere the test should return early, and this
/// says so on the terminal (written past the test harness's capture, so `cargo test`
/// shows it) with the command that installs it.
pub fn tool_available(test: &str, program: &str, version_arg: &str, install: &str) -> bool {
    let runs = Command::new(program).arg(version_arg).output().is_ok_and(|o| o.status.success());
    if !runs {
        skip(test, &format!("`{program}` is not installed ({install} to run it)"));
    }
    runs
}

/// Whether valgrind runs here ([`tool_available`] for it).
pub fn valgrind_here(test: &str) -> bool {
    tool_available(test, "valgrind", "--version", "apt-get install valgrind")
}

/// Whether the cross-language LTO toolchain (the clang and lld of rustc's LLVM major
/// version) is here, for `per-call-xlto`; [`tool_available`]'s rules when it is not.
pub fn xlto_here(test: &str) -> bool {
    match ffiprof::workload::per_call_xlto::toolchain() {
        Ok(_) => true,
        Err(why) => {
            skip(test, &why.to_string());
            false
        }
    }
}

/// The plusone workload's variants this machine runs, in the order measured: with
/// `per-call-xlto` where the cross-language LTO toolchain is here.
pub fn plusone_variants() -> Vec<&'static str> {
    let xlto = ffiprof::workload::per_call_xlto::toolchain().is_ok();
    ["batched", "per-call", "per-call-xlto", "rust-inlined"]
        .into_iter()
        .filter(|v| xlto || *v != "per-call-xlto")
        .collect()
}

/// Runs `cmd`, fails the test unless it succeeds, and returns its standard output.
pub fn run_ok(cmd: &mut Command) -> String {
    run(cmd).success().stdout
}

/// Builds a test program in Cargo's scratch directory for integration tests (rebuilt on
/// every run, never left in the system's temporary directory): `c_source` compiled by gcc
/// with `-O2 -g` and `c_flags` into a static library, linked into `rust_source` built
/// with `rustc -O -g`. Returns the program's path.
pub fn build_program(
    name: &str,
    c_source: &str,
    c_flags: &[&str],
    rust_source: &str,
) -> std::path::PathBuf {
    build_linked(
        name,
        Foreign { compiler: "gcc", file: "lib.c", source: c_source, libs: &[] },
        c_flags,
        rust_source,
    )
}

/// The foreign half of a test program: its compiler, source file name and source, and
/// the shared libraries it needs linked in.
pub struct Foreign<'a> {
    pub compiler: &'a str,
    pub file: &'a str,
    pub source: &'a str,
    pub libs: &'a [&'a str],
}

/// [`build_program`] with any compiler gcc's driver family has (`g++` for C++).
pub fn build_linked(
    name: &str,
    foreign: Foreign<'_>,
    flags: &[&str],
    rust_source: &str,
) -> std::path::PathBuf {
    build_linked_with(name, foreign, flags, rust_source, &["-g"])
}

/// [`build_linked`] with rustc's flags beside `-O` given (`-g` there; none for cargo's
/// release profile without debug information, `-C strip=symbols` for a stripped one).
pub fn build_linked_with(
    name: &str,
    foreign: Foreign<'_>,
    flags: &[&str],
    rust_source: &str,
    rust_flags: &[&str],
) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(foreign.file), foreign.source).unwrap();
    std::fs::write(dir.join("main.rs"), rust_source).unwrap();
    run_ok(
        Command::new(foreign.compiler).current_dir(&dir).args(["-O2", "-g"]).args(flags).args([
            "-c",
            foreign.file,
            "-o",
            "lib.o",
        ]),
    );
    run_ok(Command::new("ar").current_dir(&dir).args(["rcs", "libtest.a", "lib.o"]));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let mut link = Command::new(rustc);
    link.current_dir(&dir).args(["--edition", "2021", "-O"]).args(rust_flags).args([
        "main.rs",
        "-L",
        ".",
        "-l",
        "static=test",
        "-o",
        "prog",
    ]);
    for lib in foreign.libs {
        link.args(["-l", &format!("dylib={lib}")]);
    }
    run_ok(&mut link);
    dir.join("prog")
}

/// An example of this crate, built in the tests' own profile. `cargo test` builds the
/// examples beside the tests; a run of some tests alone (`--test integration`) does not,
/// so it is built here then.
pub fn example(name: &str) -> std::path::PathBuf {
    // target/<profile dir>/deps/<this test> -> target/<profile dir>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(other) => other,
            None => "release",
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run_ok(Command::new(cargo).args(["build", "--profile", profile, "--example", name]));
    }
    assert!(path.exists(), "{} missing after building it", path.display());
    path
}

/// A directory every user may enter and write, in /tmp, holding copies of `programs`: for
/// a test that runs programs as another user (`nobody`), who may not reach the checkout
/// (a clone in root's home, or in any private directory).
pub fn open_to_every_user(
    programs: &[&std::path::Path],
) -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("ffiprof-any-user-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let copies = programs
        .iter()
        .map(|p| {
            let copy = dir.path().join(p.file_name().unwrap());
            std::fs::copy(p, &copy).unwrap();
            copy
        })
        .collect();
    (dir, copies)
}

/// A program's exit status as a shell reports it: 128 + the signal that ended it.
pub fn shell_status(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

/// Compares `actual` with the golden file `tests/data/NAME` (FFIPROF_BLESS=1 writes it
/// instead, to accept a change).
pub fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    if std::env::var_os("FFIPROF_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with FFIPROF_BLESS=1", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file (FFIPROF_BLESS=1 to accept)");
}

/// Whether a demangled Rust function's path is in crate `krate`: `krate::Type::f` in the
/// legacy mangling, `<krate::Type>::f` in v0's (`-C symbol-mangling-version=v0`, nightly's
/// default), which writes an inherent method's type in angle brackets.
pub fn in_crate(function: &str, krate: &str) -> bool {
    function.trim_start_matches('<').strip_prefix(krate).is_some_and(|rest| rest.starts_with("::"))
}
