//! A small builder for schema-valid `leerresultaten_verzoek` messages, so tests state only what matters to them.

use super::{DEMO_KLANTCODE, DEMO_KLANTNAAM, DEMO_SLEUTEL};

/// An aanmaakdatum `seconds` after 2026-11-20T00:00:00 (local time, no offset, as the samples write it).
/// Later than every sample's, so a test can send samples first, and in the past, because
/// an aanmaakdatum ahead of the gateway's clock is refused (UWLR-TOEKOMST).
pub fn aanmaakdatum(seconds: u32) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2026, 11, 20)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .expect("valid base date");
    (base + chrono::Duration::seconds(i64::from(seconds)))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// One `resultaat`.
#[derive(Clone, Debug)]
pub struct Resultaat {
    pub key: String,
    pub afnamedatum: String,
    pub toetscode: String,
    pub versie: Option<String>,
    pub toetsonderdeelcode: Option<String>,
    pub score: u64,
}

impl Resultaat {
    pub fn score(key: &str, toetscode: &str, score: u64) -> Resultaat {
        Resultaat {
            key: key.into(),
            afnamedatum: "2026-12-01".into(),
            toetscode: toetscode.into(),
            versie: None,
            toetsonderdeelcode: None,
            score,
        }
    }

    pub fn versie(mut self, versie: &str) -> Self {
        self.versie = Some(versie.into());
        self
    }

    pub fn onderdeel(mut self, toetsonderdeelcode: &str) -> Self {
        self.toetsonderdeelcode = Some(toetsonderdeelcode.into());
        self
    }

    pub fn afnamedatum(mut self, afnamedatum: &str) -> Self {
        self.afnamedatum = afnamedatum.into();
        self
    }
}

/// One `toets` definition: a normering 0..=max (one norm) on the toets and on each onderdeel.
#[derive(Clone, Debug)]
pub struct Toets {
    pub toetscode: String,
    pub versie: Option<String>,
    pub toetsnaam: String,
    /// Highest score of the toetsnormering; None: no toetsnormering.
    pub max: Option<u64>,
    /// (toetsonderdeelcode, highest score of its normering).
    pub onderdelen: Vec<(String, u64)>,
    /// Named norms (term, beginnormwaarde, eindnormwaarde) that replace the one `max` norm.
    pub norms: Vec<(String, u64, u64)>,
}

impl Toets {
    pub fn new(toetscode: &str) -> Toets {
        Toets {
            toetscode: toetscode.into(),
            versie: None,
            toetsnaam: toetscode.into(),
            max: Some(10),
            onderdelen: Vec::new(),
            norms: Vec::new(),
        }
    }

    pub fn versie(mut self, versie: &str) -> Self {
        self.versie = Some(versie.into());
        self
    }

    pub fn naam(mut self, toetsnaam: &str) -> Self {
        self.toetsnaam = toetsnaam.into();
        self
    }

    pub fn max(mut self, max: Option<u64>) -> Self {
        self.max = max;
        self
    }

    pub fn onderdeel(mut self, code: &str, max: u64) -> Self {
        self.onderdelen.push((code.into(), max));
        self
    }

    /// A toetsnormering of named norms, e.g. `[("onvoldoende", 0, 49), ("voldoende", 50, 100)]`.
    pub fn norms(mut self, norms: &[(&str, u64, u64)]) -> Self {
        self.norms = norms
            .iter()
            .map(|(term, begin, end)| (term.to_string(), *begin, *end))
            .collect();
        self
    }
}

/// One `toetsafname`.
#[derive(Clone, Debug)]
pub struct Toetsafname {
    pub leerlingid: String,
    pub eckid: Option<String>,
    pub resultaten: Vec<Resultaat>,
}

/// A whole message: autorisatie header, school, toetsafnames, toetsen.
#[derive(Clone, Debug)]
pub struct Message {
    pub klantcode: String,
    pub klantnaam: String,
    pub autorisatiesleutel: String,
    pub brincode: String,
    pub dependancecode: Option<String>,
    pub aanmaakdatum: String,
    pub xsdversie: String,
    pub toetsafnames: Vec<Toetsafname>,
    pub toetsen: Vec<Toets>,
}

fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

impl Message {
    /// From the demo client for school 99XX01, with nothing in it yet.
    pub fn demo(aanmaakdatum: &str) -> Message {
        Message {
            klantcode: DEMO_KLANTCODE.into(),
            klantnaam: DEMO_KLANTNAAM.into(),
            autorisatiesleutel: DEMO_SLEUTEL.into(),
            brincode: "99XX".into(),
            dependancecode: Some("01".into()),
            aanmaakdatum: aanmaakdatum.into(),
            xsdversie: "2.2".into(),
            toetsafnames: Vec::new(),
            toetsen: Vec::new(),
        }
    }

    pub fn client(mut self, klantcode: &str, klantnaam: &str, autorisatiesleutel: &str) -> Self {
        self.klantcode = klantcode.into();
        self.klantnaam = klantnaam.into();
        self.autorisatiesleutel = autorisatiesleutel.into();
        self
    }

    /// `99XX01` is brincode 99XX + dependancecode 01; `99ZZ` is a brincode alone.
    pub fn school(mut self, code: &str) -> Self {
        self.brincode = code[..4].into();
        self.dependancecode = (code.len() > 4).then(|| code[4..].to_string());
        self
    }

    pub fn xsdversie(mut self, xsdversie: &str) -> Self {
        self.xsdversie = xsdversie.into();
        self
    }

    pub fn afname(mut self, leerlingid: &str, resultaten: Vec<Resultaat>) -> Self {
        self.toetsafnames.push(Toetsafname {
            leerlingid: leerlingid.into(),
            eckid: None,
            resultaten,
        });
        self
    }

    pub fn toets(mut self, toets: Toets) -> Self {
        self.toetsen.push(toets);
        self
    }

    /// The SOAP 1.1 envelope with the autorisatie header, as bytes to POST.
    pub fn envelope(&self) -> Vec<u8> {
        format!(
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\n",
                "  <soapenv:Header>\n",
                "    <aut:autorisatie xmlns:aut=\"http://www.edustandaard.nl/leerresultaten/2/autorisatie\">\n",
                "      <aut:autorisatiesleutel>{}</aut:autorisatiesleutel>\n",
                "      <aut:klantcode>{}</aut:klantcode>\n",
                "      <aut:klantnaam>{}</aut:klantnaam>\n",
                "    </aut:autorisatie>\n",
                "  </soapenv:Header>\n",
                "  <soapenv:Body>\n{}  </soapenv:Body>\n",
                "</soapenv:Envelope>\n"
            ),
            escape(&self.autorisatiesleutel),
            escape(&self.klantcode),
            escape(&self.klantnaam),
            self.verzoek()
        )
        .into_bytes()
    }

    /// The bare `leerresultaten_verzoek` (as `uwlr-gateway validate` also takes it).
    pub fn bare(&self) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
            self.verzoek()
        )
        .into_bytes()
    }

    fn verzoek(&self) -> String {
        let mut xml = String::new();
        xml.push_str("<lr:leerresultaten_verzoek xmlns:lr=\"http://www.edustandaard.nl/leerresultaten/2/leerresultaten\">\n");
        xml.push_str("<lr:school>\n<lr:schooljaar>2026-2027</lr:schooljaar>\n");
        xml.push_str(&format!(
            "<lr:brincode>{}</lr:brincode>\n",
            escape(&self.brincode)
        ));
        if let Some(dependancecode) = &self.dependancecode {
            xml.push_str(&format!(
                "<lr:dependancecode>{}</lr:dependancecode>\n",
                escape(dependancecode)
            ));
        }
        xml.push_str(&format!(
            "<lr:aanmaakdatum>{}</lr:aanmaakdatum>\n",
            escape(&self.aanmaakdatum)
        ));
        xml.push_str(&format!(
            "<lr:xsdversie>{}</lr:xsdversie>\n</lr:school>\n",
            escape(&self.xsdversie)
        ));
        xml.push_str("<lr:toetsafnames>\n");
        for toetsafname in &self.toetsafnames {
            xml.push_str(&format!(
                "<lr:toetsafname>\n<lr:leerlingid>{}</lr:leerlingid>\n",
                escape(&toetsafname.leerlingid)
            ));
            if let Some(eckid) = &toetsafname.eckid {
                xml.push_str(&format!("<lr:eckid>{}</lr:eckid>\n", escape(eckid)));
            }
            xml.push_str("<lr:resultaten>\n");
            for resultaat in &toetsafname.resultaten {
                xml.push_str(&format!(
                    "<lr:resultaat key=\"{}\">\n",
                    escape(&resultaat.key)
                ));
                xml.push_str(&format!(
                    "<lr:afnamedatum>{}</lr:afnamedatum>\n",
                    escape(&resultaat.afnamedatum)
                ));
                xml.push_str(&format!(
                    "<lr:toetscode>{}</lr:toetscode>\n",
                    escape(&resultaat.toetscode)
                ));
                if let Some(versie) = &resultaat.versie {
                    xml.push_str(&format!("<lr:versie>{}</lr:versie>\n", escape(versie)));
                }
                if let Some(code) = &resultaat.toetsonderdeelcode {
                    xml.push_str(&format!(
                        "<lr:toetsonderdeelcode>{}</lr:toetsonderdeelcode>\n",
                        escape(code)
                    ));
                }
                xml.push_str(&format!(
                    "<lr:score>{}</lr:score>\n</lr:resultaat>\n",
                    resultaat.score
                ));
            }
            xml.push_str("</lr:resultaten>\n</lr:toetsafname>\n");
        }
        xml.push_str("</lr:toetsafnames>\n<lr:toetsen>\n");
        for toets in &self.toetsen {
            xml.push_str(&format!(
                "<lr:toets>\n<lr:toetscode>{}</lr:toetscode>\n",
                escape(&toets.toetscode)
            ));
            if let Some(versie) = &toets.versie {
                xml.push_str(&format!("<lr:versie>{}</lr:versie>\n", escape(versie)));
            }
            xml.push_str(&format!(
                "<lr:toetsnaam>{}</lr:toetsnaam>\n",
                escape(&toets.toetsnaam)
            ));
            if !toets.norms.is_empty() {
                let norms: String = toets
                    .norms
                    .iter()
                    .map(|(term, begin, end)| named_norm(term, *begin, *end))
                    .collect();
                xml.push_str(&format!("<lr:toetsnormering>{norms}</lr:toetsnormering>\n"));
            } else if let Some(max) = toets.max {
                xml.push_str(&format!(
                    "<lr:toetsnormering>{}</lr:toetsnormering>\n",
                    norm(max)
                ));
            }
            if !toets.onderdelen.is_empty() {
                xml.push_str("<lr:toetsonderdelen>\n");
                for (index, (code, max)) in toets.onderdelen.iter().enumerate() {
                    xml.push_str(&format!(
                        concat!(
                            "<lr:toetsonderdeel><lr:toetsonderdeelvolgnummer>{}</lr:toetsonderdeelvolgnummer>",
                            "<lr:toetsonderdeelcode>{}</lr:toetsonderdeelcode>",
                            "<lr:toetsonderdeelnormering>{}</lr:toetsonderdeelnormering></lr:toetsonderdeel>\n"
                        ),
                        index + 1,
                        escape(code),
                        norm(*max)
                    ));
                }
                xml.push_str("</lr:toetsonderdelen>\n");
            }
            xml.push_str("</lr:toets>\n");
        }
        xml.push_str("</lr:toetsen>\n</lr:leerresultaten_verzoek>\n");
        xml
    }
}

fn norm(max: u64) -> String {
    named_norm("schaal", 0, max)
}

fn named_norm(term: &str, begin: u64, end: u64) -> String {
    format!(
        "<lr:norm><lr:term>{}</lr:term><lr:beginnormwaarde>{begin}</lr:beginnormwaarde><lr:eindnormwaarde>{end}</lr:eindnormwaarde></lr:norm>",
        escape(term)
    )
}
