"""Python zeep as an EA would use it: client from GET ?wsdl, one accepted call, one fault.

Usage: zeep_call.py ENDPOINT KLANTCODE KLANTNAAM KEY AANMAAKDATUM LEERLINGID

Exit 0 only when BrengLeerresultaten succeeded and a call with a wrong key raised
zeep.exceptions.Fault with a Client.* faultcode. Prints one line per call, which the
Rust test (tests/it/interop.rs) also checks.
"""

import sys

import zeep
import zeep.exceptions

NS_AUTORISATIE = "http://www.edustandaard.nl/leerresultaten/2/autorisatie"


def verzoek(aanmaakdatum, leerlingid, key):
    """The body parts of a small valid leerresultaten_verzoek, as zeep keyword arguments."""
    return {
        "school": {
            "schooljaar": "2026-2027",
            "brincode": "99XX",
            "dependancecode": "01",
            "aanmaakdatum": aanmaakdatum,
            "xsdversie": "2.2",
        },
        "toetsafnames": {
            "toetsafname": [
                {
                    "leerlingid": leerlingid,
                    "resultaten": {
                        "resultaat": [
                            {
                                "key": key,
                                "afnamedatum": "2026-10-01",
                                "toetscode": "ZEEP-TOETS",
                                "score": 7,
                            }
                        ]
                    },
                }
            ]
        },
        "toetsen": {
            "toets": [
                {
                    "toetscode": {"_value_1": "ZEEP-TOETS"},
                    "toetsnaam": "Interop zeep",
                    "toetsnormering": {
                        "norm": [{"term": "alles", "beginnormwaarde": 0, "eindnormwaarde": 10}]
                    },
                }
            ]
        },
    }


def main(argv):
    endpoint, klantcode, klantnaam, sleutel, aanmaakdatum, leerlingid = argv[1:7]
    client = zeep.Client(endpoint + "?wsdl")
    autorisatie_type = client.get_element("{%s}autorisatie" % NS_AUTORISATIE)
    service = client.create_service(
        "{http://www.edustandaard.nl/leerresultaten/2/leerresultaten}bndLeerresultaten", endpoint
    )

    def header(key):
        return autorisatie_type(autorisatiesleutel=key, klantcode=klantcode, klantnaam=klantnaam)

    answer = service.BrengLeerresultaten(
        _soapheaders=[header(sleutel)], **verzoek(aanmaakdatum, leerlingid, "ZEEP-" + leerlingid)
    )
    print("zeep accepted: %r" % (answer,))

    try:
        service.BrengLeerresultaten(
            _soapheaders=[header(sleutel + "-fout")],
            **verzoek(aanmaakdatum, leerlingid, "ZEEP-FOUT-" + leerlingid),
        )
    except zeep.exceptions.Fault as fault:
        print("zeep fault: %s" % fault.code)
        if "Client." not in (fault.code or ""):
            print("unexpected faultcode %r (%s)" % (fault.code, fault.message), file=sys.stderr)
            return 1
        return 0
    print("the call with a wrong autorisatiesleutel did not raise zeep.exceptions.Fault", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
