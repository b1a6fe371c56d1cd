//! Subscribed LRS endpoints: their filters, credentials and the learner identity each may see (MAPPING.md C4).

use super::xapi::{school_identity, Agent, IdKey, Mapping};
use super::BridgeError;
use crate::secret::{Keyring, Secret, SecretError};
use crate::store::outbox::{
    password_place, pseudonym_key_place, NewSubscription, PendingStatement, SubscriptionRow,
    VERB_VOIDED,
};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Which learner identity an LRS receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Identity {
    /// The ECK iD when the gateway has it, else the LAS key (the canonical statement as stored).
    Eckid,
    /// A keyed hash (HMAC-SHA256 with a per-LRS key) of the ECK iD or LAS key, under the gateway's home page.
    Pseudonym,
    /// Always the LAS key (leerlingid) under a per-school home page; never the ECK iD.
    Las,
}

impl Identity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Identity::Eckid => "eckid",
            Identity::Pseudonym => "pseudonym",
            Identity::Las => "las",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Identity> {
        match text {
            "eckid" => Some(Identity::Eckid),
            "pseudonym" => Some(Identity::Pseudonym),
            "las" => Some(Identity::Las),
            _ => None,
        }
    }
}

/// A subscription as the worker uses it, its secrets opened.
#[derive(Clone, Debug)]
pub(crate) struct Subscription {
    pub(crate) row: SubscriptionRow,
    pub(crate) identity: Identity,
    /// The HTTP Basic password, opened from the row.
    pub(crate) password: Option<Secret>,
    /// The HMAC key for pseudonyms, opened from the row.
    pseudonym_key: Secret,
}

impl Subscription {
    /// Opens the row's sealed password and pseudonym key with `keyring`.
    pub(crate) fn open(
        row: SubscriptionRow,
        keyring: &Keyring,
    ) -> Result<Subscription, SecretError> {
        let identity = Identity::parse(&row.identity).unwrap_or(Identity::Eckid);
        let password = match &row.password {
            Some(sealed) => {
                let clear = keyring.reveal(&password_place(&row.name), sealed.bytes())?;
                Some(Secret::new(String::from_utf8_lossy(&clear).into_owned()))
            }
            None => None,
        };
        let pseudonym_key = Secret::new(hex::encode(
            keyring.reveal(&pseudonym_key_place(&row.name), row.pseudonym_key.bytes())?,
        ));
        Ok(Subscription {
            row,
            identity,
            password,
            pseudonym_key,
        })
    }

    /// What makes a running delivery task stale: a changed row means a new task.
    pub(crate) fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{:?}|{}|{}|{:?}|{:?}|{:?}",
            self.row.id,
            self.row.url,
            self.row.username,
            self.password.as_ref().map(Secret::expose).unwrap_or(""),
            self.row.identity,
            self.row.schools,
            self.row.toetscodes,
            self.row.ca_pem
        )
    }

    /// The statement JSON this LRS receives: the stored one, with the actor replaced for
    /// the pseudonym and LAS identities. For those identities a keyed statement's id, its
    /// registration and, in a voiding statement, the id of the statement it voids are keyed
    /// once more with this LRS's key, so copies in two differently identified LRSs cannot be
    /// joined by id (a voiding statement still names the id this LRS holds). Voiding
    /// statements keep the gateway as actor.
    pub(crate) fn render(
        &self,
        mapping: &Mapping,
        pending: &PendingStatement,
    ) -> Result<String, BridgeError> {
        if self.identity == Identity::Eckid {
            return Ok(pending.statement.clone());
        }
        let mut statement: Value = serde_json::from_str(&pending.statement).map_err(|error| {
            BridgeError::Unreadable(format!("statement {}: {error}", pending.id))
        })?;
        if pending.keyed {
            self.key_ids(&mut statement);
        }
        if statement["verb"]["id"] == VERB_VOIDED {
            return Ok(statement.to_string());
        }
        let Some(leerlingid) = pending.leerlingid.as_deref() else {
            return Ok(statement.to_string());
        };
        let school = school_identity(
            pending.brincode.as_deref(),
            pending.dependancecode.as_deref(),
            pending.schoolkey.as_deref(),
        );
        let agent = match self.identity {
            Identity::Eckid => unreachable!("handled above"),
            Identity::Las => mapping.las_agent(&school, leerlingid),
            Identity::Pseudonym => {
                let subject = match pending.eckid.as_deref().filter(|eckid| !eckid.is_empty()) {
                    Some(eckid) => format!("eckid|{eckid}"),
                    None => format!("las|{school}|{leerlingid}"),
                };
                Agent::account(
                    mapping.pseudonym_home_page(),
                    pseudonym(&self.pseudonym_key, &subject),
                )
            }
        };
        statement["actor"] = serde_json::to_value(agent)
            .map_err(|error| BridgeError::Unreadable(error.to_string()))?;
        Ok(statement.to_string())
    }
}

impl Subscription {
    /// This LRS's id for a gateway id (a statement id or registration).
    fn lrs_id(&self, kind: &str, id: &str) -> String {
        let key = hex::decode(self.pseudonym_key.expose()).unwrap_or_default();
        IdKey::new(key).uuid(&format!("uwlr-lrs-id|{kind}|{id}"))
    }

    fn key_ids(&self, statement: &mut Value) {
        if let Some(id) = statement["id"].as_str().map(str::to_string) {
            statement["id"] = Value::String(self.lrs_id("statement", &id));
        }
        if statement["object"]["objectType"] == "StatementRef" {
            if let Some(id) = statement["object"]["id"].as_str().map(str::to_string) {
                statement["object"]["id"] = Value::String(self.lrs_id("statement", &id));
            }
        }
        if let Some(registration) = statement
            .pointer("/context/registration")
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            statement["context"]["registration"] =
                Value::String(self.lrs_id("registration", &registration));
        }
    }
}

/// Hex HMAC-SHA256 of `subject` under the subscription's key.
fn pseudonym(key_hex: &Secret, subject: &str) -> String {
    let key = hex::decode(key_hex.expose()).unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(subject.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks an `lrs add` request: a name, an http(s) statements URL, a password only with a user,
/// and https unless the LRS is on this host or `allow_plain_http` says plain http is meant.
pub(crate) fn check_new(new: &NewSubscription, allow_plain_http: bool) -> Result<(), BridgeError> {
    let name_ok = !new.name.is_empty()
        && new.name.len() <= 64
        && new
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(BridgeError::Subscription(
            "the LRS name takes 1-64 letters, digits, '-', '_' or '.'".into(),
        ));
    }
    let url = reqwest::Url::parse(&new.url)
        .map_err(|error| BridgeError::Subscription(format!("--url {}: {error}", new.url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(BridgeError::Subscription(
            "--url must be an http(s) statements URL".into(),
        ));
    }
    if url.scheme() == "http" && !allow_plain_http && !is_loopback(&url) {
        return Err(BridgeError::Subscription(format!(
            "--url {} is plain http: statements (learner ids, scores) and credentials would cross \
             the network readable by anyone on the way; use https, or give --allow-plain-http \
             for a network you trust",
            new.url
        )));
    }
    if url.scheme() == "http" && new.ca_pem.is_some() {
        return Err(BridgeError::Subscription(format!(
            "--ca-file has no effect on the plain http URL {}; use https",
            new.url
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BridgeError::Subscription(
            "give credentials with --username/--password, not in the URL".into(),
        ));
    }
    if new.password.is_some() && new.username.is_none() {
        return Err(BridgeError::Subscription(
            "--password needs --username".into(),
        ));
    }
    Ok(())
}

/// Whether the URL's host is this machine (`localhost`, 127.0.0.0/8, `::1`): plain http there
/// never leaves the host.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Sealed;

    /// Base64 of 32 zero bytes: a fixed key for the tests.
    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    fn keyring() -> Keyring {
        Keyring::parse(KEY, "test").unwrap()
    }

    fn subscription(identity: &str) -> Subscription {
        Subscription::open(row(identity), &keyring()).unwrap()
    }

    #[test]
    fn plain_http_only_to_this_host_or_when_allowed() {
        let check = |url: &str, allow: bool| {
            let new = NewSubscription {
                name: "lrs".into(),
                url: url.into(),
                username: None,
                password: None,
                identity: "eckid".into(),
                schools: vec![],
                toetscodes: vec![],
                from_now: false,
                ca_pem: None,
            };
            check_new(&new, allow).is_ok()
        };
        assert!(check("https://lrs.example/xAPI/statements", false));
        assert!(!check("http://lrs.example/xAPI/statements", false));
        assert!(!check("http://10.0.0.5:8080/xAPI/statements", false));
        assert!(check("http://lrs.example/xAPI/statements", true));
        assert!(check("http://127.0.0.1:9/xAPI/statements", false));
        assert!(check("http://127.0.0.2:9/xAPI/statements", false));
        assert!(check("http://localhost:9/xAPI/statements", false));
        assert!(check("http://[::1]:9/xAPI/statements", false));
        assert!(!check(
            "http://localhost.lrs.example/xAPI/statements",
            false
        ));
    }

    fn row(identity: &str) -> SubscriptionRow {
        let keyring = keyring();
        SubscriptionRow {
            id: 1,
            name: "lrs".into(),
            url: "http://127.0.0.1:1/xAPI/statements".into(),
            username: Some("u".into()),
            password: Some(Sealed::new(
                keyring
                    .seal(&password_place("lrs"), b"very-secret-password")
                    .into_bytes(),
            )),
            identity: identity.into(),
            pseudonym_key: Sealed::new(
                keyring
                    .seal(&pseudonym_key_place("lrs"), &[0x00, 0x11, 0x22, 0x33])
                    .into_bytes(),
            ),
            schools: vec![],
            toetscodes: vec![],
            cursor_seq: 0,
            last_attempt_at: None,
            last_delivered_at: None,
            last_status: None,
            last_error: None,
            delivered: 0,
            ca_pem: None,
        }
    }

    fn pending(eckid: Option<&str>) -> PendingStatement {
        PendingStatement {
            seq: 1,
            id: "x".into(),
            statement: r#"{"actor":{"objectType":"Agent","account":{"homePage":"https://ketenid.nl","name":"E"}},"verb":{"id":"http://adlnet.gov/expapi/verbs/scored"}}"#.into(),
            leerlingid: Some("LL1".into()),
            eckid: eckid.map(str::to_string),
            brincode: Some("99XX".into()),
            dependancecode: Some("01".into()),
            schoolkey: None,
            keyed: false,
        }
    }

    #[test]
    fn identities_replace_only_the_actor() {
        let mapping = Mapping::new("https://gw.example/xapi").unwrap();
        let eck = subscription("eckid");
        assert_eq!(
            eck.render(&mapping, &pending(Some("E"))).unwrap(),
            pending(None).statement
        );
        let las: Value = serde_json::from_str(
            &subscription("las")
                .render(&mapping, &pending(Some("E")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            las["actor"]["account"]["homePage"],
            "https://gw.example/xapi/las/brin%3A99XX01"
        );
        assert_eq!(las["actor"]["account"]["name"], "LL1");
        let rendered = subscription("pseudonym")
            .render(&mapping, &pending(Some("E")))
            .unwrap();
        assert!(!rendered.contains("\"E\""));
        let pseudo: Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(
            pseudo["actor"]["account"]["name"].as_str().unwrap().len(),
            64
        );
    }

    /// Issue 17: a keyed statement reaches a pseudonym or LAS LRS under that LRS's own ids
    /// (statement, registration, and the voided statement a voiding statement names), so two
    /// such LRSs cannot be joined by id; an ECK iD LRS and statements from before keying keep
    /// the stored ids.
    #[test]
    fn keyed_ids_are_per_lrs_for_pseudonym_and_las() {
        let mapping = Mapping::new("https://gw.example/xapi").unwrap();
        let keyed = |statement: &str| PendingStatement {
            statement: statement.into(),
            keyed: true,
            ..pending(Some("E"))
        };
        let scored = r#"{"id":"0b6e3b5e-8f3c-8a40-9c3e-000000000001","actor":{"objectType":"Agent","account":{"homePage":"https://ketenid.nl","name":"E"}},"verb":{"id":"http://adlnet.gov/expapi/verbs/scored"},"context":{"registration":"0b6e3b5e-8f3c-8a40-9c3e-000000000002"}}"#;
        let voiding = r#"{"id":"0b6e3b5e-8f3c-8a40-9c3e-000000000003","actor":{"objectType":"Agent","account":{"homePage":"https://gw.example/xapi","name":"uwlr-gateway"}},"verb":{"id":"http://adlnet.gov/expapi/verbs/voided"},"object":{"objectType":"StatementRef","id":"0b6e3b5e-8f3c-8a40-9c3e-000000000001"}}"#;
        let other_key = {
            let mut row = row("pseudonym");
            row.pseudonym_key = Sealed::new(
                keyring()
                    .seal(&pseudonym_key_place("lrs"), &[0x44; 32])
                    .into_bytes(),
            );
            Subscription::open(row, &keyring()).unwrap()
        };
        let rendered = |subscription: &Subscription, statement: &str| -> Value {
            serde_json::from_str(&subscription.render(&mapping, &keyed(statement)).unwrap())
                .unwrap()
        };
        let (one, two) = (
            rendered(&subscription("pseudonym"), scored),
            rendered(&other_key, scored),
        );
        assert_ne!(one["id"], "0b6e3b5e-8f3c-8a40-9c3e-000000000001");
        assert_ne!(one["id"], two["id"]);
        assert_ne!(
            one["context"]["registration"],
            two["context"]["registration"]
        );
        let void_one = rendered(&subscription("pseudonym"), voiding);
        assert_eq!(void_one["object"]["id"], one["id"]);
        let las = rendered(&subscription("las"), scored);
        assert_ne!(las["id"], "0b6e3b5e-8f3c-8a40-9c3e-000000000001");
        let eck = rendered(&subscription("eckid"), scored);
        assert_eq!(eck["id"], "0b6e3b5e-8f3c-8a40-9c3e-000000000001");
        // Statements from before keying keep their ids everywhere.
        let legacy: Value = serde_json::from_str(
            &subscription("pseudonym")
                .render(
                    &mapping,
                    &PendingStatement {
                        statement: scored.into(),
                        ..pending(Some("E"))
                    },
                )
                .unwrap(),
        )
        .unwrap();
        assert_eq!(legacy["id"], "0b6e3b5e-8f3c-8a40-9c3e-000000000001");
    }

    #[test]
    fn credentials_do_not_print() {
        let subscription = subscription("eckid");
        let printed = format!("{subscription:?}");
        assert!(!printed.contains("very-secret-password"));
        assert!(!printed.contains("00112233"));
    }
}
