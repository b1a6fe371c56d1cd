//! One forward pass over a spooled message: yields the header, school, toetsen and results in order.

use super::xmltree::{local_name, namespace_of, read_subtree, Node, TreeError};
use super::{NS_AUTORISATIE, NS_LEERRESULTATEN, NS_SOAP11, NS_SOAP12};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use std::io::BufRead;

/// The SOAP 1.1 actor that means "the next SOAP node", that is this gateway (section 4.2.2).
pub(crate) const ACTOR_NEXT: &str = "http://schemas.xmlsoap.org/soap/actor/next";

/// What the document's root element is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Root {
    Soap11Envelope,
    Soap12Envelope,
    /// A bare `leerresultaten_verzoek` without envelope.
    Verzoek,
    Other {
        namespace: Option<String>,
        name: String,
    },
}

/// One piece of the message, in document order.
#[derive(Debug)]
pub(crate) enum Item {
    Root(Root),
    /// The `autorisatie` child of soap:Header, the one header block the gateway reads.
    HeaderElement(Node),
    /// Any other child of soap:Header: skipped without being built in memory.
    UnknownHeader {
        namespace: Option<String>,
        name: String,
        /// `mustUnderstand="1"` with no actor or the `next` actor (SOAP 1.1 section 4.2.3):
        /// the gateway must refuse a message it cannot fully process.
        must_understand: bool,
        offset: u64,
    },
    /// The first child of soap:Body (only its name; the verzoek itself streams on).
    BodyElement {
        namespace: Option<String>,
        name: String,
        offset: u64,
    },
    School(Node),
    /// Start of a toetsafname; its leerling fields follow as `AfnameField`s.
    ToetsafnameStart {
        offset: u64,
    },
    AfnameField(Node),
    Resultaat(Node),
    ToetsafnameEnd,
    Toets(Node),
}

/// What a pass needs: the result pass reads everything, the definitions pass skips results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    Everything,
    SkipToetsafnames,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    Envelope,
    Header,
    Body,
    Verzoek,
    Toetsafnames,
    Toetsafname,
    Resultaten,
    Toetsen,
}

/// Why the pass stopped; the offset says where.
#[derive(Debug, thiserror::Error)]
#[error("{error} (at byte {offset})")]
pub(crate) struct ScanError {
    pub(crate) error: TreeError,
    pub(crate) offset: u64,
}

/// Streams a message; memory stays bounded by the largest single subtree.
pub(crate) struct Scanner<R: BufRead> {
    reader: NsReader<R>,
    buf: Vec<u8>,
    subtree_buf: Vec<u8>,
    frames: Vec<Frame>,
    pass: Pass,
    seen_root: bool,
    /// Where the root element's start tag ends, for reporting envelope problems.
    root_offset: Option<u64>,
    pending: Option<Item>,
    /// A root element the pass does not enter, skipped after it has been reported,
    /// so a caller learns what the root is before the rest of the document is read.
    skip_root: Option<(BytesStart<'static>, bool)>,
    body_seen_first: bool,
    encoding_checked: bool,
}

impl<R: BufRead> Scanner<R> {
    pub(crate) fn new(source: R, pass: Pass) -> Self {
        // No trim_text: whitespace in an xs:string value is part of it (`HO-C ` is not `HO-C`).
        let reader = NsReader::from_reader(source);
        Scanner {
            reader,
            buf: Vec::with_capacity(8192),
            subtree_buf: Vec::with_capacity(8192),
            frames: Vec::new(),
            pass,
            seen_root: false,
            root_offset: None,
            pending: None,
            skip_root: None,
            body_seen_first: false,
            encoding_checked: false,
        }
    }

    /// The byte offset of the root element (once it has been read).
    pub(crate) fn root_offset(&self) -> Option<u64> {
        self.root_offset
    }

    fn fail(&self, error: impl Into<TreeError>) -> ScanError {
        ScanError {
            error: error.into(),
            offset: self.reader.buffer_position(),
        }
    }

    /// The next item, or `None` at the end of a complete document.
    #[allow(clippy::should_implement_trait)]
    pub(crate) fn next(&mut self) -> Result<Option<Item>, ScanError> {
        if let Some(item) = self.pending.take() {
            return Ok(Some(item));
        }
        if let Some((start, is_empty)) = self.skip_root.take() {
            self.skip(&start, is_empty)?;
        }
        if !self.encoding_checked {
            self.encoding_checked = true;
            // quick-xml reads UTF-8 only; name UTF-16 plainly instead of failing on its bytes.
            let is_utf16 = match self.reader.get_mut().fill_buf() {
                Ok(start) => {
                    start.starts_with(&[0xFF, 0xFE])
                        || start.starts_with(&[0xFE, 0xFF])
                        || start.starts_with(b"<\0")
                        || start.starts_with(b"\0<")
                }
                Err(error) => return Err(self.fail(quick_xml::Error::from(error))),
            };
            if is_utf16 {
                return Err(self.fail(TreeError::Encoding(
                    "the message is UTF-16; this service accepts UTF-8 only".into(),
                )));
            }
        }
        loop {
            self.buf.clear();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(event) => event.into_owned(),
                Err(error) => return Err(self.fail(error)),
            };
            match event {
                Event::Start(start) => {
                    if let Some(item) = self.open(start, false)? {
                        return Ok(Some(item));
                    }
                }
                Event::Empty(start) => {
                    if let Some(item) = self.open(start, true)? {
                        return Ok(Some(item));
                    }
                }
                Event::End(_) => {
                    if let Some(Frame::Toetsafname) = self.frames.pop() {
                        return Ok(Some(Item::ToetsafnameEnd));
                    }
                }
                Event::DocType(_) => return Err(self.fail(TreeError::Doctype)),
                Event::Decl(decl) => {
                    if let Some(Ok(encoding)) = decl.encoding() {
                        let encoding = String::from_utf8_lossy(&encoding).to_ascii_lowercase();
                        if !matches!(encoding.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                            return Err(self.fail(TreeError::Encoding(format!(
                                "encoding {encoding} is not supported; send UTF-8"
                            ))));
                        }
                    }
                }
                Event::Text(text) => {
                    if self.frames.is_empty() && !text.iter().all(u8::is_ascii_whitespace) {
                        return Err(
                            self.fail(TreeError::Encoding("text outside the root element".into()))
                        );
                    }
                    if let Err(error) = text.unescape() {
                        return Err(self.fail(TreeError::Encoding(error.to_string())));
                    }
                }
                Event::CData(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => {
                    if !self.seen_root {
                        return Err(self.fail(TreeError::Encoding("no root element".into())));
                    }
                    if !self.frames.is_empty() {
                        return Err(self.fail(TreeError::Eof));
                    }
                    return Ok(None);
                }
            }
        }
    }

    fn subtree(&mut self, start: &BytesStart, is_empty: bool) -> Result<Node, ScanError> {
        read_subtree(&mut self.reader, &mut self.subtree_buf, start, is_empty).map_err(|error| {
            ScanError {
                error,
                offset: self.reader.buffer_position(),
            }
        })
    }

    fn skip(&mut self, start: &BytesStart, is_empty: bool) -> Result<(), ScanError> {
        if is_empty {
            return Ok(());
        }
        let end = start.to_end().into_owned();
        self.subtree_buf.clear();
        self.reader
            .read_to_end_into(end.name(), &mut self.subtree_buf)
            .map(|_| ())
            .map_err(|error| self.fail(error))
    }

    /// Whether a header block is addressed to this gateway and must be understood:
    /// SOAP 1.1 `mustUnderstand` is "1" and `actor` is absent or the `next` actor.
    fn must_understand(&self, start: &BytesStart) -> Result<bool, ScanError> {
        let mut must_understand = false;
        let mut for_us = true;
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|error| self.fail(quick_xml::Error::from(error)))?;
            let (namespace, local) = self.reader.resolve_attribute(attribute.key);
            if !matches!(namespace, ResolveResult::Bound(namespace) if namespace.as_ref() == NS_SOAP11.as_bytes())
            {
                continue;
            }
            let value = attribute
                .unescape_value()
                .map_err(|error| self.fail(TreeError::Encoding(error.to_string())))?;
            match local.as_ref() {
                // The envelope schema allows "0" and "1"; "true" is read as meant.
                b"mustUnderstand" => must_understand = matches!(value.trim(), "1" | "true"),
                b"actor" => for_us = value.trim() == ACTOR_NEXT,
                _ => {}
            }
        }
        Ok(must_understand && for_us)
    }

    fn push(&mut self, frame: Frame, is_empty: bool) {
        if !is_empty {
            self.frames.push(frame);
        }
    }

    /// The root element: the frame it opens, or a root to skip (SOAP 1.2, anything else).
    fn open_root(
        &mut self,
        start: BytesStart<'static>,
        is_empty: bool,
        name: String,
        offset: u64,
    ) -> Root {
        self.seen_root = true;
        self.root_offset = Some(offset);
        let namespace = namespace_of(&self.reader, &start);
        match (namespace.as_deref(), name.as_str()) {
            (Some(NS_SOAP11), "Envelope") => {
                self.push(Frame::Envelope, is_empty);
                Root::Soap11Envelope
            }
            (Some(NS_SOAP12), "Envelope") => {
                self.skip_root = Some((start, is_empty));
                Root::Soap12Envelope
            }
            (Some(NS_LEERRESULTATEN), "leerresultaten_verzoek") => {
                self.push(Frame::Verzoek, is_empty);
                Root::Verzoek
            }
            _ => {
                self.skip_root = Some((start, is_empty));
                Root::Other { namespace, name }
            }
        }
    }

    /// A SOAP header block: autorisatie as a subtree, any other only by name.
    fn open_header_block(
        &mut self,
        start: &BytesStart<'static>,
        is_empty: bool,
        name: String,
        offset: u64,
    ) -> Result<Item, ScanError> {
        let namespace = namespace_of(&self.reader, start);
        if namespace.as_deref() == Some(NS_AUTORISATIE) && name == "autorisatie" {
            // Kept as sent, as all text is: an autorisatiesleutel is an xs:string,
            // so " key" is not "key".
            return self.subtree(start, is_empty).map(Item::HeaderElement);
        }
        let must_understand = self.must_understand(start)?;
        self.skip(start, is_empty)?;
        Ok(Item::UnknownHeader {
            namespace,
            name,
            must_understand,
            offset,
        })
    }

    /// A child of the SOAP Body: the first is reported (and entered when it is the verzoek),
    /// any later one is skipped.
    fn open_body_element(
        &mut self,
        start: &BytesStart<'static>,
        is_empty: bool,
        name: String,
        offset: u64,
    ) -> Result<Option<Item>, ScanError> {
        let namespace = namespace_of(&self.reader, start);
        let first = !self.body_seen_first;
        self.body_seen_first = true;
        let is_verzoek = first
            && namespace.as_deref() == Some(NS_LEERRESULTATEN)
            && name == "leerresultaten_verzoek";
        if is_verzoek {
            self.push(Frame::Verzoek, is_empty);
        } else {
            self.skip(start, is_empty)?;
        }
        Ok(first.then_some(Item::BodyElement {
            namespace,
            name,
            offset,
        }))
    }

    fn open(
        &mut self,
        start: BytesStart<'static>,
        is_empty: bool,
    ) -> Result<Option<Item>, ScanError> {
        let name = local_name(&start);
        let offset = self.reader.buffer_position();
        if !self.seen_root {
            return Ok(Some(Item::Root(
                self.open_root(start, is_empty, name, offset),
            )));
        }
        let Some(&frame) = self.frames.last() else {
            return Err(self.fail(TreeError::Encoding("more than one root element".into())));
        };
        match (frame, name.as_str()) {
            (Frame::Envelope, "Header") => self.push(Frame::Header, is_empty),
            (Frame::Envelope, "Body") => self.push(Frame::Body, is_empty),
            (Frame::Header, _) => {
                return self
                    .open_header_block(&start, is_empty, name, offset)
                    .map(Some)
            }
            (Frame::Body, _) => return self.open_body_element(&start, is_empty, name, offset),
            (Frame::Verzoek, "school") => {
                return self
                    .subtree(&start, is_empty)
                    .map(|node| Some(Item::School(node)))
            }
            (Frame::Verzoek, "toetsafnames") if self.pass == Pass::Everything => {
                self.push(Frame::Toetsafnames, is_empty)
            }
            (Frame::Verzoek, "toetsen") => self.push(Frame::Toetsen, is_empty),
            (Frame::Toetsafnames, "toetsafname") => {
                if is_empty {
                    self.pending = Some(Item::ToetsafnameEnd);
                } else {
                    self.frames.push(Frame::Toetsafname);
                }
                return Ok(Some(Item::ToetsafnameStart { offset }));
            }
            (Frame::Toetsafname, "resultaten") => self.push(Frame::Resultaten, is_empty),
            (Frame::Toetsafname, _) => {
                return self
                    .subtree(&start, is_empty)
                    .map(|node| Some(Item::AfnameField(node)))
            }
            (Frame::Resultaten, "resultaat") => {
                return self
                    .subtree(&start, is_empty)
                    .map(|node| Some(Item::Resultaat(node)))
            }
            (Frame::Toetsen, "toets") => {
                return self
                    .subtree(&start, is_empty)
                    .map(|node| Some(Item::Toets(node)))
            }
            _ => self.skip(&start, is_empty)?,
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVELOPE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
 <s:Header><a:autorisatie xmlns:a="http://www.edustandaard.nl/leerresultaten/2/autorisatie"><a:klantcode>K</a:klantcode></a:autorisatie></s:Header>
 <s:Body><leerresultaten_verzoek xmlns="http://www.edustandaard.nl/leerresultaten/2/leerresultaten">
  <school><schooljaar>2026-2027</schooljaar></school>
  <toetsafnames><toetsafname><leerlingid>L1</leerlingid><resultaten>
    <resultaat key="k1"><afnamedatum>2026-10-01</afnamedatum><toetscode>T</toetscode><score>3</score></resultaat>
  </resultaten></toetsafname></toetsafnames>
  <toetsen><toets><toetscode>T</toetscode></toets></toetsen>
 </leerresultaten_verzoek></s:Body></s:Envelope>"#;

    fn items(xml: &str, pass: Pass) -> Result<Vec<String>, ScanError> {
        let mut scanner = Scanner::new(xml.as_bytes(), pass);
        let mut names = Vec::new();
        while let Some(item) = scanner.next()? {
            names.push(match item {
                Item::Root(root) => format!("root:{root:?}"),
                Item::HeaderElement(node) => format!("header:{}", node.name),
                Item::UnknownHeader {
                    name,
                    must_understand,
                    ..
                } => format!("unknown:{name}:{must_understand}"),
                Item::BodyElement { name, .. } => format!("body:{name}"),
                Item::School(_) => "school".into(),
                Item::ToetsafnameStart { .. } => "afname".into(),
                Item::AfnameField(node) => format!("field:{}", node.name),
                Item::Resultaat(node) => format!("resultaat:{}", node.attribute("key").unwrap()),
                Item::ToetsafnameEnd => "/afname".into(),
                Item::Toets(node) => format!("toets:{}", node.child_text("toetscode").unwrap()),
            });
        }
        Ok(names)
    }

    #[test]
    fn walks_an_envelope_in_order() {
        assert_eq!(
            items(ENVELOPE, Pass::Everything).unwrap(),
            [
                "root:Soap11Envelope",
                "header:autorisatie",
                "body:leerresultaten_verzoek",
                "school",
                "afname",
                "field:leerlingid",
                "resultaat:k1",
                "/afname",
                "toets:T"
            ]
        );
    }

    #[test]
    fn unknown_header_blocks_are_skipped_and_must_understand_is_read() {
        let with = |block: &str| {
            ENVELOPE.replacen(
                "<s:Header>",
                &format!("<s:Header xmlns:x=\"urn:x\">{block}"),
                1,
            )
        };
        let check = |block: &str, expected: &str| {
            let names = items(&with(block), Pass::Everything).unwrap();
            assert_eq!(names[1], expected, "{block}");
            assert_eq!(names[2], "header:autorisatie", "{block}");
        };
        check("<x:a/>", "unknown:a:false");
        check(
            "<x:a s:mustUnderstand=\"1\"><x:b>t</x:b></x:a>",
            "unknown:a:true",
        );
        check("<x:a s:mustUnderstand=\"0\"/>", "unknown:a:false");
        // An unqualified mustUnderstand is not the SOAP attribute.
        check("<x:a mustUnderstand=\"1\"/>", "unknown:a:false");
        check(
            "<x:a s:mustUnderstand=\"1\" s:actor=\"http://schemas.xmlsoap.org/soap/actor/next\"/>",
            "unknown:a:true",
        );
        check(
            "<x:a s:mustUnderstand=\"1\" s:actor=\"urn:someone-else\"/>",
            "unknown:a:false",
        );
    }

    #[test]
    fn definitions_pass_skips_results() {
        let names = items(ENVELOPE, Pass::SkipToetsafnames).unwrap();
        assert!(names.contains(&"toets:T".to_string()));
        assert!(!names.iter().any(|name| name.starts_with("resultaat")));
    }

    #[test]
    fn refuses_doctype_truncation_and_other_encodings() {
        let doctype = "<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>";
        assert!(matches!(
            items(doctype, Pass::Everything).unwrap_err().error,
            TreeError::Doctype
        ));
        let truncated = &ENVELOPE[..ENVELOPE.len() / 2];
        assert!(items(truncated, Pass::Everything).is_err());
        let utf16 = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><x/>";
        assert!(items(utf16, Pass::Everything).is_err());
        let utf16_bytes: Vec<u8> = "\u{feff}<x/>"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut scanner = Scanner::new(utf16_bytes.as_slice(), Pass::Everything);
        assert!(scanner.next().unwrap_err().to_string().contains("UTF-16"));
        let no_bom: Vec<u8> = "<x/>".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut scanner = Scanner::new(no_bom.as_slice(), Pass::Everything);
        assert!(scanner.next().unwrap_err().to_string().contains("UTF-16"));
        assert!(items("geen xml", Pass::Everything).is_err());
        assert!(items("", Pass::Everything).is_err());
    }

    #[test]
    fn recognises_soap12() {
        let xml = r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>"#;
        assert_eq!(
            items(xml, Pass::Everything).unwrap(),
            ["root:Soap12Envelope"]
        );
    }
}
