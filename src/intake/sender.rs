//! Identify the sender: the head of a message checked (envelope, mustUnderstand, autorisatie, school code), the key and activation checked against the store, and the school-level rules decided before the store pass.

use super::head::{scan_head, Head};
use super::{fill_positions, Intake, IntakeError};
use crate::auth_limit::{Api, Attempt};
use crate::domain::violation::Violations;
use crate::domain::{Rule, SchoolCode, Violation};
use crate::http::body::MarkupGuard;
use crate::soap::envelope::{self, Framing};
use crate::store::admin::{self, Sender};
use crate::store::intake::{self as store_intake, MessagePass};
use crate::store::StoreError;
use crate::uwlr::scan::{Pass, Scanner};
use crate::uwlr::xmltree::Node;
use crate::uwlr::{Autorisatie, School};
use std::io::BufRead;

/// How much of a message `Intake::identify` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The whole body.
    Whole,
    /// The start of a body still arriving; more may follow.
    Prefix,
    /// The most of a body that may be read before authentication (`preauth_max_bytes`).
    LastPrefix { length: u64 },
}

/// What the start of a message says about its sender.
pub(crate) enum Identification {
    /// The prefix ends before the autorisatie header and the school block.
    Incomplete,
    /// Refused before the sender was identified (no receipt is kept).
    Refused(Violations, Option<String>),
    /// Authenticated and activated for the school.
    Sender(Box<Identity>),
}

/// An authenticated sender and the school block it sends for.
pub(crate) struct Identity {
    pub(crate) sender: Sender,
    pub(super) school: School,
    pub(super) school_node: Node,
}

/// The blocks that say who sends a message and for which school.
struct SenderBlocks {
    autorisatie: Autorisatie,
    school: School,
    school_node: Node,
    school_code: SchoolCode,
}

impl Intake {
    /// Reads the start of a message up to its school block and authenticates the sender.
    ///
    /// `http` calls this on the received prefix while the body is still arriving, so a
    /// wrong key is answered before the rest is read; phase 1 calls it on a whole body
    /// that arrived before it could. Either way the sender is authenticated once.
    pub(crate) fn identify(
        &self,
        prefix: &[u8],
        scope: Scope,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Identification, IntakeError> {
        let mut scanner = Scanner::new(MarkupGuard::new(prefix), Pass::SkipToetsafnames);
        Ok(match self.identify_with(&mut scanner, scope, peer)? {
            // The refusal leaves here: its violations are placed in the prefix.
            Identification::Refused(mut violations, klantcode) => {
                fill_positions(prefix, &mut violations);
                Identification::Refused(violations, klantcode)
            }
            identification => identification,
        })
    }

    /// The head scan and authentication; violations carry offsets only.
    pub(super) fn identify_with<R: BufRead>(
        &self,
        scanner: &mut Scanner<R>,
        scope: Scope,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Identification, IntakeError> {
        match sender_blocks(scan_head(scanner, Framing::SoapOnly), scope) {
            Ok(blocks) => self.authenticate(blocks, peer),
            Err(identification) => Ok(identification),
        }
    }

    /// Checks the autorisatie header against the store: key, klant, activation for the school.
    fn authenticate(
        &self,
        blocks: SenderBlocks,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Identification, IntakeError> {
        let SenderBlocks {
            autorisatie,
            school,
            school_node,
            school_code,
        } = blocks;
        let attempt = Attempt {
            api: Api::Soap,
            klantcode: Some(&autorisatie.klantcode),
            address: peer,
        };
        if self.auth_limit.is_locked(&attempt) {
            // The same answer as a wrong key, and no key check: a locked-out guesser learns nothing.
            tracing::info!(klantcode = crate::logging::clip(&autorisatie.klantcode).as_ref(), peer = ?peer, "authentication locked out after repeated failures");
            return Ok(Identification::Refused(
                Violations::single(admin::wrong_key_violation()),
                Some(autorisatie.klantcode),
            ));
        }
        let today = self.config.clock.today();
        match store_intake::authenticate_sender(&self.store, &autorisatie, &school_code, today)? {
            Ok(sender) => Ok(Identification::Sender(Box::new(Identity {
                sender,
                school,
                school_node,
            }))),
            Err(violation) => {
                if matches!(violation.rule, Rule::Klant | Rule::Autorisatie) {
                    self.auth_limit.record_failure(&attempt);
                }
                Ok(Identification::Refused(
                    Violations::single(violation),
                    Some(autorisatie.klantcode),
                ))
            }
        }
    }
}

/// What the head says about the sender. Anything that ends identification before the
/// store is asked comes back as `Err`.
fn sender_blocks(head: Head, scope: Scope) -> Result<SenderBlocks, Identification> {
    if let Some(error) = &head.error {
        let violation = match scope {
            Scope::Prefix => return Err(Identification::Incomplete),
            // The prefix may end inside a construct: an error at its very end says nothing.
            Scope::LastPrefix { length } if error.offset + 1024 >= length => {
                envelope::identity_not_in_prefix(length)
            }
            _ => super::broken_off(error),
        };
        return Err(Identification::Refused(Violations::single(violation), None));
    }
    let root_violation = head.root_violation(Framing::SoapOnly);
    if let Some(violation) = root_violation.or(head.not_understood.into_iter().next()) {
        return Err(Identification::Refused(Violations::single(violation), None));
    }
    let autorisatie = envelope::autorisatie(&head.headers).map_err(|found| {
        let mut violations = Violations::default();
        violations.extend(found);
        Identification::Refused(violations, None)
    })?;
    let klantcode = Some(autorisatie.klantcode.clone());
    let Some(school_node) = head.school else {
        let violation =
            Violation::new(Rule::Xsd, "the verzoek has no school block").at_path("school");
        return Err(Identification::Refused(
            Violations::single(violation),
            klantcode,
        ));
    };
    let school = School::from_node(&school_node);
    let Some(school_code) = school_code(&school) else {
        let violation = Violation::new(Rule::Xsd, "the school has neither brincode nor schoolkey")
            .at_path("school");
        return Err(Identification::Refused(
            Violations::single(violation),
            klantcode,
        ));
    };
    Ok(SenderBlocks {
        autorisatie,
        school,
        school_node,
        school_code,
    })
}

/// The school a message is for, in its one written form.
pub(crate) fn school_code(school: &School) -> Option<SchoolCode> {
    SchoolCode::from_parts(
        school.brincode.as_deref(),
        school.dependancecode.as_deref(),
        school.schoolkey.as_deref(),
    )
}

/// The verdict of the school-level rules on one school block.
#[derive(Debug, Default)]
pub(crate) struct SchoolChecks {
    /// The aanmaakdatum in µs, when it could be read (the ordering rule compares it).
    pub(crate) aanmaakdatum_us: Option<i64>,
    /// UWLR-XSDVERSIE, placed at the xsdversie element.
    pub(crate) xsdversie: Option<Violation>,
    /// An unreadable aanmaakdatum, or one beyond now plus the allowed skew (UWLR-TOEKOMST).
    pub(crate) aanmaakdatum: Option<Violation>,
}

impl SchoolChecks {
    /// Every violation, xsdversie first.
    pub(crate) fn violations(&self) -> impl Iterator<Item = Violation> + '_ {
        self.xsdversie.iter().chain(&self.aanmaakdatum).cloned()
    }
}

/// The school-level rules that need no store (xsdversie, the aanmaakdatum's form and
/// that it is not in the future), each violation placed at its field: one function for
/// phase 1, phase 2's late schema verdict, offline `validate` and the fuzz target.
pub(crate) fn check_school(
    school: &School,
    school_node: &Node,
    xsd_versions: &[String],
    now: chrono::DateTime<chrono::Utc>,
    aanmaakdatum_max_skew: chrono::Duration,
) -> SchoolChecks {
    let at_child = |violation: Violation, child: &str| {
        let offset = school_node
            .child(child)
            .map_or(school_node.offset, |child| child.offset);
        violation.at_offset(offset)
    };
    let mut checks = SchoolChecks {
        xsdversie: crate::domain::rules::check_xsdversie(school, xsd_versions)
            .map(|violation| at_child(violation, "xsdversie")),
        ..SchoolChecks::default()
    };
    match crate::domain::rules::read_aanmaakdatum(school) {
        Ok(micros) => {
            checks.aanmaakdatum_us = Some(micros);
            checks.aanmaakdatum = crate::domain::aanmaakdatum::check_not_future(
                &school.aanmaakdatum,
                micros,
                now,
                aanmaakdatum_max_skew,
            )
            .map(|violation| at_child(violation, "aanmaakdatum"));
        }
        Err(violation) => checks.aanmaakdatum = Some(at_child(violation, "aanmaakdatum")),
    }
    checks
}

/// The ordering rule (UWLR-VOLGORDE), decided on the writer thread before the store
/// pass: an aanmaakdatum must be later than that of the sender's last accepted message
/// for the school.
pub(super) fn check_ordering(
    pass: &MessagePass,
    school: &School,
    aanmaakdatum_us: Option<i64>,
) -> Result<Option<Violation>, StoreError> {
    let Some(micros) = aanmaakdatum_us else {
        return Ok(None);
    };
    let Some((last_micros, last_text)) = pass.last_aanmaakdatum()? else {
        return Ok(None);
    };
    Ok((micros <= last_micros).then(|| {
        Violation::new(
            Rule::Volgorde,
            format!(
                "aanmaakdatum must be later than that of the last accepted message for this school ({last_text})"
            ),
        )
        .at_path("school/aanmaakdatum")
        .with_value(&school.aanmaakdatum)
    }))
}
