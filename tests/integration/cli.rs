//! The real binary: `list`, a quick `bench` with `--json`, and every bad-input path.

use crate::common::{self, ffiprof, run, usage_error};
#[test]
fn list_names_every_workload_and_variant() {
    let text = run(ffiprof().arg("list")).success().stdout;
    crate::readme::shown("list", &text);
    for w in ffiprof::workload::catalogue() {
        assert!(text.contains(w.name), "list lacks {}", w.name);
        for v in &w.variants {
            assert!(text.contains(v.name), "list lacks {}/{}", w.name, v.name);
        }
        for i in &w.inputs {
            assert!(text.contains(i.name), "list lacks input {}/{}", w.name, i.name);
        }
    }
}

#[test]
fn quick_bench_writes_json_of_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.json");
    let ran = run(ffiprof().args(["bench", "plusone", "--quick", "--json"]).arg(&path))
        .success()
        .stdout_has("per-call")
        .stdout_has("ns/call");
    crate::readme::shown("bench", &ran.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["schema_version"], 3);
    assert_eq!(json["mode"], "quick");
    assert!(json["environment"]["cpu"].is_string());
    let cases = json["workloads"].as_array().unwrap();
    assert_eq!(cases.len(), 1);
    let case = &cases[0];
    assert_eq!(case["name"], "plusone");
    assert_eq!(case["baseline"], "batched");
    let variants = case["variants"].as_array().unwrap();
    let names: Vec<&str> = variants.iter().map(|v| v["name"].as_str().unwrap()).collect();
    let mut expected = common::plusone_variants();
    expected.insert(1, "batched (control)");
    assert_eq!(names, expected);
    assert_eq!(variants[1]["role"], "control");
    // Instructions per call where valgrind is installed, else a note saying why not.
    let counted =
        variants.iter().all(|v| v["instructions"]["per_call"].as_f64().is_some_and(|c| c > 0.0));
    let noted =
        json["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("valgrind"));
    assert!(counted || (noted && !common::under_ci()), "{}", json["notes"]);
    assert!(case["rounds"].as_u64().unwrap() >= 30, "paired rounds: {case}");
    assert!(
        case["stop"].is_string() && case["noise_floor"].is_f64() && case["too_noisy"].is_boolean()
    );
    for v in variants {
        let ns = &v["ns_per_call"];
        let (e, lo, hi) = (
            ns["estimate"].as_f64().unwrap(),
            ns["lower"].as_f64().unwrap(),
            ns["upper"].as_f64().unwrap(),
        );
        assert!(lo <= e && e <= hi && lo > 0.0, "interval must contain its estimate: {ns}");
        if v["name"] == "batched" {
            assert!(v["overhead_ns_per_call"].is_null() && v["ratio"].is_null());
        } else {
            let o = &v["overhead_ns_per_call"];
            assert!(o["lower"].as_f64().unwrap() <= o["upper"].as_f64().unwrap());
            assert!(v["ratio"]["estimate"].as_f64().unwrap() > 0.0);
        }
    }
    // Crossings per call, counted under callgrind beside the instructions: one per item for
    // the per-call loop, none for the batched loop, the inlined Rust or the LTO build.
    if counted {
        let crossings = |name: &str| {
            let v = variants.iter().find(|v| v["name"] == name).unwrap();
            let c = &v["crossings_per_call"];
            c["rust_to_c"].as_f64().unwrap() + c["c_to_rust"].as_f64().unwrap()
        };
        assert_eq!(crossings("per-call"), 1.0, "{variants:#?}");
        for name in ["batched", "batched (control)", "rust-inlined"] {
            assert_eq!(crossings(name), 0.0, "{name}: {variants:#?}");
        }
    }
    // No temporary file is left beside the result.
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [std::ffi::OsString::from("out.json")]);
}

#[test]
fn unknown_workload_exits_2_and_lists_known_names() {
    run(ffiprof().args(["bench", "nosuch", "--quick"]))
        .usage_error("nosuch")
        .stderr_has("pow, plusone");
}

#[test]
fn unwritable_json_path_fails_before_benchmarking() {
    run(ffiprof().args(["bench", "plusone", "--quick", "--json", "/nonexistent-dir/out.json"]))
        .usage_error("/nonexistent-dir/out.json")
        .stderr_lacks("Benchmarking");
}

#[test]
fn json_path_that_is_a_directory_fails_before_benchmarking() {
    let dir = tempfile::tempdir().unwrap();
    run(ffiprof().args(["bench", "plusone", "--quick", "--json"]).arg(dir.path()))
        .usage_error("is a directory")
        .stderr_lacks("Benchmarking");
}

#[test]
fn a_failed_bench_keeps_an_earlier_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.json");
    std::fs::write(&path, "earlier results").unwrap();
    run(ffiprof().args(["bench", "nosuch", "--json"]).arg(&path)).code(2);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "earlier results");
}

#[test]
fn unknown_flag_or_subcommand_exits_2() {
    run(ffiprof().args(["bench", "--frobnicate"])).code(2);
    run(ffiprof().arg("nosuch")).code(2);
}

#[test]
fn exec_prints_the_checksum_and_rejects_bad_names() {
    let out = run(ffiprof().args(["exec", "plusone", "per-call", "--n", "10"])).success();
    assert_eq!(out.stdout, "17\n");
    run(ffiprof().args(["exec", "plusone", "nosuch"]))
        .usage_error("batched, per-call, per-call-xlto, rust-inlined");
    run(ffiprof().args(["exec", "buffer", "borrow", "--input", "3B"])).usage_error("16B, 256B");
}

#[test]
fn sampler_cost_and_compare_reject_bad_inputs_with_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["sampler-cost", "--workload", "nosuch"], "unknown workload"),
        (&["sampler-cost", "--variant", "nosuch"], "batched, per-call"),
        (&["sampler-cost", "--input", "nosuch"], "cube-from-0, chain"),
        (&["sampler-cost", "--window", "0"], "--window 0 is out of range"),
        (&["sampler-cost", "--frequency", "0"], "frequency 0 Hz is out of range"),
        (&["compare", "a", "b", "--threshold=-1"], "--threshold -1 must be a percentage"),
    ];
    for (args, message) in cases {
        usage_error(args, message);
    }
}

/// Runs `args` with stderr on a pseudo-terminal (as a user's terminal) and returns what
/// was drawn there.
fn stderr_on_a_terminal(args: &[&str]) -> String {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors, owned here from then on.
    let made = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(made, 0, "openpty");
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = ffiprof().args(args).stderr(std::process::Stdio::from(slave)).spawn().unwrap();
    let mut reader = std::fs::File::from(master);
    let mut drawn = Vec::new();
    let mut buf = [0u8; 4096];
    // The terminal reads until the last writer closes (EIO on Linux).
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        drawn.extend_from_slice(&buf[..n]);
    }
    child.wait().unwrap();
    String::from_utf8_lossy(&drawn).into_owned()
}

/// A long command says where it is on a terminal (the program running, the
/// post-processing), and nothing of it where stderr is a file or a pipe.
#[test]
fn long_commands_show_progress_on_a_terminal_only() {
    if !common::valgrind_here("cli::long_commands_show_progress_on_a_terminal_only") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("a");
    let args = ["lifetimes", "--out", out.to_str().unwrap(), "--", "sh", "-c", "sleep 1.5"];
    let drawn = stderr_on_a_terminal(&args);
    assert!(drawn.contains("running sh under memcheck ("), "{drawn:?}");
    assert!(drawn.contains("telling each error's sides"), "{drawn:?}");
    assert!(drawn.contains("memcheck found no error"), "the result follows: {drawn:?}");
    let piped = run(ffiprof().args(["lifetimes", "--out"]).arg(tmp.path().join("b")).args([
        "--",
        "sh",
        "-c",
        "sleep 1.5",
    ]));
    assert!(!piped.stderr.contains("running sh"), "{}", piped.stderr);
    assert!(piped.stderr.contains("memcheck found no error"), "{}", piped.stderr);
}

/// `sampler-cost` measures both samplers in paired windows: each row has its sampler, an
/// effective rate, samples taken and a slowdown interval, and the README shows the table.
#[test]
fn sampler_cost_measures_both_samplers() {
    let ran = run(ffiprof().args(["sampler-cost", "--window", "0.05", "--rounds", "6"])).success();
    for sampler in ["pprof", "perf"] {
        let row = ran.stdout.lines().find(|l| l.starts_with(sampler)).unwrap_or_else(|| {
            panic!("no {sampler} row in\n{}", ran.stdout);
        });
        let cells: Vec<&str> = row.split_whitespace().collect();
        let effective: f64 = cells[3].parse().unwrap();
        let samples: u64 = cells[cells.len() - 2].parse().unwrap();
        assert!(effective > 0.0 && samples > 0, "{row}");
        assert!(row.contains('[') && row.contains('%'), "{row}");
    }
    assert!(ran.stdout.contains("6 paired rounds of 0.05 s windows"), "{}", ran.stdout);
    crate::readme::shown("sampler-cost", &ran.stdout);
}

/// Allocations per call, by the allocator that served them, known by construction:
/// `new-cstring` makes one Rust `CString` per call, `reuse-buffer` none, and neither asks C
/// for memory.
#[test]
fn allocations_per_call_are_counted_by_allocator() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cstring.json");
    let ran = run(ffiprof().args(["bench", "cstring", "--quick", "--json"]).arg(&path)).success();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let case = &json["workloads"][0];
    let variant = |name: &str| {
        case["variants"].as_array().unwrap().iter().find(|v| v["name"] == name).unwrap().clone()
    };
    let blocks = |v: &serde_json::Value, family: &str| {
        v["allocations_per_call"][family]["blocks"].as_f64().unwrap()
    };
    let new = variant("new-cstring");
    assert_eq!(blocks(&new, "rust"), 1.0, "{new:#}");
    assert!(new["allocations_per_call"]["rust"]["bytes"].as_f64().unwrap() > 0.0);
    let reuse = variant("reuse-buffer");
    for v in [&new, &reuse, &variant("batched")] {
        assert_eq!((blocks(v, "c"), blocks(v, "c++"), blocks(v, "unknown")), (0.0, 0.0, 0.0));
    }
    assert_eq!(blocks(&reuse, "rust"), 0.0, "{reuse:#}");
    // The table says so too.
    let row = ran.stdout.lines().find(|l| l.contains("new-cstring")).unwrap();
    assert!(row.contains("1 rust"), "{row}");
}

/// The real libraries' three costs per item, known by construction: zstd's `per-message`
/// makes a context (C blocks) per message and `reused-context` none; SQLite's per-row and
/// Lua's per-item variants cross at least twice per item (a statement's bind and step, a
/// push and a call), their batched forms almost never.
#[test]
fn real_libraries_count_their_allocations_and_crossings_per_item() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("real.json");
    run(ffiprof().args(["bench", "sqlite", "zstd", "lua", "--quick", "--json"]).arg(&path))
        .success();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let variant = |workload: &str, name: &str| {
        let case = json["workloads"].as_array().unwrap().iter().find(|w| w["name"] == workload);
        let case = case.unwrap_or_else(|| panic!("{workload} was measured"));
        case["variants"].as_array().unwrap().iter().find(|v| v["name"] == name).unwrap().clone()
    };
    let blocks = |v: &serde_json::Value, family: &str| {
        v["allocations_per_call"][family]["blocks"].as_f64().unwrap()
    };
    let per_message = variant("zstd", "per-message");
    assert!(blocks(&per_message, "c") >= 1.0, "{per_message:#}");
    let reused = variant("zstd", "reused-context");
    assert!(blocks(&reused, "c") + blocks(&reused, "rust") < 0.01, "{reused:#}");
    if !common::valgrind_here("cli::real_libraries_count_their_allocations_and_crossings_per_item")
    {
        return;
    }
    let crossings = |v: &serde_json::Value| {
        let c = &v["crossings_per_call"];
        c["rust_to_c"].as_f64().unwrap() + c["c_to_rust"].as_f64().unwrap()
    };
    for (workload, per_item, batched) in [
        ("sqlite", "per-row-autocommit", "batched"),
        ("sqlite", "per-row-transaction", "batched"),
        ("sqlite", "prepare-cached", "batched"),
        ("lua", "per-item", "batched"),
        ("lua", "rust-callback", "batched"),
        ("zstd", "per-message", "batched"),
    ] {
        let (v, b) = (variant(workload, per_item), variant(workload, batched));
        assert!(crossings(&v) >= 2.0, "{workload}/{per_item}: {v:#}");
        assert!(crossings(&b) < 0.01, "{workload}/{batched}: {b:#}");
    }
    // The Rust callback is called from Lua's C once per item.
    let callback = variant("lua", "rust-callback");
    assert_eq!(callback["crossings_per_call"]["c_to_rust"].as_f64().unwrap(), 1.0, "{callback:#}");
}

/// The crossings per call `bench` counts are those `ffiprof crossings` counts of the same
/// loop run at two lengths.
#[test]
fn crossings_per_call_agree_with_the_crossings_census() {
    if !common::valgrind_here("cli::crossings_per_call_agree_with_the_crossings_census") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_ffiprof");
    let calls = |n: u64| -> u64 {
        let out = tmp.path().join(format!("c{n}"));
        run(ffiprof().args(["crossings", "--out"]).arg(&out).args([
            "--",
            exe,
            "exec",
            "cstring",
            "new-cstring",
            "--n",
            &n.to_string(),
        ]))
        .success();
        let census: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("crossings.json")).unwrap())
                .unwrap();
        census["crossings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["direction"].as_str().unwrap().starts_with("rust-to-c"))
            .map(|c| c["calls"].as_u64().unwrap())
            .sum()
    };
    let per_call = (calls(4000) - calls(2000)) as f64 / 2000.0;
    let path = tmp.path().join("b.json");
    run(ffiprof().args(["bench", "cstring", "--quick", "--json"]).arg(&path)).success();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let v = json["workloads"][0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "new-cstring")
        .unwrap()
        .clone();
    assert_eq!(v["crossings_per_call"]["rust_to_c"].as_f64().unwrap(), per_call, "{v:#}");
}
