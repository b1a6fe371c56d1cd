//! xAPI JSON on the read side: a stored statement as an LRS returns it, `format=ids`, agent parameters as the IFI key the store indexes, the About document.

use super::BridgeError;
use serde_json::{json, Value};

/// The xAPI version the read side speaks.
pub const XAPI_VERSION: &str = "1.0.3";

/// How agents, activities and verbs are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// As stored.
    Exact,
    /// Only identifiers: agents by their IFI, activities and verbs by id.
    Ids,
    /// Language maps as stored (the gateway writes one language per map).
    Canonical,
}

/// The canonical JSON of an agent's inverse functional identifier, as the bridge
/// stores it in `xapi_statements.agent`; the reason when the text is no Agent.
pub fn agent_ifi(text: &str) -> Result<String, String> {
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

/// A stored statement as answered, as JSON text: `stored` and `version` added, rendered in `format`.
///
/// The bridge never writes `stored` or `version` (they are the LRS's), so for
/// `exact` and `canonical` the two members are spliced into the stored text
/// without parsing it; only `ids` parses and rewrites the statement.
pub fn render(statement: &str, stored_at: &str, format: Format) -> Result<String, BridgeError> {
    let unreadable = || BridgeError::Unreadable("a stored statement is not a JSON object".into());
    let added = format!(
        "\"stored\":{},\"version\":\"1.0.0\"",
        serde_json::to_string(stored_at)
            .map_err(|error| BridgeError::Unreadable(error.to_string()))?
    );
    if format == Format::Ids {
        let mut value: Value = serde_json::from_str(statement)
            .map_err(|error| BridgeError::Unreadable(format!("statement: {error}")))?;
        let object = value.as_object_mut().ok_or_else(unreadable)?;
        object.insert("stored".into(), Value::String(stored_at.to_string()));
        object.insert("version".into(), Value::String("1.0.0".into()));
        ids_only(&mut value);
        return Ok(value.to_string());
    }
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
pub fn about() -> Value {
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

    #[test]
    fn stored_and_version_are_added() {
        let stored = r#"{"id":"x","verb":{"id":"v","display":{"nl":"d"}}}"#;
        for format in [Format::Exact, Format::Canonical, Format::Ids] {
            let text = render(stored, "2026-10-01T08:00:00.000Z", format).unwrap();
            let statement: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(statement["stored"], "2026-10-01T08:00:00.000Z");
            assert_eq!(statement["version"], "1.0.0");
            assert_eq!(
                statement["verb"]["display"].is_null(),
                format == Format::Ids
            );
        }
        assert_eq!(
            render("{ }", "t", Format::Exact).unwrap(),
            r#"{"stored":"t","version":"1.0.0"}"#
        );
        assert!(render("not json", "t", Format::Exact).is_err());
        assert!(render("[1]", "t", Format::Ids).is_err());
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
