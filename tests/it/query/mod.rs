//! Read API tests against the real binary: feed paging under load, scope, audit, OpenAPI conformance.

mod feed;
mod openapi;
mod scope;
mod xapi;

use crate::harness::message::{aanmaakdatum, Message, Toets};
use crate::harness::{repo_root, spawn_gateway, Gateway, Options};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A demo gateway without fsync at each commit (these tests are not about crash safety).
pub fn spawn() -> Gateway {
    spawn_gateway(Options::quick())
}

/// The same with extra `UWLR_*` settings.
pub fn spawn_with(environment: &[(&str, &str)]) -> Gateway {
    spawn_gateway(Options::quick().envs(environment))
}

/// A demo gateway with `samples` sent for 99XX01, and 99YY activated with two
/// afnames of YY0001 whose keys (`YY-SECRET-…`) give away any leak.
pub fn two_schools(samples: &[&str]) -> Gateway {
    let gateway = spawn();
    gateway.cli_stdout(&words(
        "schools activate 99YY --klantcode DEMO-EA --mandate DPA-YY --valid-from 2020-01-01",
    ));
    gateway.post_accepted(samples);
    gateway.post_ok(message(
        "99YY",
        None,
        &aanmaakdatum(0),
        &[
            Resultaat {
                key: "YY-SECRET-1".into(),
                leerlingid: "YY0001".into(),
                score: 51,
            },
            Resultaat {
                key: "YY-SECRET-2".into(),
                leerlingid: "YY0001".into(),
                score: 52,
            },
        ],
    ));
    gateway
}

/// Keeps 99XX01 busy: 30 afnames (keys `XX-BUSY-{message}-{n}`) in three messages.
pub fn busy_99xx01(gateway: &Gateway) {
    for batch in 1..=3u32 {
        let results: Vec<Resultaat> = (0..10)
            .map(|n| Resultaat {
                key: format!("XX-BUSY-{batch}-{n}"),
                leerlingid: demo_leerling(n),
                score: 40,
            })
            .collect();
        gateway.post_ok(message("99XX", Some("01"), &aanmaakdatum(batch), &results));
    }
}

/// Adds a reader with the given CLI flags and returns its token (the last output line).
pub fn reader(gateway: &Gateway, name: &str, flags: &[&str]) -> String {
    let mut args = vec!["readers", "add", name];
    args.extend_from_slice(flags);
    let output = gateway.cli_stdout(&args);
    output
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_string()
}

/// Command line arguments written as one line.
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// One result to put in a generated message.
#[derive(Clone, Debug)]
pub struct Resultaat {
    pub key: String,
    pub leerlingid: String,
    pub score: u32,
}

/// A BrengLeerresultaten envelope from the demo client for `brincode`/`dependancecode`
/// with one toets `QT-PAGE` (normering 0..100) and the given results, grouped per leerling.
pub fn message(
    brincode: &str,
    dependancecode: Option<&str>,
    aanmaakdatum: &str,
    results: &[Resultaat],
) -> Vec<u8> {
    let mut by_leerling: std::collections::BTreeMap<&str, Vec<&Resultaat>> =
        std::collections::BTreeMap::new();
    for result in results {
        by_leerling
            .entry(result.leerlingid.as_str())
            .or_default()
            .push(result);
    }
    let school = format!("{brincode}{}", dependancecode.unwrap_or_default());
    let mut message = Message::demo(aanmaakdatum).school(&school);
    for (leerlingid, results) in by_leerling {
        let resultaten = results
            .iter()
            .map(|result| {
                crate::harness::message::Resultaat::score(
                    &result.key,
                    "QT-PAGE",
                    u64::from(result.score),
                )
                .afnamedatum("2026-10-01")
            })
            .collect();
        message = message.afname(leerlingid, resultaten);
    }
    message
        .toets(
            Toets::new("QT-PAGE")
                .naam("Paging toets")
                .norms(&[("onvoldoende", 0, 49), ("voldoende", 50, 100)]),
        )
        .envelope()
}

/// The demo learners LL0001..LL0020.
pub fn demo_leerling(index: usize) -> String {
    format!("LL{:04}", index % 20 + 1)
}

/// The audit rows (reads only, oldest first) as JSON.
pub fn read_audit(gateway: &Gateway, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "--reads", "--json", "--limit", "100000"];
    args.extend_from_slice(extra);
    let mut rows: Vec<Value> = gateway
        .cli_stdout(&args)
        .lines()
        .map(|line| serde_json::from_str(line).expect("audit JSON line"))
        .collect();
    rows.reverse();
    rows
}
