//! The write stage: the files of a recording, from its summary and profiles, on all
//! cores: a flamegraph (coloured by language) and folded stacks per busy thread and of all
//! threads, the pprof profile of all threads, the Firefox Profiler profile (every sample
//! at its time, read back from the samples file), with `--off-cpu` the off-CPU and
//! wall-clock flamegraphs and the off-CPU pprof profile, then `summary.json`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::output::write_under;
use crate::profile::{draw, draw_counting, unix_nanos_now};
use crate::{flame, pprof_proto};

use super::firefox::{self, ThreadPart};
use super::intern::Collected;
use super::layout::ALL_THREADS;
use super::schema::RecordSummary;
use super::summarize::Analysis;
use super::symbolize::on_all_cores;
use super::waits::{OFF_CPU, WALL};

/// The Firefox profile, gzipped.
fn firefox_bytes(c: &Collected, s: &Analysis, start_unix: i64) -> Result<Vec<u8>> {
    let parts: Vec<ThreadPart<'_>> = s
        .threads
        .iter()
        .map(|t| ThreadPart {
            tid: t.profile.tid,
            log: &c.threads[&t.profile.tid],
            profile: &t.profile.profile,
            stacks: &t.profile.stacks,
            off_cpu: t.off_cpu.as_ref().map(|o| (&o.profile.profile, &o.profile.stacks)),
        })
        .collect();
    let mut samples = c.samples.reader();
    let fx = firefox::build(
        &format!("ffiprof record {}", s.program),
        &parts,
        samples.by_ref(),
        &s.process_names,
        c.window.0,
        start_unix,
        s.recording.requested_hz,
        c.event,
    );
    let read = samples.read();
    samples.finish().map_err(|source| {
        Error::Internal(format!("reading the recorded samples back: {source}"))
    })?;
    if read != c.samples.len() {
        return Err(Error::Internal(format!(
            "{read} of {} recorded samples read back",
            c.samples.len()
        )));
    }
    let render = |source| Error::Render { what: "the Firefox profile".into(), source };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    serde_json::to_writer(&mut gz, &fx)
        .map_err(|source| Error::Serialize { what: "the Firefox profile", source })?;
    gz.flush().map_err(render)?;
    gz.finish().map_err(render)
}

/// The off-CPU flamegraph (microseconds blocked), its folded stacks, and its pprof
/// profile (waits, and nanoseconds off CPU).
fn write_off_cpu(s: &Analysis, out: &Path) -> Result<()> {
    let (Some((profile, waits)), Some(r)) = (&s.off_cpu, &s.recording.off_cpu_recording) else {
        return Ok(());
    };
    let Some(files) = &r.files else { return Ok(()) };
    let title = format!("{}: where threads wait, {:.3} s blocked", s.program, r.with_stack_seconds);
    draw_counting(profile, OFF_CPU, &title, "µs", out)?;
    if let Some(wall) = &s.wall {
        let title = format!("{}: where the time went, on CPU and off", s.program);
        draw_counting(wall, WALL, &title, "µs", out)?;
    }
    let values: Vec<Vec<i64>> = profile
        .stacks()
        .iter()
        .zip(waits)
        .map(|(stack, &n)| vec![n as i64, stack.cpu_nanos as i64])
        .collect();
    let comment = format!("ffiprof record --off-cpu {}; {}", s.program, flame::legend());
    let types = [("waits", "count"), ("off_cpu", "nanoseconds")];
    let bytes = pprof_proto::encode_values(profile, &types, &values, &comment)?;
    write_under(out, &files.pprof, &bytes)
}

/// Writes every file of a summarized recording under `out`, then `summary.json`: the
/// analysis, its threads, and what writing cost (post-processing time from
/// `done_recording`, when sampling ended; ffiprof's peak memory). Returns the summary.
pub(crate) fn write_all(
    c: &Collected,
    s: Analysis,
    out: &Path,
    done_recording: Instant,
) -> Result<RecordSummary> {
    let start_unix =
        unix_nanos_now() - (crate::ffi::monotonic_ns().saturating_sub(c.window.0)) as i64;
    enum Job {
        Thread(usize),
        All,
        Firefox,
        OffCpu,
    }
    let mut jobs = vec![Job::Firefox, Job::All];
    if s.off_cpu.is_some() {
        jobs.push(Job::OffCpu);
    }
    jobs.extend(
        (0..s.threads.len()).filter(|&i| s.threads[i].profile.stem.is_some()).map(Job::Thread),
    );
    let results = on_all_cores(
        &jobs,
        || (),
        |_, job| -> Result<()> {
            match job {
                Job::Thread(i) => {
                    let (tp, t) = (&s.threads[*i].profile, &s.threads[*i].summary);
                    let title = format!(
                        "{} (tid {}) — {} samples",
                        t.name, t.tid, t.health.boundary.samples
                    );
                    draw(&tp.profile, tp.stem.as_deref().unwrap_or_default(), &title, out)?;
                    Ok(())
                }
                Job::All => {
                    let title = format!(
                        "{}: all threads, {}, {} samples",
                        s.program, c.event, s.recording.overall.boundary.samples
                    );
                    draw(&s.labelled, ALL_THREADS, &title, out)?;
                    let comment = format!("ffiprof record {}; {}", s.program, flame::legend());
                    let window_ns = c.window.1.saturating_sub(c.window.0) as i64;
                    let bytes = pprof_proto::encode(&s.labelled, window_ns, start_unix, &comment)?;
                    write_under(out, &s.recording.files.pprof, &bytes)
                }
                Job::Firefox => {
                    write_under(out, &s.recording.files.firefox, &firefox_bytes(c, &s, start_unix)?)
                }
                Job::OffCpu => write_off_cpu(&s, out),
            }
        },
    );
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let summary = RecordSummary {
        recording: s.recording,
        threads: s.threads.into_iter().map(|t| t.summary).collect(),
        post_processing_seconds: done_recording.elapsed().as_secs_f64(),
        recorder_peak_memory_bytes: crate::ffi::own_peak_memory_bytes(),
    };
    let json = serde_json::to_string_pretty(&summary)
        .map_err(|source| Error::Serialize { what: "summary.json", source })?;
    write_under(out, &PathBuf::from("summary.json"), json.as_bytes())?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use crate::ids::{Pid, Tid};
    use std::collections::HashMap;

    use super::super::collect::{Cost, CostByKind, OffCpu};
    use super::super::intern::{ProcessLog, RecoveredFrames, ThreadLog};
    use super::super::samples::{SampleLog, SampleRecord};
    use super::super::summarize::{summarize, Described};
    use super::super::table::{StackId, StackTable};
    use super::super::unwind::{Loc, ModuleIndex, Targets};
    use super::*;
    use crate::environment::Environment;
    use crate::output::golden;
    use crate::sample::Event;
    use crate::stacks::Frame;

    /// A recording built by hand, as the collector would leave it: two threads of one
    /// process, stacks in the table, every location already symbolized (so no file is
    /// read), one sample truncated and two lost, SQLite calling back a Rust function, and
    /// frames recovered without unwind information. With `off_cpu`, the threads also
    /// wait: the main thread in libc's `read` under `app::query`, four times 5 ms, and is
    /// preempted once for 1 ms in SQLite; the worker in a `Condvar` wait (std's futex wait, then libc's
    /// `syscall`) under `app::main`, twice 10 ms.
    fn hand_built(off_cpu: bool) -> (Collected, HashMap<Loc, Vec<Frame>>) {
        let at = |module: u32, offset: u64| Loc { module: ModuleIndex(module), offset };
        let frame = |function: &str, module: &str, file: &str| Frame {
            function: Some(function.into()),
            module: Some(module.into()),
            file: Some(file.into()),
            line: Some(1),
            inlined: false,
        };
        let (app, libc) = (0, 1);
        let root = at(libc, 0x10);
        let main = at(app, 0x100);
        let query = at(app, 0x200);
        let step = at(app, 0x300);
        let vdbe = at(app, 0x400);
        let memcpy = at(libc, 0x20);
        let collate = at(app, 0x500);
        let (read, futex, syscall) = (at(libc, 0x30), at(app, 0x600), at(libc, 0x40));
        let symbols: HashMap<Loc, Vec<Frame>> = [
            (read, frame("read", "libc.so.6", "read.c")),
            (futex, frame("std::sys::pal::unix::futex::futex_wait", "app", "futex.rs")),
            (syscall, frame("syscall", "libc.so.6", "syscall.S")),
            (root, frame("start_thread", "libc.so.6", "pthread_create.c")),
            (main, frame("app::main", "app", "src/main.rs")),
            (query, frame("app::query", "app", "src/db.rs")),
            (step, frame("sqlite3_step", "app", "sqlite3.c")),
            (vdbe, frame("sqlite3VdbeExec", "app", "sqlite3.c")),
            (memcpy, frame("memcpy", "libc.so.6", "memcpy.S")),
            (collate, frame("app::collate", "app", "src/db.rs")),
        ]
        .into_iter()
        .map(|(l, f)| (l, vec![f]))
        .collect();
        let mut stacks = StackTable::default();
        let in_c = stacks.intern(&[vdbe, step, query, main, root]);
        let copying = stacks.intern(&[memcpy, step, query, main, root]);
        let in_rust = stacks.intern(&[query, main, root]);
        let cut = stacks.intern(&[vdbe, step, query]);
        let called_back = stacks.intern(&[collate, vdbe, step, query, main, root]);
        let sample = |time: u64, stack: StackId, truncated: bool| SampleRecord {
            time,
            period: 1_000_000,
            stack,
            truncated,
            off_cpu: false,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut log = SampleLog::create_in(dir.path()).unwrap();
        let mut main_thread = ThreadLog::new(Pid(100), Some("app".into()));
        main_thread.lost = 2;
        let mut worker = ThreadLog::new(Pid(100), Some("worker".into()));
        for i in 0..60 {
            let stack = match i % 6 {
                0 | 3 => in_rust,
                5 => called_back,
                _ => in_c,
            };
            let s = sample(i * 1_000_000, stack, false);
            main_thread.add(&s);
            log.push(Tid(100), &s);
            if i < 40 {
                let s = sample(i * 1_000_000 + 500, copying, false);
                worker.add(&s);
                log.push(Tid(101), &s);
            }
        }
        let s = sample(61_000_000, cut, true);
        worker.add(&s);
        worker.recovered = RecoveredFrames { samples: 4, by_frame_pointer: 1, by_scan: 3 };
        log.push(Tid(101), &s);
        if off_cpu {
            let reading = stacks.intern(&[read, query, main, root]);
            let waiting = stacks.intern(&[syscall, futex, main, root]);
            let (m, w) = (&mut main_thread.off_cpu, &mut worker.off_cpu);
            m.running(0);
            w.running(500);
            for k in 0..4u64 {
                m.sampled(reading, false);
                m.switched_out(62_000_000 + k * 6_000_000, false);
                log.push(Tid(100), &m.switched_in(67_000_000 + k * 6_000_000).unwrap());
            }
            m.sampled(in_c, false);
            m.switched_out(90_000_000, true);
            assert_eq!(m.switched_in(91_000_000), None);
            for k in 0..2u64 {
                w.sampled(waiting, false);
                w.switched_out(62_000_000 + k * 12_000_000, false);
                log.push(Tid(101), &w.switched_in(72_000_000 + k * 12_000_000).unwrap());
            }
            w.exited(90_000_000);
            assert_eq!(m.window_ended(100_000_000), None);
        }
        let collected = Collected {
            threads: [
                (Tid(100), main_thread),
                (Tid(101), worker),
                (Tid(102), ThreadLog::new(Pid(102), None)),
            ]
            .into_iter()
            .collect(),
            processes: [
                (Pid(100), ProcessLog { ppid: None, commands: vec!["app".into()] }),
                (
                    Pid(102),
                    ProcessLog { ppid: Some(Pid(100)), commands: vec!["app".into(), "sh".into()] },
                ),
            ]
            .into_iter()
            .collect(),
            targets: Targets::default(),
            event: Event::CpuClock,
            window: (0, 100_000_000),
            lost_unattributed: 0,
            notes: vec!["a note".into()],
            stacks,
            samples: log.finish().unwrap(),
            cost: CostByKind::default(),
        };
        (collected, symbols)
    }

    #[test]
    fn summary_and_terminal_text_of_a_hand_built_recording_match_golden() {
        let described = Described {
            command: Some(vec!["app".into(), "--serve".into()]),
            pid: Pid(100),
            exit_code: Some(0),
            frequency: 1000,
            stack_bytes: 16384,
            recorder_cpu_seconds: 0.5,
            recording_thread_cpu_ns: 400_000_000,
            off_cpu: OffCpu::Off,
            environment: Environment::detect(),
        };
        let out = tempfile::tempdir().unwrap();
        let (collected, symbols) = hand_built(false);
        let summarized = summarize(&collected, &symbols, collected.notes.clone(), &described);
        let mut summary = write_all(&collected, summarized, out.path(), Instant::now()).unwrap();
        // What depends on the machine and the moment: not the table's to decide.
        summary.post_processing_seconds = 0.0;
        assert!(summary.recorder_peak_memory_bytes.is_some_and(|b| b > 0));
        summary.recorder_peak_memory_bytes = Some(64 << 20);
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap())
                .unwrap();
        let mut json = serde_json::to_value(&summary).unwrap();
        json.as_object_mut().unwrap().remove("environment");
        assert_eq!(written["threads"], json["threads"], "summary.json is what was returned");
        golden("record-summary.json", &(serde_json::to_string_pretty(&json).unwrap() + "\n"));
        golden("record-summary.txt", &summary.text());
        for file in [&summary.files.flamegraph, &summary.files.pprof, &summary.files.firefox] {
            assert!(out.path().join(file).is_file(), "{} written", file.display());
        }
        // Every sample, read back from the samples file, on its thread's track.
        let fx: serde_json::Value = serde_json::from_reader(flate2::read::GzDecoder::new(
            std::fs::File::open(out.path().join(&summary.files.firefox)).unwrap(),
        ))
        .unwrap();
        let tracks: Vec<(String, u64)> = fx["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().into(), t["samples"]["length"].as_u64().unwrap()))
            .collect();
        assert_eq!(tracks, [("app".into(), 60), ("worker".into(), 41)]);
    }

    #[test]
    fn off_cpu_time_waits_and_files_of_a_hand_built_recording() {
        let described = Described {
            command: Some(vec!["app".into()]),
            pid: Pid(100),
            exit_code: Some(0),
            frequency: 1000,
            stack_bytes: 16384,
            recorder_cpu_seconds: 0.5,
            recording_thread_cpu_ns: 1_000_000,
            off_cpu: OffCpu::Sampled,
            environment: Environment::detect(),
        };
        let out = tempfile::tempdir().unwrap();
        let (mut collected, symbols) = hand_built(true);
        // 101 CPU samples, 6 switches off a CPU (their samples and 12 switch records).
        let cost = |records, nanos| Cost { records, nanos };
        collected.cost = CostByKind {
            cpu_sample: cost(101, 303_000),
            off_cpu_sample: cost(6, 60_000),
            switch: cost(12, 12_000),
            other: Cost::default(),
        };
        let summarized = summarize(&collected, &symbols, Vec::new(), &described);
        let mut summary = write_all(&collected, summarized, out.path(), Instant::now()).unwrap();
        summary.post_processing_seconds = 0.0;
        summary.recorder_peak_memory_bytes = Some(64 << 20);
        let time = |name: &str| {
            let t = summary.threads.iter().find(|t| t.name == name).unwrap();
            t.time.clone().unwrap()
        };
        // The main thread: on from 0 to 62 ms, 1 ms between its waits, 85 to 90 ms, and from
        // 91 ms (after it was preempted) to the end.
        let app = time("app");
        assert_eq!(
            (app.off_cpu_seconds, app.off_cpu_waits, app.runnable_seconds),
            (0.02, 4, 0.001)
        );
        assert!((app.on_cpu_seconds - (0.062 + 3.0 * 0.001 + 0.005 + 0.009)).abs() < 1e-12);
        let worker = time("worker");
        assert_eq!((worker.off_cpu_seconds, worker.off_cpu_with_stack_seconds), (0.02, 0.02));
        let waits = summary.off_cpu.as_ref().unwrap();
        assert_eq!(waits.len(), 2, "{waits:?}");
        assert_eq!(
            (waits[0].function.as_str(), waits[0].c_function.as_deref()),
            ("read", Some("read"))
        );
        assert_eq!(waits[0].rust_caller.as_deref(), Some("app::query"));
        assert_eq!((waits[0].seconds, waits[0].share, waits[0].waits), (0.02, 0.5, 4));
        assert_eq!(waits[1].rust_caller.as_deref(), Some("app::main"));
        assert_eq!(waits[1].through_std.as_deref(), Some("std::sys::pal::unix::futex::futex_wait"));
        let r = summary.off_cpu_recording.as_ref().unwrap();
        assert_eq!((r.off_cpu_seconds, r.switches_out, r.off_cpu_samples), (0.04, 7, 6));
        // The thread's 1 ms of CPU: 375 us measured, 625 us left over 119 records.
        let rest = 625.0 / 119.0;
        let per_sample = r.recorder_cpu_per_cpu_sample_us.unwrap();
        assert!((per_sample - (3.0 + rest)).abs() < 1e-9, "{per_sample}");
        let per_switch = r.recorder_cpu_per_off_cpu_event_us.unwrap();
        assert!((per_switch - (72.0 + 18.0 * rest) / 6.0).abs() < 1e-9, "{per_switch}");
        golden("record-summary-off-cpu.txt", &summary.text());

        // The files: microseconds in the folded stacks, nanoseconds in pprof, and each
        // thread's off-CPU track in the Firefox profile weighted in microseconds.
        let files = r.files.as_ref().unwrap();
        let folded = std::fs::read_to_string(out.path().join(&files.folded)).unwrap();
        assert!(folded.contains("app (tid 100);start_thread;app::main;app::query;read 20000\n"));
        let pprof =
            crate::pprof_proto::decode(&std::fs::read(out.path().join(&files.pprof)).unwrap())
                .unwrap();
        assert_eq!(pprof.sums, [("waits".into(), 6), ("off_cpu".into(), 40_000_000)]);
        // Where the main thread's time went, the whole 100 ms window: 79 ms on CPU shared
        // by its 60 samples (each stack rounded down to the microsecond), 20 ms blocked,
        // 1 ms waiting for a CPU where it was preempted.
        let wall = std::fs::read_to_string(out.path().join(&files.wall_folded)).unwrap();
        let app_us = |suffix: &str| -> u64 {
            wall.lines()
                .filter(|l| l.starts_with("app (tid 100);"))
                .filter_map(|l| l.rsplit_once(' '))
                .filter(|(stack, _)| stack.ends_with(suffix))
                .map(|(_, us)| us.parse::<u64>().unwrap())
                .sum()
        };
        assert_eq!((app_us(""), app_us(";[blocked]")), (99_999, 20_000), "{wall}");
        assert!(wall.contains("app::query;sqlite3_step;sqlite3VdbeExec;[waiting for a CPU] 1000\n"));
        assert!(out.path().join(&files.wall_flamegraph).is_file());
        assert!(out.path().join(&files.flamegraph).is_file());
        let fx: serde_json::Value = serde_json::from_reader(flate2::read::GzDecoder::new(
            std::fs::File::open(out.path().join(&summary.files.firefox)).unwrap(),
        ))
        .unwrap();
        let track = |name: &str| -> (u64, Vec<u64>) {
            let t = fx["threads"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap();
            let weights = t["samples"]["weight"].as_array();
            let weights = weights.map(|w| w.iter().map(|x| x.as_u64().unwrap()).collect());
            (t["samples"]["length"].as_u64().unwrap(), weights.unwrap_or_default())
        };
        assert_eq!(track("app off CPU (µs blocked)"), (4, vec![5000; 4]));
        assert_eq!(track("worker off CPU (µs blocked)"), (2, vec![10_000; 2]));
        assert_eq!(track("app").0, 60, "CPU samples stay on the thread's own track");
    }
}
