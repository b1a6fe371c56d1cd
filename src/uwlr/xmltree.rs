//! Small in-memory subtrees (one toets, one resultaat, the header) cut out of a streamed document.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use std::io::BufRead;

/// Limits that keep one subtree small whatever the sender writes.
pub(crate) const MAX_DEPTH: usize = 64;
pub(crate) const MAX_NODES: usize = 100_000;
pub(crate) const MAX_TEXT: usize = 1 << 20;
/// The most bytes one subtree may hold in memory: element and attribute names,
/// attribute values and text, plus `NODE_COST` per element. Without it a header
/// child of 99,000 empty elements each carrying a 2,000-character attribute kept
/// 228 MB in memory before the key was checked; no UWLR toets or resultaat needs
/// more than a few hundred KiB.
pub(crate) const MAX_SUBTREE_BYTES: usize = 4 << 20;
/// What one element costs beyond its names and values (the `Node` and its vectors).
pub(crate) const NODE_COST: usize = 128;

/// An element with its local name, unqualified attributes, text and children.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) text: String,
    pub(crate) children: Vec<Node>,
    /// Byte offset just past the start tag in the document.
    pub(crate) offset: u64,
}

impl Node {
    pub(crate) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|child| child.name == name)
    }

    pub(crate) fn children_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |child| child.name == name)
    }

    /// The trimmed text of a child element, if present: for XSD types whose whitespace
    /// facet is `collapse` (integers, dates, decimals) or whose pattern allows no whitespace.
    pub(crate) fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|child| child.text.trim())
    }

    /// The text of an xs:string child exactly as XML delivers it: whitespace is part of the value.
    pub(crate) fn child_string(&self, name: &str) -> Option<&str> {
        self.child(name).map(|child| child.text.as_str())
    }

    pub(crate) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A JSON rendering for opaque result structures (osoresultaat, anderresultaat).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        if self.children.is_empty() && self.attributes.is_empty() {
            return serde_json::Value::String(self.text.trim().to_string());
        }
        let mut object = serde_json::Map::new();
        for (key, value) in &self.attributes {
            object.insert(format!("@{key}"), serde_json::Value::String(value.clone()));
        }
        for child in &self.children {
            let value = child.to_json();
            match object.get_mut(&child.name) {
                Some(serde_json::Value::Array(items)) => items.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = serde_json::Value::Array(vec![first, value]);
                }
                None => {
                    object.insert(child.name.clone(), value);
                }
            }
        }
        if !self.text.trim().is_empty() {
            object.insert(
                "#text".into(),
                serde_json::Value::String(self.text.trim().to_string()),
            );
        }
        serde_json::Value::Object(object)
    }
}

/// Why a subtree could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TreeError {
    #[error("XML is not well-formed: {0}")]
    Xml(#[from] quick_xml::Error),
    #[error("XML is not well-formed: {0}")]
    Encoding(String),
    #[error("element nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("element holds more than {MAX_NODES} elements")]
    TooManyNodes,
    #[error("text longer than {MAX_TEXT} bytes")]
    TextTooLong,
    #[error("element holds more than {} MiB of names, attributes and text", MAX_SUBTREE_BYTES >> 20)]
    TooLarge,
    #[error("a DOCTYPE is not allowed")]
    Doctype,
    #[error("unexpected end of document")]
    Eof,
}

pub(crate) fn local_name(start: &BytesStart) -> String {
    String::from_utf8_lossy(start.local_name().as_ref()).into_owned()
}

pub(crate) fn namespace_of<R>(reader: &NsReader<R>, start: &BytesStart) -> Option<String> {
    match reader.resolve_element(start.name()).0 {
        ResolveResult::Bound(namespace) => {
            Some(String::from_utf8_lossy(namespace.as_ref()).into_owned())
        }
        _ => None,
    }
}

/// XML 1.0 section 2.11: every CR LF pair and every lone CR reaches the application as LF.
/// Values are compared character by character, so ours must be what libxml2 sees.
fn normalize_line_ends(raw: &str) -> std::borrow::Cow<'_, str> {
    if raw.contains('\r') {
        std::borrow::Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(raw)
    }
}

/// XML 1.0 section 3.3.3 for CDATA attributes: each literal tab, CR, LF (a CR LF pair
/// counting once) becomes a space; the same characters written as references stay.
fn normalize_attribute(raw: &str) -> std::borrow::Cow<'_, str> {
    if raw.contains(['\t', '\r', '\n']) {
        std::borrow::Cow::Owned(raw.replace("\r\n", " ").replace(['\t', '\r', '\n'], " "))
    } else {
        std::borrow::Cow::Borrowed(raw)
    }
}

fn is_xml_space(text: &str) -> bool {
    text.bytes()
        .all(|byte| matches!(byte, b' ' | b'\t' | b'\r' | b'\n'))
}

/// An element that gets a child is complex: the whitespace before its first child is
/// indentation, kept by no type. Dropping it keeps a pretty-printed subtree's text
/// small (the scanner keeps all text, since an xs:string value's whitespace counts).
/// Returns how many bytes were dropped.
fn drop_indentation(node: &mut Node) -> usize {
    if node.children.is_empty() && !node.text.is_empty() && is_xml_space(&node.text) {
        let dropped = node.text.len();
        node.text.clear();
        dropped
    } else {
        0
    }
}

fn unescape(raw: &str) -> Result<String, TreeError> {
    quick_xml::escape::unescape(raw)
        .map(std::borrow::Cow::into_owned)
        .map_err(|error| TreeError::Encoding(error.to_string()))
}

fn node_from_start<R>(
    reader: &NsReader<R>,
    start: &BytesStart,
    offset: u64,
    with_namespace: bool,
) -> Result<Node, TreeError> {
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(quick_xml::Error::from)?;
        let key = attribute.key;
        if key.as_ref().starts_with(b"xmlns") {
            continue;
        }
        let local = String::from_utf8_lossy(key.local_name().as_ref()).into_owned();
        let raw = std::str::from_utf8(&attribute.value)
            .map_err(|error| TreeError::Encoding(error.to_string()))?;
        let value = unescape(&normalize_attribute(raw))?;
        attributes.push((local, value));
    }
    Ok(Node {
        name: local_name(start),
        namespace: if with_namespace {
            namespace_of(reader, start)
        } else {
            None
        },
        attributes,
        text: String::new(),
        children: Vec::new(),
        offset,
    })
}

/// What a node costs in memory, counted against `MAX_SUBTREE_BYTES`.
fn node_cost(node: &Node) -> usize {
    NODE_COST
        + node.name.len()
        + node
            .attributes
            .iter()
            .map(|(key, value)| key.len() + value.len() + 2 * std::mem::size_of::<String>())
            .sum::<usize>()
}

/// Appends text (or CDATA) to the innermost open element, counted against the text and
/// subtree limits.
fn append_text(
    stack: &mut [Node],
    text: &str,
    text_bytes: &mut usize,
    bytes: &mut usize,
) -> Result<(), TreeError> {
    *text_bytes += text.len();
    *bytes += text.len();
    if *text_bytes > MAX_TEXT {
        return Err(TreeError::TextTooLong);
    }
    if *bytes > MAX_SUBTREE_BYTES {
        return Err(TreeError::TooLarge);
    }
    stack
        .last_mut()
        .expect("stack holds the root")
        .text
        .push_str(text);
    Ok(())
}

/// Reads the element that `start` opened (already consumed) up to its end tag.
pub(crate) fn read_subtree<R: BufRead>(
    reader: &mut NsReader<R>,
    buf: &mut Vec<u8>,
    start: &BytesStart,
    is_empty: bool,
) -> Result<Node, TreeError> {
    // Only the root's namespace is resolved: inside, the schema check has placed every element.
    let root = node_from_start(reader, start, reader.buffer_position(), true)?;
    if is_empty {
        return Ok(root);
    }
    let mut stack = vec![root];
    let mut nodes = 1usize;
    let mut text_bytes = 0usize;
    let mut bytes = node_cost(&stack[0]);
    loop {
        buf.clear();
        let event = reader.read_event_into(buf)?;
        match event {
            Event::Start(start) => {
                nodes += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(TreeError::TooDeep);
                }
                if nodes > MAX_NODES {
                    return Err(TreeError::TooManyNodes);
                }
                let node = node_from_start(reader, &start, reader.buffer_position(), false)?;
                let dropped = drop_indentation(stack.last_mut().expect("stack holds the root"));
                text_bytes -= dropped;
                bytes -= dropped;
                bytes += node_cost(&node);
                if bytes > MAX_SUBTREE_BYTES {
                    return Err(TreeError::TooLarge);
                }
                stack.push(node);
            }
            Event::Empty(start) => {
                nodes += 1;
                if nodes > MAX_NODES {
                    return Err(TreeError::TooManyNodes);
                }
                let node = node_from_start(reader, &start, reader.buffer_position(), false)?;
                bytes += node_cost(&node);
                if bytes > MAX_SUBTREE_BYTES {
                    return Err(TreeError::TooLarge);
                }
                let parent = stack.last_mut().expect("stack holds the root");
                let dropped = drop_indentation(parent);
                text_bytes -= dropped;
                bytes -= dropped;
                parent.children.push(node);
            }
            Event::End(_) => {
                let node = stack.pop().expect("stack holds the root");
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Text(text) => {
                let raw = std::str::from_utf8(&text)
                    .map_err(|error| TreeError::Encoding(error.to_string()))?;
                let parent = stack.last().expect("stack holds the root");
                if !parent.children.is_empty() && is_xml_space(raw) {
                    // Indentation between child elements: no value of any simple type.
                    continue;
                }
                let text = unescape(&normalize_line_ends(raw))?;
                append_text(&mut stack, &text, &mut text_bytes, &mut bytes)?;
            }
            Event::CData(data) => {
                let text = std::str::from_utf8(&data)
                    .map_err(|error| TreeError::Encoding(error.to_string()))?;
                let text = normalize_line_ends(text);
                append_text(&mut stack, &text, &mut text_bytes, &mut bytes)?;
            }
            Event::DocType(_) => return Err(TreeError::Doctype),
            Event::Eof => return Err(TreeError::Eof),
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Result<Node, TreeError> {
        let mut reader = NsReader::from_reader(xml.as_bytes());
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_event_into(&mut buf)? {
                Event::Start(start) => {
                    let start = start.into_owned();
                    return read_subtree(&mut reader, &mut Vec::new(), &start, false);
                }
                Event::Empty(start) => {
                    let start = start.into_owned();
                    return read_subtree(&mut reader, &mut Vec::new(), &start, true);
                }
                Event::Eof => return Err(TreeError::Eof),
                _ => {}
            }
        }
    }

    #[test]
    fn reads_names_text_and_attributes() {
        let node = parse(
            r#"<a:toets xmlns:a="urn:x"><a:toetscode vocabulaire="urn:v">T&amp;1</a:toetscode><a:leeg/></a:toets>"#,
        )
        .unwrap();
        assert_eq!(node.name, "toets");
        assert_eq!(node.namespace.as_deref(), Some("urn:x"));
        assert_eq!(node.child_text("toetscode"), Some("T&1"));
        assert_eq!(
            node.child("toetscode").unwrap().attribute("vocabulaire"),
            Some("urn:v")
        );
        assert!(node.child("leeg").is_some());
    }

    #[test]
    fn line_ends_and_attribute_whitespace_are_normalised_as_xml_says() {
        let node = parse("<r k=\"a\tb\r\nc&#9;d\"><x>T\r\n1\r</x><y>&#13;</y></r>").unwrap();
        assert_eq!(node.attribute("k"), Some("a b c\td"));
        assert_eq!(node.child_string("x"), Some("T\n1\n"));
        assert_eq!(node.child_string("y"), Some("\r"));
        let spaced = parse("<r><x> T </x></r>").unwrap();
        assert_eq!(spaced.child_string("x"), Some(" T "));
        assert_eq!(spaced.child_text("x"), Some("T"));
    }

    #[test]
    fn indentation_between_elements_is_no_text() {
        let indent = " ".repeat(4096);
        let children: String = (0..400).map(|_| format!("\n{indent}<x> v </x>")).collect();
        // 1.6 MB of indentation, above MAX_TEXT, but only the values count.
        let node = parse(&format!("<r>\n{indent}{children}\n</r>")).unwrap();
        assert_eq!(node.text, "");
        assert_eq!(node.children.len(), 400);
        assert_eq!(node.child_string("x"), Some(" v "));
    }

    #[test]
    fn refuses_deep_nesting() {
        let xml = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 2),
            "</a>".repeat(MAX_DEPTH + 2)
        );
        assert!(matches!(parse(&xml), Err(TreeError::TooDeep)));
    }

    #[test]
    fn counts_names_and_attribute_values_against_the_subtree_cap() {
        // Few elements, little text: only the attribute values are large (issue 16, finding 3).
        let value = "v".repeat(2000);
        let many = format!(
            "<h>{}</h>",
            format!("<h a=\"{value}\"/>").repeat(MAX_SUBTREE_BYTES / 2000 + 10)
        );
        assert!(matches!(parse(&many), Err(TreeError::TooLarge)));
        let long_names = format!(
            "<h>{}</h>",
            format!("<{0}/>", "n".repeat(4000)).repeat(MAX_SUBTREE_BYTES / 4000 + 10)
        );
        assert!(matches!(parse(&long_names), Err(TreeError::TooLarge)));
        let fits = format!("<h>{}</h>", format!("<h a=\"{value}\"/>").repeat(100));
        assert!(parse(&fits).is_ok());
    }

    #[test]
    fn refuses_truncated_input() {
        assert!(parse("<a><b>").is_err());
    }

    #[test]
    fn json_groups_repeated_children() {
        let node = parse("<r><x>1</x><x>2</x><y k=\"v\">3</y></r>").unwrap();
        assert_eq!(
            node.to_json(),
            serde_json::json!({"x": ["1", "2"], "y": {"@k": "v", "#text": "3"}})
        );
    }
}
