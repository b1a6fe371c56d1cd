//! Seeded messages full of XML Schema edge cases, and the schema verdict the gateway and libxml2 are compared on.
//!
//! Each case is a schema-valid demo message (known school, client and learners) with
//! zero to three mutations: whitespace around and inside values, integer forms
//! (signs, leading zeros, `-0`, numbers far beyond 64 bits), date and time edge cases
//! (`24:00:00`, long and negative years, long fractions, offsets at and past ±14:00),
//! duplicate and dangling keys, and reordered, repeated or missing elements.
//! `tests/it/differential.rs` posts them to a real gateway, the `differential` fuzz
//! target runs them through an in-process `Intake`; both compare with libxml2 and the
//! full contract XSD (identity constraints included).
//!
//! The schema verdict of a gateway answer is *invalid* when the fault names UWLR-XSD or
//! UWLR-BERICHT (the gateway reports the identity constraints it checks itself as
//! UWLR-XSD), *valid* when it is accepted or refused only under business rules
//! (UWLR-BEREIK, XSDVERSIE, VOLGORDE, VDEX, LEERLING, SCORE, NORMERING, ONDERDEEL,
//! TOETSVERSIE), and not comparable when the sender was refused before the schema
//! check (AUTORISATIE, KLANT, ACTIVATIE) or the gateway failed (INTERN).

use crate::domain::Rule;
use rand::Rng;

/// One generated message and the mutations that shaped it.
#[derive(Clone, Debug)]
pub struct Case {
    pub body: Vec<u8>,
    /// What was changed, in order, for the report of a disagreement.
    pub mutations: Vec<String>,
}

/// A schema verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid,
}

/// The schema verdict of a gateway answer, from the rules it names (none: accepted).
/// `None` when the answer says nothing about the schema (refused before the check).
pub fn gateway_verdict(rules: &[Rule]) -> Option<Verdict> {
    if rules
        .iter()
        .any(|rule| matches!(rule, Rule::Xsd | Rule::Bericht))
    {
        return Some(Verdict::Invalid);
    }
    if rules.iter().any(|rule| {
        matches!(
            rule,
            Rule::Autorisatie | Rule::Klant | Rule::Activatie | Rule::Grootte | Rule::Intern
        )
    }) {
        return None;
    }
    Some(Verdict::Valid)
}

/// libxml2's verdict with the full contract (`SchemaSet::full`).
pub fn libxml2_verdict(
    full_driver: &std::path::Path,
    body: &[u8],
) -> Result<(Verdict, Vec<String>), crate::schema::SchemaError> {
    let body = crate::http::body::Body::Memory(bytes::Bytes::copy_from_slice(body));
    let violations = crate::schema::validate(full_driver, &body)?;
    let messages: Vec<String> = violations
        .items
        .iter()
        .map(|violation| violation.message.clone())
        .collect();
    Ok(if violations.is_empty() {
        (Verdict::Valid, messages)
    } else {
        (Verdict::Invalid, messages)
    })
}

/// A small XML element; `text` and attribute values are raw XML (references allowed).
#[derive(Clone, Debug)]
struct Element {
    name: &'static str,
    attributes: Vec<(&'static str, String)>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn new(name: &'static str) -> Element {
        Element {
            name,
            attributes: Vec::new(),
            text: String::new(),
            children: Vec::new(),
        }
    }

    fn leaf(name: &'static str, text: impl Into<String>) -> Element {
        Element {
            text: text.into(),
            ..Element::new(name)
        }
    }

    fn with(mut self, child: Element) -> Element {
        self.children.push(child);
        self
    }

    fn render(&self, out: &mut String) {
        out.push_str("<lr:");
        out.push_str(self.name);
        for (name, value) in &self.attributes {
            out.push_str(&format!(" {name}=\"{value}\""));
        }
        out.push('>');
        out.push_str(&self.text);
        for child in &self.children {
            child.render(out);
        }
        out.push_str("</lr:");
        out.push_str(self.name);
        out.push('>');
    }

    /// Paths (child indexes from this element) of every element named one of `names`.
    fn find(&self, names: &[&str]) -> Vec<Vec<usize>> {
        let mut found = Vec::new();
        let mut stack: Vec<(Vec<usize>, &Element)> = vec![(Vec::new(), self)];
        while let Some((path, element)) = stack.pop() {
            if names.contains(&element.name) {
                found.push(path.clone());
            }
            for (index, child) in element.children.iter().enumerate() {
                let mut child_path = path.clone();
                child_path.push(index);
                stack.push((child_path, child));
            }
        }
        found.sort();
        found
    }

    fn at(&mut self, path: &[usize]) -> &mut Element {
        path.iter()
            .fold(self, |element, &index| &mut element.children[index])
    }
}

const TOETSCODES: [&str; 4] = ["DIFF-A", "DIFF-B", "HO-C", "DIFF D"];
const ONDERDEELCODES: [&str; 3] = ["A", "B", "C"];
const WHITESPACE: [&str; 8] = [" ", "  ", "\t", "\n", "\r\n", "&#9;", "&#32;", "&#10;"];

/// Valid and invalid xs:date forms around the edges.
const DATES: [&str; 18] = [
    "2026-10-01",
    "2026-10-01Z",
    "2026-10-01+14:00",
    "2026-10-01-14:00",
    "2026-10-01+14:01",
    "2026-10-01-14:30",
    "10000-01-01",
    "-0001-01-01",
    "-0004-02-29",
    "0000-01-01",
    "02026-10-01",
    "2024-02-29",
    "2026-02-29",
    "1900-02-29",
    "2000-02-29",
    "999999-01-01",
    "2026-13-01",
    "2026-10-01 ",
];

/// Valid and invalid xs:dateTime forms around the edges.
const DATE_TIMES: [&str; 22] = [
    "2027-01-01T24:00:00",
    "2027-01-01T24:00:00.000",
    "2027-01-01T24:00:01",
    "2027-12-31T24:00:00Z",
    "2027-01-01T08:00:00.123456789012345678901234567890",
    "2027-01-01T08:00:00.5",
    "2027-01-01T08:00:00+14:00",
    "2027-01-01T08:00:00-14:00",
    "2027-01-01T08:00:00+14:01",
    "2027-01-01T08:00:00-00:00",
    "10000-01-01T00:00:00",
    "99999999999-01-01T00:00:00",
    "-0001-01-01T00:00:00",
    "0000-01-01T00:00:00",
    "2027-01-01T08:00",
    "2027-01-01T08:00:00.",
    "2027-01-01T08:00:60",
    "2027-02-29T08:00:00",
    "2028-02-29T08:00:00",
    "2027-01-01T23:59:59.9999999999999999999",
    "2027-03-28T02:30:00",
    "2027-10-31T02:30:00",
];

/// Generates case number `index` (its aanmaakdatum is `index` seconds after 2027-01-01).
pub fn case<R: Rng>(rng: &mut R, index: u64) -> Case {
    let mut verzoek = base_message(rng, index);
    let mut mutations = Vec::new();
    let count = match rng.gen_range(0..10) {
        0..=1 => 0,
        2..=5 => 1,
        6..=8 => 2,
        _ => 3,
    };
    for _ in 0..count {
        if let Some(done) = mutate(rng, &mut verzoek) {
            mutations.push(done);
        }
    }
    let mut xml = String::from(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">",
        "<soapenv:Header><aut:autorisatie xmlns:aut=\"http://www.edustandaard.nl/leerresultaten/2/autorisatie\">",
        "<aut:autorisatiesleutel>demo-autorisatiesleutel-2026</aut:autorisatiesleutel>",
        "<aut:klantcode>DEMO-EA</aut:klantcode><aut:klantnaam>Demo Uitgever</aut:klantnaam>",
        "</aut:autorisatie></soapenv:Header><soapenv:Body>"
    ));
    let mut body = String::new();
    verzoek.render(&mut body);
    // The namespace goes on the root element of the verzoek.
    xml.push_str(&body.replacen(
        "<lr:leerresultaten_verzoek>",
        "<lr:leerresultaten_verzoek xmlns:lr=\"http://www.edustandaard.nl/leerresultaten/2/leerresultaten\">",
        1,
    ));
    xml.push_str("</soapenv:Body></soapenv:Envelope>\n");
    Case {
        body: xml.into_bytes(),
        mutations,
    }
}

fn base_message<R: Rng>(rng: &mut R, index: u64) -> Element {
    let aanmaakdatum = chrono::NaiveDate::from_ymd_opt(2027, 1, 1)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .expect("valid base date")
        + chrono::Duration::seconds(index as i64);
    let school = Element::new("school")
        .with(Element::leaf("schooljaar", "2026-2027"))
        .with(Element::leaf("brincode", "99XX"))
        .with(Element::leaf("dependancecode", "01"))
        .with(Element::leaf(
            "aanmaakdatum",
            aanmaakdatum.format("%Y-%m-%dT%H:%M:%S").to_string(),
        ))
        .with(Element::leaf("xsdversie", "2.2"));
    // Toetsen: one to three distinct codes, some with onderdelen.
    let mut toetsen = Element::new("toetsen");
    let mut defined: Vec<(&str, u64, Vec<&str>)> = Vec::new();
    let toets_count = rng.gen_range(1..=3);
    for &toetscode in &TOETSCODES[..toets_count] {
        let max = rng.gen_range(1..=40u64);
        let mut toets = Element::new("toets").with(Element::leaf("toetscode", toetscode));
        if rng.gen_bool(0.3) {
            toets = toets.with(Element::leaf("versie", "1"));
        }
        toets = toets
            .with(Element::leaf("toetsnaam", format!("Toets {toetscode}")))
            .with(normering("toetsnormering", max));
        let mut codes = Vec::new();
        if rng.gen_bool(0.5) {
            let mut onderdelen = Element::new("toetsonderdelen");
            for (position, &code) in ONDERDEELCODES[..rng.gen_range(1..=3)].iter().enumerate() {
                onderdelen = onderdelen.with(
                    Element::new("toetsonderdeel")
                        .with(Element::leaf(
                            "toetsonderdeelvolgnummer",
                            (position + 1).to_string(),
                        ))
                        .with(Element::leaf("toetsonderdeelcode", code))
                        .with(normering("toetsonderdeelnormering", max)),
                );
                codes.push(code);
            }
            toets = toets.with(onderdelen);
        }
        toetsen = toetsen.with(toets);
        defined.push((toetscode, max, codes));
    }
    let mut toetsafnames = Element::new("toetsafnames");
    let mut key = 0;
    for _ in 0..rng.gen_range(1..=2) {
        let mut resultaten = Element::new("resultaten");
        for _ in 0..rng.gen_range(1..=3) {
            let (toetscode, max, codes) = &defined[rng.gen_range(0..defined.len())];
            let mut resultaat = Element::new("resultaat")
                .with(Element::leaf("afnamedatum", "2026-10-01"))
                .with(Element::leaf("toetscode", *toetscode));
            if !codes.is_empty() && rng.gen_bool(0.5) {
                resultaat = resultaat.with(Element::leaf(
                    "toetsonderdeelcode",
                    codes[rng.gen_range(0..codes.len())],
                ));
            }
            resultaat = resultaat.with(Element::leaf("score", rng.gen_range(0..=*max).to_string()));
            resultaat
                .attributes
                .push(("key", format!("D{index}-{key}")));
            key += 1;
            resultaten = resultaten.with(resultaat);
        }
        let leerlingid = format!("LL{:04}", rng.gen_range(1..=20));
        toetsafnames = toetsafnames.with(
            Element::new("toetsafname")
                .with(Element::leaf("leerlingid", leerlingid))
                .with(resultaten),
        );
    }
    Element::new("leerresultaten_verzoek")
        .with(school)
        .with(toetsafnames)
        .with(toetsen)
}

fn normering(name: &'static str, max: u64) -> Element {
    Element::new(name).with(
        Element::new("norm")
            .with(Element::leaf("term", "alles"))
            .with(Element::leaf("beginnormwaarde", "0"))
            .with(Element::leaf("eindnormwaarde", max.to_string())),
    )
}

fn pick<'a, R: Rng, T>(rng: &mut R, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[rng.gen_range(0..items.len())])
}

fn big_number<R: Rng>(rng: &mut R) -> String {
    let digits = rng.gen_range(19..=45);
    let mut number = rng.gen_range(1..=9u8).to_string();
    for _ in 1..digits {
        number.push(char::from(b'0' + rng.gen_range(0..=9u8)));
    }
    number
}

/// Another lexical form of an integer: sign, leading zeros, `-0`, spaces.
fn integer_form<R: Rng>(rng: &mut R, value: &str) -> String {
    let value = value.trim();
    match rng.gen_range(0..8) {
        // Valid, but above any normering here: a business rule breaks too.
        7 => format!("{}", value.parse::<u64>().unwrap_or(0) + 1000),
        0 => format!("+{value}"),
        1 => format!("{}{value}", "0".repeat(rng.gen_range(1..=30))),
        2 => format!("-{value}"),
        3 => format!(" {value}\n"),
        4 => format!("{value}.0"),
        5 => format!("+0{value}"),
        _ => big_number(rng),
    }
}

/// Elements whose value is an xs:string key (whitespace in them is significant).
const STRING_KEYS: [&str; 5] = [
    "toetscode",
    "toetsonderdeelcode",
    "leerlingid",
    "term",
    "xsdversie",
];
/// Elements whose value is an xs:integer (compared by value).
const INTEGERS: [&str; 4] = [
    "score",
    "beginnormwaarde",
    "eindnormwaarde",
    "toetsonderdeelvolgnummer",
];

/// Applies one random mutation; returns what it did, or `None` when it found no target.
fn mutate<R: Rng>(rng: &mut R, verzoek: &mut Element) -> Option<String> {
    match rng.gen_range(0..12) {
        0 | 1 => whitespace_in_value(rng, verzoek),
        2 => whitespace_in_key(rng, verzoek),
        3 | 4 => integer_in_another_form(rng, verzoek),
        5 => date_form(rng, verzoek),
        6 => copied_resultaat_key(rng, verzoek),
        7 => other_resultaat_toetscode(rng, verzoek),
        8 => copied_toetscode(rng, verzoek),
        9 => copied_volgnummer(rng, verzoek),
        _ => changed_structure(rng, verzoek),
    }
}

/// Whitespace around or inside a value (string or integer).
fn whitespace_in_value<R: Rng>(rng: &mut R, verzoek: &mut Element) -> Option<String> {
    let names: Vec<&str> = STRING_KEYS.iter().chain(&INTEGERS).copied().collect();
    let path = pick(rng, &verzoek.find(&names))?.clone();
    let space = *pick(rng, &WHITESPACE)?;
    let element = verzoek.at(&path);
    let text = element.text.clone();
    element.text = match rng.gen_range(0..3) {
        0 => format!("{space}{text}"),
        1 => format!("{text}{space}"),
        _ => {
            let middle = text.len() / 2;
            format!("{}{space}{}", &text[..middle], &text[middle..])
        }
    };
    Some(format!("whitespace {space:?} in {} {text:?}", element.name))
}

/// Whitespace in a key attribute: literal (normalised to spaces) or as a reference.
fn whitespace_in_key<R: Rng>(rng: &mut R, verzoek: &mut Element) -> Option<String> {
    let path = pick(rng, &verzoek.find(&["resultaat"]))?.clone();
    let space = *pick(rng, &WHITESPACE)?;
    let element = verzoek.at(&path);
    let key = &mut element.attributes[0].1;
    *key = if rng.gen_bool(0.5) {
        format!("{key}{space}")
    } else {
        format!("{space}{key}")
    };
    Some(format!("whitespace {space:?} in key {key:?}"))
}

/// An integer written in another lexical form of the same value.
fn integer_in_another_form<R: Rng>(rng: &mut R, verzoek: &mut Element) -> Option<String> {
    let path = pick(rng, &verzoek.find(&INTEGERS))?.clone();
    let element = verzoek.at(&path);
    let before = element.text.clone();
    element.text = integer_form(rng, &before);
    Some(format!(
        "integer {} {before:?} -> {:?}",
        element.name, element.text
    ))
}

/// A date or dateTime in one of the forms XSD allows (or almost allows).
fn date_form<R: Rng>(rng: &mut R, verzoek: &mut Element) -> Option<String> {
    let (names, forms): (&[&str], &[&str]) = if rng.gen_bool(0.5) {
        (&["afnamedatum"], &DATES)
    } else {
        (&["aanmaakdatum"], &DATE_TIMES)
    };
    let path = pick(rng, &verzoek.find(names))?.clone();
    let form = *pick(rng, forms)?;
    verzoek.at(&path).text = form.to_string();
    Some(format!("date {} = {form:?}", names[0]))
}

/// Two results with one key, perhaps differing in whitespace only.
fn copied_resultaat_key<R: Rng>(rng: &mut R, verzoek: &mut Element) -> Option<String> {
    let paths = verzoek.find(&["resultaat"]);
    let from = pick(rng, &paths)?.clone();
    let to = pick(rng, &paths)?.clone();
    let mut key = verzoek.at(&from).attributes[0].1.clone();
    if rng.gen_bool(0.3) {
        key.push_str(pick(rng, &WHITESPACE)?);
    }
    verzoek.at(&to).attributes[0].1 = key.clone();
    Some(format!("key {key:?} copied"))
}

/// A result's toetscode: another one, undefined, or with whitespace.
fn other_resultaat_toetscode<R: Rng>(rng: &mut R, verzoek: &mut Element) -> Option<String> {
    let path = pick(rng, &verzoek.find(&["resultaat"]))?.clone();
    let resultaat = verzoek.at(&path);
    let toetscode = resultaat
        .children
        .iter_mut()
        .find(|child| child.name == "toetscode")?;
    toetscode.text = match rng.gen_range(0..3) {
        0 => "DIFF-ONBEKEND".to_string(),
        1 => format!("{} ", toetscode.text),
        _ => (*pick(rng, &TOETSCODES)?).to_string(),
    };
    Some(format!("resultaat toetscode {:?}", toetscode.text))
}

/// Two toetsen with one code, perhaps differing in whitespace only.
fn copied_toetscode<R: Rng>(rng: &mut R, verzoek: &mut Element) -> Option<String> {
    let paths = verzoek.find(&["toets"]);
    let from = pick(rng, &paths)?.clone();
    let to = pick(rng, &paths)?.clone();
    let mut code = verzoek.at(&from).children.first()?.text.clone();
    if rng.gen_bool(0.4) {
        code = format!("{}{code}", pick(rng, &WHITESPACE)?);
    }
    verzoek.at(&to).children.first_mut()?.text = code.clone();
    Some(format!("toetscode {code:?} copied"))
}

/// Two onderdelen with one volgnummer in different forms.
fn copied_volgnummer<R: Rng>(rng: &mut R, verzoek: &mut Element) -> Option<String> {
    let path = pick(rng, &verzoek.find(&["toetsonderdelen"]))?.clone();
    let onderdelen = verzoek.at(&path);
    let count = onderdelen.children.len();
    if count == 0 {
        return None;
    }
    let from = rng.gen_range(0..count);
    let to = rng.gen_range(0..count);
    let value = onderdelen.children[from].children.first()?.text.clone();
    let form = integer_form(rng, &value);
    onderdelen.children[to].children.first_mut()?.text = form.clone();
    Some(format!("volgnummer {value:?} copied as {form:?}"))
}

/// Structure: swap, repeat or drop a child.
fn changed_structure<R: Rng>(rng: &mut R, verzoek: &mut Element) -> Option<String> {
    let parents = [
        "school",
        "resultaat",
        "toets",
        "norm",
        "toetsonderdeel",
        "toetsafname",
        "resultaten",
        "toetsen",
    ];
    let path = pick(rng, &verzoek.find(&parents))?.clone();
    let parent = verzoek.at(&path);
    let count = parent.children.len();
    if count == 0 {
        return None;
    }
    let index = rng.gen_range(0..count);
    let name = parent.children[index].name;
    let operation = rng.gen_range(0..3);
    // Without its school code the message is another school's: refused before the schema check.
    if operation == 2 && matches!(name, "brincode" | "dependancecode") {
        return None;
    }
    match operation {
        0 if count >= 2 => {
            let other = if index + 1 < count {
                index + 1
            } else {
                index - 1
            };
            parent.children.swap(index, other);
            Some(format!("swapped {name} in {}", parent.name))
        }
        1 => {
            let copy = parent.children[index].clone();
            parent.children.insert(index, copy);
            Some(format!("repeated {name} in {}", parent.name))
        }
        _ => {
            parent.children.remove(index);
            Some(format!("removed {name} from {}", parent.name))
        }
    }
}

/// Randomness read from a fuzzer's bytes (zeros once they run out), so libFuzzer
/// steers the generator's choices instead of a seed.
pub(crate) struct ByteRng<'a> {
    data: &'a [u8],
}

impl<'a> ByteRng<'a> {
    pub(crate) fn new(data: &'a [u8]) -> ByteRng<'a> {
        ByteRng { data }
    }
}

impl rand::RngCore for ByteRng<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.fill_bytes(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest.iter_mut() {
            *byte = match self.data.split_first() {
                Some((first, rest)) => {
                    self.data = rest;
                    *first
                }
                None => 0,
            };
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn cases_are_deterministic_and_unmutated_ones_are_valid() {
        let dir = tempfile::tempdir().unwrap();
        let set = crate::schema::prepare(dir.path(), None).unwrap();
        let mut first = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut second = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut unmutated = 0;
        for index in 0..200 {
            let case = super::case(&mut first, index);
            assert_eq!(case.body, super::case(&mut second, index).body);
            if case.mutations.is_empty() {
                unmutated += 1;
                let (verdict, messages) = libxml2_verdict(&set.full, &case.body).unwrap();
                assert_eq!(verdict, Verdict::Valid, "{messages:?}");
            }
        }
        assert!(unmutated > 10);
        // A fuzzer's bytes drive the same generator; empty input is a plain case.
        let case = super::case(&mut ByteRng::new(&[]), 0);
        assert!(case.mutations.is_empty());
    }

    #[test]
    fn verdicts_count_schema_rules_only() {
        assert_eq!(gateway_verdict(&[]), Some(Verdict::Valid));
        assert_eq!(
            gateway_verdict(&[Rule::Score, Rule::Bereik]),
            Some(Verdict::Valid)
        );
        assert_eq!(
            gateway_verdict(&[Rule::Score, Rule::Xsd]),
            Some(Verdict::Invalid)
        );
        assert_eq!(gateway_verdict(&[Rule::Activatie]), None);
    }
}
