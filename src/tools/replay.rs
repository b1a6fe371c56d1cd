//! `uwlr-gateway replay`: sends sample files to a gateway as SOAP calls and reports what came back.

use indicatif::{ProgressBar, ProgressStyle};
use quick_xml::events::Event;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How to replay.
#[derive(Clone, Debug)]
pub(crate) struct ReplayOptions {
    pub(crate) paths: Vec<PathBuf>,
    pub(crate) url: String,
    /// Filled into files that carry no autorisatie header.
    pub(crate) klantcode: Option<String>,
    pub(crate) klantnaam: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) concurrency: usize,
    /// Messages per second at most, over all workers.
    pub(crate) rate: Option<f64>,
    /// Shift every aanmaakdatum by one offset so the latest one is now (see [`restamp_offset`]).
    pub(crate) restamp: bool,
    pub(crate) expect: Option<PathBuf>,
    pub(crate) timeout: Duration,
    /// PEM certificates trusted for HTTPS besides the system's roots.
    pub(crate) ca_file: Option<PathBuf>,
}

/// What one file's call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) file: PathBuf,
    pub(crate) status: u16,
    pub(crate) faultcode: Option<String>,
    pub(crate) rules: Vec<String>,
    pub(crate) latency: Duration,
    pub(crate) resultaten: u64,
    pub(crate) transport_error: Option<String>,
}

impl Answer {
    pub(crate) fn accepted(&self) -> bool {
        self.status == 200 && self.transport_error.is_none()
    }
}

/// One expectation from samples/manifest.toml.
#[derive(Clone, Debug, serde::Deserialize)]
pub(crate) struct Expected {
    pub(crate) file: String,
    pub(crate) outcome: String,
    #[serde(default)]
    pub(crate) faultcode: Option<String>,
    #[serde(default)]
    pub(crate) rules: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Manifest {
    sample: Vec<Expected>,
}

/// The outcome of a whole replay.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReplayReport {
    pub(crate) answers: Vec<Answer>,
    pub(crate) differences: Vec<String>,
    pub(crate) elapsed: Duration,
}

/// The one offset `--restamp` adds to every file's aanmaakdatum: the latest one that is not
/// in the future moves to `now` and every other keeps its distance to it, so the files keep
/// their order and spacing (a message meant to be out of order stays out of order, and one
/// meant to lie in the future, such as sample 52, stays as far ahead of now as it was).
pub(crate) fn restamp_offset(
    stamps: impl IntoIterator<Item = chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> chrono::Duration {
    stamps
        .into_iter()
        .filter(|stamp| *stamp <= now)
        .max()
        .map_or(chrono::Duration::zero(), |latest| now - latest)
}

/// A shifted aanmaakdatum, written in UTC with an explicit `Z` so that no reader needs
/// this host's time zone (an offset-less time is read as Europe/Amsterdam by the gateway).
pub(crate) fn restamped(stamp: chrono::DateTime<chrono::Utc>, offset: chrono::Duration) -> String {
    let text = (stamp + offset).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    // chrono writes years past 9999 as `+10000`; xs:dateTime has no plus sign.
    match text.strip_prefix('+') {
        Some(unsigned) => unsigned.to_string(),
        None => text,
    }
}

/// The HTTP agent: HTTPS trusts the system's roots plus the certificates in `ca_file`.
pub(crate) fn agent(options: &ReplayOptions) -> anyhow::Result<ureq::Agent> {
    use anyhow::Context;
    use rustls_pki_types::pem::PemObject;
    let mut builder = ureq::AgentBuilder::new().timeout(options.timeout);
    if options.url.starts_with("https:") || options.ca_file.is_some() {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(
            added,
            errors = native.errors.len(),
            "system root certificates"
        );
        if let Some(ca_file) = &options.ca_file {
            let certificates = rustls_pki_types::CertificateDer::pem_file_iter(ca_file)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read certificates from {}", ca_file.display()))?;
            if certificates.is_empty() {
                anyhow::bail!("{} holds no PEM certificate", ca_file.display());
            }
            for certificate in certificates {
                roots.add(certificate).with_context(|| {
                    format!("cannot use a certificate from {}", ca_file.display())
                })?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        builder = builder.tls_config(Arc::new(config));
    }
    Ok(builder.build())
}

pub(crate) fn load_manifest(path: &Path) -> anyhow::Result<BTreeMap<String, Expected>> {
    let text = std::fs::read_to_string(path)?;
    let manifest: Manifest = toml::from_str(&text)?;
    Ok(manifest
        .sample
        .into_iter()
        .map(|expected| (expected.file.clone(), expected))
        .collect())
}

/// Files as given; folders become their `*.xml` files in name order.
pub(crate) fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The first bytes of a message, where the header and school block live.
const HEAD_BYTES: usize = 64 * 1024;

/// Rewrites the head of a message: adds the autorisatie header where there is none,
/// wraps a bare verzoek in an envelope, and restamps the aanmaakdatum.
pub(crate) fn prepare_head(
    head: &str,
    options: &ReplayOptions,
    restamp: Option<&str>,
) -> Result<String, String> {
    let mut head = head.to_string();
    if let Some(stamp) = restamp {
        head = replace_element_text(&head, "aanmaakdatum", stamp)
            .ok_or("no aanmaakdatum in the first 64 KiB")?;
    }
    // Envelopes go out as written (a missing header is what some samples test);
    // a bare verzoek is wrapped in an envelope with the autorisatie header filled in.
    if head.contains("Envelope") || !head.contains("leerresultaten_verzoek") {
        return Ok(head);
    }
    let (Some(klantcode), Some(key)) = (&options.klantcode, &options.key) else {
        return Err(
            "a bare leerresultaten_verzoek needs --klantcode, --klantnaam and --key for its header"
                .into(),
        );
    };
    let klantnaam = options
        .klantnaam
        .clone()
        .unwrap_or_else(|| klantcode.clone());
    let escape = |text: &str| quick_xml::escape::escape(text).into_owned();
    let header = format!(
        "<aut:autorisatie xmlns:aut=\"http://www.edustandaard.nl/leerresultaten/2/autorisatie\"><aut:autorisatiesleutel>{}</aut:autorisatiesleutel><aut:klantcode>{}</aut:klantcode><aut:klantnaam>{}</aut:klantnaam></aut:autorisatie>",
        escape(key),
        escape(klantcode),
        escape(&klantnaam)
    );
    let body_start = match head.find("<?xml") {
        Some(start) => head[start..]
            .find("?>")
            .map(|end| start + end + 2)
            .unwrap_or(0),
        None => 0,
    };
    Ok(format!(
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Header>{header}</soapenv:Header><soapenv:Body>{}",
        &head[body_start..]
    ))
}

/// Where an element with this local name starts (`<Name` or `<p:Name`).
fn find_tag(text: &str, local: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(index) = text[from..].find('<').map(|index| index + from) {
        let rest = &text[index + 1..];
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name == local || name.rsplit(':').next() == Some(local) && name.contains(':') {
            return Some(index);
        }
        from = index + 1;
    }
    None
}

fn replace_element_text(text: &str, local: &str, value: &str) -> Option<String> {
    let start = find_tag(text, local)?;
    let open_end = text[start..].find('>')? + start + 1;
    let close = text[open_end..].find("</")? + open_end;
    Some(format!("{}{}{}", &text[..open_end], value, &text[close..]))
}

/// Counts `resultaat` start tags without parsing: a cheap figure for the progress line.
pub(crate) fn count_resultaten(bytes: &[u8]) -> u64 {
    memchr::memmem::find_iter(bytes, b"resultaat")
        .filter(|&index| {
            index > 0
                && matches!(bytes[index - 1], b'<' | b':')
                && bytes
                    .get(index + 9)
                    .is_some_and(|next| next.is_ascii_whitespace())
        })
        .count() as u64
}

/// Counts `resultaat` start tags in a file, reading it in chunks.
fn count_resultaten_in(path: &Path) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    let (mut carried, mut count) = (0usize, 0u64);
    loop {
        let read = file.read(&mut buffer[carried..])?;
        if read == 0 {
            return Ok(count + count_resultaten(&buffer[..carried]));
        }
        let filled = carried + read;
        // Keep a tail that may hold a tag cut in two.
        let keep = filled.min(16);
        count += count_resultaten(&buffer[..filled - keep]);
        buffer.copy_within(filled - keep..filled, 0);
        carried = keep;
    }
}

/// Reads the faultcode and our rule codes from a fault body.
pub(crate) fn parse_fault(body: &str) -> (Option<String>, Vec<String>) {
    let mut reader = quick_xml::Reader::from_str(body);
    let mut current = String::new();
    let mut faultcode = None;
    let mut rules = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                current = String::from_utf8_lossy(start.local_name().as_ref()).into_owned()
            }
            Ok(Event::Text(text)) => {
                let text = text
                    .unescape()
                    .map(|text| text.trim().to_string())
                    .unwrap_or_default();
                match current.as_str() {
                    "faultcode" => {
                        faultcode = Some(text.rsplit(':').next().unwrap_or(&text).to_string())
                    }
                    "rule" => rules.push(text),
                    _ => {}
                }
            }
            Ok(Event::End(_)) => current.clear(),
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    rules.sort();
    rules.dedup();
    (faultcode, rules)
}

/// The school code in a message head, so that one school's messages go out in order.
fn school_of(head: &str) -> String {
    let brin = extract(head, "brincode").unwrap_or_default();
    let dependance = extract(head, "dependancecode").unwrap_or_default();
    let key = extract(head, "schoolkey").unwrap_or_default();
    format!("{brin}{dependance}{key}")
}

fn extract(text: &str, local: &str) -> Option<String> {
    let start = find_tag(text, local)?;
    let open_end = text[start..].find('>')? + start + 1;
    let close = text[open_end..].find("</")? + open_end;
    Some(text[open_end..close].trim().to_string())
}

struct Job {
    index: usize,
    file: PathBuf,
    school: String,
    /// The file's aanmaakdatum, when it has one that reads as an xs:dateTime.
    stamp: Option<chrono::DateTime<chrono::Utc>>,
}

/// A queue that hands out the next file whose school has no call in flight,
/// so each school's messages arrive in file order whatever the concurrency.
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    /// Each school's files, in order.
    by_school: BTreeMap<String, VecDeque<Job>>,
    /// Schools with files waiting and no call in flight, by the index of their next file.
    idle: BTreeMap<usize, String>,
    in_flight: usize,
}

impl Queue {
    fn new(jobs: Vec<Job>) -> Queue {
        let mut state = QueueState::default();
        for job in jobs {
            state
                .by_school
                .entry(job.school.clone())
                .or_default()
                .push_back(job);
        }
        for (school, jobs) in &state.by_school {
            if let Some(first) = jobs.front() {
                state.idle.insert(first.index, school.clone());
            }
        }
        Queue {
            state: Mutex::new(state),
            ready: Condvar::new(),
        }
    }

    fn take(&self) -> Option<Job> {
        let mut state = self.state.lock().expect("queue");
        loop {
            if let Some((_, school)) = state.idle.pop_first() {
                let job = state
                    .by_school
                    .get_mut(&school)
                    .and_then(VecDeque::pop_front);
                if let Some(job) = job {
                    state.in_flight += 1;
                    return Some(job);
                }
                continue;
            }
            if state.in_flight == 0 {
                return None;
            }
            state = self.ready.wait(state).expect("queue");
        }
    }

    fn done(&self, school: &str) {
        let mut state = self.state.lock().expect("queue");
        state.in_flight -= 1;
        if let Some(next) = state
            .by_school
            .get(school)
            .and_then(VecDeque::front)
            .map(|job| job.index)
        {
            state.idle.insert(next, school.to_string());
        }
        drop(state);
        self.ready.notify_all();
    }
}

fn send(
    agent: &ureq::Agent,
    options: &ReplayOptions,
    file: &Path,
    restamp: Option<String>,
) -> Answer {
    let started = Instant::now();
    let mut answer = Answer {
        file: file.to_path_buf(),
        status: 0,
        faultcode: None,
        rules: Vec::new(),
        latency: Duration::ZERO,
        resultaten: 0,
        transport_error: None,
    };
    let result = (|| -> Result<(u16, String), String> {
        answer.resultaten = count_resultaten_in(file).map_err(|error| error.to_string())?;
        let mut handle = File::open(file).map_err(|error| error.to_string())?;
        let length = handle.metadata().map_err(|error| error.to_string())?.len();
        let mut head = vec![0u8; HEAD_BYTES.min(length as usize)];
        handle
            .read_exact(&mut head)
            .map_err(|error| error.to_string())?;
        let split = (0..=head.len())
            .rev()
            .find(|&index| std::str::from_utf8(&head[..index]).is_ok())
            .unwrap_or(0);
        let head_text = std::str::from_utf8(&head[..split]).unwrap_or("");
        let (new_head, tail): (Vec<u8>, &[u8]) =
            match prepare_head(head_text, options, restamp.as_deref()) {
                Ok(new_head) if new_head == head_text => (head[..split].to_vec(), b""),
                Ok(new_head) if !head_text.contains("Envelope") => {
                    (new_head.into_bytes(), b"</soapenv:Body></soapenv:Envelope>")
                }
                Ok(new_head) => (new_head.into_bytes(), b""),
                // Not XML at all: send it as it is and let the gateway say why.
                Err(_) if !head_text.contains('<') => (head[..split].to_vec(), b""),
                Err(reason) => return Err(reason),
            };
        let content_length = new_head.len() as u64 + (length - split as u64) + tail.len() as u64;
        use std::io::{Seek, SeekFrom};
        handle
            .seek(SeekFrom::Start(split as u64))
            .map_err(|error| error.to_string())?;
        let reader = std::io::Cursor::new(new_head).chain(handle).chain(tail);
        let response = agent
            .post(&options.url)
            .set("Content-Type", "text/xml; charset=utf-8")
            .set("SOAPAction", "\"BrengLeerresultaten\"")
            .set("Content-Length", &content_length.to_string())
            .send(reader);
        let response = match response {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => return Err(crate::logging::cause_chain(&error)),
        };
        let status = response.status();
        let mut text = String::new();
        response
            .into_reader()
            .take(16 << 20)
            .read_to_string(&mut text)
            .map_err(|error| error.to_string())?;
        Ok((status, text))
    })();
    answer.latency = started.elapsed();
    match result {
        Ok((status, body)) => {
            answer.status = status;
            if status != 200 {
                let (faultcode, rules) = parse_fault(&body);
                answer.faultcode = faultcode;
                answer.rules = rules;
            }
        }
        Err(error) => answer.transport_error = Some(error),
    }
    answer
}

/// Replays every file and collects the answers; differences against `--expect` are listed.
pub(crate) fn replay(options: &ReplayOptions) -> anyhow::Result<ReplayReport> {
    let files = collect_files(&options.paths)?;
    if files.is_empty() {
        anyhow::bail!("no .xml files to replay");
    }
    let expectations = options.expect.as_deref().map(load_manifest).transpose()?;
    let agent = agent(options)?;
    let mut jobs = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let mut head = vec![0u8; HEAD_BYTES];
        let read = File::open(file)
            .and_then(|mut handle| handle.read(&mut head))
            .unwrap_or(0);
        let head = String::from_utf8_lossy(&head[..read]);
        let stamp = extract(&head, "aanmaakdatum")
            .and_then(|text| crate::domain::aanmaakdatum::parse_datetime(&text).ok());
        jobs.push(Job {
            index,
            file: file.clone(),
            school: school_of(&head),
            stamp,
        });
    }
    let total = jobs.len();
    let now = chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
        .unwrap_or_default();
    let offset = restamp_offset(jobs.iter().filter_map(|job| job.stamp), now);
    let queue = Arc::new(Queue::new(jobs));
    let answers: Arc<Mutex<Vec<Option<Answer>>>> = Arc::new(Mutex::new(vec![None; total]));
    let progress = progress_bar(total as u64);
    let started = Instant::now();
    let pacer = Arc::new(Mutex::new(started));
    std::thread::scope(|scope| {
        for _ in 0..options.concurrency.max(1) {
            let (queue, answers, progress, pacer, agent) = (
                queue.clone(),
                answers.clone(),
                progress.clone(),
                pacer.clone(),
                agent.clone(),
            );
            scope.spawn(move || {
                while let Some(job) = queue.take() {
                    if let Some(rate) = options.rate.filter(|rate| *rate > 0.0) {
                        let wait = {
                            let mut next = pacer.lock().expect("pacer");
                            let now = Instant::now();
                            let slot = (*next).max(now);
                            *next = slot + Duration::from_secs_f64(1.0 / rate);
                            slot.saturating_duration_since(now)
                        };
                        std::thread::sleep(wait);
                    }
                    // A file without a readable aanmaakdatum goes out as written.
                    let restamp = job
                        .stamp
                        .filter(|_| options.restamp)
                        .map(|stamp| restamped(stamp, offset));
                    let answer = send(&agent, options, &job.file, restamp);
                    queue.done(&job.school);
                    if let Some(error) = &answer.transport_error {
                        progress.println(&format!("{}: no answer: {error}", job.file.display()));
                    }
                    progress.report(&answer);
                    answers.lock().expect("answers")[job.index] = Some(answer);
                }
            });
        }
    });
    progress.finish();
    let answers: Vec<Answer> = Arc::try_unwrap(answers)
        .map_err(|_| anyhow::anyhow!("workers still hold the answers"))?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a worker panicked"))?
        .into_iter()
        .flatten()
        .collect();
    let mut differences = Vec::new();
    if let Some(expectations) = &expectations {
        for answer in &answers {
            let name = answer
                .file
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(expected) = expectations.get(&name) else {
                differences.push(format!("{name}: not in the manifest"));
                continue;
            };
            if let Some(difference) = compare(expected, answer) {
                differences.push(format!("{name}: {difference}"));
            }
        }
    }
    Ok(ReplayReport {
        answers,
        differences,
        elapsed: started.elapsed(),
    })
}

fn compare(expected: &Expected, answer: &Answer) -> Option<String> {
    if let Some(error) = &answer.transport_error {
        return Some(format!("no answer: {error}"));
    }
    let got = if answer.accepted() {
        "accepted"
    } else {
        "fault"
    };
    if expected.outcome != got {
        return Some(format!(
            "expected {}, got {got} {} {:?}",
            expected.outcome,
            answer.faultcode.as_deref().unwrap_or(""),
            answer.rules
        ));
    }
    if got == "fault" {
        if expected.faultcode.as_deref() != answer.faultcode.as_deref() {
            return Some(format!(
                "expected faultcode {:?}, got {:?}",
                expected.faultcode, answer.faultcode
            ));
        }
        let mut rules = expected.rules.clone();
        rules.sort();
        if rules != answer.rules {
            return Some(format!(
                "expected rules {:?}, got {:?}",
                rules, answer.rules
            ));
        }
    }
    None
}

/// A progress bar on a terminal, plain periodic lines otherwise.
#[derive(Clone)]
struct Progress {
    bar: Option<ProgressBar>,
    state: Arc<Mutex<Tally>>,
}

/// What `Progress` has counted so far, and when it started and last printed a line.
struct Tally {
    messages: u64,
    resultaten: u64,
    faults: u64,
    started: Instant,
    last_line: Instant,
}

fn progress_bar(total: u64) -> Progress {
    use std::io::IsTerminal;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} messages {per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let now = Instant::now();
    Progress {
        bar,
        state: Arc::new(Mutex::new(Tally {
            messages: 0,
            resultaten: 0,
            faults: 0,
            started: now,
            last_line: now,
        })),
    }
}

impl Progress {
    fn report(&self, answer: &Answer) {
        let mut state = self.state.lock().expect("progress");
        state.messages += 1;
        state.resultaten += answer.resultaten;
        if !answer.accepted() {
            state.faults += 1;
        }
        let Tally {
            messages,
            resultaten,
            faults,
            started,
            last_line,
        } = *state;
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(format!("{resultaten} resultaten, {faults} faults"));
            }
            None if last_line.elapsed() >= Duration::from_secs(2) => {
                state.last_line = Instant::now();
                let seconds = started.elapsed().as_secs_f64().max(1e-9);
                let mut stderr = std::io::stderr();
                let _ = writeln!(
                    stderr,
                    "{messages} messages, {resultaten} resultaten, {faults} faults, {:.0} messages/s",
                    messages as f64 / seconds
                );
            }
            None => {}
        }
    }

    /// A line above the progress bar (or on stderr without one).
    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// The summary table printed at the end.
pub(crate) fn summary(report: &ReplayReport) -> String {
    let mut out = String::new();
    let accepted = report
        .answers
        .iter()
        .filter(|answer| answer.accepted())
        .count();
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    for answer in report.answers.iter().filter(|answer| !answer.accepted()) {
        let key = match &answer.transport_error {
            Some(_) => "transport error".to_string(),
            None => answer
                .rules
                .first()
                .cloned()
                .unwrap_or_else(|| format!("HTTP {}", answer.status)),
        };
        *faults.entry(key).or_default() += 1;
    }
    let mut latencies: Vec<Duration> = report.answers.iter().map(|answer| answer.latency).collect();
    latencies.sort();
    let resultaten: u64 = report
        .answers
        .iter()
        .filter(|answer| answer.accepted())
        .map(|answer| answer.resultaten)
        .sum();
    let seconds = report.elapsed.as_secs_f64().max(1e-9);
    let _ = std::fmt::Write::write_fmt(
        &mut out,
        format_args!(
            "messages   {:>10}\naccepted   {:>10}\nfaulted    {:>10}\n",
            report.answers.len(),
            accepted,
            report.answers.len() - accepted
        ),
    );
    for (rule, count) in &faults {
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("  {rule:<20} {count:>6}\n"));
    }
    let _ = std::fmt::Write::write_fmt(&mut out, format_args!(
        "resultaten {:>10} accepted\nelapsed    {:>10.2} s\nthroughput {:>10.1} messages/s, {:.0} resultaten/s\nlatency    p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        resultaten,
        seconds,
        report.answers.len() as f64 / seconds,
        resultaten as f64 / seconds,
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    ));
    if !report.differences.is_empty() {
        let _ = std::fmt::Write::write_fmt(
            &mut out,
            format_args!(
                "differences from the manifest: {}\n",
                report.differences.len()
            ),
        );
        for difference in &report.differences {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("  {difference}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ReplayOptions {
        ReplayOptions {
            paths: vec![],
            url: String::new(),
            klantcode: Some("EA".into()),
            klantnaam: Some("Uitgever".into()),
            key: Some("k".into()),
            concurrency: 1,
            rate: None,
            restamp: false,
            expect: None,
            timeout: Duration::from_secs(1),
            ca_file: None,
        }
    }

    #[test]
    fn bare_verzoek_is_wrapped_with_a_header() {
        let bare = "<?xml version=\"1.0\"?><lr:leerresultaten_verzoek xmlns:lr=\"x\"><lr:school>";
        let head = prepare_head(bare, &options(), None).unwrap();
        assert!(head.starts_with("<soapenv:Envelope"));
        assert!(head.contains("<aut:klantcode>EA</aut:klantcode>"));
        let no_credentials = ReplayOptions {
            key: None,
            ..options()
        };
        assert!(prepare_head(bare, &no_credentials, None).is_err());
        let envelope = "<s:Envelope xmlns:s=\"e\"><s:Body><lr:leerresultaten_verzoek>";
        assert_eq!(prepare_head(envelope, &options(), None).unwrap(), envelope);
    }

    #[test]
    fn restamp_rewrites_aanmaakdatum() {
        let head = "<s:Envelope><s:Header><a:autorisatie/></s:Header><lr:aanmaakdatum>2020-01-01T00:00:00</lr:aanmaakdatum>";
        let stamped = prepare_head(head, &options(), Some("2026-11-25T10:00:00.000")).unwrap();
        assert!(stamped.contains("<lr:aanmaakdatum>2026-11-25T10:00:00.000</lr:aanmaakdatum>"));
    }

    #[test]
    fn restamp_keeps_order_and_spacing_and_writes_utc() {
        let parse = |text: &str| crate::domain::aanmaakdatum::parse_datetime(text).unwrap();
        let stamps = [
            parse("2026-10-01T08:00:00"),
            parse("2026-09-01T08:00:00.25"),
            parse("2026-10-02T08:00:00+02:00"),
        ];
        let offset = restamp_offset(stamps, parse("2026-12-02T06:30:00Z"));
        let shifted: Vec<String> = stamps
            .iter()
            .map(|stamp| restamped(*stamp, offset))
            .collect();
        assert_eq!(
            shifted,
            [
                "2026-12-01T06:30:00Z",
                "2026-11-01T06:30:00.250Z",
                "2026-12-02T06:30:00Z"
            ]
        );
        assert_eq!(
            restamp_offset([], parse("2026-12-02T06:30:00Z")),
            chrono::Duration::zero()
        );
        assert_eq!(
            restamped(parse("9999-12-31T23:59:59Z"), chrono::Duration::days(1)),
            "10000-01-01T23:59:59Z"
        );
        // A stamp meant to lie in the future does not pull the others back in time.
        let with_future = [stamps[0], stamps[2], parse("9999-12-31T23:59:59.999999")];
        assert_eq!(
            restamp_offset(with_future, parse("2026-12-02T06:30:00Z")),
            offset
        );
    }

    #[test]
    fn counts_resultaat_start_tags_only() {
        let xml = b"<lr:resultaten><lr:resultaat key=\"a\"></lr:resultaat><resultaat key=\"b\"/></lr:resultaten>";
        assert_eq!(count_resultaten(xml), 2);
    }

    #[test]
    fn reads_fault_codes() {
        let body = "<soap:Envelope xmlns:soap=\"s\"><soap:Body><soap:Fault><faultcode>soap:Client.ScoreOngeldig</faultcode><detail><gw:violations xmlns:gw=\"g\"><gw:violation><gw:rule>UWLR-SCORE</gw:rule></gw:violation></gw:violations></detail></soap:Fault></soap:Body></soap:Envelope>";
        assert_eq!(
            parse_fault(body),
            (
                Some("Client.ScoreOngeldig".into()),
                vec!["UWLR-SCORE".into()]
            )
        );
    }
}
