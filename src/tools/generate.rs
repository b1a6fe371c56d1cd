//! `uwlr-gateway generate`: deterministic, realistic UWLR messages and the matching roster.
//!
//! Output is written as it is produced, so a 500 MB batch needs no more memory than a drip file.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Clone, Debug)]
pub(crate) struct GenerateOptions {
    pub(crate) schools: u32,
    /// Learners per school.
    pub(crate) learners: u32,
    /// Distinct toetsen (test definitions).
    pub(crate) toetsen: u32,
    /// Results (toets(onderdeel)afnames, each with its own key) per school.
    pub(crate) afnames: u64,
    pub(crate) seed: u64,
    pub(crate) drip: bool,
    pub(crate) klantcode: String,
    pub(crate) klantnaam: String,
    pub(crate) autorisatiesleutel: String,
    pub(crate) out: PathBuf,
}

/// What was written.
#[derive(Clone, Debug, Default)]
pub(crate) struct GenerateReport {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) roster: PathBuf,
    pub(crate) setup: PathBuf,
    pub(crate) messages: u64,
    pub(crate) resultaten: u64,
    pub(crate) bytes: u64,
}

const VAKGEBIEDEN: &str =
    "http://purl.edustandaard.nl/concept/328cc12a-87b2-41c4-aef8-853595f9f9dd";
const REFERENTIENIVEAU: &str = "urn:uwlr-gateway:vdex:referentieniveau";
const VAKKEN: [(&str, &str); 5] = [
    ("REK", "Rekenen en wiskunde"),
    ("SPEL", "Spelling"),
    ("LEES", "Begrijpend/studerend lezen"),
    ("TAAL", "Voortgezet taal"),
    ("WO", "Wereldoriëntatie"),
];

/// The written form of generated school `index`: the first is the demo school.
pub fn school_code(index: u32) -> (String, String) {
    if index == 0 {
        return ("99XX".into(), "01".into());
    }
    let letter = |n: u32| (b'A' + (n % 26) as u8) as char;
    (
        format!(
            "{:02}{}{}",
            10 + (index / 676) % 90,
            letter(index / 26),
            letter(index)
        ),
        "01".into(),
    )
}

/// One generated test definition.
#[derive(Clone, Debug)]
struct GenToets {
    code: String,
    versie: &'static str,
    vak: usize,
    onderdelen: Vec<(String, u64)>,
    has_toetsnormering: bool,
}

impl GenToets {
    fn new(index: u32, versie: &'static str) -> GenToets {
        let vak = index as usize % VAKKEN.len();
        let mut count = 1 + (index as usize * 7 % 4);
        if versie == "2" {
            count += 1;
        }
        let onderdelen = (0..count)
            .map(|n| {
                (
                    format!("O{}", n + 1),
                    10 + ((index as u64 * 13 + n as u64 * 7) % 21),
                )
            })
            .collect();
        GenToets {
            code: format!("GEN-{}-{index:03}", VAKKEN[vak].0),
            versie,
            vak,
            onderdelen,
            has_toetsnormering: index % 5 != 4,
        }
    }

    fn total_max(&self) -> u64 {
        self.onderdelen.iter().map(|(_, max)| max).sum()
    }

    /// Toetsen whose index is 3 mod 4 get a second version halfway.
    fn has_version_2(index: u32) -> bool {
        index % 4 == 3
    }

    fn write(&self, out: &mut String) {
        let (_, vakgebied) = VAKKEN[self.vak];
        let _ = write!(
            out,
            "<lr:toets><lr:toetscode>{code}</lr:toetscode><lr:versie>{versie}</lr:versie><lr:toetsnaam>Gegenereerde toets {code}</lr:toetsnaam><lr:vakgebied vocabulaire=\"{VAKGEBIEDEN}\">{vakgebied}</lr:vakgebied>",
            code = self.code,
            versie = self.versie
        );
        if self.has_toetsnormering {
            let max = self.total_max();
            let half = max / 2;
            let _ = write!(
                out,
                "<lr:toetsnormering><lr:toetsniveau vocabulaire=\"{REFERENTIENIVEAU}\">1F</lr:toetsniveau><lr:norm><lr:term>onvoldoende</lr:term><lr:beginnormwaarde>0</lr:beginnormwaarde><lr:eindnormwaarde>{half}</lr:eindnormwaarde></lr:norm><lr:norm><lr:term>voldoende</lr:term><lr:beginnormwaarde>{}</lr:beginnormwaarde><lr:eindnormwaarde>{max}</lr:eindnormwaarde></lr:norm></lr:toetsnormering>",
                half + 1
            );
        }
        out.push_str("<lr:toetsonderdelen>");
        for (number, (code, max)) in self.onderdelen.iter().enumerate() {
            let _ = write!(
                out,
                "<lr:toetsonderdeel><lr:toetsonderdeelvolgnummer>{}</lr:toetsonderdeelvolgnummer><lr:toetsonderdeelcode>{code}</lr:toetsonderdeelcode><lr:toetsonderdeelnormering><lr:norm><lr:term>score</lr:term><lr:beginnormwaarde>0</lr:beginnormwaarde><lr:eindnormwaarde>{max}</lr:eindnormwaarde></lr:norm></lr:toetsonderdeelnormering></lr:toetsonderdeel>",
                number + 1
            );
        }
        out.push_str("</lr:toetsonderdelen></lr:toets>");
    }
}

struct MessageWriter {
    out: BufWriter<File>,
    bytes: u64,
}

impl MessageWriter {
    fn create(path: &Path) -> std::io::Result<MessageWriter> {
        Ok(MessageWriter {
            out: BufWriter::with_capacity(1 << 20, File::create(path)?),
            bytes: 0,
        })
    }

    fn write(&mut self, text: &str) -> std::io::Result<()> {
        self.bytes += text.len() as u64;
        self.out.write_all(text.as_bytes())
    }

    fn finish(mut self) -> std::io::Result<u64> {
        self.out.flush()?;
        Ok(self.bytes)
    }
}

/// The start of a message up to its toetsafnames: the SOAP envelope with the `autorisatie`
/// header and the `school` block, both written from the types the intake reads them into.
fn envelope_head(options: &GenerateOptions, school: (&str, &str), aanmaakdatum: &str) -> String {
    let autorisatie = crate::uwlr::Autorisatie {
        autorisatiesleutel: options.autorisatiesleutel.clone(),
        klantcode: options.klantcode.clone(),
        klantnaam: options.klantnaam.clone(),
    };
    let school = crate::uwlr::School {
        schooljaar: "2026-2027".into(),
        brincode: Some(school.0.into()),
        dependancecode: Some(school.1.into()),
        schoolkey: None,
        aanmaakdatum: aanmaakdatum.into(),
        auteur: Some("uwlr-gateway generate".into()),
        xsdversie: "2.2".into(),
        commentaar: None,
    };
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">",
            "<soapenv:Header>{}</soapenv:Header><soapenv:Body>",
            "<lr:leerresultaten_verzoek xmlns:lr=\"{}\">\n{}\n<lr:toetsafnames>\n"
        ),
        fragment(&autorisatie),
        crate::uwlr::NS_LEERRESULTATEN,
        fragment(&school),
    )
}

/// One element as XML without a declaration or indentation, for a message written in parts.
fn fragment(value: &impl yaserde::YaSerialize) -> String {
    let config = yaserde::ser::Config {
        perform_indent: false,
        write_document_declaration: false,
        indent_string: None,
    };
    yaserde::ser::to_string_with_config(value, &config).expect("a message block always serialises")
}

/// One toetsafname element (a learner taking one toets), with its results.
struct GenAfname<'a> {
    leerlingid: String,
    eckid: Option<String>,
    toets: &'a GenToets,
    key_prefix: String,
    afnamedatum: String,
    /// Onderdeel scores; the toets-level score is sent for some, derived for others.
    scores: Vec<u64>,
    send_total: bool,
    score_shift: u64,
}

impl GenAfname<'_> {
    fn resultaten(&self) -> u64 {
        self.scores.len() as u64 + u64::from(self.send_total)
    }

    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "<lr:toetsafname><lr:leerlingid>{}</lr:leerlingid>",
            self.leerlingid
        );
        if let Some(eckid) = &self.eckid {
            let _ = write!(out, "<lr:eckid>{eckid}</lr:eckid>");
        }
        out.push_str("<lr:resultaten>");
        let mut total = 0;
        for (index, score) in self.scores.iter().enumerate() {
            let max = self.toets.onderdelen[index].1;
            let score = (score + self.score_shift) % (max + 1);
            total += score;
            let _ = write!(
                out,
                "<lr:resultaat key=\"{}-{}\"><lr:afnamedatum>{}</lr:afnamedatum><lr:toetscode>{}</lr:toetscode><lr:versie>{}</lr:versie><lr:toetsonderdeelcode>{}</lr:toetsonderdeelcode><lr:score>{score}</lr:score></lr:resultaat>",
                self.key_prefix, self.toets.onderdelen[index].0, self.afnamedatum, self.toets.code, self.toets.versie, self.toets.onderdelen[index].0
            );
        }
        if self.send_total {
            let _ = write!(
                out,
                "<lr:resultaat key=\"{}-T\"><lr:afnamedatum>{}</lr:afnamedatum><lr:toetscode>{}</lr:toetscode><lr:versie>{}</lr:versie><lr:score>{total}</lr:score></lr:resultaat>",
                self.key_prefix, self.afnamedatum, self.toets.code, self.toets.versie
            );
        }
        out.push_str("</lr:resultaten></lr:toetsafname>\n");
    }
}

fn aanmaakdatum(sequence: u64) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2026, 11, 2)
        .expect("valid date")
        .and_hms_opt(0, 0, 0)
        .expect("valid time");
    (base + chrono::Duration::seconds(sequence as i64))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// Writes the messages, the roster and a setup note; deterministic for equal options.
#[cfg(test)]
fn generate(options: &GenerateOptions) -> std::io::Result<GenerateReport> {
    generate_with_progress(options, &mut |_| {})
}

/// Writes the messages, the roster and a setup note, deterministic for equal options,
/// calling `on_message` with the number of resultaten written after each message.
pub(crate) fn generate_with_progress(
    options: &GenerateOptions,
    on_message: &mut dyn FnMut(u64),
) -> std::io::Result<GenerateReport> {
    let invalid =
        |message: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, message.to_string());
    if options.schools == 0 || options.learners == 0 || options.toetsen == 0 || options.afnames == 0
    {
        return Err(invalid(
            "--schools, --learners, --toetsen and --afnames must be at least 1",
        ));
    }
    let single_file = options.out.extension().is_some_and(|ext| ext == "xml");
    if single_file && (options.drip || options.schools > 1) {
        return Err(invalid(
            "--out FILE.xml takes one batch for one school; give a folder otherwise",
        ));
    }
    let dir = if single_file {
        options
            .out
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    } else {
        options.out.clone()
    };
    std::fs::create_dir_all(&dir)?;
    let mut generator = Generator {
        options,
        single_file,
        rng: ChaCha8Rng::seed_from_u64(options.seed),
        toetsen_v1: (0..options.toetsen)
            .map(|index| GenToets::new(index, "1"))
            .collect(),
        toetsen_v2: (0..options.toetsen)
            .map(|index| GenToets::has_version_2(index).then(|| GenToets::new(index, "2")))
            .collect(),
        report: GenerateReport::default(),
        sequence: 0,
        on_message,
        dir,
    };
    let mut roster = BufWriter::new(File::create(generator.dir.join("roster.csv"))?);
    writeln!(roster, "school,leerlingid,eckid,naam")?;
    let mut setup = String::new();
    for school_index in 0..options.schools {
        let (brincode, dependancecode) = school_code(school_index);
        let school = format!("{brincode}{dependancecode}");
        let _ = writeln!(
            setup,
            "uwlr-gateway schools activate {school} --klantcode {} --mandate GEN-{school} --valid-from 2020-01-01",
            options.klantcode
        );
        let learners: Vec<(String, Option<String>)> = (0..options.learners)
            .map(|n| {
                let id = format!("G{school_index:03}L{n:06}");
                let eckid = (n % 2 == 0).then(|| format!("https://ketenid.nl/201703/gen-{id}"));
                (id, eckid)
            })
            .collect();
        for (id, eckid) in &learners {
            writeln!(
                roster,
                "{school},{id},{},Leerling {id}",
                eckid.as_deref().unwrap_or("")
            )?;
        }
        generator.school(school_index, &learners)?;
    }
    roster.flush()?;
    let dir = generator.dir;
    let mut report = generator.report;
    let _ = writeln!(
        setup,
        "uwlr-gateway leerlingen import {}",
        dir.join("roster.csv").display()
    );
    report.roster = dir.join("roster.csv");
    report.setup = dir.join("setup.txt");
    std::fs::write(&report.setup, setup)?;
    Ok(report)
}

/// The state of one `generate` run: the seeded generator, the toetsen and what was written.
struct Generator<'a> {
    options: &'a GenerateOptions,
    single_file: bool,
    dir: PathBuf,
    rng: ChaCha8Rng,
    toetsen_v1: Vec<GenToets>,
    toetsen_v2: Vec<Option<GenToets>>,
    report: GenerateReport,
    /// Messages started so far: their file names and aanmaakdatums follow it.
    sequence: u64,
    on_message: &'a mut dyn FnMut(u64),
}

/// A drip afname kept to be corrected later: learner, toets, and its keys.
struct Correction {
    learner: usize,
    toets_index: u32,
    key_prefix: String,
}

impl Generator<'_> {
    /// Writes the afnames of one school: one batch file, or one drip file per afname with
    /// a correction of an earlier afname every 50.
    fn school(
        &mut self,
        school_index: u32,
        learners: &[(String, Option<String>)],
    ) -> std::io::Result<()> {
        let options = self.options;
        let (brincode, dependancecode) = school_code(school_index);
        let school = format!("{brincode}{dependancecode}");
        let mut batch: Option<(MessageWriter, PathBuf)> = None;
        if !options.drip {
            let path = if self.single_file {
                options.out.clone()
            } else {
                self.dir.join(format!("{school}-batch.xml"))
            };
            let mut writer = MessageWriter::create(&path)?;
            self.sequence += 1;
            writer.write(&envelope_head(
                options,
                (&brincode, &dependancecode),
                &aanmaakdatum(self.sequence),
            ))?;
            batch = Some((writer, path));
        }
        let mut produced = 0u64;
        let mut counter = 0u64;
        let mut corrections: Vec<Correction> = Vec::new();
        let mut buffer = String::with_capacity(4096);
        while produced < options.afnames {
            let learner_index = (counter % options.learners as u64) as usize;
            let toets_index = self.rng.gen_range(0..options.toetsen);
            // In drip mode, second versions start halfway; a batch holds one version per toetscode.
            let halfway = produced * 2 >= options.afnames;
            let toets = match (
                &self.toetsen_v2[toets_index as usize],
                options.drip && halfway,
            ) {
                (Some(version_2), true) => version_2,
                _ => &self.toetsen_v1[toets_index as usize],
            };
            let afname = next_afname(
                &mut self.rng,
                options,
                (school_index, counter),
                options.afnames - produced,
                toets,
                &learners[learner_index],
            );
            buffer.clear();
            afname.write(&mut buffer);
            produced += afname.resultaten();
            self.report.resultaten += afname.resultaten();
            if options.drip && counter % 50 == 49 {
                corrections.push(Correction {
                    learner: learner_index,
                    toets_index,
                    key_prefix: afname.key_prefix.clone(),
                });
            }
            match batch.as_mut() {
                Some((writer, _)) => writer.write(&buffer)?,
                None => {
                    let toets = afname.toets.clone();
                    self.drip_message((&brincode, &dependancecode), &buffer, &toets)?;
                    // A correction of an earlier afname: same keys, other scores.
                    if let Some(correction) = (counter.is_multiple_of(50) && counter > 0)
                        .then(|| corrections.pop())
                        .flatten()
                    {
                        self.correction((&brincode, &dependancecode), correction, learners)?;
                    }
                }
            }
            counter += 1;
        }
        if let Some((mut writer, path)) = batch {
            writer.write("</lr:toetsafnames>\n<lr:toetsen>")?;
            for toets in &self.toetsen_v1 {
                buffer.clear();
                toets.write(&mut buffer);
                writer.write(&buffer)?;
            }
            writer.write(
                "</lr:toetsen>\n</lr:leerresultaten_verzoek></soapenv:Body></soapenv:Envelope>\n",
            )?;
            self.finished(writer, path)?;
        }
        Ok(())
    }

    /// One drip file: the head, one toetsafname as written in `body`, and its toets.
    fn drip_message(
        &mut self,
        school: (&str, &str),
        body: &str,
        toets: &GenToets,
    ) -> std::io::Result<()> {
        self.sequence += 1;
        let path = self
            .dir
            .join(format!("{:08}-{}{}.xml", self.sequence, school.0, school.1));
        let mut writer = MessageWriter::create(&path)?;
        writer.write(&envelope_head(
            self.options,
            school,
            &aanmaakdatum(self.sequence),
        ))?;
        writer.write(body)?;
        let mut toets_xml = String::new();
        toets.write(&mut toets_xml);
        writer.write(&format!("</lr:toetsafnames>\n<lr:toetsen>{toets_xml}</lr:toetsen>\n</lr:leerresultaten_verzoek></soapenv:Body></soapenv:Envelope>\n"))?;
        self.finished(writer, path)
    }

    /// A drip file that corrects an earlier afname of version 1 (its original pin): same
    /// keys, a later afnamedatum, other scores.
    fn correction(
        &mut self,
        school: (&str, &str),
        correction: Correction,
        learners: &[(String, Option<String>)],
    ) -> std::io::Result<()> {
        let toets = self.toetsen_v1[correction.toets_index as usize].clone();
        if toets.versie != "1" {
            return Ok(());
        }
        let (leerlingid, eckid) = learners[correction.learner].clone();
        let corrected = GenAfname {
            leerlingid,
            eckid,
            toets: &toets,
            key_prefix: correction.key_prefix,
            afnamedatum: "2027-03-01".into(),
            scores: toets.onderdelen.iter().map(|(_, max)| max / 2).collect(),
            send_total: false,
            score_shift: 1,
        };
        let mut body = String::new();
        corrected.write(&mut body);
        // Counted after the progress report, as before the split.
        let resultaten = corrected.resultaten();
        self.drip_message(school, &body, &toets)?;
        self.report.resultaten += resultaten;
        Ok(())
    }

    /// Closes a message file and counts it.
    fn finished(&mut self, writer: MessageWriter, path: PathBuf) -> std::io::Result<()> {
        self.report.bytes += writer.finish()?;
        self.report.messages += 1;
        (self.on_message)(self.report.resultaten);
        self.report.files.push(path);
        Ok(())
    }
}

/// The next afname of a school (`position`: school index and afname counter): random
/// scores within the toets's onderdelen, no more resultaten than `remaining`.
fn next_afname<'t>(
    rng: &mut ChaCha8Rng,
    options: &GenerateOptions,
    position: (u32, u64),
    remaining: u64,
    toets: &'t GenToets,
    learner: &(String, Option<String>),
) -> GenAfname<'t> {
    let (school_index, counter) = position;
    let mut scores: Vec<u64> = toets
        .onderdelen
        .iter()
        .map(|(_, max)| rng.gen_range(0..=*max))
        .collect();
    let mut send_total = toets.has_toetsnormering && rng.gen_bool(0.5);
    while scores.len() as u64 + u64::from(send_total) > remaining {
        if send_total {
            send_total = false;
        } else {
            scores.pop();
        }
    }
    let day = rng.gen_range(0..200);
    let afnamedatum = (chrono::NaiveDate::from_ymd_opt(2026, 9, 1).expect("valid date")
        + chrono::Duration::days(day))
    .format("%Y-%m-%d")
    .to_string();
    let (leerlingid, eckid) = learner.clone();
    GenAfname {
        leerlingid,
        eckid,
        toets,
        key_prefix: format!("G{}-{school_index}-{counter:09}", options.seed),
        afnamedatum,
        scores,
        send_total,
        score_shift: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path, drip: bool) -> GenerateOptions {
        GenerateOptions {
            schools: 2,
            learners: 5,
            toetsen: 4,
            afnames: 120,
            seed: 7,
            drip,
            klantcode: "DEMO-EA".into(),
            klantnaam: "Demo Uitgever".into(),
            autorisatiesleutel: "demo-autorisatiesleutel-2026".into(),
            out: dir.to_path_buf(),
        }
    }

    #[test]
    fn output_is_deterministic() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let a = generate(&options(first.path(), true)).unwrap();
        let b = generate(&options(second.path(), true)).unwrap();
        assert_eq!(a.files.len(), b.files.len());
        for (x, y) in a.files.iter().zip(&b.files) {
            assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        }
        assert!(a.resultaten >= 240);
    }

    #[test]
    fn batch_validates_against_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let report = generate(&options(dir.path(), false)).unwrap();
        assert_eq!(report.files.len(), 2);
        let schema_dir = tempfile::tempdir().unwrap();
        let schemas = crate::schema::prepare(schema_dir.path(), None).unwrap();
        let vocabularies = crate::vdex::Vocabularies::load(None).unwrap();
        for file in report.files.iter().chain(
            generate(&options(&dir.path().join("drip"), true))
                .unwrap()
                .files
                .iter()
                .take(60),
        ) {
            let violations = crate::intake::validate_offline(
                file,
                &schemas,
                &vocabularies,
                &["2.2".into()],
                u64::MAX,
                crate::config::Config::default().aanmaakdatum_max_skew(),
            )
            .unwrap()
            .violations;
            assert!(
                violations.is_empty(),
                "{}: {:?}",
                file.display(),
                violations.items
            );
        }
    }
}
