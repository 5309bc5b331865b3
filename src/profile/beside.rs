//! Two samplers at once: each sampler's profiles taken in a child process of ffiprof of
//! its own, all at the same time, so that `run` profiles on both cores of a machine
//! instead of one sampler after the other on one.
//!
//! The samplers cannot share a process: pprof's timer (`ITIMER_PROF`) is the process's,
//! and its signal lands in whichever thread is running, so a second workload thread would
//! put its stacks into pprof's profile. In processes of their own each sampler sees its
//! own workload only. Samples are proportions of a process's CPU time, not timings, so a
//! second busy core does not change what they say (the instruction counts already run
//! beside the profiles for the same reason). A child's stack is also a short one (its
//! `main`, then the profile), where the main process's holds the whole run: perf copies
//! 16 KiB of stack per sample, and from deep in `run` that copy no longer reached `main`.
//!
//! A child ([`COMMAND`]) is given every case at once and answers one line of JSON per
//! case, in order, as each is done. Whatever goes wrong with one (it cannot start, ends
//! early, answers something else) costs time, not results: the case's profiles of that
//! sampler are taken in the main process instead, and [`Beside::finish`] says why.

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{profile_workload_with, Options, ProfileSummary, SamplerFactory};
use crate::error::{Error, Result};
use crate::sample::{self, SamplerKind};
use crate::workload::{Input, Workload};

/// The hidden command that profiles cases under one sampler in a child process.
pub const COMMAND: &str = "__profile-cases";

/// One case for the child: a workload at an input, and the variants to profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Case {
    workload: String,
    input: String,
    variants: Vec<String>,
}

/// What the child is asked to do: its one argument after [`COMMAND`], as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Spec {
    sampler: SamplerKind,
    sample: sample::Options,
    window_nanos: u64,
    out: PathBuf,
    cases: Vec<Case>,
}

/// One line of the child's answer.
type Answer = std::result::Result<ProfileSummary, String>;

impl Spec {
    fn options(&self) -> Options {
        Options {
            samplers: vec![self.sampler],
            sample: self.sample.clone(),
            duration: Duration::from_nanos(self.window_nanos),
        }
    }

    /// Profiles every case, writing one line of JSON to `to` as each is done.
    fn serve(&self, to: &mut dyn Write) -> Result<()> {
        let options = self.options();
        for case in &self.cases {
            let answer: Answer = crate::workload::find(&case.workload)
                .and_then(|w| {
                    let input = w.input(Some(&case.input))?;
                    let names: Vec<&str> = case.variants.iter().map(String::as_str).collect();
                    profile_workload_with(&w, &names, input, &options, &self.out, &sample::sampler)
                })
                .map_err(|e| e.to_string());
            let line = serde_json::to_string(&answer)
                .map_err(|source| Error::Serialize { what: "profile summary", source })?;
            writeln!(to, "{line}")
                .and_then(|()| to.flush())
                .map_err(|e| Error::Internal(format!("cannot answer the parent: {e}")))?;
        }
        Ok(())
    }
}

/// The child side: when `args` (a program's arguments, its name left out) are
/// [`COMMAND`]'s, profiles the cases they name, printing a line per case as it goes, and
/// returns nothing more to print; otherwise `None`.
pub fn serve_child(args: &[String]) -> Option<Result<String>> {
    match args {
        [command, spec] if command == COMMAND => Some(
            serde_json::from_str::<Spec>(spec)
                .map_err(|e| Error::InvalidOption(format!("{COMMAND}: bad arguments: {e}")))
                .and_then(|spec| spec.serve(&mut std::io::stdout().lock()))
                .map(|()| String::new()),
        ),
        [command, ..] if command == COMMAND => {
            Some(Err(Error::InvalidOption(format!("{COMMAND}: takes one argument, the cases"))))
        }
        _ => None,
    }
}

/// [`super::profile_workload`] with each sampler in a child process of `exe` (an ffiprof
/// binary), all at once; with the notes of [`Beside::finish`].
pub fn profile_workload(
    exe: &Path,
    workload: &Workload,
    names: &[&str],
    input: &Input,
    options: &Options,
    out: &Path,
) -> Result<(ProfileSummary, Vec<String>)> {
    options.validate()?;
    let case = [(workload, input, names.to_vec())];
    match Beside::start(exe, &case, options, out) {
        Some(mut beside) => {
            let summary = beside.profile(workload, names, input, options, out)?;
            Ok((summary, beside.finish()))
        }
        None => Ok((super::profile_workload(workload, names, input, options, out)?, Vec::new())),
    }
}

/// The parent side: a child of ffiprof per sampler, each taking its sampler's profiles of
/// a list of cases, all at once.
pub struct Beside {
    children: Vec<SamplerChild>,
}

/// One sampler's child, or why there is none any more.
struct SamplerChild {
    kind: SamplerKind,
    child: Option<(Child, Lines<BufReader<ChildStdout>>)>,
    trouble: Option<String>,
}

impl Beside {
    /// Starts `exe` (an ffiprof binary) once per sampler of `options.samplers` for every
    /// case of `cases` (a workload, an input, the variants), writing under `out`. `None`
    /// when there is one sampler: nothing to share.
    pub fn start(
        exe: &Path,
        cases: &[(&Workload, &Input, Vec<&str>)],
        options: &Options,
        out: &Path,
    ) -> Option<Beside> {
        if options.samplers.len() < 2 {
            return None;
        }
        let cases: Vec<Case> = cases
            .iter()
            .map(|(w, input, variants)| Case {
                workload: w.name.to_owned(),
                input: input.name.to_owned(),
                variants: variants.iter().map(|v| (*v).to_owned()).collect(),
            })
            .collect();
        let children = options
            .samplers
            .iter()
            .map(|&kind| {
                let spec = Spec {
                    sampler: kind,
                    sample: options.sample.clone(),
                    window_nanos: options.duration.as_nanos() as u64,
                    out: out.to_owned(),
                    cases: cases.clone(),
                };
                SamplerChild::start(exe, &spec)
            })
            .collect();
        Some(Beside { children })
    }

    /// Profiles the next case: `workload` at `input`, the variants `names`, under every
    /// sampler this was started with (from its child, or here with `options`' settings
    /// when the child failed), as [`super::profile_workload`] would one sampler after the
    /// other.
    pub fn profile(
        &mut self,
        workload: &Workload,
        names: &[&str],
        input: &Input,
        options: &Options,
        out: &Path,
    ) -> Result<ProfileSummary> {
        self.profile_with(workload, names, input, options, out, &sample::sampler)
    }

    /// [`Beside::profile`] with the samplers that fall back to this process made by
    /// `make`.
    pub fn profile_with(
        &mut self,
        workload: &Workload,
        names: &[&str],
        input: &Input,
        options: &Options,
        out: &Path,
        make: &SamplerFactory<'_>,
    ) -> Result<ProfileSummary> {
        let mut merged: Option<ProfileSummary> = None;
        for child in &mut self.children {
            let summary = match child.next_answer(workload.name, input.name) {
                Ok(summary) => summary,
                Err(why) => {
                    child.give_up(why);
                    let mut alone = options.clone();
                    alone.samplers = vec![child.kind];
                    profile_workload_with(workload, names, input, &alone, out, make)?
                }
            };
            merged = Some(match merged {
                None => summary,
                Some(mut all) => {
                    all.profiles.extend(summary.profiles);
                    all.failures.extend(summary.failures);
                    all
                }
            });
        }
        Ok(merged.expect("Beside has two samplers or more"))
    }

    /// Waits for the children; notes for the report where a sampler's profiles had to be
    /// taken in this process, saying why.
    pub fn finish(mut self) -> Vec<String> {
        self.children.iter_mut().filter_map(SamplerChild::finish).collect()
    }
}

impl SamplerChild {
    fn start(exe: &Path, spec: &Spec) -> SamplerChild {
        let json = serde_json::to_string(spec).expect("the cases serialize");
        let started = Command::new(exe)
            .arg(COMMAND)
            .arg(json)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn();
        let kind = spec.sampler;
        match started {
            Ok(mut child) => {
                let lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
                SamplerChild { kind, child: Some((child, lines)), trouble: None }
            }
            Err(e) => SamplerChild {
                kind,
                child: None,
                trouble: Some(format!("cannot start {}: {e}", exe.display())),
            },
        }
    }

    /// The child's answer for the case `workload` at `input`, or why there is none.
    fn next_answer(
        &mut self,
        workload: &str,
        input: &str,
    ) -> std::result::Result<ProfileSummary, String> {
        let Some((_, lines)) = self.child.as_mut() else {
            return Err(self.trouble.clone().unwrap_or_default());
        };
        let line = match lines.next() {
            Some(Ok(line)) => line,
            Some(Err(e)) => return Err(format!("cannot read its answer: {e}")),
            None => return Err("it ended before answering".to_owned()),
        };
        let summary = serde_json::from_str::<Answer>(&line)
            .map_err(|e| format!("its answer is not a profile summary: {e}"))??;
        if summary.workload != workload || summary.input != input {
            return Err(format!(
                "it answered {}/{} for {workload}/{input}",
                summary.workload, summary.input
            ));
        }
        Ok(summary)
    }

    /// Stops the child for good, keeping the first reason.
    fn give_up(&mut self, why: String) {
        self.stop();
        self.trouble.get_or_insert(why);
    }

    fn stop(&mut self) {
        if let Some((mut child, _)) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the child; a note when its sampler's profiles were taken in this
    /// process, saying why.
    fn finish(&mut self) -> Option<String> {
        if let Some((mut child, _)) = self.child.take() {
            match child.wait() {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    self.trouble.get_or_insert(format!("it ended with {status}"));
                }
                Err(e) => {
                    self.trouble.get_or_insert(format!("cannot wait for it: {e}"));
                }
            }
        }
        let kind = self.kind;
        self.trouble.take().map(|why| {
            format!(
                "the {kind} profiles were taken in the main process, one sampler after the \
                 other (the child process that takes them beside the other sampler's: {why})"
            )
        })
    }
}

impl Drop for SamplerChild {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::SamplerFailure;
    use std::os::unix::fs::PermissionsExt;

    /// A sampler factory that refuses every sampler, as a machine without them would: the
    /// profile is all failures, taken without sampling anything.
    fn refusing(kind: SamplerKind, _: &sample::Options) -> Result<Box<dyn sample::Sampler>> {
        Err(Error::Pprof(format!("{kind} refused here")))
    }

    /// An "ffiprof" that prints `pprof` or `perf` (its lines as the child of that sampler)
    /// and ends.
    fn fake_child(dir: &Path, pprof: &[String], perf: &[String]) -> PathBuf {
        for (name, lines) in [("pprof", pprof), ("perf", perf)] {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(dir.join(format!("{name}.lines")), text).unwrap();
        }
        let exe = dir.join("fake-ffiprof");
        let script = format!(
            "#!/bin/sh\ncd '{}'\ncase \"$2\" in\n  *'\"sampler\":\"perf\"'*) cat perf.lines ;;\n  \
             *) cat pprof.lines ;;\nesac\n",
            dir.display()
        );
        std::fs::write(&exe, script).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        exe
    }

    fn case() -> (Workload, Options) {
        let w = crate::workload::find("plusone").unwrap();
        (w, Options::default())
    }

    /// A child's answer for `w` at `input`: its sampler `kind` failed with `error`.
    fn answer(w: &Workload, input: &str, kind: SamplerKind, error: &str) -> String {
        let summary = ProfileSummary {
            schema_version: super::super::SUMMARY_SCHEMA_VERSION,
            workload: w.name.to_owned(),
            input: input.to_owned(),
            baseline: w.baseline().name.to_owned(),
            duration_seconds: 3.0,
            environment: crate::environment::Environment::detect(),
            profiles: Vec::new(),
            failures: vec![SamplerFailure {
                sampler: kind,
                error: error.to_owned(),
                user_fixable: false,
            }],
        };
        serde_json::to_string(&Answer::Ok(summary)).unwrap()
    }

    fn errors(summary: &ProfileSummary) -> Vec<(SamplerKind, String)> {
        summary.failures.iter().map(|f| (f.sampler, f.error.clone())).collect()
    }

    #[test]
    fn each_sampler_answers_from_its_child_in_the_samplers_order() {
        let dir = tempfile::tempdir().unwrap();
        let (w, options) = case();
        let input = &w.inputs[0];
        let exe = fake_child(
            dir.path(),
            &[answer(&w, input.name, SamplerKind::Pprof, "pprof's child")],
            &[answer(&w, input.name, SamplerKind::Perf, "perf's child")],
        );
        let cases = [(&w, input, vec!["batched"])];
        let mut beside = Beside::start(&exe, &cases, &options, dir.path()).unwrap();
        let summary =
            beside.profile_with(&w, &["batched"], input, &options, dir.path(), &refusing).unwrap();
        assert_eq!(
            errors(&summary),
            [
                (SamplerKind::Pprof, "pprof's child".to_owned()),
                (SamplerKind::Perf, "perf's child".to_owned())
            ]
        );
        assert!(beside.finish().is_empty());
    }

    #[test]
    fn a_child_that_fails_costs_time_not_profiles_and_is_named_in_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let (w, options) = case();
        let input = &w.inputs[0];
        let good = [answer(&w, input.name, SamplerKind::Pprof, "pprof's child")];
        let other = answer(&w, "elsewhere", SamplerKind::Perf, "perf's child");
        for (perf, why) in [
            (vec![], "ended before answering"),
            (vec!["not json".to_owned()], "not a profile summary"),
            (vec![other], "answered plusone/elsewhere"),
            (vec![serde_json::to_string(&Answer::Err("no such".into())).unwrap()], "no such"),
        ] {
            let exe = fake_child(dir.path(), &good, &perf);
            let cases = [(&w, input, vec!["batched"])];
            let mut beside = Beside::start(&exe, &cases, &options, dir.path()).unwrap();
            let summary = beside
                .profile_with(&w, &["batched"], input, &options, dir.path(), &refusing)
                .unwrap();
            assert_eq!(
                errors(&summary),
                [
                    (SamplerKind::Pprof, "pprof's child".to_owned()),
                    (SamplerKind::Perf, "pprof sampler: perf refused here".to_owned())
                ],
                "perf's profiles are taken here: {why}"
            );
            let notes = beside.finish();
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(notes[0].starts_with("the perf profiles were taken in the main process"));
            assert!(notes[0].contains(why), "{} names {why}", notes[0]);
        }
        let missing = dir.path().join("no-such-ffiprof");
        let mut beside =
            Beside::start(&missing, &[(&w, input, vec!["batched"])], &options, dir.path()).unwrap();
        let summary =
            beside.profile_with(&w, &["batched"], input, &options, dir.path(), &refusing).unwrap();
        assert_eq!(summary.failures.len(), 2);
        let notes = beside.finish();
        assert_eq!(notes.len(), 2);
        assert!(notes.iter().all(|n| n.contains("cannot start")), "{notes:?}");
    }

    #[test]
    fn one_sampler_needs_no_child() {
        let (w, mut options) = case();
        options.samplers = vec![SamplerKind::Perf];
        let cases = [(&w, &w.inputs[0], vec!["batched"])];
        assert!(
            Beside::start(Path::new("/nonexistent"), &cases, &options, Path::new(".")).is_none()
        );
    }

    #[test]
    fn the_child_refuses_bad_arguments_and_ignores_other_commands() {
        let words = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(serve_child(&words(&["run", "pow"])).is_none());
        assert!(serve_child(&words(&[COMMAND])).unwrap().is_err());
        assert!(serve_child(&words(&[COMMAND, "{}"])).unwrap().is_err());
        assert!(serve_child(&words(&[COMMAND, "{}", "more"])).unwrap().is_err());
    }

    #[test]
    fn the_child_answers_a_line_per_case_and_an_error_as_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            sampler: SamplerKind::Pprof,
            sample: sample::Options::default(),
            window_nanos: 1,
            out: dir.path().to_owned(),
            cases: vec![Case {
                workload: "nosuch".into(),
                input: "x".into(),
                variants: vec!["batched".into()],
            }],
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<Spec>(&text).unwrap(), spec, "the spec round-trips");
        let mut out = Vec::new();
        spec.serve(&mut out).unwrap();
        let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
        assert_eq!(lines.len(), 1);
        let answer: Answer = serde_json::from_str(lines[0]).unwrap();
        assert!(answer.unwrap_err().contains("nosuch"));
    }
}
