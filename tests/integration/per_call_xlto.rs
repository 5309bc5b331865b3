//! `per-call-xlto`: the catalogue's per-call loops built with cross-language LTO, the call
//! read from the machine code, and the variant left out, with a note, where the
//! toolchain is missing.

use crate::common::{self, ffiprof, run};

/// The bench JSON of `workloads`, quick, with `env` set.
fn bench(workloads: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.json");
    let mut cmd = ffiprof();
    cmd.arg("bench").args(workloads).args(["--quick", "--json"]).arg(&path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd).success();
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn case<'a>(json: &'a serde_json::Value, name: &str, input: &str) -> &'a serde_json::Value {
    json["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name && c["input"] == input)
        .unwrap_or_else(|| panic!("no {name}/{input} in {json}"))
}

#[test]
fn plusone_is_inlined_across_the_boundary_and_pow_stays_a_call() {
    if !common::xlto_here("plusone_is_inlined_across_the_boundary_and_pow_stays_a_call") {
        return;
    }
    let json = bench(&["plusone", "pow"], &[]);
    let plusone = case(&json, "plusone", "int");
    let inlining = &plusone["inlining"];
    assert_eq!(inlining["callee"], "ffiprof_plusone");
    assert_eq!(inlining["inlined"], true, "{inlining}");
    assert_eq!(inlining["calls"].as_array().unwrap().len(), 0, "{inlining}");
    let xlto = plusone["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "per-call-xlto")
        .expect("measured");
    assert_eq!(xlto["placements"], 4);
    // Where callgrind counted: fewer instructions per call than the call it replaced.
    let per_call = plusone["variants"].as_array().unwrap().iter().find(|v| v["name"] == "per-call");
    if let (Some(a), Some(b)) = (
        xlto["instructions"]["per_call"].as_f64(),
        per_call.and_then(|v| v["instructions"]["per_call"].as_f64()),
    ) {
        assert!(a < b, "inlined {a} instructions per call, called {b}");
    }
    for input in ["cube-from-0", "chain"] {
        let pow = &case(&json, "pow", input)["inlining"];
        assert_eq!(pow["inlined"], false, "{pow}");
        assert!(pow["calls"].as_array().unwrap().iter().any(|c| c == "pow"), "{pow}");
        assert_eq!(pow["why"]["reason"], "imported", "{pow}");
        assert_eq!(pow["why"]["callee"], "pow", "{pow}");
        assert!(pow["why"]["library"].as_str().unwrap().contains("libm"), "{pow}");
        let inlining: ffiprof::workload::per_call_xlto::Inlining =
            serde_json::from_value(pow.clone()).unwrap();
        let words = inlining.sentence();
        assert!(words.contains("not in the LTO unit") && words.contains("libm"), "{words}");
    }
    let notes = json["notes"].as_array().unwrap();
    assert!(notes.iter().any(|n| n.as_str().unwrap().contains("ffiprof_plusone inlined")));
}

#[test]
fn without_a_matching_clang_the_variant_is_left_out_with_what_to_install() {
    let json = bench(&["plusone"], &[("FFIPROF_XLTO_CLANG", "/bin/false")]);
    let plusone = case(&json, "plusone", "int");
    let names: Vec<&str> = plusone["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["batched", "batched (control)", "per-call", "rust-inlined"]);
    let left_out = &plusone["unavailable"][0];
    assert_eq!(left_out["variant"], "per-call-xlto");
    assert!(left_out["why"].as_str().unwrap().contains("apt-get install clang-"), "{left_out}");
    let notes = json["notes"].as_array().unwrap();
    assert!(notes.iter().any(|n| n.as_str().unwrap().contains("per-call-xlto not measured")));
}
