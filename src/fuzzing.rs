//! The bodies of the fuzz targets in fuzz/, shared with the regression test that replays every input they ever crashed on.
//!
//! Each function must never panic, whatever the bytes; they return nothing because
//! only a panic, a hang or a sanitizer report is a finding.

use crate::domain::rules::{self, UnknownVocabularies};
use crate::http::body::Body;
use crate::intake::head::scan_head;
use crate::intake::{check_school, school_code};
use crate::soap::envelope::{self, Framing};
use crate::uwlr::scan::{Item, Pass, Scanner};
use crate::uwlr::{Resultaat, School, Toets, ToetsafnameHead};
use crate::vdex::{self, Vocabularies};
use std::sync::OnceLock;

/// The envelope and header pass: the intake's own head scan up to the school block, the
/// root and Body checks, the autorisatie header and SOAPAction parsing.
pub fn envelope(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = envelope::soap_action_operation(text);
    }
    let body = Body::Memory(bytes::Bytes::copy_from_slice(data));
    for framing in [Framing::SoapOnly, Framing::SoapOrBare] {
        let Ok(reader) = body.reader() else { return };
        let mut scanner = Scanner::new(reader, Pass::SkipToetsafnames);
        let head = scan_head(&mut scanner, framing);
        let _ = head.root_violation(framing);
        let _ = envelope::autorisatie(&head.headers);
    }
}

fn embedded_vocabularies() -> &'static Vocabularies {
    static VOCABULARIES: OnceLock<Vocabularies> = OnceLock::new();
    VOCABULARIES.get_or_init(|| Vocabularies::load(None).expect("embedded vocabularies"))
}

/// The message model: every item of a full scanner pass becomes a wire type, and
/// the store-free rules run on it.
pub fn message(data: &[u8]) {
    let vocabularies = embedded_vocabularies();
    let body = Body::Memory(bytes::Bytes::copy_from_slice(data));
    let Ok(reader) = body.reader() else { return };
    let mut scanner = Scanner::new(reader, Pass::Everything);
    let mut unknown = UnknownVocabularies::new();
    let mut toetsen: Vec<Toets> = Vec::new();
    let mut resultaten: Vec<Resultaat> = Vec::new();
    let mut head = ToetsafnameHead::default();
    for _ in 0..100_000 {
        match scanner.next() {
            Ok(Some(Item::School(node))) => {
                let school = School::from_node(&node);
                let _ = check_school(
                    &school,
                    &node,
                    &["2.2".to_string()],
                    chrono::Utc::now(),
                    chrono::Duration::minutes(5),
                );
                let _ = school_code(&school);
            }
            Ok(Some(Item::ToetsafnameStart { .. })) => head = ToetsafnameHead::default(),
            Ok(Some(Item::AfnameField(node))) => head.set_field(&node),
            Ok(Some(Item::Resultaat(node))) => {
                let _ = node.to_json();
                if resultaten.len() < 1000 {
                    resultaten.push(Resultaat::from_node(&node));
                }
            }
            Ok(Some(Item::Toets(node))) => {
                let toets = Toets::from_node(&node);
                let _ = rules::check_toets(&toets, vocabularies, &mut unknown);
                if toetsen.len() < 1000 {
                    toetsen.push(toets);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = rules::check_toetsen_identity(&toetsen);
    for resultaat in &resultaten {
        if let Some(definition) = toetsen
            .iter()
            .find(|toets| toets.toetscode.waarde == resultaat.toetscode)
        {
            let _ = rules::check_resultaat(
                &head.leerlingid,
                resultaat,
                definition,
                vocabularies,
                &mut unknown,
            );
        }
    }
}

/// The VDEX loader on an arbitrary document.
pub fn vdex(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(vocabulary) = vdex::parse("fuzz.vdex", text) {
        let identifier = vocabulary.identifier.clone();
        let mut vocabularies = Vocabularies::default();
        vocabularies.add(vocabulary);
        let _ = vocabularies.check(Some(&identifier), "term");
    }
}

/// The differential target: the fuzzer's bytes steer the generator of
/// `tools::differential`, and the gateway's intake (in process: the code behind the
/// HTTP endpoint, with a demo store in a temporary folder) must give every message
/// the schema verdict libxml2 gives it with the full contract. A disagreement panics.
pub fn differential(data: &[u8]) {
    use crate::tools::differential::{case, gateway_verdict, ByteRng};
    let harness = DIFFERENTIAL.get_or_init(DifferentialHarness::start);
    let index = harness
        .index
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let case = case(&mut ByteRng::new(data), index);
    let rules = harness.gateway_rules(&case.body);
    let (expected, messages) = harness.libxml2_verdict(&case.body);
    if let Some(verdict) = gateway_verdict(&rules) {
        assert_eq!(
            verdict,
            expected,
            "gateway {rules:?}, libxml2 {messages:?}, mutations {:?}\n{}",
            case.mutations,
            String::from_utf8_lossy(&case.body)
        );
    }
}

static DIFFERENTIAL: OnceLock<DifferentialHarness> = OnceLock::new();

/// A demo gateway without HTTP, and libxml2 with the full contract on a thread of its
/// own (a thread keeps one compiled schema, and the intake uses the streaming set).
struct DifferentialHarness {
    intake: crate::intake::Intake,
    runtime: tokio::runtime::Runtime,
    libxml2: std::sync::Mutex<LibxmlWorker>,
    index: std::sync::atomic::AtomicU64,
    /// Kept for the life of the process: the store and contract live in it.
    _dir: tempfile::TempDir,
}

type LibxmlVerdict = (crate::tools::differential::Verdict, Vec<String>);
type LibxmlWorker = (
    std::sync::mpsc::Sender<Vec<u8>>,
    std::sync::mpsc::Receiver<LibxmlVerdict>,
);

impl DifferentialHarness {
    fn start() -> DifferentialHarness {
        use crate::store::{Durability, Store};
        let dir = tempfile::tempdir().expect("temporary folder");
        let store = Store::open(&dir.path().join("data"), Durability::Normal, 64 << 20)
            .expect("demo store");
        crate::demo::seed(&store).expect("demo data");
        let schemas = crate::schema::prepare(&dir.path().join("contract"), None).expect("contract");
        let driver = schemas.full.clone();
        let intake = crate::intake::Intake {
            store,
            schemas,
            vocabularies: std::sync::Arc::new(Vocabularies::load(None).expect("vocabularies")),
            config: std::sync::Arc::new(crate::intake::IntakeConfig {
                xsd_versions: vec!["2.2".into()],
                unknown_leerling: crate::intake::UnknownLeerlingPolicy::Reject,
                aanmaakdatum_max_skew: crate::config::Config::default().aanmaakdatum_max_skew(),
                clock: crate::domain::Clock::System,
            }),
            auth_limit: std::sync::Arc::new(crate::auth_limit::AuthLimiter::new(
                crate::auth_limit::AuthLimits {
                    max_failures: u32::MAX,
                    klantcode_max_failures: u32::MAX,
                    lockout: std::time::Duration::from_secs(1),
                },
            )),
        };
        let (bodies, body_receiver) = std::sync::mpsc::channel::<Vec<u8>>();
        let (verdict_sender, verdicts) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for body in body_receiver {
                let verdict = crate::tools::differential::libxml2_verdict(&driver, &body)
                    .expect("libxml2 validates");
                if verdict_sender.send(verdict).is_err() {
                    return;
                }
            }
        });
        DifferentialHarness {
            intake,
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime"),
            libxml2: std::sync::Mutex::new((bodies, verdicts)),
            index: std::sync::atomic::AtomicU64::new(0),
            _dir: dir,
        }
    }

    /// The rules the gateway's answer names (none when it accepts).
    fn gateway_rules(&self, body: &[u8]) -> Vec<crate::domain::Rule> {
        use sha2::Digest;
        let received = crate::intake::Received {
            body: Body::Memory(bytes::Bytes::copy_from_slice(body)),
            size: body.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(body)),
            peer: None,
            identity: None,
        };
        match self.runtime.block_on(self.intake.receive(received)) {
            Ok(crate::intake::Outcome::Accepted { .. }) => Vec::new(),
            Ok(crate::intake::Outcome::Rejected { violations, .. }) => violations
                .items
                .iter()
                .map(|violation| violation.rule)
                .collect(),
            Err(error) => panic!("the intake failed: {error}"),
        }
    }

    fn libxml2_verdict(&self, body: &[u8]) -> LibxmlVerdict {
        let worker = self
            .libxml2
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        worker.0.send(body.to_vec()).expect("libxml2 worker");
        worker.1.recv().expect("libxml2 verdict")
    }
}
