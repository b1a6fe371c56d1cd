//! Prometheus metrics (prometheus-client) and the last hour of figures the status page draws.
//!
//! The hot path only touches atomics: counters, one histogram observation per message and
//! per group commit, and a fixed array of latency buckets for the status page's quantiles.
//! Gauges that describe state (WAL size, publisher lag, per-LRS delivery) are read from the
//! store by the sampler every `SAMPLE_INTERVAL`, never while a message is handled.
//! There is one `Metrics` per process (`metrics()`): the store's writer threads, the
//! publisher and the delivery worker record into it without a handle passed around.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use crate::domain::Rule;

/// How often the sampler reads the store's state and adds a point to the history.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// Points kept: one hour at `SAMPLE_INTERVAL`.
pub(crate) const HISTORY_POINTS: usize = 1800;
/// Bodies up to this size count as drip messages, larger ones as batches (the same bound
/// under which a body stays in memory, `body::MEMORY_LIMIT`).
pub(crate) const DRIP_MAX_BYTES: u64 = 1 << 20;

/// What happened to one SOAP call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MessageOutcome {
    Accepted,
    /// The same bytes were accepted before; nothing changed.
    Replay,
    /// Answered with a fault naming violations.
    Rejected,
    /// Refused at the HTTP level (media type, size, method, busy, incomplete body).
    Refused,
    /// Failed on our side (Server.InterneFout).
    Error,
}

impl MessageOutcome {
    const ALL: [MessageOutcome; 5] = [
        MessageOutcome::Accepted,
        MessageOutcome::Replay,
        MessageOutcome::Rejected,
        MessageOutcome::Refused,
        MessageOutcome::Error,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            MessageOutcome::Accepted => "accepted",
            MessageOutcome::Replay => "replay",
            MessageOutcome::Rejected => "rejected",
            MessageOutcome::Refused => "refused",
            MessageOutcome::Error => "error",
        }
    }
}

/// Upper bounds (ms) of the latency buckets the status page's quantiles come from.
const LATENCY_BOUNDS_MS: [f64; 24] = [
    0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0,
    500.0, 750.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0, 60000.0,
];

/// Every series the gateway exports, and the counts the status page diffs.
pub(crate) struct Metrics {
    /// The exporter's view of the recorder (`metrics-exporter-prometheus`).
    handle: PrometheusHandle,
    /// Messages per `MessageOutcome::ALL` position, for the status page.
    outcomes: [AtomicU64; 5],
    /// Faults per `Rule::ALL` position (the leading rule of each rejected message).
    faults: [AtomicU64; Rule::ALL.len()],
    /// Results stored, as the counter `uwlr_results_stored_total`.
    results: AtomicU64,
    /// Message durations per `LATENCY_BOUNDS_MS` bucket (the last one takes the rest).
    latency: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    /// The history the status page draws, written by the sampler only.
    history: Mutex<History>,
    /// The publisher's lag (seconds, as f64 bits; negative: never sampled), for `/ready`.
    last_publisher_lag: AtomicI64,
    /// Handles of the fixed label sets, registered once: recording through them touches
    /// only the exporter's atomics, never its registry.
    sizes: [::metrics::Histogram; 2],
    durations: [::metrics::Histogram; 2],
    commit_durations: [::metrics::Histogram; 2],
    commit_groups: [::metrics::Histogram; 2],
    results_stored: ::metrics::Counter,
}

/// The `uwlr_messages_total` handle of each outcome, rule and klantcode a thread has counted:
/// after the first message of a kind, counting is one lookup in the thread's own map and
/// one atomic add (the exporter's registry sits behind a lock).
type MessageCounters = std::collections::HashMap<
    (MessageOutcome, Option<Rule>),
    std::collections::HashMap<String, ::metrics::Counter>,
>;

thread_local! {
    static MESSAGE_COUNTERS: std::cell::RefCell<MessageCounters> = std::cell::RefCell::default();
}

/// Position of the `drip` and `batch` handles.
fn class_index(size: u64) -> usize {
    usize::from(size > DRIP_MAX_BYTES)
}

/// Position of the `core` and `xapi` handles.
fn database_index(database: &str) -> usize {
    usize::from(database != "core")
}

/// Points of the last hour, and where the counters stood at the last one.
#[derive(Default)]
struct History {
    points: VecDeque<Point>,
    last: Option<Cumulative>,
    /// When each change-feed end position was first seen, to tell the publisher's lag in seconds.
    ends: VecDeque<(Instant, i64)>,
    /// The error class each LRS's `uwlr_lrs_last_error` was last set to 1 for.
    error_classes: std::collections::HashMap<String, &'static str>,
}

/// Counter values at one instant.
#[derive(Clone)]
struct Cumulative {
    at: Instant,
    outcomes: [u64; 5],
    faults: [u64; Rule::ALL.len()],
    results: u64,
    latency: [u64; LATENCY_BOUNDS_MS.len() + 1],
}

/// One point of the status page's charts: rates over the interval before it, and state at it.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Point {
    /// Unix time, seconds.
    pub(crate) t: i64,
    /// Messages per second by outcome label.
    pub(crate) messages: Vec<(&'static str, f64)>,
    /// Faults per second by leading rule code (rules with none left out).
    pub(crate) faults: Vec<(&'static str, f64)>,
    pub(crate) results_per_sec: f64,
    /// Message duration quantiles over the interval (ms); None without messages.
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) publisher_lag_changes: i64,
    pub(crate) publisher_lag_secs: f64,
    /// Per LRS: delivery lag (seconds since the oldest pending statement was stored).
    pub(crate) lrs_lag_secs: Vec<(String, f64)>,
}

/// What the sampler read from the store.
#[derive(Clone, Debug, Default)]
pub(crate) struct StoreState {
    pub(crate) publisher_cursor: i64,
    pub(crate) change_end: i64,
    pub(crate) wal_bytes: [(&'static str, u64); 2],
    pub(crate) lrs: Vec<LrsState>,
}

/// Delivery state of one LRS.
#[derive(Clone, Debug)]
pub(crate) struct LrsState {
    pub(crate) name: String,
    pub(crate) pending: i64,
    pub(crate) lag_secs: f64,
    pub(crate) dead_letters: i64,
    pub(crate) last_error_class: &'static str,
}

/// The process's metrics.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let builder = PrometheusBuilder::new()
            // Gauges of an LRS that was removed disappear once the sampler stops setting them.
            .idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_secs(60)))
            .set_buckets_for_metric(
                Matcher::Full("uwlr_message_size_bytes".into()),
                &[
                    1024.0,
                    4096.0,
                    16384.0,
                    65536.0,
                    262144.0,
                    1048576.0,
                    4194304.0,
                    16777216.0,
                    67108864.0,
                    268435456.0,
                ],
            )
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("uwlr_message_duration_seconds".into()),
                    &[
                        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
                        30.0, 60.0, 300.0,
                    ],
                )
            })
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("uwlr_store_commit_duration_seconds".into()),
                    &[
                        0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
                        5.0,
                    ],
                )
            })
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("uwlr_store_commit_group_size".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
                )
            })
            .expect("bucket bounds are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        }
        describe();
        let classes = ["drip", "batch"];
        let databases = ["core", "xapi"];
        Metrics {
            handle,
            sizes: classes.map(|class| ::metrics::histogram!("uwlr_message_size_bytes", "class" => class)),
            durations: classes
                .map(|class| ::metrics::histogram!("uwlr_message_duration_seconds", "class" => class)),
            commit_durations: databases.map(|database| {
                ::metrics::histogram!("uwlr_store_commit_duration_seconds", "database" => database)
            }),
            commit_groups: databases.map(|database| {
                ::metrics::histogram!("uwlr_store_commit_group_size", "database" => database)
            }),
            results_stored: ::metrics::counter!("uwlr_results_stored_total"),
            outcomes: Default::default(),
            faults: Default::default(),
            results: AtomicU64::new(0),
            latency: Default::default(),
            history: Mutex::new(History::default()),
            last_publisher_lag: AtomicI64::new(-1),
        }
    }

    /// Counts one SOAP call. `klantcode` is given only for a sender the gateway authenticated.
    pub(crate) fn message(
        &self,
        outcome: MessageOutcome,
        rule: Option<Rule>,
        klantcode: Option<&str>,
        size: u64,
        elapsed: Duration,
    ) {
        let (faultcode, rule_label) = match (outcome, rule) {
            (_, Some(rule)) => (rule.faultcode(), rule.code()),
            (MessageOutcome::Error, None) => (Rule::Intern.faultcode(), Rule::Intern.code()),
            _ => ("none", "none"),
        };
        let klantcode = klantcode.unwrap_or("unknown");
        MESSAGE_COUNTERS.with(|counters| {
            let mut counters = counters.borrow_mut();
            let by_klantcode = counters.entry((outcome, rule)).or_default();
            if let Some(counter) = by_klantcode.get(klantcode) {
                counter.increment(1);
                return;
            }
            let counter = ::metrics::counter!(
                "uwlr_messages_total",
                "outcome" => outcome.label(),
                "faultcode" => faultcode,
                "rule" => rule_label,
                "klantcode" => klantcode.to_string()
            );
            counter.increment(1);
            by_klantcode.insert(klantcode.to_string(), counter);
        });
        let position = MessageOutcome::ALL
            .iter()
            .position(|known| *known == outcome)
            .unwrap_or(0);
        self.outcomes[position].fetch_add(1, Ordering::Relaxed);
        if let Some(position) = rule.and_then(|rule| Rule::ALL.iter().position(|r| *r == rule)) {
            self.faults[position].fetch_add(1, Ordering::Relaxed);
        }
        let class = class_index(size);
        self.sizes[class].record(size as f64);
        let seconds = elapsed.as_secs_f64();
        self.durations[class].record(seconds);
        let millis = seconds * 1000.0;
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|bound| millis <= *bound)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the results an accepted message stored.
    pub(crate) fn results_stored(&self, results: u64) {
        self.results_stored.increment(results);
        self.results.fetch_add(results, Ordering::Relaxed);
    }

    /// One group commit of a store writer (`core` or `xapi`).
    pub(crate) fn group_commit(&self, database: &'static str, jobs: usize, elapsed: Duration) {
        let index = database_index(database);
        self.commit_durations[index].record(elapsed.as_secs_f64());
        self.commit_groups[index].record(jobs as f64);
    }

    /// A delivery attempt to `lrs` failed and will be retried.
    pub(crate) fn delivery_retry(&self, lrs: &str) {
        ::metrics::counter!("uwlr_lrs_retries_total", "lrs" => lrs.to_string()).increment(1);
    }

    /// One answered read API request; `route` is a template (`query::route_template`).
    pub(crate) fn read_request(&self, route: &'static str, status: u16) {
        ::metrics::counter!("uwlr_read_requests_total", "route" => route, "status" => status.to_string())
            .increment(1);
    }

    /// Brings the authentication counters up to the limiter's own (which count in atomics).
    pub(crate) fn auth_stats(&self, stats: &crate::auth_limit::AuthLimitStats) {
        for (kind, value) in [
            ("failure", stats.failures),
            ("source_lockout", stats.source_lockouts),
            ("klantcode_lockout", stats.klantcode_lockouts),
            ("refused", stats.refused),
        ] {
            ::metrics::counter!("uwlr_auth_events_total", "kind" => kind).absolute(value);
        }
    }

    /// The exposition text (Prometheus text format 0.0.4).
    pub(crate) fn render(&self) -> String {
        self.handle.render()
    }

    /// The publisher's lag in seconds at the last sample, if there was one.
    pub(crate) fn publisher_lag_secs(&self) -> Option<f64> {
        let bits = self.last_publisher_lag.load(Ordering::Relaxed);
        (bits >= 0).then(|| f64::from_bits(bits as u64))
    }

    /// Messages by outcome and results stored since the process started.
    pub(crate) fn totals(&self) -> serde_json::Value {
        let mut totals = serde_json::Map::new();
        for (i, outcome) in MessageOutcome::ALL.iter().enumerate() {
            totals.insert(
                outcome.label().into(),
                self.outcomes[i].load(Ordering::Relaxed).into(),
            );
        }
        totals.insert(
            "results".into(),
            self.results.load(Ordering::Relaxed).into(),
        );
        serde_json::Value::Object(totals)
    }

    /// The history, oldest point first.
    pub(crate) fn history(&self) -> Vec<Point> {
        let history = self
            .history
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        history.points.iter().cloned().collect()
    }

    /// Sets the state gauges from `state` and adds a point to the history.
    pub(crate) fn sample(&self, state: &StoreState, now_unix: i64) {
        let now = Instant::now();
        // Histograms are kept in lock-free blocks until the exporter folds them in.
        self.handle.run_upkeep();
        for (database, bytes) in state.wal_bytes {
            ::metrics::gauge!("uwlr_store_wal_size_bytes", "database" => database)
                .set(bytes as f64);
        }
        let mut history = self
            .history
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for lrs in &state.lrs {
            let name = lrs.name.clone();
            ::metrics::gauge!("uwlr_lrs_pending_statements", "lrs" => name.clone())
                .set(lrs.pending as f64);
            ::metrics::gauge!("uwlr_lrs_delivery_lag_seconds", "lrs" => name.clone())
                .set(lrs.lag_secs);
            ::metrics::gauge!("uwlr_lrs_dead_letters", "lrs" => name.clone())
                .set(lrs.dead_letters as f64);
            let before = history
                .error_classes
                .insert(name.clone(), lrs.last_error_class);
            if let Some(before) = before.filter(|before| *before != lrs.last_error_class) {
                ::metrics::gauge!("uwlr_lrs_last_error", "lrs" => name.clone(), "class" => before)
                    .set(0.0);
            }
            ::metrics::gauge!("uwlr_lrs_last_error", "lrs" => name, "class" => lrs.last_error_class).set(1.0);
        }
        let current = Cumulative {
            at: now,
            outcomes: std::array::from_fn(|i| self.outcomes[i].load(Ordering::Relaxed)),
            faults: std::array::from_fn(|i| self.faults[i].load(Ordering::Relaxed)),
            results: self.results.load(Ordering::Relaxed),
            latency: std::array::from_fn(|i| self.latency[i].load(Ordering::Relaxed)),
        };
        let lag_changes = (state.change_end - state.publisher_cursor).max(0);
        // The lag in seconds: since the first sample that saw the change after the cursor.
        if history
            .ends
            .back()
            .is_none_or(|(_, end)| *end < state.change_end)
        {
            history.ends.push_back((now, state.change_end));
        }
        while history
            .ends
            .front()
            .is_some_and(|(_, end)| *end <= state.publisher_cursor)
        {
            history.ends.pop_front();
        }
        let lag_secs = history
            .ends
            .front()
            .map_or(0.0, |(seen, _)| now.duration_since(*seen).as_secs_f64());
        ::metrics::gauge!("uwlr_publisher_lag_changes").set(lag_changes as f64);
        ::metrics::gauge!("uwlr_publisher_lag_seconds").set(lag_secs);
        self.last_publisher_lag
            .store(lag_secs.to_bits() as i64, Ordering::Relaxed);
        if let Some(last) = history.last.replace(current.clone()) {
            let seconds = current.at.duration_since(last.at).as_secs_f64().max(0.001);
            let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / seconds;
            let latency: Vec<u64> = (0..current.latency.len())
                .map(|i| current.latency[i].saturating_sub(last.latency[i]))
                .collect();
            let point = Point {
                t: now_unix,
                messages: MessageOutcome::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, outcome)| {
                        (outcome.label(), rate(current.outcomes[i], last.outcomes[i]))
                    })
                    .collect(),
                faults: Rule::ALL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| current.faults[*i] > 0)
                    .map(|(i, rule)| (rule.code(), rate(current.faults[i], last.faults[i])))
                    .collect(),
                results_per_sec: rate(current.results, last.results),
                p50_ms: quantile(&latency, 0.50),
                p99_ms: quantile(&latency, 0.99),
                publisher_lag_changes: lag_changes,
                publisher_lag_secs: lag_secs,
                lrs_lag_secs: state
                    .lrs
                    .iter()
                    .map(|lrs| (lrs.name.clone(), lrs.lag_secs))
                    .collect(),
            };
            history.points.push_back(point);
            while history.points.len() > HISTORY_POINTS {
                history.points.pop_front();
            }
        }
    }
}

/// Help texts and units of every series.
fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "uwlr_messages_total",
        "SOAP calls by outcome, faultcode, leading rule and klantcode (unknown unless authenticated)"
    );
    describe_counter!(
        "uwlr_results_stored_total",
        "Results (resultaat elements) in accepted messages"
    );
    describe_histogram!(
        "uwlr_message_size_bytes",
        Unit::Bytes,
        "Body size of SOAP calls; class drip is a body up to 1 MiB, batch a larger one"
    );
    describe_histogram!(
        "uwlr_message_duration_seconds",
        Unit::Seconds,
        "Time from the request to the answer of SOAP calls, by class (drip: body up to 1 MiB, batch)"
    );
    describe_histogram!(
        "uwlr_store_commit_duration_seconds",
        Unit::Seconds,
        "Duration of one group commit of a store writer (its jobs and the COMMIT)"
    );
    describe_histogram!(
        "uwlr_store_commit_group_size",
        Unit::Count,
        "Jobs (messages, publisher rounds) per group commit of a store writer"
    );
    describe_gauge!(
        "uwlr_store_wal_size_bytes",
        Unit::Bytes,
        "Size of the database's write-ahead log file"
    );
    describe_gauge!(
        "uwlr_publisher_lag_changes",
        "Changes in the change feed the publisher has not yet turned into statements"
    );
    describe_gauge!(
        "uwlr_publisher_lag_seconds",
        Unit::Seconds,
        "How long the oldest unpublished change has waited (to within the 2 s sampling interval)"
    );
    describe_gauge!(
        "uwlr_lrs_pending_statements",
        "Statements waiting for delivery to an LRS"
    );
    describe_gauge!(
        "uwlr_lrs_delivery_lag_seconds",
        Unit::Seconds,
        "Age of the oldest statement waiting for delivery to an LRS (0 when none)"
    );
    describe_counter!(
        "uwlr_lrs_retries_total",
        "Delivery attempts to an LRS that failed and will be retried"
    );
    describe_gauge!(
        "uwlr_lrs_dead_letters",
        "Statements an LRS refused, kept as dead letters and not requeued"
    );
    describe_gauge!(
        "uwlr_lrs_last_error",
        "1 for the class of an LRS's last delivery error (class none after a success)"
    );
    describe_counter!(
        "uwlr_read_requests_total",
        "Read API requests by route template and HTTP status"
    );
    describe_counter!(
        "uwlr_auth_events_total",
        "Failed authentications (kind failure), bucket lockouts (source_lockout, klantcode_lockout), requests refused while locked out (refused)"
    );
}

/// The upper bound of the bucket holding quantile `q` of `counts` (per `LATENCY_BOUNDS_MS`).
fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(
                LATENCY_BOUNDS_MS
                    .get(i)
                    .copied()
                    .unwrap_or(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]),
            );
        }
    }
    None
}

/// The class of an LRS's last delivery error, from what `outbox status` keeps.
pub(crate) fn error_class(last_status: Option<i64>, last_error: Option<&str>) -> &'static str {
    match (last_status, last_error) {
        (_, None) => "none",
        (Some(401 | 403), _) => "unauthorized",
        (Some(429), _) => "throttled",
        (Some(status), _) if (400..500).contains(&status) => "refused_4xx",
        (Some(status), _) if status >= 500 => "server_5xx",
        (Some(_), _) => "http_other",
        (None, Some(text)) => {
            let text = text.to_ascii_lowercase();
            if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
                "tls"
            } else if text.contains("dns") || text.contains("resolve") || text.contains("lookup") {
                "dns"
            } else if text.contains("timed out") || text.contains("timeout") {
                "timeout"
            } else if text.contains("refused") {
                "refused_connection"
            } else {
                "connection"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let mut counts = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        counts[1] = 98; // ≤ 1 ms
        counts[10] = 2; // ≤ 50 ms
        assert_eq!(quantile(&counts, 0.5), Some(1.0));
        assert_eq!(quantile(&counts, 0.99), Some(50.0));
        assert_eq!(quantile(&[0; 3], 0.5), None);
    }

    /// What recording one drip message costs (run by hand: `cargo test --lib -- --ignored
    /// --nocapture recording_cost`); in a debug build this is an upper bound.
    #[test]
    #[ignore]
    fn recording_cost() {
        let metrics = metrics();
        let rounds = 200_000u32;
        let started = Instant::now();
        for round in 0..rounds {
            metrics.message(
                MessageOutcome::Accepted,
                None,
                Some("DEMO-EA"),
                2048,
                Duration::from_micros(u64::from(round % 5000)),
            );
            metrics.results_stored(1);
            metrics.group_commit("core", 1, Duration::from_micros(300));
        }
        let per_message = started.elapsed() / rounds;
        println!("recording one drip message: {per_message:?}");
    }

    #[test]
    fn error_classes() {
        assert_eq!(error_class(None, None), "none");
        assert_eq!(error_class(Some(503), Some("busy")), "server_5xx");
        assert_eq!(error_class(Some(400), Some("bad")), "refused_4xx");
        assert_eq!(
            error_class(
                None,
                Some("error sending request: invalid peer certificate")
            ),
            "tls"
        );
        assert_eq!(error_class(None, Some("operation timed out")), "timeout");
        assert_eq!(
            error_class(None, Some("Connection refused (os error 111)")),
            "refused_connection"
        );
    }

    #[test]
    fn publisher_lag_counts_from_the_first_sample_that_saw_the_change() {
        let metrics = Metrics::new();
        let state = |cursor, end| StoreState {
            publisher_cursor: cursor,
            change_end: end,
            ..StoreState::default()
        };
        metrics.sample(&state(5, 5), 0);
        assert_eq!(metrics.publisher_lag_secs(), Some(0.0));
        metrics.sample(&state(5, 9), 1);
        std::thread::sleep(Duration::from_millis(30));
        metrics.sample(&state(6, 12), 2);
        assert!(metrics.publisher_lag_secs().unwrap() >= 0.03);
        metrics.sample(&state(12, 12), 3);
        assert_eq!(metrics.publisher_lag_secs(), Some(0.0));
        assert_eq!(metrics.history().len(), 3);
    }
}
