//! Replays every input the fuzz targets crashed on (fuzz/regressions/TARGET/), and the samples and VDEX files they are seeded from, through the targets' own code.

use crate::harness::repo_root;

fn files(folder: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(repo_root().join(folder)) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && path.file_name().is_some_and(|name| name != "README.md"))
        .collect();
    paths.sort();
    paths
}

/// A fuzz target: its name, its body, and the folders of inputs it replays.
type Target = (&'static str, fn(&[u8]), &'static [&'static str]);

#[test]
fn fuzz_regressions_and_seeds_run_clean() {
    let targets: [Target; 4] = [
        (
            "envelope",
            uwlr_gateway::fuzzing::envelope,
            &["fuzz/regressions/envelope", "samples"],
        ),
        (
            "message",
            uwlr_gateway::fuzzing::message,
            &["fuzz/regressions/message", "samples"],
        ),
        (
            "differential",
            uwlr_gateway::fuzzing::differential,
            &["fuzz/regressions/differential"],
        ),
        (
            "vdex",
            uwlr_gateway::fuzzing::vdex,
            &["fuzz/regressions/vdex", "vdex"],
        ),
    ];
    let mut replayed = 0;
    for (target, run, folders) in targets {
        for folder in folders {
            for path in files(folder) {
                let bytes = std::fs::read(&path).unwrap();
                let started = std::time::Instant::now();
                run(&bytes);
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(10),
                    "{target} took {:?} on {}",
                    started.elapsed(),
                    path.display()
                );
                replayed += 1;
            }
        }
    }
    assert!(replayed > 30, "only {replayed} inputs found");
}
