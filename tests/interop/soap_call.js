// node-soap as an EA would use it: client from GET ?wsdl, one accepted call, one fault.
//
// Usage: node soap_call.js ENDPOINT KLANTCODE KLANTNAAM KEY AANMAAKDATUM LEERLINGID
//
// Exit 0 only when BrengLeerresultaten succeeded and a call with a wrong key was
// answered with a SOAP fault whose faultcode holds "Client.". Prints one line per
// call, which the Rust test (tests/it/interop.rs) also checks.
'use strict';

const soap = require('soap');

const NS_AUTORISATIE = 'http://www.edustandaard.nl/leerresultaten/2/autorisatie';

function verzoek(aanmaakdatum, leerlingid, key) {
  return {
    school: {
      schooljaar: '2026-2027',
      brincode: '99XX',
      dependancecode: '01',
      aanmaakdatum,
      xsdversie: '2.2',
    },
    toetsafnames: {
      toetsafname: [
        {
          leerlingid,
          resultaten: {
            resultaat: [
              {
                attributes: { key },
                afnamedatum: '2026-10-01',
                toetscode: 'NODE-TOETS',
                score: 6,
              },
            ],
          },
        },
      ],
    },
    toetsen: {
      toets: [
        {
          toetscode: 'NODE-TOETS',
          toetsnaam: 'Interop node-soap',
          toetsnormering: { norm: [{ term: 'alles', beginnormwaarde: 0, eindnormwaarde: 10 }] },
        },
      ],
    },
  };
}

function escape(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function header(klantcode, klantnaam, sleutel) {
  return (
    `<aut:autorisatie xmlns:aut="${NS_AUTORISATIE}">` +
    `<aut:autorisatiesleutel>${escape(sleutel)}</aut:autorisatiesleutel>` +
    `<aut:klantcode>${escape(klantcode)}</aut:klantcode>` +
    `<aut:klantnaam>${escape(klantnaam)}</aut:klantnaam>` +
    `</aut:autorisatie>`
  );
}

function faultcode(error) {
  const fault = error && error.root && error.root.Envelope && error.root.Envelope.Body && error.root.Envelope.Body.Fault;
  return fault ? String(fault.faultcode) : undefined;
}

async function main(argv) {
  const [endpoint, klantcode, klantnaam, sleutel, aanmaakdatum, leerlingid] = argv.slice(2, 8);
  const client = await soap.createClientAsync(`${endpoint}?wsdl`, { endpoint });

  client.addSoapHeader(header(klantcode, klantnaam, sleutel));
  const [answer] = await client.BrengLeerresultatenAsync(verzoek(aanmaakdatum, leerlingid, `NODE-${leerlingid}`));
  console.log(`node-soap accepted: ${JSON.stringify(answer)}`);

  client.clearSoapHeaders();
  client.addSoapHeader(header(klantcode, klantnaam, `${sleutel}-fout`));
  try {
    await client.BrengLeerresultatenAsync(verzoek(aanmaakdatum, leerlingid, `NODE-FOUT-${leerlingid}`));
  } catch (error) {
    const code = faultcode(error);
    console.log(`node-soap fault: ${code}`);
    if (!code || !code.includes('Client.')) {
      console.error(`unexpected error: ${error && error.message}`);
      return 1;
    }
    return 0;
  }
  console.error('the call with a wrong autorisatiesleutel was not answered with a fault');
  return 1;
}

main(process.argv).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`node-soap call failed: ${error && error.stack ? error.stack : error}`);
    if (error && error.body) console.error(error.body);
    process.exit(1);
  },
);
