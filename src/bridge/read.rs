//! xAPI JSON on the read side: a stored statement as an LRS returns it, `format=ids` and `canonical`, agent parameters as the IFI key the store indexes, the About document.

use super::BridgeError;
use serde_json::{json, Value};

/// The xAPI version the read side speaks.
pub(crate) const XAPI_VERSION: &str = "1.0.3";

/// How agents, activities and verbs are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// As stored.
    Exact,
    /// Only identifiers: agents by their IFI, activities and verbs by id.
    Ids,
    /// Every language map reduced to the one language that best matches `Accept-Language`.
    Canonical,
}

/// What every rendered statement gets besides its stored text: the `authority` and,
/// for `format=canonical`, the reader's language preferences.
#[derive(Clone, Debug)]
pub(crate) struct Rendering<'a> {
    pub(crate) format: Format,
    /// The authority Agent as JSON text (`authority`).
    pub(crate) authority: &'a str,
    pub(crate) languages: &'a Languages,
}

/// The `authority` of every statement the gateway serves: the gateway itself, named in
/// config, identified by `mbox` when one is configured, else by its own account under
/// the base IRI (the actor of voiding statements). The LRSs set their own authority.
pub(crate) fn authority(mapping: &super::Mapping, name: &str, mbox: Option<&str>) -> String {
    match mbox {
        Some(mbox) => json!({"objectType": "Agent", "name": name, "mbox": mbox}),
        None => {
            let agent = mapping.gateway_agent();
            json!({
                "objectType": "Agent",
                "name": name,
                "account": {"homePage": agent.account.home_page, "name": agent.account.name},
            })
        }
    }
    .to_string()
}

/// A parsed `Accept-Language` header (RFC 9110 12.5.4, basic filtering of RFC 4647 3.3.1):
/// language ranges with their quality, in the order given.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Languages {
    /// Lowercased range (`*` allowed) and its quality in thousandths.
    ranges: Vec<(String, u16)>,
}

impl Languages {
    /// Reads the header; malformed entries are skipped (a header the client got wrong
    /// should not cost it its answer), an absent header accepts every language.
    pub(crate) fn parse(header: Option<&str>) -> Languages {
        let mut ranges = Vec::new();
        for entry in header.unwrap_or("").split(',') {
            let mut parts = entry.split(';');
            let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let valid_range = range == "*"
                || (!range.is_empty()
                    && range.split('-').all(|sub| {
                        (1..=8).contains(&sub.len())
                            && sub.bytes().all(|byte| byte.is_ascii_alphanumeric())
                    }));
            if !valid_range {
                continue;
            }
            let mut quality = Some(1000);
            for parameter in parts {
                let Some((name, value)) = parameter.split_once('=') else {
                    quality = None;
                    break;
                };
                if name.trim().eq_ignore_ascii_case("q") {
                    quality = parse_quality(value.trim());
                }
            }
            if let Some(quality) = quality {
                ranges.push((range, quality));
            }
        }
        Languages { ranges }
    }

    /// The quality of `tag`: that of the longest range matching it (a range matches a
    /// tag equal to it or beginning with it followed by `-`; `*` matches any tag); with
    /// no header every tag is acceptable.
    fn quality(&self, tag: &str) -> u16 {
        if self.ranges.is_empty() {
            return 1000;
        }
        let tag = tag.to_ascii_lowercase();
        self.ranges
            .iter()
            .filter(|(range, _)| {
                range == "*"
                    || tag == *range
                    || (tag.starts_with(range.as_str()) && tag.as_bytes()[range.len()] == b'-')
            })
            .max_by_key(|(range, _)| if range == "*" { 0 } else { range.len() })
            .map_or(0, |(_, quality)| *quality)
    }

    /// The key of `map` to keep: the acceptable language of highest quality (ties go to
    /// the map's order); when none is acceptable, Dutch (the language of UWLR's data),
    /// else the first. A map always keeps one entry, since a name must still be shown.
    pub(crate) fn choose<'a>(&self, map: &'a serde_json::Map<String, Value>) -> Option<&'a str> {
        let best = map
            .keys()
            .map(|tag| (self.quality(tag), tag))
            .filter(|(quality, _)| *quality > 0)
            .fold(None::<(u16, &String)>, |best, (quality, tag)| match best {
                Some((kept, _)) if kept >= quality => best,
                _ => Some((quality, tag)),
            });
        best.map(|(_, tag)| tag.as_str())
            .or_else(|| {
                map.keys()
                    .find(|tag| tag.eq_ignore_ascii_case("nl"))
                    .map(String::as_str)
            })
            .or_else(|| map.keys().next().map(String::as_str))
    }

    /// Reduces a language map to its chosen entry.
    fn reduce(&self, value: &mut Value) {
        if let Value::Object(map) = value {
            if let Some(keep) = self.choose(map).map(str::to_string) {
                map.retain(|tag, _| *tag == keep);
            }
        }
    }
}

/// A quality value (`0`, `0.5`, `1.000`) in thousandths; `None` when malformed.
fn parse_quality(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The canonical JSON of an agent's inverse functional identifier, as the bridge
/// stores it in `xapi_statements.agent`; the reason when the text is no Agent.
pub(crate) fn agent_ifi(text: &str) -> Result<String, String> {
    let refuse = |reason: &str| reason.to_string();
    let agent: Value = serde_json::from_str(text)
        .map_err(|_| refuse("must be a JSON Agent or identified Group"))?;
    let object = agent
        .as_object()
        .ok_or_else(|| refuse("must be a JSON object"))?;
    let mut ifis = Vec::new();
    for name in ["mbox", "mbox_sha1sum", "openid"] {
        if let Some(value) = object.get(name) {
            let value = value
                .as_str()
                .ok_or_else(|| refuse(&format!("{name} must be a string")))?;
            if name == "mbox" && !value.starts_with("mailto:") {
                return Err(refuse("mbox must be a mailto: IRI"));
            }
            ifis.push(json!({ name: value }));
        }
    }
    if let Some(account) = object.get("account") {
        let home_page = account.get("homePage").and_then(Value::as_str);
        let name = account.get("name").and_then(Value::as_str);
        let (Some(home_page), Some(name)) = (home_page, name) else {
            return Err(refuse("account needs homePage and name"));
        };
        // The same form as the stored `agent` column, from the same function.
        ifis.push(
            serde_json::from_str(&super::xapi::Agent::account(home_page, name).ifi_json())
                .unwrap_or(Value::Null),
        );
    }
    match ifis.len() {
        1 => Ok(ifis.remove(0).to_string()),
        0 => Err(refuse(
            "needs an inverse functional identifier (mbox, mbox_sha1sum, openid or account)",
        )),
        _ => Err(refuse(
            "must have exactly one inverse functional identifier",
        )),
    }
}

/// A stored statement as answered, as JSON text: `stored`, `version` and `authority`
/// added, rendered in the requested format.
///
/// The bridge never writes `stored`, `version` or `authority` (they are the LRS's), so
/// for `exact` the three members are spliced into the stored text without parsing it;
/// `ids` and `canonical` parse and rewrite the statement.
pub(crate) fn render(
    statement: &str,
    stored_at: &str,
    rendering: &Rendering,
) -> Result<String, BridgeError> {
    let unreadable = || BridgeError::Unreadable("a stored statement is not a JSON object".into());
    if rendering.format != Format::Exact {
        let authority: Value = serde_json::from_str(rendering.authority)
            .map_err(|error| BridgeError::Unreadable(format!("authority: {error}")))?;
        let mut value: Value = serde_json::from_str(statement)
            .map_err(|error| BridgeError::Unreadable(format!("statement: {error}")))?;
        let object = value.as_object_mut().ok_or_else(unreadable)?;
        object.insert("stored".into(), Value::String(stored_at.to_string()));
        object.insert("version".into(), Value::String("1.0.0".into()));
        object.insert("authority".into(), authority);
        match rendering.format {
            Format::Ids => ids_only(&mut value),
            _ => canonical(&mut value, rendering.languages),
        }
        return Ok(value.to_string());
    }
    let added = format!(
        "\"stored\":{},\"version\":\"1.0.0\",\"authority\":{}",
        serde_json::to_string(stored_at)
            .map_err(|error| BridgeError::Unreadable(error.to_string()))?,
        rendering.authority
    );
    let body = statement
        .trim()
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or_else(unreadable)?;
    Ok(if body.trim().is_empty() {
        format!("{{{added}}}")
    } else {
        format!("{{{body},{added}}}")
    })
}

/// `format=canonical`: the stored definitions are the canonical ones (the gateway is
/// their only source), with each language map of verbs and activities reduced to one
/// language (Communication 2.1.3, language filtering).
fn canonical(statement: &mut Value, languages: &Languages) {
    fn activity(value: &mut Value, languages: &Languages) {
        let Some(definition) = value.get_mut("definition").and_then(Value::as_object_mut) else {
            return;
        };
        for name in ["name", "description"] {
            if let Some(map) = definition.get_mut(name) {
                languages.reduce(map);
            }
        }
        // Interaction components carry a description map each.
        for list in ["choices", "scale", "source", "target", "steps"] {
            if let Some(Value::Array(components)) = definition.get_mut(list) {
                for component in components {
                    if let Some(map) = component.get_mut("description") {
                        languages.reduce(map);
                    }
                }
            }
        }
    }
    let Some(object) = statement.as_object_mut() else {
        return;
    };
    if let Some(display) = object
        .get_mut("verb")
        .and_then(|verb| verb.get_mut("display"))
    {
        languages.reduce(display);
    }
    if let Some(target) = object.get_mut("object") {
        match target.get("objectType").and_then(Value::as_str) {
            None | Some("Activity") => activity(target, languages),
            Some("SubStatement") => canonical(target, languages),
            _ => {}
        }
    }
    if let Some(Value::Object(activities)) = object
        .get_mut("context")
        .and_then(|context| context.get_mut("contextActivities"))
    {
        for list in activities.values_mut() {
            if let Value::Array(list) = list {
                list.iter_mut().for_each(|item| activity(item, languages));
            }
        }
    }
}

/// `format=ids`: agents keep objectType and their IFI, activities and verbs only their id.
fn ids_only(statement: &mut Value) {
    fn agent(value: &mut Value) {
        if let Some(object) = value.as_object_mut() {
            let keep = [
                "objectType",
                "mbox",
                "mbox_sha1sum",
                "openid",
                "account",
                "member",
            ];
            object.retain(|key, _| keep.contains(&key.as_str()));
            if let Some(Value::Array(members)) = object.get_mut("member") {
                members.iter_mut().for_each(agent);
            }
        }
    }
    fn activity(value: &mut Value) {
        if let Some(object) = value.as_object_mut() {
            object.retain(|key, _| key == "id" || key == "objectType");
        }
    }
    let Some(object) = statement.as_object_mut() else {
        return;
    };
    if let Some(actor) = object.get_mut("actor") {
        agent(actor);
    }
    if let Some(Value::Object(verb)) = object.get_mut("verb") {
        verb.retain(|key, _| key == "id");
    }
    if let Some(target) = object.get_mut("object") {
        match target.get("objectType").and_then(Value::as_str) {
            None | Some("Activity") => activity(target),
            Some("Agent") | Some("Group") => agent(target),
            _ => {}
        }
    }
    if let Some(Value::Object(context)) = object.get_mut("context") {
        if let Some(Value::Object(activities)) = context.get_mut("contextActivities") {
            for list in activities.values_mut() {
                if let Value::Array(list) = list {
                    list.iter_mut().for_each(activity);
                }
            }
        }
        for name in ["instructor", "team"] {
            if let Some(value) = context.get_mut(name) {
                agent(value);
            }
        }
    }
    if let Some(authority) = object.get_mut("authority") {
        agent(authority);
    }
}

/// `GET /xapi/about`: the versions this endpoint speaks.
pub(crate) fn about() -> Value {
    json!({"version": [XAPI_VERSION], "extensions": {}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_become_their_ifi() {
        let account =
            r#"{"objectType":"Agent","name":"X","account":{"name":"L1","homePage":"https://h"}}"#;
        assert_eq!(
            agent_ifi(account).unwrap(),
            r#"{"account":{"homePage":"https://h","name":"L1"}}"#
        );
        assert_eq!(
            agent_ifi(r#"{"mbox":"mailto:a@b.nl"}"#).unwrap(),
            r#"{"mbox":"mailto:a@b.nl"}"#
        );
        for bad in [
            "mbox",
            "{}",
            r#"{"mbox":"a@b.nl"}"#,
            r#"{"account":{"name":"L1"}}"#,
            r#"{"mbox":"mailto:a@b.nl","openid":"https://o"}"#,
        ] {
            assert!(agent_ifi(bad).is_err(), "{bad}");
        }
    }

    const AUTHORITY: &str = r#"{"objectType":"Agent","name":"gw","mbox":"mailto:gw@x.nl"}"#;

    fn rendering(format: Format, languages: &Languages) -> Rendering<'_> {
        Rendering {
            format,
            authority: AUTHORITY,
            languages,
        }
    }

    #[test]
    fn stored_version_and_authority_are_added() {
        let stored = r#"{"id":"x","verb":{"id":"v","display":{"nl":"d"}}}"#;
        let languages = Languages::default();
        for format in [Format::Exact, Format::Canonical, Format::Ids] {
            let text = render(
                stored,
                "2026-10-01T08:00:00.000Z",
                &rendering(format, &languages),
            )
            .unwrap();
            let statement: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(statement["stored"], "2026-10-01T08:00:00.000Z");
            assert_eq!(statement["version"], "1.0.0");
            assert_eq!(statement["authority"]["mbox"], "mailto:gw@x.nl");
            assert_eq!(
                statement["authority"]["name"].is_null(),
                format == Format::Ids
            );
            assert_eq!(
                statement["verb"]["display"].is_null(),
                format == Format::Ids
            );
        }
        assert_eq!(
            render("{ }", "t", &rendering(Format::Exact, &languages)).unwrap(),
            format!(r#"{{"stored":"t","version":"1.0.0","authority":{AUTHORITY}}}"#)
        );
        assert!(render("not json", "t", &rendering(Format::Exact, &languages)).is_err());
        assert!(render("[1]", "t", &rendering(Format::Ids, &languages)).is_err());
    }

    #[test]
    fn the_gateway_is_the_authority() {
        let mapping = super::super::Mapping::new("https://gw.example/xapi").unwrap();
        let agent: Value =
            serde_json::from_str(&authority(&mapping, "UWLR gateway", None)).unwrap();
        assert_eq!(
            agent,
            json!({"objectType": "Agent", "name": "UWLR gateway",
                "account": {"homePage": "https://gw.example/xapi", "name": "uwlr-gateway"}})
        );
        let agent: Value =
            serde_json::from_str(&authority(&mapping, "gw", Some("mailto:lrs@school.nl"))).unwrap();
        assert_eq!(agent["mbox"], "mailto:lrs@school.nl");
        assert!(agent.get("account").is_none());
    }

    fn chosen(header: Option<&str>, tags: &[&str]) -> Option<String> {
        let map: serde_json::Map<String, Value> = tags
            .iter()
            .map(|tag| (tag.to_string(), Value::String(String::new())))
            .collect();
        Languages::parse(header).choose(&map).map(str::to_string)
    }

    #[test]
    fn accept_language_picks_one_language_per_map() {
        let both = ["en-US", "nl"];
        assert_eq!(chosen(Some("nl"), &both).as_deref(), Some("nl"));
        assert_eq!(chosen(Some("en"), &both).as_deref(), Some("en-US"));
        assert_eq!(
            chosen(Some("EN-us;q=0.5, nl;q=0.4"), &both).as_deref(),
            Some("en-US")
        );
        assert_eq!(
            chosen(Some("en;q=0.3, nl-BE;q=0.9, nl;q=0.8"), &both).as_deref(),
            Some("nl")
        );
        assert_eq!(chosen(Some("de, *;q=0.1"), &both).as_deref(), Some("en-US"));
        // The longest matching range decides: en-US is refused although en is welcome.
        assert_eq!(
            chosen(Some("en, en-us;q=0, nl;q=0.1"), &both).as_deref(),
            Some("nl")
        );
        // Nothing acceptable, or no header: Dutch, else the first entry.
        assert_eq!(chosen(Some("fr"), &both).as_deref(), Some("nl"));
        assert_eq!(chosen(Some("fr"), &["en-US", "de"]).as_deref(), Some("de"));
        assert_eq!(chosen(None, &both).as_deref(), Some("en-US"));
        assert_eq!(
            chosen(Some("nl;q=2, ;;, en;q=abc, nl;q=0.5"), &both).as_deref(),
            Some("nl")
        );
        assert_eq!(chosen(Some("en"), &[]), None);
        assert_eq!(parse_quality("0.125"), Some(125));
        assert_eq!(parse_quality("1.0"), Some(1000));
        assert_eq!(parse_quality("1.5"), None);
        assert_eq!(parse_quality("0.1234"), None);
    }

    #[test]
    fn canonical_reduces_verb_and_activity_maps() {
        let stored = json!({
            "id": "x",
            "actor": {"objectType": "Agent", "name": "Naam", "account": {"homePage": "https://h", "name": "1"}},
            "verb": {"id": "v", "display": {"en-US": "scored", "nl": "scoorde"}},
            "object": {"objectType": "Activity", "id": "https://a",
                "definition": {"name": {"nl": "Toets", "en": "Test"}, "description": {"de": "Prüfung"}}},
            "context": {"contextActivities": {"grouping": [{"id": "https://s", "definition": {"name": {"en": "School", "nl": "School NL"}}}]}},
        })
        .to_string();
        let languages = Languages::parse(Some("en-GB, en;q=0.9"));
        let text = render(&stored, "t", &rendering(Format::Canonical, &languages)).unwrap();
        let statement: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(statement["verb"]["display"], json!({"en-US": "scored"}));
        assert_eq!(
            statement["object"]["definition"]["name"],
            json!({"en": "Test"})
        );
        assert_eq!(
            statement["object"]["definition"]["description"],
            json!({"de": "Prüfung"})
        );
        assert_eq!(
            statement["context"]["contextActivities"]["grouping"][0]["definition"]["name"],
            json!({"en": "School"})
        );
        // Agents stay as they are (exact).
        assert_eq!(statement["actor"]["name"], "Naam");
    }

    #[test]
    fn ids_format_keeps_identifiers_only() {
        let mut statement = json!({
            "id": "x",
            "actor": {"objectType": "Agent", "name": "Naam", "account": {"homePage": "https://h", "name": "1"}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/scored", "display": {"nl": "scoorde"}},
            "object": {"objectType": "Activity", "id": "https://a", "definition": {"name": {"nl": "Toets"}}},
            "context": {"contextActivities": {"grouping": [{"objectType": "Activity", "id": "https://s", "definition": {}}]}},
        });
        ids_only(&mut statement);
        assert_eq!(
            statement["actor"],
            json!({"objectType": "Agent", "account": {"homePage": "https://h", "name": "1"}})
        );
        assert_eq!(
            statement["verb"],
            json!({"id": "http://adlnet.gov/expapi/verbs/scored"})
        );
        assert_eq!(
            statement["object"],
            json!({"objectType": "Activity", "id": "https://a"})
        );
        assert_eq!(
            statement["context"]["contextActivities"]["grouping"][0],
            json!({"objectType": "Activity", "id": "https://s"})
        );
    }
}
