//! xAPI statement comparison (xAPI Data 2.3.1): whether the statement an LRS holds under an id is the one the gateway sent.
//!
//! An LRS answers 409 when it already holds a statement id. That is delivery only
//! when the held statement is the same one; the comparison leaves out what the
//! spec allows an LRS to add or change: `stored`, `authority`, `version`,
//! attachments, activity definitions, verb displays, the `objectType` of defaults,
//! how a timestamp is written (its instant counts), the order of group members,
//! the case of UUIDs, and how a number is written (`9` and `9.0`).

use serde_json::{Map, Value};

/// The first difference between a statement as sent and as held, as a JSON path with
/// both values; `None` when they are the same statement.
pub fn difference(sent: &Value, held: &Value) -> Option<String> {
    let (sent, held) = (normalise(sent), normalise(held));
    first_difference(&sent, &held, "$")
}

/// The statement reduced to what statement immutability covers.
fn normalise(statement: &Value) -> Value {
    let Some(object) = statement.as_object() else {
        return statement.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        let value = match key.as_str() {
            "stored" | "authority" | "version" | "attachments" => continue,
            "id" => lowercase(value),
            "timestamp" => instant(value),
            "actor" => agent(value),
            "verb" => value.get("id").cloned().unwrap_or(Value::Null),
            "object" => target(value),
            "context" => context(value),
            _ => numbers(value),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

fn lowercase(value: &Value) -> Value {
    value
        .as_str()
        .map(|text| Value::String(text.to_ascii_lowercase()))
        .unwrap_or_else(|| value.clone())
}

/// A timestamp as its instant in UTC milliseconds; anything unreadable as it is.
fn instant(value: &Value) -> Value {
    value
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .map(|parsed| Value::from(parsed.timestamp_millis()))
        .unwrap_or_else(|| value.clone())
}

/// Every number as a float, so that `9` and `9.0` compare equal.
fn numbers(value: &Value) -> Value {
    match value {
        Value::Number(number) => number.as_f64().map(Value::from).unwrap_or(Value::Null),
        Value::Array(items) => Value::Array(items.iter().map(numbers).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), numbers(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An Agent or Group: `objectType: Agent` is the default; group members in any order.
fn agent(value: &Value) -> Value {
    let Some(object) = value.as_object() else {
        return value.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        match (key.as_str(), value) {
            ("objectType", Value::String(kind)) if kind == "Agent" => {}
            ("member", Value::Array(members)) => {
                let mut members: Vec<Value> = members.iter().map(agent).collect();
                members.sort_by_key(|member| member.to_string());
                out.insert(key.clone(), Value::Array(members));
            }
            _ => {
                out.insert(key.clone(), numbers(value));
            }
        }
    }
    Value::Object(out)
}

/// An activity is its id; definitions are outside immutability.
fn activity(value: &Value) -> Value {
    value.get("id").cloned().unwrap_or_else(|| value.clone())
}

fn target(value: &Value) -> Value {
    match value.get("objectType").and_then(Value::as_str) {
        None | Some("Activity") => activity(value),
        Some("Agent") | Some("Group") => agent(value),
        Some("StatementRef") => {
            serde_json::json!({"objectType": "StatementRef", "id": lowercase(&value["id"])})
        }
        Some("SubStatement") => normalise(value),
        Some(_) => numbers(value),
    }
}

fn context(value: &Value) -> Value {
    let Some(object) = value.as_object() else {
        return value.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        let value = match key.as_str() {
            "registration" => lowercase(value),
            "instructor" | "team" => agent(value),
            "statement" => target(value),
            "contextActivities" => {
                let mut activities = Map::new();
                for (kind, list) in value.as_object().into_iter().flatten() {
                    // A single activity and a list of one are the same; empty lists are nothing.
                    let items: Vec<Value> = match list {
                        Value::Array(items) => items.iter().map(activity).collect(),
                        single => vec![activity(single)],
                    };
                    if !items.is_empty() {
                        activities.insert(kind.clone(), Value::Array(items));
                    }
                }
                if activities.is_empty() {
                    continue;
                }
                Value::Object(activities)
            }
            _ => numbers(value),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

fn first_difference(sent: &Value, held: &Value, path: &str) -> Option<String> {
    match (sent, held) {
        (Value::Object(sent), Value::Object(held)) => {
            let mut keys: Vec<&String> = sent.keys().chain(held.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let inner = format!("{path}.{key}");
                match (sent.get(key), held.get(key)) {
                    (Some(sent), Some(held)) => first_difference(sent, held, &inner),
                    (Some(sent), None) => Some(format!("{inner}: sent {sent}, the LRS has none")),
                    (None, Some(held)) => Some(format!("{inner}: not sent, the LRS has {held}")),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(sent_items), Value::Array(held_items))
            if sent_items.len() == held_items.len() =>
        {
            sent_items
                .iter()
                .zip(held_items)
                .enumerate()
                .find_map(|(index, (sent, held))| {
                    first_difference(sent, held, &format!("{path}[{index}]"))
                })
        }
        _ if sent == held => None,
        _ => Some(format!("{path}: sent {sent}, the LRS has {held}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sent() -> Value {
        json!({
            "id": "6f1c2a1e-0b7a-5c1d-9d3e-1f2a3b4c5d6e",
            "actor": {"objectType": "Agent", "account": {"homePage": "https://ketenid.nl", "name": "https://ketenid.nl/201703/abc"}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/scored", "display": {"en-US": "scored", "nl": "scoorde"}},
            "object": {"objectType": "Activity", "id": "https://gw/toets/T", "definition": {"name": {"nl": "Toets"}}},
            "result": {"score": {"raw": 9, "min": 0, "max": 12}},
            "context": {"registration": "0b3d6f3e-8a62-5b0c-9d3e-1f2a3b4c5d6e",
                        "contextActivities": {"parent": [], "grouping": [{"objectType": "Activity", "id": "https://gw/school/1", "definition": {}}]},
                        "extensions": {"https://gw/extension/afnamedatum": "2026-10-01"}},
            "timestamp": "2026-10-01T00:00:00+02:00",
        })
    }

    #[test]
    fn what_an_lrs_may_add_or_rewrite_is_the_same_statement() {
        let mut held = sent();
        held["stored"] = json!("2026-12-02T06:00:00.000Z");
        held["version"] = json!("1.0.0");
        held["authority"] = json!({"objectType": "Agent", "mbox": "mailto:lrs@x"});
        held["timestamp"] = json!("2026-09-30T22:00:00.000Z");
        held["verb"]["display"] = json!({"en-US": "scored"});
        held["object"] =
            json!({"id": "https://gw/toets/T", "definition": {"name": {"en": "Test"}}});
        held["actor"] = json!({"account": {"homePage": "https://ketenid.nl", "name": "https://ketenid.nl/201703/abc"}});
        held["result"]["score"]["raw"] = json!(9.0);
        held["context"]["registration"] = json!("0B3D6F3E-8A62-5B0C-9D3E-1F2A3B4C5D6E");
        held["context"]["contextActivities"] = json!({"grouping": {"id": "https://gw/school/1"}});
        held["id"] = json!("6F1C2A1E-0B7A-5C1D-9D3E-1F2A3B4C5D6E");
        assert_eq!(difference(&sent(), &held), None);
    }

    #[test]
    fn another_actor_score_or_context_is_another_statement() {
        let check = |change: &dyn Fn(&mut Value), path: &str| {
            let mut held = sent();
            change(&mut held);
            let found = difference(&sent(), &held).expect("a difference");
            assert!(found.starts_with(path), "{found} (wanted {path})");
        };
        check(
            &|held| {
                held["actor"]["account"] = json!({"homePage": "https://gw/pseudonym", "name": "x"})
            },
            "$.actor.account.homePage",
        );
        check(
            &|held| held["result"]["score"]["raw"] = json!(8),
            "$.result.score.raw",
        );
        check(
            &|held| held["timestamp"] = json!("2026-10-01T00:00:00Z"),
            "$.timestamp",
        );
        check(
            &|held| {
                held["context"]["extensions"] = json!({});
            },
            "$.context.extensions.https://gw/extension/afnamedatum",
        );
        check(
            &|held| held["object"]["id"] = json!("https://gw/toets/U"),
            "$.object",
        );
        check(
            &|held| {
                held.as_object_mut().unwrap().remove("result");
            },
            "$.result",
        );
    }
}
