//! The gateway's xAPI Profile (JSON-LD, xAPI Profiles 1.0): the verbs, activity types, extensions, statement templates and patterns its statements use.
//!
//! Statements name the profile version in `context.contextActivities.category`
//! (`Mapping::profile_activity`), as xAPI Data 2.4.6 asks; the gateway serves this
//! document at `/xapi/profile` and at the profile's own IRIs when those are on the
//! gateway. The concept lists here must name every IRI `Mapping::build` writes;
//! `tests/it/query/xapi.rs` checks every statement of the samples against the served
//! document, so a new extension without a concept fails there.

use super::xapi::{Mapping, ACTIVITY_TYPE_ASSESSMENT, VERB_SCORED};
use serde_json::{json, Value};

/// The reserved verb of voiding statements (xAPI Data 2.3.2).
pub(crate) const VERB_VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";
/// When version v1 of the mapping, and so of this profile, was fixed.
const GENERATED_AT: &str = "2026-12-02T00:00:00Z";

/// Where an extension may appear, as the Profiles spec types them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExtensionKind {
    Result,
    Context,
    Activity,
}

impl ExtensionKind {
    pub(crate) fn concept_type(self) -> &'static str {
        match self {
            ExtensionKind::Result => "ResultExtension",
            ExtensionKind::Context => "ContextExtension",
            ExtensionKind::Activity => "ActivityExtension",
        }
    }
}

/// The extensions of the mapping: name under `<base>/extension/`, kind, and what it holds.
const EXTENSIONS: &[(&str, ExtensionKind, &str)] = &[
    ("normterm", ExtensionKind::Result, "The norm of the toetsnormering the score falls in: term and omschrijving."),
    ("schoolcijfer", ExtensionKind::Result, "The schoolcijfer range of that norm (vanaf, totenmet)."),
    ("vaardigheidsscore", ExtensionKind::Result, "A vaardigheidsscore with its scale (codevaardigheidsschaal) and bounds."),
    ("oso-toetsscore", ExtensionKind::Result, "An OSO toetsscore as sent (aantal goed, aantal opgaven and the like)."),
    ("referentiescores", ExtensionKind::Result, "OSO referentiescores as sent."),
    ("anderresultaat", ExtensionKind::Result, "An anderresultaat: its xsi:type and content."),
    ("infourl", ExtensionKind::Result, "The infourl the sender gave with the result."),
    ("afgeleid-uit", ExtensionKind::Result, "For a toets score the gateway summed from onderdeel scores: the keys of those onderdeel results."),
    ("toetscategorie", ExtensionKind::Activity, "The toetscategorie of the toetsnormering (vocabulary value)."),
    ("toetsniveau", ExtensionKind::Activity, "The toetsniveau of the toetsnormering (vocabulary value)."),
    ("wegingsfactor", ExtensionKind::Activity, "The wegingsfactor of the toetsnormering."),
    ("toetsonderdeelcode", ExtensionKind::Activity, "The code of a toetsonderdeel (vocabulary value)."),
    ("toetsonderdeelvolgnummer", ExtensionKind::Activity, "The volgnummer of a toetsonderdeel."),
    ("toetscode", ExtensionKind::Activity, "The toetscode of a toets (vocabulary value)."),
    ("versie", ExtensionKind::Activity, "The versie of a toets (vocabulary value)."),
    ("leerjaar", ExtensionKind::Activity, "The leerjaar a toets is meant for (vocabulary value)."),
    ("vakgebied", ExtensionKind::Activity, "The vakgebied of a toets (vocabulary value)."),
    ("toetshierarchie", ExtensionKind::Activity, "The toetshierarchie entries of a toets."),
    ("brincode", ExtensionKind::Context, "The brincode of the school."),
    ("dependancecode", ExtensionKind::Context, "The dependancecode of the school."),
    ("schoolkey", ExtensionKind::Context, "The schoolkey of the school."),
    ("schooljaar", ExtensionKind::Context, "The schooljaar of the message."),
    ("afnamedatum", ExtensionKind::Context, "The afnamedatum of the result, as a date."),
    ("resultaatkey", ExtensionKind::Context, "The key of the resultaat, stable per school."),
    ("resultaatverwerkerid", ExtensionKind::Context, "The resultaatverwerkerid the sender gave."),
    ("aanmaakdatum", ExtensionKind::Context, "The aanmaakdatum of the message that carried the result."),
    ("afgeleid", ExtensionKind::Context, "Marks a toets score the gateway derived (methode som: the sum of every onderdeel of the pinned toets version), as opposed to one the sender reported."),
    ("xsdversie", ExtensionKind::Context, "The xsdversie of the message."),
];

/// The profile of one base IRI.
pub(crate) struct Profile {
    base_iri: String,
    version_id: String,
}

impl Profile {
    pub(crate) fn new(mapping: &Mapping) -> Profile {
        Profile {
            base_iri: mapping.base_iri().to_string(),
            version_id: mapping.profile_activity().id,
        }
    }

    /// The profile's IRI (all versions).
    pub(crate) fn id(&self) -> String {
        format!("{}/profile/uwlr-2.2", self.base_iri)
    }

    /// The IRI of this version, the one statements name as their category.
    pub(crate) fn version_id(&self) -> String {
        self.version_id.clone()
    }

    fn template_id(&self, name: &str) -> String {
        format!("{}/template/{name}", self.id())
    }

    fn pattern_id(&self, name: &str) -> String {
        format!("{}/pattern/{name}", self.id())
    }

    /// The activity type of the school in `contextActivities.grouping`.
    fn school_type(&self) -> String {
        format!("{}/activitytype/school", self.base_iri)
    }

    fn concepts(&self) -> Vec<Value> {
        let scheme = self.version_id();
        let mut concepts = vec![
            json!({
                "id": VERB_SCORED, "type": "Verb", "inScheme": scheme,
                "prefLabel": {"en": "scored", "nl": "scoorde"},
                "definition": {"en": "The learner received this score for a toets or toetsonderdeel, as the educational application reported it in UWLR; it says nothing about passing or failing.",
                               "nl": "De leerling behaalde dit resultaat op een toets of toetsonderdeel, zoals de leverancier het via UWLR meldde."},
            }),
            json!({
                "id": VERB_VOIDED, "type": "Verb", "inScheme": scheme,
                "prefLabel": {"en": "voided"},
                "definition": {"en": "The gateway withdraws the statement it refers to, because the result was corrected (xAPI's reserved verb)."},
            }),
            json!({
                "id": ACTIVITY_TYPE_ASSESSMENT, "type": "ActivityType", "inScheme": scheme,
                "prefLabel": {"en": "assessment", "nl": "toets"},
                "definition": {"en": "A toets, or a toetsonderdeel of one, in one version."},
            }),
            json!({
                "id": self.school_type(), "type": "ActivityType", "inScheme": scheme,
                "prefLabel": {"en": "school", "nl": "school"},
                "definition": {"en": "The school (brincode and dependancecode, or schoolkey) under which a result was sent."},
            }),
        ];
        for (name, kind, definition) in EXTENSIONS {
            let mut concept = json!({
                "id": format!("{}/extension/{name}", self.base_iri),
                "type": kind.concept_type(),
                "inScheme": scheme,
                "prefLabel": {"nl": name},
                "definition": {"en": definition},
            });
            match kind {
                ExtensionKind::Activity => {
                    concept["recommendedActivityTypes"] = json!([ACTIVITY_TYPE_ASSESSMENT])
                }
                _ => concept["recommendedVerbs"] = json!([VERB_SCORED]),
            }
            concepts.push(concept);
        }
        concepts
    }

    fn templates(&self) -> Vec<Value> {
        let scheme = self.version_id();
        vec![
            self.score_template(
                "toetsscore",
                ("toets result", "toetsresultaat"),
                "The result of a learner on a whole toets (sent, or summed by the gateway from onderdeel scores).",
                json!({"location": "$.context.contextActivities.parent", "presence": "excluded"}),
            ),
            self.score_template(
                "onderdeelscore",
                ("toetsonderdeel result", "toetsonderdeelresultaat"),
                "The result of a learner on one toetsonderdeel; the toets is the parent context activity.",
                json!({"location": "$.context.contextActivities.parent[*].id", "presence": "included"}),
            ),
            json!({
                "id": self.template_id("intrekking"), "type": "StatementTemplate", "inScheme": scheme,
                "prefLabel": {"en": "withdrawal of a corrected result", "nl": "intrekking"},
                "definition": {"en": "The gateway's own account voids the statement of a result that a later message corrected (the replacing statement follows), or of a learner whose data was erased."},
                "verb": VERB_VOIDED,
                "rules": [
                    {"location": "$.object.objectType", "presence": "included", "all": ["StatementRef"]},
                    {"location": "$.actor.account.name", "presence": "included", "all": [super::xapi::GATEWAY_ACCOUNT]},
                ],
            }),
        ]
    }

    /// A statement template for the result of one toets or onderdeel: the two differ only in
    /// their name, labels and whether the statement has a parent toets.
    fn score_template(
        &self,
        name: &str,
        (label_en, label_nl): (&str, &str),
        definition: &str,
        parent_rule: Value,
    ) -> Value {
        let scheme = self.version_id();
        json!({
            "id": self.template_id(name), "type": "StatementTemplate", "inScheme": scheme,
            "prefLabel": {"en": label_en, "nl": label_nl},
            "definition": {"en": definition},
            "verb": VERB_SCORED,
            "objectActivityType": ACTIVITY_TYPE_ASSESSMENT,
            "contextGroupingActivityType": [self.school_type()],
            "rules": [
                {"location": "$.result", "presence": "included"},
                {"location": "$.context.registration", "presence": "included"},
                parent_rule,
                {"location": "$.context.contextActivities.category[*].id", "presence": "included", "any": [scheme]},
            ],
        })
    }

    fn patterns(&self) -> Vec<Value> {
        let scheme = self.version_id();
        vec![
            json!({
                "id": self.pattern_id("resultaten"), "type": "Pattern", "inScheme": scheme, "primary": true,
                "prefLabel": {"en": "results of a toetsafname"},
                "definition": {"en": "The statements of one registration (learner, toets, versie, afnamedatum): results, each correction voiding the result it replaces."},
                "oneOrMore": self.pattern_id("resultaat-of-intrekking"),
            }),
            json!({
                "id": self.pattern_id("resultaat-of-intrekking"), "type": "Pattern", "inScheme": scheme,
                "alternates": [self.template_id("toetsscore"), self.template_id("onderdeelscore"), self.template_id("intrekking")],
            }),
        ]
    }

    /// The profile as JSON-LD.
    pub(crate) fn document(&self) -> Value {
        json!({
            "@context": "https://w3id.org/xapi/profiles/context",
            "id": self.id(),
            "type": "Profile",
            "conformsTo": "https://w3id.org/xapi/profiles#1.0",
            "prefLabel": {"en": "UWLR 2.2 results as xAPI", "nl": "UWLR 2.2-leerresultaten als xAPI"},
            "definition": {"en": "How uwlr-gateway publishes UWLR 2.2 BrengLeerresultaten results (toetsen, toetsonderdelen, corrections) as xAPI 1.0.3 statements."},
            "author": {"type": "Organization", "name": "uwlr-gateway"},
            "versions": [{"id": self.version_id(), "generatedAtTime": GENERATED_AT}],
            "concepts": self.concepts(),
            "templates": self.templates(),
            "patterns": self.patterns(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The structural rules of the Profiles spec (part 2) that a document can break on its own.
    #[test]
    fn the_profile_is_well_formed() {
        let mapping = Mapping::new("https://gw.example/xapi").unwrap();
        let profile = Profile::new(&mapping);
        let document = profile.document();
        let versions: Vec<&str> = document["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|version| version["id"].as_str().unwrap())
            .collect();
        assert_eq!(versions, [mapping.profile_activity().id.as_str()]);
        assert_ne!(document["id"], versions[0]);
        let mut ids = HashSet::new();
        for kind in ["concepts", "templates", "patterns"] {
            for item in document[kind].as_array().unwrap() {
                let id = item["id"].as_str().unwrap();
                assert!(id.starts_with("http"), "{id} is an IRI");
                assert!(ids.insert(id.to_string()), "{id} is defined once");
                assert_eq!(item["inScheme"], versions[0], "{id}");
                if kind != "patterns" || item["primary"] == true {
                    assert!(
                        item["prefLabel"].is_object() && item["definition"].is_object(),
                        "{id}"
                    );
                }
            }
        }
        // Templates name concepts of the right type; patterns name templates or patterns.
        let concept_type = |id: &str| {
            document["concepts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|concept| concept["id"] == id)
                .map(|concept| concept["type"].as_str().unwrap().to_string())
        };
        for template in document["templates"].as_array().unwrap() {
            assert_eq!(
                concept_type(template["verb"].as_str().unwrap()).as_deref(),
                Some("Verb")
            );
            for activity_type in template["objectActivityType"].as_str().into_iter().chain(
                template["contextGroupingActivityType"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str),
            ) {
                assert_eq!(concept_type(activity_type).as_deref(), Some("ActivityType"));
            }
        }
        for pattern in document["patterns"].as_array().unwrap() {
            let members: Vec<&str> = match (pattern.get("oneOrMore"), pattern.get("alternates")) {
                (Some(one), None) => vec![one.as_str().unwrap()],
                (None, Some(list)) => list
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap())
                    .collect(),
                _ => panic!("a pattern has exactly one of the kinds used here"),
            };
            for member in members {
                assert!(
                    ids.contains(member) && concept_type(member).is_none(),
                    "{member}"
                );
            }
        }
        assert_eq!(
            document["patterns"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["primary"] == true)
                .count(),
            1
        );
    }
}
