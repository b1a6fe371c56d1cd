//! xAPI 1.0.3 statement types and the mapping of one stored afname to its statement (shared/reference/xapi/MAPPING.md).

use super::BridgeError;
use crate::store::afname_result::AfnameResult;
use crate::store::outbox::{AfnameSource, VERB_VOIDED};
use crate::uwlr::{Normering, Toets, Uitslag, VocabulaireWaarde};
use serde::{Deserialize, Serialize};
use serde_json::{json, Number, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Part of every id name string; bumped only with a deliberate re-publication (MAPPING.md §7.3).
pub(crate) const MAPPING_VERSION: &str = "v1";
pub(crate) const VERB_SCORED: &str = "http://adlnet.gov/expapi/verbs/scored";
pub(crate) const ACTIVITY_TYPE_ASSESSMENT: &str = "http://adlnet.gov/expapi/activities/assessment";
/// The issuer of ECK iDs, used as the account home page of an ECK iD agent.
pub(crate) const ECKID_HOME_PAGE: &str = "https://ketenid.nl";
/// The account name of the gateway's own agent (the actor of voiding statements).
pub(crate) const GATEWAY_ACCOUNT: &str = "uwlr-gateway";

/// A language map (RFC 5646 tag → text).
pub(crate) type LanguageMap = BTreeMap<String, String>;
/// Extensions: IRI → any JSON.
pub(crate) type Extensions = BTreeMap<String, Value>;

/// A statement as the gateway produces it: never `stored`, `authority` or `version` (LRS-set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Statement {
    pub(crate) id: String,
    pub(crate) actor: Agent,
    pub(crate) verb: Verb,
    pub(crate) object: StatementObject,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) result: Option<XapiResult>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) context: Option<Context>,
    pub(crate) timestamp: String,
}

/// An Agent identified by exactly one IFI; the gateway only uses `account`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Agent {
    #[serde(rename = "objectType")]
    pub(crate) object_type: String,
    pub(crate) account: Account,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Account {
    #[serde(rename = "homePage")]
    pub(crate) home_page: String,
    pub(crate) name: String,
}

impl Agent {
    pub(crate) fn account(home_page: impl Into<String>, name: impl Into<String>) -> Agent {
        Agent {
            object_type: "Agent".into(),
            account: Account {
                home_page: home_page.into(),
                name: name.into(),
            },
        }
    }

    /// The canonical JSON of the IFI alone (sorted keys), as the store keeps it for agent filters.
    pub(crate) fn ifi_json(&self) -> String {
        json!({"account": {"homePage": self.account.home_page, "name": self.account.name}})
            .to_string()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Verb {
    pub(crate) id: String,
    pub(crate) display: LanguageMap,
}

/// The object of a statement: an activity, or a StatementRef for voiding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "objectType")]
pub(crate) enum StatementObject {
    Activity(Activity),
    StatementRef { id: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Activity {
    pub(crate) id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) definition: Option<ActivityDefinition>,
}

/// An activity as listed in contextActivities (with its objectType, which the spec lets us send).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ContextActivity {
    #[serde(rename = "objectType")]
    pub(crate) object_type: String,
    pub(crate) id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) definition: Option<ActivityDefinition>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ActivityDefinition {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub(crate) activity_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub(crate) name: LanguageMap,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub(crate) extensions: Extensions,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct XapiResult {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) score: Option<Score>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) duration: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub(crate) extensions: Extensions,
}

/// `raw` within `[min, max]`, `min < max`, `scaled` in `[-1, 1]`: the builder only fills what holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Score {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) raw: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) min: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) max: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) scaled: Option<Number>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Context {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) registration: Option<String>,
    #[serde(
        rename = "contextActivities",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub(crate) context_activities: Option<ContextActivities>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) platform: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub(crate) extensions: Extensions,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ContextActivities {
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub(crate) parent: Vec<ContextActivity>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub(crate) grouping: Vec<ContextActivity>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub(crate) category: Vec<ContextActivity>,
}

/// Deployment settings of the mapping: the base IRI, the UUIDv5 namespace derived from it,
/// and the gateway's secret id key (registrations and statement ids of afnames stored since
/// keying cannot be recomputed from a guessed leerlingid without it).
#[derive(Clone, Debug)]
pub(crate) struct Mapping {
    base_iri: String,
    namespace: Uuid,
    id_key: Option<IdKey>,
    /// Why the stored id key did not open (a replaced secrets key): keyed statements then
    /// wait, rather than go out under other ids.
    id_key_unopened: Option<String>,
}

/// An HMAC-SHA256 key that derives ids; never printed.
#[derive(Clone)]
pub(crate) struct IdKey(std::sync::Arc<Vec<u8>>);

impl IdKey {
    pub(crate) fn new(key: Vec<u8>) -> IdKey {
        IdKey(std::sync::Arc::new(key))
    }

    /// A UUIDv8 (RFC 9562) from the first 16 bytes of HMAC-SHA256(key, `name`): stable for one
    /// key and name, unlinkable to the name without the key.
    pub(crate) fn uuid(&self, name: &str) -> String {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(name.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

impl std::fmt::Debug for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdKey(..)")
    }
}

/// A statement built for an afname, with the values the store indexes.
#[derive(Clone, Debug)]
pub(crate) struct BuiltStatement {
    pub(crate) statement: Statement,
    /// The id name string before any re-issue suffix (MAPPING.md §2).
    pub(crate) id_name: String,
    pub(crate) activity_id: String,
    pub(crate) registration: String,
    /// Whether the ids are keyed (`AfnameSource::keyed_ids`), so a re-issue id is keyed too.
    pub(crate) keyed: bool,
}

/// Percent-encodes everything outside the RFC 3986 unreserved characters (one IRI path segment).
pub(crate) fn pct(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The school identity in id name strings: `brin:<brincode><dependancecode or 00>` or `schoolkey:<key>`.
pub(crate) fn school_identity(
    brincode: Option<&str>,
    dependancecode: Option<&str>,
    schoolkey: Option<&str>,
) -> String {
    match (brincode, schoolkey) {
        (Some(brincode), _) => {
            let dependancecode = dependancecode
                .filter(|code| !code.is_empty())
                .unwrap_or("00");
            format!("brin:{brincode}{dependancecode}")
        }
        (None, Some(schoolkey)) => format!("schoolkey:{schoolkey}"),
        (None, None) => "school:unknown".into(),
    }
}

/// Rounds to four decimals and gives a JSON number (an integer when it is one).
fn decimal(value: f64) -> Option<Number> {
    let rounded = (value * 10_000.0).round() / 10_000.0;
    if rounded.fract() == 0.0 && rounded.abs() < 9.0e15 {
        return Some(Number::from(rounded as i64));
    }
    Number::from_f64(rounded)
}

fn number_text(text: &str) -> Option<Number> {
    if let Ok(integer) = text.trim().parse::<i64>() {
        return Some(Number::from(integer));
    }
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
        .and_then(decimal)
}

/// Fields of OSO results that hold numbers (sent as text in XML).
const OSO_NUMBERS: &[&str] = &[
    "aantalopgaven",
    "aantalgoed",
    "aantalfout",
    "aantalgelezen",
    "tijd",
    "vaardigheidsscore",
    "bivlaag",
    "bivhoog",
    "waarde",
];

/// Turns the known numeric fields of an OSO subtree from text into numbers.
fn oso_numbers(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, inner)| {
                    let converted = match inner {
                        Value::String(text) if OSO_NUMBERS.contains(&key.as_str()) => {
                            number_text(text)
                                .map(Value::Number)
                                .unwrap_or_else(|| inner.clone())
                        }
                        _ => oso_numbers(inner),
                    };
                    (key.clone(), converted)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(oso_numbers).collect()),
        other => other.clone(),
    }
}

fn as_list(value: Option<&Value>) -> Vec<Value> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    }
}

/// Seconds (xs:decimal text) as an ISO 8601 duration with at most two decimals.
fn duration(seconds: &str) -> Option<String> {
    let value: f64 = seconds
        .trim()
        .parse()
        .ok()
        .filter(|value: &f64| value.is_finite() && *value >= 0.0)?;
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    Some(format!("PT{text}S"))
}

/// The instant of a message's aanmaakdatum (as the intake reads it) in xAPI form; `None`
/// when unreadable (never for an accepted message).
pub fn aanmaakdatum_timestamp(aanmaakdatum: &str) -> Option<String> {
    let instant = crate::domain::aanmaakdatum::parse_datetime(aanmaakdatum).ok()?;
    (chrono::Datelike::year(&instant) >= 1)
        .then(|| instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The timestamp of a result: 00:00 Europe/Amsterdam on its afnamedatum. A date after the
/// message's aanmaakdatum (a result cannot be taken after the message that reports it was
/// made), or one xAPI cannot write, takes the aanmaakdatum instead: data, never the clock,
/// so a rebuilt statement is the same.
fn timestamp(afnamedatum: &str, aanmaakdatum: &str) -> String {
    use chrono::TimeZone;
    let reported = crate::domain::aanmaakdatum::parse_datetime(aanmaakdatum)
        .ok()
        .filter(|instant| chrono::Datelike::year(instant) >= 1)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    let reported_text = || reported.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // Any xs:date: long or negative years, with or without a timezone (its date counts).
    let Ok(date) = crate::domain::xsd::XsdDate::parse(afnamedatum).and_then(|date| date.naive())
    else {
        return reported_text();
    };
    // xAPI timestamps are ISO 8601 with four-digit years; a date before year 1 is
    // treated as a future one is (the date itself stays in the afnamedatum extension).
    if chrono::Datelike::year(&date) < 1 {
        return reported_text();
    }
    let Some(midnight) = chrono_tz::Europe::Amsterdam
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .earliest()
    else {
        return reported_text();
    };
    if midnight.with_timezone(&chrono::Utc) > reported {
        return reported_text();
    }
    midnight.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

impl Mapping {
    /// Checks the base IRI (absolute http(s), no query or fragment) and derives the id namespace.
    pub(crate) fn new(base_iri: &str) -> Result<Mapping, BridgeError> {
        let base_iri = base_iri.trim().trim_end_matches('/').to_string();
        let scheme_ok = base_iri.starts_with("https://") || base_iri.starts_with("http://");
        let host = base_iri.split("://").nth(1).unwrap_or("");
        if !scheme_ok
            || host.is_empty()
            || host.starts_with('/')
            || base_iri.contains(['?', '#', ' '])
        {
            return Err(BridgeError::BaseIri(base_iri));
        }
        let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, base_iri.as_bytes());
        Ok(Mapping {
            base_iri,
            namespace,
            id_key: None,
            id_key_unopened: None,
        })
    }

    /// The mapping with the gateway's id key, which keyed ids and registrations need.
    pub(crate) fn with_id_key(mut self, id_key: IdKey) -> Mapping {
        self.id_key = Some(id_key);
        self
    }

    /// The mapping of a gateway whose stored id key does not open, and why.
    pub(crate) fn with_unopened_id_key(mut self, reason: String) -> Mapping {
        self.id_key_unopened = Some(reason);
        self
    }

    /// Refuses to build a keyed statement while the stored id key does not open.
    pub(crate) fn check_keyed(&self, keyed: bool) -> Result<(), BridgeError> {
        match (&self.id_key_unopened, keyed) {
            (Some(reason), true) => Err(BridgeError::IdKey(reason.clone())),
            _ => Ok(()),
        }
    }

    /// A keyed id (`keyed`, with the gateway's id key) or a UUIDv5 in this deployment's
    /// public namespace (ids published before keying, and a mapping made without a key, as
    /// tools and unit tests make it; `serve` always has one, see `check_keyed`).
    pub(crate) fn id(&self, name: &str, keyed: bool) -> String {
        match (&self.id_key, keyed) {
            (Some(key), true) => key.uuid(&format!("{}|{name}", self.base_iri)),
            _ => self.uuid(name),
        }
    }

    pub(crate) fn base_iri(&self) -> &str {
        &self.base_iri
    }

    /// UUIDv5 in this deployment's namespace.
    pub(crate) fn uuid(&self, name: &str) -> String {
        Uuid::new_v5(&self.namespace, name.as_bytes()).to_string()
    }

    pub(crate) fn extension(&self, name: &str) -> String {
        format!("{}/extension/{name}", self.base_iri)
    }

    /// The agent of the gateway itself, the actor of voiding statements.
    pub(crate) fn gateway_agent(&self) -> Agent {
        Agent::account(self.base_iri.clone(), GATEWAY_ACCOUNT)
    }

    /// The agent for a learner known only by the LAS key of one school.
    pub(crate) fn las_agent(&self, school_identity: &str, leerlingid: &str) -> Agent {
        Agent::account(
            format!("{}/las/{}", self.base_iri, pct(school_identity)),
            leerlingid,
        )
    }

    /// The default identity: the ECK iD when known (MAPPING.md §3), else the LAS key.
    pub(crate) fn default_agent(
        &self,
        school_identity: &str,
        leerlingid: &str,
        eckid: Option<&str>,
    ) -> Agent {
        match eckid.map(str::trim).filter(|eckid| !eckid.is_empty()) {
            Some(eckid) => Agent::account(ECKID_HOME_PAGE, eckid),
            None => self.las_agent(school_identity, leerlingid),
        }
    }

    /// The home page of per-LRS pseudonymous accounts.
    pub(crate) fn pseudonym_home_page(&self) -> String {
        format!("{}/pseudonym", self.base_iri)
    }

    pub(crate) fn toets_activity_id(&self, toetscode: &str, versie: &str) -> String {
        let mut id = format!("{}/toets/{}", self.base_iri, pct(toetscode));
        if !versie.is_empty() {
            id.push_str(&format!("/versie/{}", pct(versie)));
        }
        id
    }

    pub(crate) fn profile_activity(&self) -> ContextActivity {
        ContextActivity {
            object_type: "Activity".into(),
            id: format!("{}/profile/uwlr-2.2/{MAPPING_VERSION}", self.base_iri),
            definition: None,
        }
    }

    /// The voiding statement for `voided_id`; its id is derived from the voided id, so a resend
    /// is a no-op, and its timestamp is `timestamp`, the correcting message's aanmaakdatum.
    pub(crate) fn voiding_statement(&self, voided_id: &str, timestamp: String) -> Statement {
        Statement {
            id: self.uuid(&format!("uwlr-void|{MAPPING_VERSION}|{voided_id}")),
            actor: self.gateway_agent(),
            verb: Verb {
                id: VERB_VOIDED.into(),
                display: [("en-US".to_string(), "voided".to_string())].into(),
            },
            object: StatementObject::StatementRef {
                id: voided_id.to_string(),
            },
            result: None,
            context: None,
            timestamp,
        }
    }

    /// Builds the statement for one afname against its toets definition (MAPPING.md §2–§7).
    pub(crate) fn build(&self, source: &AfnameSource, toets: &Toets) -> BuiltStatement {
        let school = school_identity(
            source.brincode.as_deref(),
            source.dependancecode.as_deref(),
            source.schoolkey.as_deref(),
        );
        // The digest is over the stored values as JSON; the typed form is what the mapping reads.
        let stored: Value = serde_json::from_str(&source.result).unwrap_or(Value::Null);
        let resultaat = AfnameResult::parse(&source.result);
        let onderdeel = source
            .toetsonderdeelcode
            .as_deref()
            .and_then(|code| toets.onderdeel(code));
        let normering: Option<&Normering> = match &source.toetsonderdeelcode {
            None => toets.toetsnormering.as_ref(),
            Some(_) => onderdeel.and_then(|onderdeel| onderdeel.toetsonderdeelnormering.as_ref()),
        };
        let scored = self.result(resultaat.as_ref(), normering);
        let toets_id = self.toets_activity_id(&source.toetscode, &source.versie);
        let (activity_id, definition) =
            self.object_definition(source, toets, onderdeel, normering, &toets_id);
        let registration = self.id(
            &format!(
                "uwlr-registration|{MAPPING_VERSION}|{school}|{}|{}|{}|{}",
                source.leerlingid, source.toetscode, source.versie, source.afnamedatum
            ),
            source.keyed_ids,
        );
        let context = self.context(source, &toets_id, registration.clone());
        let actor = self.default_agent(&school, &source.leerlingid, source.eckid.as_deref());
        let id_name = self.id_name(source, &school, &actor, &stored, &scored);
        let statement = Statement {
            id: self.id(&id_name, source.keyed_ids),
            actor,
            verb: Verb {
                id: VERB_SCORED.into(),
                display: [
                    ("en-US".to_string(), "scored".to_string()),
                    ("nl".to_string(), "scoorde".to_string()),
                ]
                .into(),
            },
            object: StatementObject::Activity(Activity {
                id: activity_id.clone(),
                definition: Some(definition),
            }),
            result: Some(scored.result).filter(|result| *result != XapiResult::default()),
            context: Some(context),
            timestamp: timestamp(&source.afnamedatum, &source.aanmaakdatum),
        };
        BuiltStatement {
            statement,
            id_name,
            activity_id,
            registration,
            keyed: source.keyed_ids,
        }
    }

    /// An extensions block: each field of `block` under its extension IRI. The IRIs share
    /// one prefix, so the map orders them as the field names sort.
    fn extensions(&self, block: &impl Serialize) -> Extensions {
        match serde_json::to_value(block) {
            Ok(Value::Object(fields)) => fields
                .into_iter()
                .map(|(name, value)| (self.extension(&name), value))
                .collect(),
            _ => Extensions::new(),
        }
    }

    /// The xAPI result of a stored resultaat, with the range and norm it was read against.
    fn result(&self, resultaat: Option<&AfnameResult>, normering: Option<&Normering>) -> Scored {
        let mut scored = Scored::default();
        let mut extensions = ResultExtensions::default();
        match resultaat.map(AfnameResult::uitslag) {
            Some(Uitslag::Score(Some(raw))) => {
                scored.result.score =
                    Some(self.scale(*raw, normering, &mut scored, &mut extensions));
            }
            Some(Uitslag::Osoresultaat(oso)) => {
                scored.result.score = oso_result(oso, &mut scored.result, &mut extensions);
            }
            Some(Uitslag::Anderresultaat(ander)) => {
                let mut inhoud = ander.clone();
                if let Value::Object(map) = &mut inhoud {
                    map.remove("@type");
                }
                extensions.anderresultaat = Some(Anderresultaat {
                    inhoud,
                    xsi_type: ander.get("@type").filter(|value| !value.is_null()).cloned(),
                });
            }
            Some(Uitslag::Score(None)) | None => {}
        }
        extensions.infourl = resultaat
            .and_then(AfnameResult::infourl)
            .map(str::to_string);
        extensions.afgeleid_uit = resultaat
            .and_then(AfnameResult::afgeleid_uit)
            .map(<[String]>::to_vec);
        scored.result.extensions = self.extensions(&extensions);
        scored
    }

    /// A scoregetal with its normering: the range (when it holds the score) and the norm it falls in.
    fn scale(
        &self,
        raw: u64,
        normering: Option<&Normering>,
        scored: &mut Scored,
        extensions: &mut ResultExtensions,
    ) -> Score {
        let mut score = Score {
            raw: Some(Number::from(raw)),
            ..Score::default()
        };
        let Some(normering) = normering else {
            return score;
        };
        if let Some((low, high)) = normering.range() {
            if low < high && low <= raw && raw <= high {
                score.min = Some(Number::from(low));
                score.max = Some(Number::from(high));
                // A known range makes the score a logical percentage (README, Decisions).
                score.scaled = decimal((raw - low) as f64 / (high - low) as f64);
                scored.range = Some([low, high]);
            }
        }
        if let Some(norm) = normering
            .norms
            .iter()
            .find(|norm| norm.beginnormwaarde <= raw && raw <= norm.eindnormwaarde)
        {
            extensions.normterm = Some(NormTerm {
                omschrijving: norm.omschrijving.clone(),
                term: norm.term.clone(),
            });
            let schoolcijfer = Schoolcijfer {
                totenmet: norm.schoolcijfer_totenmet.as_deref().and_then(number_text),
                vanaf: norm.schoolcijfer_vanaf.as_deref().and_then(number_text),
            };
            extensions.schoolcijfer = (schoolcijfer.totenmet.is_some()
                || schoolcijfer.vanaf.is_some())
            .then_some(schoolcijfer);
            scored.norm = Some(NormUsed {
                begin: norm.beginnormwaarde,
                eind: norm.eindnormwaarde,
                term: norm.term.clone(),
                totenmet: norm.schoolcijfer_totenmet.clone(),
                vanaf: norm.schoolcijfer_vanaf.clone(),
            });
        }
        score
    }

    /// The object's activity id and definition: the toets, or one of its onderdelen.
    fn object_definition(
        &self,
        source: &AfnameSource,
        toets: &Toets,
        onderdeel: Option<&crate::uwlr::Toetsonderdeel>,
        normering: Option<&Normering>,
        toets_id: &str,
    ) -> (String, ActivityDefinition) {
        let mut definition = ActivityDefinition {
            activity_type: Some(ACTIVITY_TYPE_ASSESSMENT.into()),
            ..ActivityDefinition::default()
        };
        let mut extensions = ActivityExtensions::default();
        if let Some(normering) = normering {
            extensions.toetscategorie = normering.toetscategorie.clone();
            extensions.toetsniveau = normering.toetsniveau.clone();
            extensions.wegingsfactor = normering.wegingsfactor.as_deref().and_then(number_text);
        }
        let activity_id = match (&source.toetsonderdeelcode, onderdeel) {
            (Some(code), Some(onderdeel)) => {
                if let Some(naam) = &onderdeel.toetsonderdeelnaam {
                    definition.name.insert("nl".into(), naam.clone());
                }
                extensions.toetsonderdeelcode = Some(onderdeel.toetsonderdeelcode.clone());
                extensions.toetsonderdeelvolgnummer =
                    number_text(&onderdeel.toetsonderdeelvolgnummer);
                format!("{toets_id}/onderdeel/{}", pct(code))
            }
            (Some(code), None) => {
                extensions.toetsonderdeelcode = Some(VocabulaireWaarde {
                    waarde: code.clone(),
                    ..VocabulaireWaarde::default()
                });
                format!("{toets_id}/onderdeel/{}", pct(code))
            }
            (None, _) => {
                if let Some(naam) = &toets.toetsnaam {
                    definition.name.insert("nl".into(), naam.clone());
                }
                extensions.toetscode = Some(toets.toetscode.clone());
                extensions.versie = toets.versie.clone();
                extensions.leerjaar = toets.leerjaar.clone();
                extensions.vakgebied = toets.vakgebied.clone();
                if !toets.toetshierarchie.is_empty() {
                    extensions.toetshierarchie = Some(
                        toets
                            .toetshierarchie
                            .iter()
                            .map(|ingang| HierarchieIngang {
                                niveau: number_text(&ingang.niveau)
                                    .map(Value::Number)
                                    .unwrap_or_else(|| Value::String(ingang.niveau.clone())),
                                waarde: &ingang.waarde,
                            })
                            .collect(),
                    );
                }
                toets_id.to_string()
            }
        };
        definition.extensions = self.extensions(&extensions);
        (activity_id, definition)
    }

    /// The context: registration, the toets as parent of an onderdeel, the school, the
    /// profile, the sender as platform and the source values as extensions.
    fn context(&self, source: &AfnameSource, toets_id: &str, registration: String) -> Context {
        let mut school_definition = ActivityDefinition {
            activity_type: Some(format!("{}/activitytype/school", self.base_iri)),
            ..ActivityDefinition::default()
        };
        let school_name = source
            .school_naam
            .clone()
            .unwrap_or_else(|| format!("School {}", source.school_code));
        school_definition.name.insert("nl".into(), school_name);
        let given = |value: Option<&String>| value.filter(|value| !value.is_empty()).cloned();
        let extensions = ContextExtensions {
            aanmaakdatum: given(Some(&source.aanmaakdatum)),
            // A total the gateway added up, not one the sender reported (README, Decisions).
            // (The onderdeel keys it sums are in the result extension `afgeleid-uit`.)
            afgeleid: source.derived.then_some(Afgeleid { methode: "som" }),
            afnamedatum: given(Some(&source.afnamedatum)),
            brincode: given(source.brincode.as_ref()),
            dependancecode: given(source.dependancecode.as_ref()),
            resultaatkey: given(Some(&source.afname_key)),
            resultaatverwerkerid: given(source.resultaatverwerkerid.as_ref()),
            schooljaar: given(source.schooljaar.as_ref()),
            schoolkey: given(source.schoolkey.as_ref()),
            xsdversie: given(source.xsdversie.as_ref()),
        };
        Context {
            registration: Some(registration),
            context_activities: Some(ContextActivities {
                parent: match source.toetsonderdeelcode {
                    Some(_) => vec![ContextActivity {
                        object_type: "Activity".into(),
                        id: toets_id.to_string(),
                        definition: None,
                    }],
                    None => Vec::new(),
                },
                grouping: vec![ContextActivity {
                    object_type: "Activity".into(),
                    id: format!("{}/school/{}", self.base_iri, pct(&source.school_code)),
                    definition: Some(school_definition),
                }],
                category: vec![self.profile_activity()],
            }),
            platform: source.klantnaam.clone().filter(|naam| !naam.is_empty()),
            extensions: self.extensions(&extensions),
        }
    }

    /// The id name: the natural key plus a digest over the source values the statement asserts.
    fn id_name(
        &self,
        source: &AfnameSource,
        school: &str,
        actor: &Agent,
        stored: &Value,
        scored: &Scored,
    ) -> String {
        let digest_input = DigestInput {
            actor: actor.ifi_json(),
            afnamedatum: &source.afnamedatum,
            leerlingid: &source.leerlingid,
            norm: scored.norm.as_ref(),
            range: scored.range,
            result: stored,
            resultaatverwerkerid: source.resultaatverwerkerid.as_deref(),
            schooljaar: source.schooljaar.as_deref(),
            toetscode: &source.toetscode,
            toetsonderdeelcode: source.toetsonderdeelcode.as_deref(),
            versie: &source.versie,
        };
        // Through a `Value`, whose maps sort their keys: the digest was always taken that way.
        let digest_text = serde_json::to_value(&digest_input)
            .expect("the digest input always serialises")
            .to_string();
        let digest = crate::store::sha256_hex(digest_text.as_bytes());
        // Keys belong to their sender, so the sender is part of the natural key; afnames
        // stored before that (no `id_klantcode`) keep the name their statements were made with.
        // The other prefix keeps the two forms apart whatever a key holds.
        match &source.id_klantcode {
            Some(klantcode) => format!(
                "uwlr-resultaat-ea|{MAPPING_VERSION}|{school}|{}|{}|{}",
                pct(klantcode),
                source.afname_key,
                &digest[..32]
            ),
            None => format!(
                "uwlr-resultaat|{MAPPING_VERSION}|{school}|{}|{}",
                source.afname_key,
                &digest[..32]
            ),
        }
    }
}

/// The xAPI result of an afname and what of its normering it used (part of the id digest).
#[derive(Default)]
struct Scored {
    result: XapiResult,
    range: Option<[u64; 2]>,
    norm: Option<NormUsed>,
}

/// The score, duration and extensions of an OSO result; its known numeric fields become numbers.
fn oso_result(
    oso: &Value,
    result: &mut XapiResult,
    extensions: &mut ResultExtensions,
) -> Option<Score> {
    let mut score = None;
    let converted = oso_numbers(oso);
    if let Some(toetsscore) = converted.get("toetsscore") {
        let goed = toetsscore.get("aantalgoed").and_then(Value::as_u64);
        let opgaven = toetsscore.get("aantalopgaven").and_then(Value::as_u64);
        if let (Some(goed), Some(opgaven)) = (goed, opgaven) {
            if opgaven > 0 && goed <= opgaven {
                score = Some(Score {
                    raw: Some(Number::from(goed)),
                    min: Some(Number::from(0)),
                    max: Some(Number::from(opgaven)),
                    scaled: decimal(goed as f64 / opgaven as f64),
                });
            }
        }
        // The duration from the text as sent, not its rounded number.
        if let Some(tijd) = oso["toetsscore"].get("tijd").and_then(Value::as_str) {
            result.duration = duration(tijd);
        }
        if let Some(waarde) = toetsscore.get("vaardigheidsscore") {
            let interval = toetsscore.get("betrouwbaarheidsinterval");
            extensions.vaardigheidsscore = Some(Vaardigheidsscore {
                bivhoog: interval
                    .and_then(|interval| interval.get("bivhoog"))
                    .cloned(),
                bivlaag: interval
                    .and_then(|interval| interval.get("bivlaag"))
                    .cloned(),
                codevaardigheidsschaal: toetsscore.get("codevaardigheidsschaal").cloned(),
                waarde: waarde.clone(),
            });
        }
        extensions.oso_toetsscore = Some(toetsscore.clone());
    }
    let referenties = as_list(converted.get("referentiescore"));
    extensions.referentiescores = (!referenties.is_empty()).then_some(referenties);
    score
}

/// The result extensions `Mapping::build` writes (named as in the profile, `profile.rs`).
#[derive(Default, Serialize)]
struct ResultExtensions {
    #[serde(rename = "afgeleid-uit", skip_serializing_if = "Option::is_none")]
    afgeleid_uit: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    anderresultaat: Option<Anderresultaat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    infourl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normterm: Option<NormTerm>,
    #[serde(rename = "oso-toetsscore", skip_serializing_if = "Option::is_none")]
    oso_toetsscore: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referentiescores: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schoolcijfer: Option<Schoolcijfer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vaardigheidsscore: Option<Vaardigheidsscore>,
}

/// An anderresultaat as sent, its `xsi:type` apart.
#[derive(Serialize)]
struct Anderresultaat {
    inhoud: Value,
    #[serde(rename = "xsiType", skip_serializing_if = "Option::is_none")]
    xsi_type: Option<Value>,
}

/// The norm a score falls in.
#[derive(Serialize)]
struct NormTerm {
    #[serde(skip_serializing_if = "Option::is_none")]
    omschrijving: Option<String>,
    term: String,
}

/// The school grade range of that norm.
#[derive(Serialize)]
struct Schoolcijfer {
    #[serde(skip_serializing_if = "Option::is_none")]
    totenmet: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vanaf: Option<Number>,
}

/// An OSO vaardigheidsscore with its scale and confidence interval.
#[derive(Serialize)]
struct Vaardigheidsscore {
    #[serde(skip_serializing_if = "Option::is_none")]
    bivhoog: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bivlaag: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    codevaardigheidsschaal: Option<Value>,
    waarde: Value,
}

/// The extensions of the object's activity definition.
#[derive(Default, Serialize)]
struct ActivityExtensions<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    leerjaar: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none")]
    toetscategorie: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none")]
    toetscode: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none")]
    toetshierarchie: Option<Vec<HierarchieIngang<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    toetsniveau: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none")]
    toetsonderdeelcode: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none")]
    toetsonderdeelvolgnummer: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vakgebied: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none")]
    versie: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wegingsfactor: Option<Number>,
}

/// One ingang of the toetshierarchie, its niveau as a number when it is one.
#[derive(Serialize)]
struct HierarchieIngang<'a> {
    niveau: Value,
    #[serde(flatten)]
    waarde: &'a VocabulaireWaarde,
}

/// The source values a statement carries in its context.
#[derive(Serialize)]
struct ContextExtensions {
    #[serde(skip_serializing_if = "Option::is_none")]
    aanmaakdatum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    afgeleid: Option<Afgeleid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    afnamedatum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    brincode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dependancecode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resultaatkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resultaatverwerkerid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schooljaar: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schoolkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    xsdversie: Option<String>,
}

/// How the gateway derived a total.
#[derive(Serialize)]
struct Afgeleid {
    methode: &'static str,
}

/// The norm a score fell in, as the id digest holds it.
#[derive(Serialize)]
struct NormUsed {
    begin: u64,
    eind: u64,
    term: String,
    totenmet: Option<String>,
    vanaf: Option<String>,
}

/// What a statement id digests: the source values the statement asserts (absent ones as null).
#[derive(Serialize)]
struct DigestInput<'a> {
    actor: String,
    afnamedatum: &'a str,
    leerlingid: &'a str,
    norm: Option<&'a NormUsed>,
    range: Option<[u64; 2]>,
    result: &'a Value,
    resultaatverwerkerid: Option<&'a str>,
    schooljaar: Option<&'a str>,
    toetscode: &'a str,
    toetsonderdeelcode: Option<&'a str>,
    versie: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_matches_the_reference_examples() {
        let mapping = Mapping::new("https://uwlr-gateway.example.nl/xapi/").unwrap();
        assert_eq!(
            mapping.namespace.to_string(),
            "f32597d3-5429-5b4d-abe3-eb096950a02b"
        );
        assert_eq!(
            mapping.uuid("uwlr-void|v1|f259a41f-c5ab-5f00-ac0f-411d5f610787"),
            "6341aec4-8604-5502-aa48-b843466d9d82"
        );
        assert_eq!(
            mapping
                .las_agent("brin:99XX16", "EC976431")
                .account
                .home_page,
            "https://uwlr-gateway.example.nl/xapi/las/brin%3A99XX16"
        );
    }

    /// The reference example 01 (shared/reference/xapi/examples/valid/01-toets-score.json), rebuilt from its UWLR source.
    #[test]
    fn toets_score_matches_the_reference_example() {
        let mapping = Mapping::new("https://uwlr-gateway.example.nl/xapi").unwrap();
        let eckid = "https://ketenid.nl/201703/43635ad07e942659a91362eb8f10c16cb936442eccb63ca07b2bf44fec4fd52ec11de3e197191c046c7110b3b8f1dc81d173679f5345d57f3f3732321b9e73b3";
        let source = AfnameSource {
            school_naam: Some("School 99XX-16".into()),
            afname_key: "A-1001".into(),
            eckid: Some(eckid.into()),
            resultaatverwerkerid: None,
            result: r#"{"uitslag":{"score":42},"infourl":null}"#.into(),
            klantnaam: None,
            id_klantcode: None,
            keyed_ids: false,
            ..golden_base()
        };
        let norm = |term: &str, begin, end| crate::uwlr::Norm {
            term: term.into(),
            beginnormwaarde: begin,
            eindnormwaarde: end,
            ..Default::default()
        };
        let toets = Toets {
            toetscode: VocabulaireWaarde {
                waarde: "RW-M4".into(),
                ..Default::default()
            },
            versie: Some(VocabulaireWaarde {
                waarde: "2022".into(),
                vocabulaire: Some("https://example.org/vdex/toetsversies".into()),
                vocabulairelocatie: None,
            }),
            toetsnaam: Some("Rekenen-Wiskunde M4".into()),
            toetsnormering: Some(Normering {
                norms: vec![norm("I", 0, 20), norm("III", 21, 60)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let built = mapping.build(&source, &toets);
        let ours = serde_json::to_value(&built.statement).unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/reference/xapi/examples/valid/01-toets-score.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
            panic!(
                "{} (shared/ must sit beside the repository): {error}",
                path.display()
            )
        });
        let reference: Value = serde_json::from_str(&text).unwrap();
        for path in [
            "/actor",
            "/verb",
            "/object/id",
            "/object/definition/type",
            "/object/definition/name",
            "/result/score/raw",
            "/result/score/min",
            "/result/score/max",
            "/context/contextActivities",
            "/timestamp",
        ] {
            assert_eq!(ours.pointer(path), reference.pointer(path), "{path}");
        }
        for (key, value) in reference["object"]["definition"]["extensions"]
            .as_object()
            .unwrap()
        {
            assert_eq!(
                &ours["object"]["definition"]["extensions"][key], value,
                "{key}"
            );
        }
        for (key, value) in reference["context"]["extensions"].as_object().unwrap() {
            assert_eq!(&ours["context"]["extensions"][key], value, "{key}");
        }
        assert_eq!(
            ours["result"]["extensions"]["https://uwlr-gateway.example.nl/xapi/extension/normterm"]
                ["term"],
            "III"
        );
        // Issue 17: a known range gives the scaled score, (42 - 0) / (60 - 0).
        assert_eq!(ours["result"]["score"]["scaled"], json!(0.7));
        assert!(ours["context"]["extensions"]
            .get("https://uwlr-gateway.example.nl/xapi/extension/afgeleid")
            .is_none());
        assert!(built
            .id_name
            .starts_with("uwlr-resultaat|v1|brin:99XX16|A-1001|"));
        // An afname stored before ownership keeps that id; the same content under the same
        // key from two clients (stored since) gets one id per client.
        let legacy_id = built.statement.id.clone();
        let id_for = |klantcode: &str| {
            let owned = AfnameSource {
                id_klantcode: Some(klantcode.into()),
                ..source.clone()
            };
            mapping.build(&owned, &toets)
        };
        let (from_b, from_c) = (id_for("EA-B"), id_for("EA-C"));
        assert!(from_b
            .id_name
            .starts_with("uwlr-resultaat-ea|v1|brin:99XX16|EA-B|A-1001|"));
        assert_ne!(from_b.statement.id, from_c.statement.id);
        assert_ne!(from_b.statement.id, legacy_id);
        assert_eq!(mapping.build(&source, &toets).statement.id, legacy_id);
    }

    /// Every branch of `Mapping::build` (score with norm and range, onderdelen known and
    /// unknown, OSO, anderresultaat, a derived total, infourl, ECK iD, keyed ids, platform)
    /// gives the same bytes as the statements already published: ids are derived from
    /// them, and LRSs compare a resend with what they hold.
    /// A toets with every part `build` reads: names, vocabularies, hierarchy, normering, onderdelen.
    fn golden_toets() -> Toets {
        use crate::uwlr::{Ingang, Norm, Toetsonderdeel};
        let vocab = |waarde: &str| VocabulaireWaarde {
            waarde: waarde.into(),
            vocabulaire: Some("https://example.org/vdex".into()),
            vocabulairelocatie: None,
        };
        let normering = Normering {
            toetscategorie: Some(vocab("methode")),
            toetsniveau: Some(vocab("M4")),
            wegingsfactor: Some("2.50".into()),
            norms: vec![
                Norm {
                    term: "I".into(),
                    beginnormwaarde: 0,
                    eindnormwaarde: 20,
                    ..Default::default()
                },
                Norm {
                    term: "II".into(),
                    omschrijving: Some("voldoende".into()),
                    beginnormwaarde: 21,
                    eindnormwaarde: 60,
                    schoolcijfer_vanaf: Some("5.5".into()),
                    schoolcijfer_totenmet: Some("8".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        Toets {
            toetscode: vocab("RW-M4"),
            versie: Some(vocab("2022")),
            toetsnaam: Some("Rekenen".into()),
            leerjaar: Some(vocab("4")),
            vakgebied: Some(vocab("rekenen")),
            toetshierarchie: vec![Ingang {
                niveau: "01".into(),
                waarde: vocab("domein"),
            }],
            toetsnormering: Some(normering.clone()),
            toetsonderdelen: vec![Toetsonderdeel {
                toetsonderdeelvolgnummer: "1".into(),
                toetsonderdeelcode: vocab("GET"),
                toetsonderdeelnaam: Some("Getallen".into()),
                toetsonderdeelnormering: Some(normering),
            }],
            ..Default::default()
        }
    }

    /// The afname the golden statements vary: keyed, owned, with infourl and platform.
    fn golden_base() -> AfnameSource {
        AfnameSource {
            id: 1,
            school_id: 1,
            school_code: "99XX16".into(),
            brincode: Some("99XX".into()),
            dependancecode: Some("16".into()),
            schoolkey: None,
            school_naam: None,
            afname_key: "A-1".into(),
            leerlingid: "L1".into(),
            eckid: None,
            resultaatverwerkerid: Some("RV".into()),
            toets_id: 1,
            toetscode: "RW-M4".into(),
            versie: "2022".into(),
            toetsonderdeelcode: None,
            afnamedatum: "2025-01-15".into(),
            derived: false,
            result: r#"{"infourl":"https://x.example/i","uitslag":{"score":42}}"#.into(),
            aanmaakdatum: "2025-01-16T08:00:00".into(),
            schooljaar: Some("2024-2025".into()),
            xsdversie: Some("2.2".into()),
            klantnaam: Some("Demo".into()),
            id_klantcode: Some("EA".into()),
            toets_revision: None,
            keyed_ids: true,
        }
    }

    /// One afname per branch of `build`.
    fn golden_sources() -> [AfnameSource; 6] {
        let base = golden_base();
        let oso = r#"{"infourl":null,"uitslag":{"osoresultaat":{"toetsscore":{"aantalgoed":"7","aantalopgaven":"10","tijd":"1805.5","vaardigheidsscore":"212","codevaardigheidsschaal":"VS","betrouwbaarheidsinterval":{"bivlaag":"200","bivhoog":"230"}},"referentiescore":[{"waarde":"1.5","referentieniveau":"1F"}]}}}"#;
        let ander =
            r#"{"infourl":null,"uitslag":{"anderresultaat":{"@type":"x:Eigen","cijfer":"7,5"}}}"#;
        [
            base.clone(),
            AfnameSource {
                toetsonderdeelcode: Some("GET".into()),
                eckid: Some("https://ketenid.nl/201703/abc".into()),
                ..base.clone()
            },
            AfnameSource {
                toetsonderdeelcode: Some("ONBEKEND".into()),
                keyed_ids: false,
                id_klantcode: None,
                ..base.clone()
            },
            AfnameSource {
                result: oso.into(),
                schoolkey: Some("SK".into()),
                brincode: None,
                ..base.clone()
            },
            AfnameSource {
                result: ander.into(),
                afnamedatum: "2999-01-01".into(),
                ..base.clone()
            },
            AfnameSource {
                derived: true,
                result: r#"{"afgeleid_uit":["K-1","K-2"],"uitslag":{"score":50}}"#.into(),
                klantnaam: None,
                ..base.clone()
            },
        ]
    }

    #[test]
    fn statements_keep_their_bytes() {
        let mapping = Mapping::new("https://gw.example.nl/xapi")
            .unwrap()
            .with_id_key(IdKey::new(b"unit-test-id-key".to_vec()));
        let toets = golden_toets();
        let sources = golden_sources();
        let mut lines = String::new();
        for source in &sources {
            let built = mapping.build(source, &toets);
            lines.push_str(&format!(
                "{} {} {} {}\n{}\n",
                built.id_name,
                built.activity_id,
                built.registration,
                built.keyed,
                serde_json::to_string(&built.statement).unwrap()
            ));
        }
        let voiding = mapping.voiding_statement(
            "6341aec4-8604-5502-aa48-b843466d9d82",
            "2025-01-16T07:00:00.000Z".into(),
        );
        lines.push_str(&serde_json::to_string(&voiding).unwrap());
        lines.push('\n');
        let golden = include_str!("xapi_golden.txt");
        if lines != golden {
            std::fs::write(std::env::temp_dir().join("xapi_golden.actual.txt"), &lines).unwrap();
        }
        assert!(lines == golden, "statements differ from src/bridge/xapi_golden.txt; see xapi_golden.actual.txt in the temp dir");
    }

    #[test]
    fn base_iri_must_be_http() {
        for bad in [
            "",
            "uwlr",
            "ftp://x/y",
            "https://",
            "https://x/y?z",
            "https:///path",
        ] {
            assert!(Mapping::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(pct("RW M4/ä"), "RW%20M4%2F%C3%A4");
        assert_eq!(duration("1805.5").as_deref(), Some("PT1805.5S"));
        assert_eq!(duration("2400").as_deref(), Some("PT2400S"));
        assert_eq!(school_identity(Some("99XX"), None, None), "brin:99XX00");
        // Timestamps come from the data: the afnamedatum, or the message's aanmaakdatum
        // when the afnamedatum lies after it or cannot be written.
        let made = "2026-03-01T10:00:00";
        assert_eq!(timestamp("2025-01-15", made), "2025-01-15T00:00:00+01:00");
        assert_eq!(timestamp("2025-07-15", made), "2025-07-15T00:00:00+02:00");
        assert_eq!(timestamp("2999-01-01", made), "2026-03-01T09:00:00.000Z");
        assert_eq!(timestamp("2026-03-02", made), "2026-03-01T09:00:00.000Z");
        // Every xs:date form: a timezone, long and negative years.
        assert_eq!(
            timestamp("2025-01-15+14:00", made),
            "2025-01-15T00:00:00+01:00"
        );
        assert_eq!(timestamp("12025-01-15", made), "2026-03-01T09:00:00.000Z");
        assert_eq!(timestamp("-0044-03-15", made), "2026-03-01T09:00:00.000Z");
        assert_eq!(
            decimal(0.775).map(|n| n.to_string()).as_deref(),
            Some("0.775")
        );
        assert_eq!(
            number_text("7").map(|n| n.to_string()).as_deref(),
            Some("7")
        );
    }
}
