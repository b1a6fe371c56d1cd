//! The derived score: a toets total the gateway adds up from the onderdeel scores of one sitting (a leerling, toets version and afnamedatum), one derivation for the store pass and offline `validate` alike.

use crate::domain::rules::{self, DerivedSum, OnderdeelScore};
use crate::domain::Violation;
use crate::store::intake::AfnameState;
use crate::store::sha256_hex;
use crate::uwlr::{Resultaat, Toets, ToetsafnameHead, Uitslag};
use std::collections::{BTreeMap, HashMap};

/// One leerling's sitting of a toets version, within its toetsafname element (README,
/// Derived sums). The afnamedatum is that of the stored afname: an update keeps its first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Sitting {
    pub(crate) toetscode: String,
    pub(crate) versie: String,
    pub(crate) afnamedatum: String,
}

/// The checked results of one toetsafname element, per sitting.
#[derive(Default)]
pub(super) struct Sittings(BTreeMap<Sitting, DerivedSum>);

impl Sittings {
    /// Counts a resultaat that passed `check_resultaat` toward its sitting.
    pub(crate) fn add(&mut self, sitting: Sitting, resultaat: &Resultaat) {
        self.0.entry(sitting).or_default().add(resultaat);
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// The sittings of the toetsafname element that just ended.
    pub(crate) fn take(&mut self) -> BTreeMap<Sitting, DerivedSum> {
        std::mem::take(&mut self.0)
    }
}

/// What one sitting adds up to when its toetsafname element ends.
pub(super) enum Total {
    /// Nothing to derive: a toets-level score was sent, the toets has no toetsnormering,
    /// or an onderdeel still lacks a scored result.
    None,
    Derived(DerivedSum),
    /// The total lies outside the toetsnormering (UWLR-SCORE) or beyond what is stored.
    Refused(Violation),
}

/// The derivation both callers share. `sum` holds what this toetsafname element sent
/// for the sitting; `sitting_results` gives every onderdeel result of the sitting known
/// so far (earlier messages and elements included) and whether a toets-level score was
/// reported for it. The total is that of every onderdeel's latest result, and exists only
/// once each onderdeel of the toets version has one.
pub(super) fn sitting_total<E>(
    definition: &Toets,
    sum: &DerivedSum,
    head: &ToetsafnameHead,
    toetscode: &str,
    sitting_results: impl FnOnce() -> Result<(Vec<OnderdeelScore>, bool), E>,
) -> Result<Total, E> {
    // Without a toetsnormering nothing is summed: the onderdelen are stored as sent.
    let Some(normering) = sum.normering(definition) else {
        return Ok(Total::None);
    };
    let (stored, reported) = sitting_results()?;
    if reported {
        return Ok(Total::None);
    }
    let Some(total) = rules::complete_sum(definition, &stored) else {
        return Ok(Total::None);
    };
    Ok(match total.check(&head.leerlingid, toetscode, normering) {
        Some(violation) => Total::Refused(violation.at_offset(head.offset)),
        None => Total::Derived(total),
    })
}

/// The afname that holds a sitting's derived total. Its key is one per sitting, so a
/// recomputed total is a correction of the earlier one, which the publisher voids.
pub(super) fn derived_afname(
    head: &ToetsafnameHead,
    sitting: &Sitting,
    toets_id: i64,
    total: &DerivedSum,
) -> AfnameState {
    let Sitting {
        toetscode,
        versie,
        afnamedatum,
    } = sitting;
    let mut keys = total.keys.clone();
    keys.sort();
    let identity = format!("{}\n{toetscode}\n{versie}\n{afnamedatum}", head.leerlingid);
    AfnameState {
        afname_key: format!("~som:{}", &sha256_hex(identity.as_bytes())[..32]),
        leerlingid: head.leerlingid.clone(),
        eckid: head.eckid.clone(),
        resultaatverwerkerid: head.resultaatverwerkerid.clone(),
        toets_id,
        toetscode: toetscode.clone(),
        versie: versie.clone(),
        toetsonderdeelcode: None,
        afnamedatum: total.latest_afnamedatum.clone(),
        score: i64::try_from(total.total).ok(),
        derived: true,
        result: crate::store::afname_result::AfnameResult::Derived {
            afgeleid_uit: keys,
            uitslag: crate::uwlr::Uitslag::Score(Some(total.total)),
        }
        .to_json(),
    }
}

/// The checked results of a whole message per sitting, for offline `validate`, which has
/// no store to read a sitting from. Only toets versions that can have a derived total are
/// kept (toetsnormering and onderdelen), one small record per onderdeel result.
#[derive(Default)]
pub(super) struct MessageSittings(HashMap<(String, Sitting), (Vec<OnderdeelScore>, bool)>);

impl MessageSittings {
    /// Records a resultaat that passed `check_resultaat`, as the store would hold it.
    pub(crate) fn record(
        &mut self,
        leerlingid: &str,
        sitting: &Sitting,
        definition: &Toets,
        resultaat: &Resultaat,
    ) {
        if definition.toetsnormering.is_none() || definition.toetsonderdelen.is_empty() {
            return;
        }
        let (results, reported) = self
            .0
            .entry((leerlingid.to_string(), sitting.clone()))
            .or_default();
        match &resultaat.toetsonderdeelcode {
            None => *reported = true,
            Some(toetsonderdeelcode) => results.push(OnderdeelScore {
                toetsonderdeelcode: toetsonderdeelcode.clone(),
                key: resultaat.key.clone(),
                afnamedatum: resultaat.afnamedatum.clone(),
                score: match resultaat.uitslag {
                    Uitslag::Score(score) => score,
                    _ => None,
                },
            }),
        }
    }

    /// What the store's `sitting_results` would give for the sitting.
    pub(crate) fn results(
        &self,
        leerlingid: &str,
        sitting: &Sitting,
    ) -> (Vec<OnderdeelScore>, bool) {
        self.0
            .get(&(leerlingid.to_string(), sitting.clone()))
            .cloned()
            .unwrap_or_default()
    }
}
