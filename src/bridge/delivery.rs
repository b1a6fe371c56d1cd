//! The delivery worker: one task per subscribed LRS posts statements in seq order from its cursor, with retries, bisection and dead letters.
//!
//! Delivery is at least once; deterministic statement ids make it once in effect (an LRS
//! answers a resend with 200/204, or 409 when it holds that id: then the held statement is
//! fetched and compared, and only the same statement counts as delivered). The cursor and dead letters
//! are written through `Store::write_xapi`, after the LRS has answered, so a crash between the two
//! only causes a resend of the same ids.

use super::subscriptions::Subscription;
use super::xapi::Mapping;
use crate::store::outbox::{self as rows, PendingStatement};
use crate::store::{Store, StoreError};
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Settings of the worker (from `Config`).
#[derive(Clone, Debug)]
pub(crate) struct DeliveryConfig {
    /// Most statements in one POST.
    pub(crate) batch_size: usize,
    /// Deadline of one POST, connection included.
    pub(crate) request_timeout: Duration,
    /// How often subscriptions are reloaded and idle tasks look for work made by other processes.
    pub(crate) poll_interval: Duration,
    /// First retry delay; it doubles per failed attempt up to `max_backoff`.
    pub(crate) base_backoff: Duration,
    pub(crate) max_backoff: Duration,
    /// How long in-flight batches may take to finish at shutdown before they are abandoned.
    pub(crate) shutdown_grace: Duration,
}

/// What one POST came to.
#[derive(Debug, PartialEq)]
enum Answer {
    /// 2xx: stored, or already there.
    Delivered(u16),
    /// 409: the LRS holds one of these ids with other content.
    Conflict(String),
    /// A 4xx other than 401, 408, 409 and 429: the LRS refuses this content.
    Refused(u16, String),
    /// Timeouts, connection errors, 401, 408, 429, 5xx and anything unexpected: try again later.
    Retry {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
}

/// What an LRS that answered 409 holds under the statement's id.
#[derive(Debug, PartialEq)]
enum Held {
    /// The statement sent, as xAPI compares statements.
    Same,
    /// Another statement; carries the first difference.
    Different(String),
    /// Nothing under that id, voided or not, although it answered 409.
    Missing,
    /// The LRS does not let these credentials read statements (401 or 403 on the GET),
    /// so whether it holds this one cannot be known.
    Unreadable(u16),
}

/// Whether a delivery round finished or must be retried after a pause.
enum Round {
    Done,
    Retry {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
}

struct Running {
    fingerprint: String,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Runs until `stop` turns true: reloads subscriptions every poll interval (so `lrs add|remove`
/// take effect without a restart) and keeps one delivery task per subscription.
pub(crate) async fn run(
    store: Store,
    mapping: Arc<Mapping>,
    keyring: Arc<crate::secret::Keyring>,
    config: DeliveryConfig,
    mut stop: watch::Receiver<bool>,
) {
    let system_roots = match tokio::task::spawn_blocking(super::trust::system_roots).await {
        Ok(roots) => roots,
        Err(error) => {
            tracing::error!(%error, "cannot read the system root certificates; the delivery worker does not run");
            return;
        }
    };
    let mut worker = Worker {
        store,
        mapping,
        keyring,
        config,
        system_roots,
        running: HashMap::new(),
        unopened: HashSet::new(),
        unbuilt: HashSet::new(),
    };
    loop {
        worker.reconcile().await;
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(worker.config.poll_interval) => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    worker.shutdown().await;
    tracing::info!("outbox worker stopped");
}

/// The worker's state between two reloads of the subscriptions.
struct Worker {
    store: Store,
    mapping: Arc<Mapping>,
    keyring: Arc<crate::secret::Keyring>,
    config: DeliveryConfig,
    system_roots: rustls::RootCertStore,
    running: HashMap<i64, Running>,
    /// Subscriptions whose secrets did not open, and those whose HTTP client could not be
    /// built (stored CA certificates that do not load), reported once each (not at every poll).
    unopened: HashSet<i64>,
    unbuilt: HashSet<i64>,
}

impl Worker {
    /// Loads the subscriptions, stops the tasks of removed or changed ones and starts the missing.
    async fn reconcile(&mut self) {
        let store_for_read = self.store.clone();
        let loaded =
            tokio::task::spawn_blocking(move || store_for_read.read(rows::list_subscriptions))
                .await;
        let subscriptions = match loaded {
            Ok(Ok(subscriptions)) => subscriptions,
            Ok(Err(error)) => return tracing::warn!(%error, "cannot load LRS subscriptions"),
            Err(error) => return tracing::warn!(%error, "cannot load LRS subscriptions"),
        };
        let mut wanted: HashMap<i64, Subscription> = HashMap::new();
        for row in subscriptions {
            let (id, name) = (row.id, row.name.clone());
            match Subscription::open(row, &self.keyring) {
                Ok(subscription) => {
                    self.unopened.remove(&id);
                    wanted.insert(id, subscription);
                }
                Err(error) => {
                    if self.unopened.insert(id) {
                        tracing::error!(lrs = %name, %error, "cannot open the LRS's stored secrets; nothing is delivered to it");
                    }
                }
            }
        }
        self.running.retain(|id, task| {
            let keep = wanted
                .get(id)
                .is_some_and(|s| s.fingerprint() == task.fingerprint)
                && !task.handle.is_finished();
            if !keep {
                let _ = task.stop.send(true);
            }
            keep
        });
        for (id, subscription) in wanted {
            if !self.running.contains_key(&id) {
                self.start(id, subscription).await;
            }
        }
    }

    /// Starts the delivery task of one subscription, unless its HTTP client cannot be built.
    async fn start(&mut self, id: i64, subscription: Subscription) {
        let client = match http_client(&self.config, &self.system_roots, &subscription) {
            Ok(client) => client,
            Err(error) => {
                if self.unbuilt.insert(id) {
                    let text = format!(
                        "cannot build the HTTP client for this LRS: {}",
                        crate::logging::cause_chain(&*error)
                    );
                    tracing::error!(lrs = %subscription.row.name, error = %text,
                        "nothing is delivered to the LRS");
                    // Also where `outbox status` shows it.
                    let _ = self
                        .store
                        .write_xapi(move |connection| {
                            rows::record_failure(connection, id, None, &text)
                        })
                        .await;
                }
                return;
            }
        };
        self.unbuilt.remove(&id);
        tracing::info!(lrs = %subscription.row.name, url = %subscription.row.url, "delivering to LRS");
        let (stop_task, stop_receiver) = watch::channel(false);
        let task = Task {
            store: self.store.clone(),
            mapping: self.mapping.clone(),
            config: self.config.clone(),
            client,
            fingerprint: subscription.fingerprint(),
            subscription,
            stop: stop_receiver,
        };
        let fingerprint = task.fingerprint.clone();
        self.running.insert(
            id,
            Running {
                fingerprint,
                stop: stop_task,
                handle: tokio::spawn(task.run()),
            },
        );
    }

    /// Stops every task and waits up to the shutdown grace for batches in flight.
    async fn shutdown(self) {
        for task in self.running.values() {
            let _ = task.stop.send(true);
        }
        let handles: Vec<JoinHandle<()>> =
            self.running.into_values().map(|task| task.handle).collect();
        let aborts: Vec<_> = handles.iter().map(JoinHandle::abort_handle).collect();
        let all = futures_join(handles);
        if tokio::time::timeout(self.config.shutdown_grace, all)
            .await
            .is_err()
        {
            tracing::warn!("delivery shutdown grace over; abandoning in-flight batches (they are resent at the next start)");
            for abort in aborts {
                abort.abort();
            }
        }
    }
}

/// The client of one LRS: its own TLS roots (the system's plus its stored CA), no redirects.
fn http_client(
    config: &DeliveryConfig,
    system_roots: &rustls::RootCertStore,
    subscription: &Subscription,
) -> Result<reqwest::Client, Box<dyn std::error::Error + Send + Sync>> {
    let tls = super::trust::client_config(system_roots, subscription.row.ca_pem.as_deref())?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .user_agent(concat!("uwlr-gateway/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

/// The bookkeeping of an answer: a failed write is a round to retry.
fn retry_on_failure(written: Result<(), StoreError>) -> Result<(), Round> {
    written.map_err(|error| Round::Retry {
        status: None,
        error: error.to_string(),
        retry_after: None,
    })
}

/// Delivery to one LRS.
struct Task {
    store: Store,
    mapping: Arc<Mapping>,
    config: DeliveryConfig,
    client: reqwest::Client,
    subscription: Subscription,
    fingerprint: String,
    stop: watch::Receiver<bool>,
}

impl Task {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps for `duration`; false when stopped meanwhile.
    async fn pause(&mut self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.stop.changed() => false,
            () = tokio::time::sleep(duration) => !self.stopping(),
        }
    }

    async fn run(mut self) {
        let name = self.subscription.row.name.clone();
        let mut commits = self.store.xapi_commits();
        let mut cursor = self.subscription.row.cursor_seq;
        let mut attempt: u32 = 0;
        // The error last logged as a warning: a repeat of it is logged at debug only, so a
        // long outage leaves one warning per change of cause instead of one per attempt.
        let mut last_logged: Option<String> = None;
        while !self.stopping() {
            let id = self.subscription.row.id;
            let limit = self.config.batch_size;
            let requeued = self
                .store
                .read_blocking(move |c| rows::requeued_batch(c, id, limit))
                .await;
            let (batch, from_cursor) = match requeued {
                Ok(requeued) if !requeued.is_empty() => (Ok(requeued), false),
                Ok(_) => {
                    let row = self.subscription.row.clone();
                    (
                        self.store
                            .read_blocking(move |c| rows::pending_batch(c, &row, cursor, limit))
                            .await,
                        true,
                    )
                }
                Err(error) => (Err(error), true),
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(lrs = %name, %error, "cannot read pending statements");
                    if !self.pause(self.config.poll_interval).await {
                        break;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                attempt = 0;
                tokio::select! {
                    _ = self.stop.changed() => {}
                    _ = commits.changed() => {}
                    () = tokio::time::sleep(self.config.poll_interval) => {}
                }
                continue;
            }
            match self.deliver(batch, from_cursor, &mut cursor).await {
                Round::Done => {
                    attempt = 0;
                    if last_logged.take().is_some() {
                        tracing::info!(lrs = %name, "delivering again");
                    }
                }
                Round::Retry {
                    status,
                    error,
                    retry_after,
                } => {
                    attempt = attempt.saturating_add(1);
                    crate::metrics::metrics().delivery_retry(&name);
                    let delay = backoff(&self.config, attempt, retry_after);
                    if last_logged.as_deref() == Some(error.as_str()) {
                        tracing::debug!(lrs = %name, status, attempt, delay_ms = delay.as_millis() as u64,
                            "delivery failed again the same way; retrying");
                    } else {
                        tracing::warn!(lrs = %name, status, %error, attempt, delay_ms = delay.as_millis() as u64,
                            "delivery failed; retrying");
                        last_logged = Some(error.clone());
                    }
                    let message = error.clone();
                    let _ = self
                        .store
                        .write_xapi_atomic(move |c| rows::record_failure(c, id, status, &message))
                        .await;
                    if !self.pause(delay).await {
                        break;
                    }
                }
            }
        }
        tracing::debug!(lrs = %name, "delivery task stopped");
    }

    /// Posts `batch`, splitting parts the LRS refuses until the refused statements are alone.
    async fn deliver(
        &mut self,
        batch: Vec<PendingStatement>,
        from_cursor: bool,
        cursor: &mut i64,
    ) -> Round {
        let mut parts: Vec<Vec<PendingStatement>> = vec![batch];
        while let Some(mut part) = parts.pop() {
            let bodies = match self.render(&part) {
                Ok(bodies) => bodies,
                // Isolate it the same way as a refused statement, so the cursor never skips a neighbour.
                Err(_) if part.len() > 1 => {
                    let second = part.split_off(part.len() / 2);
                    parts.push(second);
                    parts.push(part);
                    continue;
                }
                Err(error) => {
                    let statement = part.remove(0);
                    tracing::error!(lrs = %self.subscription.row.name, statement = %statement.id, %error, "cannot render a statement");
                    if let Err(round) = self
                        .dead_letter(statement, from_cursor, cursor, None, error)
                        .await
                    {
                        return round;
                    }
                    continue;
                }
            };
            let answer = self.post(format!("[{}]", bodies.join(","))).await;
            let recorded = match answer {
                Answer::Delivered(status) => {
                    self.mark_delivered(&part, from_cursor, cursor, status)
                        .await
                }
                Answer::Conflict(_) | Answer::Refused(_, _) if part.len() > 1 => {
                    let second = part.split_off(part.len() / 2);
                    parts.push(second);
                    parts.push(part);
                    Ok(())
                }
                Answer::Conflict(text) => {
                    let statement = part.remove(0);
                    self.conflict(statement, &bodies[0], text, from_cursor, cursor)
                        .await
                }
                Answer::Refused(status, text) => {
                    let statement = part.remove(0);
                    tracing::warn!(lrs = %self.subscription.row.name, statement = %statement.id, status, answer = %text,
                        "LRS refused a statement; it is kept as a dead letter");
                    self.dead_letter(statement, from_cursor, cursor, Some(status), text)
                        .await
                }
                Answer::Retry {
                    status,
                    error,
                    retry_after,
                } => Err(Round::Retry {
                    status,
                    error,
                    retry_after,
                }),
            };
            if let Err(round) = recorded {
                return round;
            }
            if self.stopping() {
                // Shutdown between parts: what was answered is recorded; the rest is sent at the next start.
                return Round::Done;
            }
        }
        Round::Done
    }

    /// The statements of `part` as this LRS receives them; the first that cannot be rendered, why.
    fn render(&self, part: &[PendingStatement]) -> Result<Vec<String>, String> {
        part.iter()
            .map(|statement| {
                self.subscription
                    .render(&self.mapping, statement)
                    .map_err(|error| error.to_string())
            })
            .collect()
    }

    /// Records `part` as delivered (the LRS answered `status`) and, when it came from the
    /// cursor, moves the cursor past it; a failed write is a round to retry.
    async fn mark_delivered(
        &self,
        part: &[PendingStatement],
        from_cursor: bool,
        cursor: &mut i64,
        status: u16,
    ) -> Result<(), Round> {
        let id = self.subscription.row.id;
        let ids: Vec<String> = part.iter().map(|s| s.id.clone()).collect();
        let to_seq = if from_cursor {
            part.last().map(|s| s.seq)
        } else {
            None
        };
        retry_on_failure(
            self.store
                .write_xapi_atomic(move |c| rows::mark_delivered(c, id, to_seq, &ids, status))
                .await,
        )?;
        if let Some(seq) = to_seq {
            *cursor = (*cursor).max(seq);
        }
        tracing::debug!(lrs = %self.subscription.row.name, statements = part.len(), status,
            requeued = !from_cursor, "delivered");
        Ok(())
    }

    /// A 409 for one statement: delivered only if the LRS holds this very statement (a
    /// resend); otherwise the LRS keeps other content under our id (another identity, a
    /// mapping change), which an operator must see, so it becomes a dead letter.
    async fn conflict(
        &self,
        statement: PendingStatement,
        sent: &str,
        text: String,
        from_cursor: bool,
        cursor: &mut i64,
    ) -> Result<(), Round> {
        let held = self.held(sent).await.map_err(|error| Round::Retry {
            status: Some(409),
            error: format!("HTTP 409, and the statement the LRS holds could not be read: {error}"),
            retry_after: None,
        })?;
        let reason = match held {
            Held::Same => {
                tracing::info!(lrs = %self.subscription.row.name, statement = %statement.id,
                    "LRS answered 409 and holds this same statement; counted as delivered");
                return self
                    .mark_delivered(std::slice::from_ref(&statement), from_cursor, cursor, 409)
                    .await;
            }
            Held::Different(difference) => format!(
                "the LRS holds a different statement under this id ({difference}); its answer: {text}"
            ),
            Held::Unreadable(status) => format!(
                "the LRS answered 409 and refused to show what it holds under this id \
                 (GET: HTTP {status}), so it cannot be compared; credentials that may \
                 read statements let the gateway check; its answer: {text}"
            ),
            Held::Missing => format!(
                "the LRS answered 409 but returns no statement under this id; its answer: {text}"
            ),
        };
        tracing::warn!(lrs = %self.subscription.row.name, statement = %statement.id, %reason,
            "LRS answered 409; the statement is kept as a dead letter");
        self.dead_letter(statement, from_cursor, cursor, Some(409), reason)
            .await
    }

    /// Keeps `statement` as a dead letter of this LRS and, when it came from the cursor,
    /// moves the cursor past it; a failed write is a round to retry.
    async fn dead_letter(
        &self,
        statement: PendingStatement,
        from_cursor: bool,
        cursor: &mut i64,
        status: Option<u16>,
        reason: String,
    ) -> Result<(), Round> {
        let id = self.subscription.row.id;
        let seq = statement.seq;
        retry_on_failure(
            self.store
                .write_xapi_atomic(move |c| {
                    rows::dead_letter(c, id, &statement, from_cursor, status, &reason)
                })
                .await,
        )?;
        if from_cursor {
            *cursor = (*cursor).max(seq);
        }
        Ok(())
    }

    async fn post(&self, body: String) -> Answer {
        let row = &self.subscription.row;
        let mut request = self
            .client
            .post(&row.url)
            .header("X-Experience-API-Version", "1.0.3")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(username) = &row.username {
            request = request.basic_auth(
                username,
                self.subscription.password.as_ref().map(|p| p.expose()),
            );
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Answer::Retry {
                    status: None,
                    error: failure_text(error),
                    retry_after: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| retry_after(value, std::time::SystemTime::now()));
        let text = match tokio::time::timeout(self.config.request_timeout, response.text()).await {
            Ok(Ok(text)) => text.chars().take(2000).collect::<String>(),
            _ => String::new(),
        };
        classify(status, text, retry_after)
    }
}

impl Task {
    /// GETs what the LRS holds under the id of `sent` (as a statement, else as a voided one)
    /// and compares it with `sent`; an error when the LRS cannot be asked or answers oddly.
    /// The id is the one sent, as rendered for this LRS: for the pseudonym and LAS identities
    /// it is keyed with the LRS's own key, not the stored statement's id.
    async fn held(&self, sent: &str) -> Result<Held, String> {
        let sent: serde_json::Value =
            serde_json::from_str(sent).map_err(|error| format!("the statement sent: {error}"))?;
        let id = sent["id"]
            .as_str()
            .ok_or("the statement sent has no id")?
            .to_string();
        let id = id.as_str();
        for parameter in ["statementId", "voidedStatementId"] {
            let mut url = reqwest::Url::parse(&self.subscription.row.url)
                .map_err(|error| format!("the LRS URL: {error}"))?;
            url.query_pairs_mut().append_pair(parameter, id);
            let mut request = self
                .client
                .get(url)
                .header("X-Experience-API-Version", "1.0.3");
            if let Some(username) = &self.subscription.row.username {
                request = request.basic_auth(
                    username,
                    self.subscription.password.as_ref().map(|p| p.expose()),
                );
            }
            let response = request.send().await.map_err(failure_text)?;
            match response.status().as_u16() {
                200 => {
                    let text = response.text().await.map_err(failure_text)?;
                    let held: serde_json::Value = serde_json::from_str(&text)
                        .map_err(|error| format!("its answer is no statement: {error}"))?;
                    return Ok(match super::compare::difference(&sent, &held) {
                        None => Held::Same,
                        Some(difference) => Held::Different(difference),
                    });
                }
                404 => continue,
                status @ (401 | 403) => return Ok(Held::Unreadable(status)),
                status => return Err(format!("GET ?{parameter}= answered HTTP {status}")),
            }
        }
        Ok(Held::Missing)
    }
}

/// What `outbox status` and the log say about a request that got no answer: its class, then
/// every cause (DNS, refused, the certificate problem, timeout), and for a certificate from an
/// unknown CA how to trust it. The URL is left out (it is in the subscription).
fn failure_text(error: reqwest::Error) -> String {
    let error = error.without_url();
    let certificate = super::trust::certificate_error(&error);
    let kind = if error.is_timeout() {
        "timeout"
    } else if certificate.is_some() {
        "certificate refused"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {}", crate::logging::cause_chain(&error));
    if matches!(certificate, Some(rustls::CertificateError::UnknownIssuer)) {
        text.push_str(
            " (the LRS's certificate does not chain to a CA this host trusts; for a private CA, \
             add it to the system store or subscribe the LRS with `lrs add --ca-file`)",
        );
    }
    text
}

/// `Retry-After` in either form (RFC 9110 10.2.3): delay-seconds or an HTTP-date, the
/// latter as the time left from `now` (none when it has passed).
fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

fn classify(status: u16, text: String, retry_after: Option<Duration>) -> Answer {
    match status {
        200..=299 => Answer::Delivered(status),
        409 => Answer::Conflict(text),
        // 401: the credentials, not the statements, are wrong; retrying lets an operator fix them.
        401 | 408 | 429 => Answer::Retry {
            status: Some(status),
            error: format!("HTTP {status}: {text}"),
            retry_after,
        },
        400..=499 => Answer::Refused(status, text),
        _ => Answer::Retry {
            status: Some(status),
            error: format!("HTTP {status}: {text}"),
            retry_after,
        },
    }
}

/// Exponential backoff with equal jitter: half the doubled delay fixed, half random; at least Retry-After.
fn backoff(config: &DeliveryConfig, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let full = config
        .base_backoff
        .saturating_mul(1u32 << exponent)
        .min(config.max_backoff);
    let half = full / 2;
    let jitter = rand::thread_rng().gen_range(0..=half.as_millis().max(1) as u64);
    let delay = half + Duration::from_millis(jitter);
    match retry_after {
        Some(wanted) => delay.max(wanted.min(config.max_backoff.saturating_mul(10))),
        None => delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DeliveryConfig {
        DeliveryConfig {
            batch_size: 10,
            request_timeout: Duration::from_secs(1),
            poll_interval: Duration::from_millis(100),
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(1),
        }
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(200, String::new(), None), Answer::Delivered(200));
        assert_eq!(classify(204, String::new(), None), Answer::Delivered(204));
        assert_eq!(
            classify(409, "x".into(), None),
            Answer::Conflict("x".into())
        );
        assert_eq!(
            classify(400, "bad".into(), None),
            Answer::Refused(400, "bad".into())
        );
        assert_eq!(
            classify(403, "no".into(), None),
            Answer::Refused(403, "no".into())
        );
        for status in [401, 408, 429, 500, 502, 503, 302] {
            assert!(
                matches!(classify(status, String::new(), None), Answer::Retry { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(retry_after(&earlier, now), Some(Duration::ZERO));
        // The obsolete forms HTTP still allows a recipient to read.
        let then = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:07 GMT").unwrap();
        for obsolete in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(retry_after(obsolete, then), Some(Duration::from_secs(30)));
        }
        for bad in ["", "-1", "1.5", "soon", "Wed, 32 Dec 2026 00:00:00 GMT"] {
            assert_eq!(retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let config = config();
        for attempt in 1..30 {
            let delay = backoff(&config, attempt, None);
            let full = Duration::from_millis(100)
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(config.max_backoff);
            assert!(
                delay >= full / 2 && delay <= full + Duration::from_millis(1),
                "{attempt}: {delay:?}"
            );
        }
        assert!(backoff(&config, 1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
    }
}
