//! The contract files (WSDL, XSD) and the libxml2 schema check that reports every finding.
//!
//! libxml2's validation context is neither Send nor Sync, so each worker thread
//! compiles the schema once and keeps it in a thread-local.

use crate::domain::{Rule, Violation};
use crate::domain::violation::Violations;
use libxml::bindings;
use libxml::schemas::{SchemaParserContext, SchemaValidationContext};
use std::cell::RefCell;
use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The WSDL, served at `?wsdl` with its address rewritten.
pub const WSDL_NAME: &str = "UWLR_Leerresultaten_v2p2.wsdl";
pub const WSDL: &str = include_str!("../wsdl/UWLR_Leerresultaten_v2p2.wsdl");

/// The schema the validator compiles: it imports the envelope, header and body schemas.
pub const DRIVER_XSD: &str = "UWLR_Gateway_Envelope.xsd";

/// Every XSD the gateway ships, by file name; served at `?xsd=NAME`.
pub const XSD_FILES: [(&str, &str); 5] = [
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
    ("SOAP_Envelope.xsd", include_str!("../xsd/SOAP_Envelope.xsd")),
    (DRIVER_XSD, include_str!("../xsd/UWLR_Gateway_Envelope.xsd")),
];

/// Why the schema set could not be prepared (an operator error, not a sender's).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot write contract files to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("schema {path} does not compile: {messages}")]
    Compile { path: PathBuf, messages: String },
}

/// Writes the embedded XSDs to `dir` (unless an operator points at official files instead)
/// and returns the driver schema's path.
pub fn prepare(dir: &Path, official_dir: Option<&Path>) -> Result<PathBuf, SchemaError> {
    if let Some(official_dir) = official_dir {
        let driver = official_dir.join(DRIVER_XSD);
        check_compiles(&driver)?;
        return Ok(driver);
    }
    std::fs::create_dir_all(dir).map_err(|source| SchemaError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    for (name, contents) in XSD_FILES {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|source| SchemaError::Write { path, source })?;
    }
    let driver = dir.join(DRIVER_XSD);
    check_compiles(&driver)?;
    Ok(driver)
}

/// The embedded XSD of that name, for serving.
pub fn xsd_file(name: &str) -> Option<&'static str> {
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
    static VALIDATOR: RefCell<Option<(PathBuf, SchemaValidationContext)>> = const { RefCell::new(None) };
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
    let rule = if is_parser_error { Rule::Bericht } else { Rule::Xsd };
    collector
        .violations
        .push(Violation::new(rule, message).at_line(line, column));
}

/// Validates the file at `path` with libxml2's streaming validator; every finding is
/// returned (up to the violation cap), none means valid.
pub fn validate_file(driver: &Path, path: &Path) -> Result<Violations, SchemaError> {
    VALIDATOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(compiled, _)| compiled != driver).unwrap_or(true) {
            *slot = Some((driver.to_path_buf(), compile(driver)?));
        }
        let (_, context) = slot.as_mut().expect("validator was just compiled");
        let mut collector = Collector {
            violations: Violations::default(),
        };
        let collector_ptr = &mut collector as *mut Collector as *mut c_void;
        let file = CString::new(path.to_string_lossy().as_bytes()).map_err(|_| SchemaError::Compile {
            path: path.to_path_buf(),
            messages: "path holds a NUL byte".into(),
        })?;
        let status = unsafe {
            bindings::xmlSchemaSetValidStructuredErrors(
                context.as_ptr(),
                Some(collect_error),
                collector_ptr,
            );
            // Parser errors (not well-formed input) go to the thread's global handler.
            bindings::xmlSetStructuredErrorFunc(collector_ptr, Some(collect_error));
            let status = bindings::xmlSchemaValidateFile(context.as_ptr(), file.as_ptr(), 0);
            bindings::xmlSetStructuredErrorFunc(std::ptr::null_mut(), None);
            bindings::xmlSchemaSetValidStructuredErrors(context.as_ptr(), None, std::ptr::null_mut());
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
