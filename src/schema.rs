//! The contract files (WSDL, XSD) and the libxml2 schema check that reports every finding.
//!
//! libxml2's validation context is neither Send nor Sync, so each worker thread
//! compiles the schema once and keeps it in a thread-local.

use crate::domain::violation::Violations;
use crate::domain::{Rule, Violation};
use libxml::bindings;
use libxml::schemas::{SchemaParserContext, SchemaValidationContext};
use std::cell::RefCell;
use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The WSDL, served at `?wsdl` with its address rewritten.
pub(crate) const WSDL: &str = include_str!("../wsdl/UWLR_Leerresultaten_v2p2.wsdl");

/// The schema the validator compiles: it imports the envelope, header and body schemas.
pub(crate) const DRIVER_XSD: &str = "UWLR_Gateway_Envelope.xsd";

/// Every XSD the gateway ships, by file name; served at `?xsd=NAME`.
pub(crate) const XSD_FILES: [(&str, &str); 5] = [
    (
        "UWLR_Leerresultaten_v2p2.xsd",
        include_str!("../xsd/UWLR_Leerresultaten_v2p2.xsd"),
    ),
    (
        "UWLR_Autorisatie_v2p2.xsd",
        include_str!("../xsd/UWLR_Autorisatie_v2p2.xsd"),
    ),
    (
        "Overstapdossier_1.2_20150302.xsd",
        include_str!("../xsd/Overstapdossier_1.2_20150302.xsd"),
    ),
    (
        "SOAP_Envelope.xsd",
        include_str!("../xsd/SOAP_Envelope.xsd"),
    ),
    (DRIVER_XSD, include_str!("../xsd/UWLR_Gateway_Envelope.xsd")),
];

/// Why the schema set could not be prepared (an operator error, not a sender's).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot write contract files to {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("schema {path} does not compile: {messages}")]
    Compile { path: PathBuf, messages: String },
}

/// The two compiled forms of the contract.
#[derive(Clone, Debug)]
pub struct SchemaSet {
    /// The schemas as written, identity constraints included (offline `validate`).
    pub full: PathBuf,
    /// The same schemas without xs:key, xs:keyref and xs:unique: libxml2 keeps every
    /// key of a message in memory to check those (108 MB for 200,000 results), so the
    /// gateway checks them itself while streaming (see `intake`) and validates with this.
    pub streaming: PathBuf,
}

/// Writes the contract XSDs (embedded, or every `*.xsd` of an operator's folder of
/// official files) to `dir/full` and `dir/streaming`, compiles both, and returns their drivers.
pub fn prepare(dir: &Path, official_dir: Option<&Path>) -> Result<SchemaSet, SchemaError> {
    let files: Vec<(String, String)> = match official_dir {
        None => XSD_FILES
            .iter()
            .map(|(name, contents)| (name.to_string(), contents.to_string()))
            .collect(),
        Some(official_dir) => {
            let read_error = |source| SchemaError::Write {
                path: official_dir.to_path_buf(),
                source,
            };
            let mut files = Vec::new();
            for entry in std::fs::read_dir(official_dir).map_err(read_error)? {
                let path = entry.map_err(read_error)?.path();
                if path.extension().is_some_and(|ext| ext == "xsd") {
                    let contents =
                        std::fs::read_to_string(&path).map_err(|source| SchemaError::Write {
                            path: path.clone(),
                            source,
                        })?;
                    let name = path
                        .file_name()
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    files.push((name, contents));
                }
            }
            files
        }
    };
    let write_set =
        |sub: &str, transform: &dyn Fn(&str) -> String| -> Result<PathBuf, SchemaError> {
            let target = dir.join(sub);
            std::fs::create_dir_all(&target).map_err(|source| SchemaError::Write {
                path: target.clone(),
                source,
            })?;
            for (name, contents) in &files {
                let path = target.join(name);
                std::fs::write(&path, transform(contents))
                    .map_err(|source| SchemaError::Write { path, source })?;
            }
            let driver = target.join(DRIVER_XSD);
            check_compiles(&driver)?;
            Ok(driver)
        };
    Ok(SchemaSet {
        full: write_set("full", &|contents| contents.to_string())?,
        streaming: write_set("streaming", &strip_identity_constraints)?,
    })
}

/// Removes xs:key, xs:keyref and xs:unique declarations from a schema document.
pub(crate) fn strip_identity_constraints(xsd: &str) -> String {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xsd);
    let mut writer = quick_xml::Writer::new(Vec::with_capacity(xsd.len()));
    let is_constraint = |name: &[u8]| matches!(name, b"key" | b"keyref" | b"unique");
    let mut skipping = 0usize;
    loop {
        let event = match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(event) => event,
            // Not readable as XML: leave it for the compiler to report.
            Err(_) => return xsd.to_string(),
        };
        match &event {
            Event::Start(start) if skipping > 0 || is_constraint(start.local_name().as_ref()) => {
                skipping += 1;
                continue;
            }
            Event::End(_) if skipping > 0 => {
                skipping -= 1;
                continue;
            }
            Event::Empty(start) if skipping > 0 || is_constraint(start.local_name().as_ref()) => {
                continue
            }
            _ if skipping > 0 => continue,
            _ => {}
        }
        if writer.write_event(event).is_err() {
            return xsd.to_string();
        }
    }
    String::from_utf8(writer.into_inner()).unwrap_or_else(|_| xsd.to_string())
}

/// The embedded XSD of that name, for serving.
pub(crate) fn xsd_file(name: &str) -> Option<&'static str> {
    XSD_FILES
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, contents)| *contents)
}

fn init_libxml() {
    static INIT: Once = Once::new();
    INIT.call_once(|| unsafe { bindings::xmlInitParser() });
}

fn compile(driver: &Path) -> Result<SchemaValidationContext, SchemaError> {
    init_libxml();
    let mut parser = SchemaParserContext::from_file(&driver.to_string_lossy());
    SchemaValidationContext::from_parser(&mut parser).map_err(|errors| SchemaError::Compile {
        path: driver.to_path_buf(),
        messages: errors
            .iter()
            .map(|error| error.message.as_deref().unwrap_or("").trim().to_string())
            .collect::<Vec<_>>()
            .join("; "),
    })
}

fn check_compiles(driver: &Path) -> Result<(), SchemaError> {
    compile(driver).map(|_| ())
}

thread_local! {
    /// The compiled drivers of this thread (the streaming set, and the full set for a
    /// small message refused before the store pass), so alternating does not recompile.
    static VALIDATOR: RefCell<Vec<(PathBuf, SchemaValidationContext)>> = const { RefCell::new(Vec::new()) };
}

/// Findings collected from libxml2's callbacks, capped like every violation list.
struct Collector {
    violations: Violations,
}

unsafe extern "C" fn collect_error(context: *mut c_void, error: bindings::xmlErrorPtr) {
    if context.is_null() || error.is_null() {
        return;
    }
    let collector = unsafe { &mut *(context as *mut Collector) };
    let error = unsafe { &*error };
    if error.level == bindings::xmlErrorLevel_XML_ERR_WARNING {
        return;
    }
    let message = if error.message.is_null() {
        "schema violation".to_string()
    } else {
        unsafe { CStr::from_ptr(error.message) }
            .to_string_lossy()
            .trim()
            .to_string()
    };
    let line = (error.line > 0).then_some(error.line as u64);
    let column = (error.int2 > 0).then_some(error.int2 as u64);
    let is_parser_error = error.domain == bindings::xmlErrorDomain_XML_FROM_PARSER as i32;
    let rule = if is_parser_error {
        Rule::Bericht
    } else {
        Rule::Xsd
    };
    collector
        .violations
        .push(Violation::new(rule, message).at_line(line, column));
}

/// Validates a body with libxml2's streaming validator; every finding is
/// returned (up to the violation cap), none means valid.
pub(crate) fn validate(
    driver: &Path,
    body: &crate::http::body::Body,
) -> Result<Violations, SchemaError> {
    VALIDATOR.with(|cell| {
        let mut compiled = cell.borrow_mut();
        let index = match compiled.iter().position(|(path, _)| path == driver) {
            Some(index) => index,
            None => {
                if compiled.len() >= 2 {
                    compiled.remove(0);
                }
                compiled.push((driver.to_path_buf(), compile(driver)?));
                compiled.len() - 1
            }
        };
        let (_, context) = &mut compiled[index];
        let mut collector = Collector {
            violations: Violations::default(),
        };
        let collector_ptr = &mut collector as *mut Collector as *mut c_void;
        let file =
            match body.path() {
                Some(path) => Some(CString::new(path.to_string_lossy().as_bytes()).map_err(
                    |_| SchemaError::Compile {
                        path: path.to_path_buf(),
                        messages: "path holds a NUL byte".into(),
                    },
                )?),
                None => None,
            };
        let status = unsafe {
            bindings::xmlSchemaSetValidStructuredErrors(
                context.as_ptr(),
                Some(collect_error),
                collector_ptr,
            );
            // Parser errors (not well-formed input) go to the thread's global handler.
            bindings::xmlSetStructuredErrorFunc(collector_ptr, Some(collect_error));
            let status = match (&file, body) {
                (Some(file), _) => {
                    bindings::xmlSchemaValidateFile(context.as_ptr(), file.as_ptr(), 0)
                }
                (None, crate::http::body::Body::Memory(bytes)) => {
                    // The stream takes the input buffer (a copy of the bytes) and frees it.
                    let input = bindings::xmlParserInputBufferCreateMem(
                        bytes.as_ptr() as *const std::os::raw::c_char,
                        bytes.len().min(i32::MAX as usize) as i32,
                        bindings::xmlCharEncoding_XML_CHAR_ENCODING_NONE,
                    );
                    if input.is_null() {
                        -1
                    } else {
                        bindings::xmlSchemaValidateStream(
                            context.as_ptr(),
                            input,
                            bindings::xmlCharEncoding_XML_CHAR_ENCODING_NONE,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                        )
                    }
                }
                (None, _) => -1,
            };
            bindings::xmlSetStructuredErrorFunc(std::ptr::null_mut(), None);
            bindings::xmlSchemaSetValidStructuredErrors(
                context.as_ptr(),
                None,
                std::ptr::null_mut(),
            );
            status
        };
        let mut violations = collector.violations;
        if status != 0 && violations.is_empty() {
            violations.push(Violation::new(
                Rule::Xsd,
                format!("the schema check failed (libxml2 status {status})"),
            ));
        }
        Ok(violations)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_constraints_are_stripped_and_the_rest_kept() {
        let (_, leerresultaten) = XSD_FILES[0];
        let stripped = strip_identity_constraints(leerresultaten);
        assert!(leerresultaten.contains("krAfnameToets"));
        assert!(!stripped.contains("krAfnameToets"));
        assert!(!stripped.contains("kResultaat"));
        assert!(stripped.contains("ctpToetsafname"));
        assert!(stripped.contains("leerresultaten_verzoek"));
    }

    #[test]
    fn memory_and_file_bodies_get_the_same_verdict() {
        use crate::http::body::Body;
        let dir = tempfile::tempdir().unwrap();
        let set = prepare(dir.path(), None).unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
        for (sample, valid) in [
            ("01-drip-een-resultaat.xml", true),
            ("33-uwlr-xsd-decimal-score.xml", false),
        ] {
            let path = root.join(sample);
            let from_file = validate(&set.streaming, &Body::Path(path.clone())).unwrap();
            let from_memory = validate(
                &set.streaming,
                &Body::Memory(bytes::Bytes::from(std::fs::read(&path).unwrap())),
            )
            .unwrap();
            assert_eq!(
                from_file.is_empty(),
                valid,
                "{sample}: {:?}",
                from_file.items
            );
            assert_eq!(from_file, from_memory, "{sample}");
        }
    }

    #[test]
    fn both_sets_compile() {
        let dir = tempfile::tempdir().unwrap();
        let set = prepare(dir.path(), None).unwrap();
        assert!(set.full.exists() && set.streaming.exists());
    }
}
