//! Property tests of the xAPI id derivation: ids are deterministic, distinct for distinct names, keys and deployments, and well-formed UUIDs (v5 public, v8 keyed).

use super::xapi::{IdKey, Mapping};
use proptest::prelude::*;
use uuid::{Uuid, Variant};

fn mapping(base_iri: &str, key: Option<&[u8]>) -> Mapping {
    let mapping = Mapping::new(base_iri).expect("a valid base IRI");
    match key {
        Some(key) => mapping.with_id_key(IdKey::new(key.to_vec())),
        None => mapping,
    }
}

/// The version of a UUID in its canonical text form, which must be RFC 9562's variant.
fn version(id: &str) -> usize {
    let uuid = Uuid::parse_str(id).expect("a UUID");
    assert_eq!(uuid.to_string(), id, "the canonical lowercase form");
    assert_eq!(uuid.get_variant(), Variant::RFC4122);
    uuid.get_version_num()
}

/// Base IRIs as `Mapping::new` accepts them.
fn base_iri() -> impl Strategy<Value = String> {
    "https://[a-z]{1,12}\\.example(/[a-z0-9]{1,8}){0,2}"
}

/// Id names: the gateway's are `|`-joined keys, but any text must work.
fn name() -> impl Strategy<Value = String> {
    "\\PC{0,80}"
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 32)
}

proptest! {
    #[test]
    fn ids_are_deterministic(base in base_iri(), name in name(), key in key(), keyed in any::<bool>()) {
        let first = mapping(&base, Some(&key));
        let again = mapping(&base, Some(&key));
        prop_assert_eq!(first.id(&name, keyed), again.id(&name, keyed));
        prop_assert_eq!(first.id(&name, keyed), first.id(&name, keyed));
    }

    #[test]
    fn public_ids_are_uuid_v5_and_keyed_ids_uuid_v8(base in base_iri(), name in name(), key in key()) {
        let keyed = mapping(&base, Some(&key));
        prop_assert_eq!(version(&keyed.id(&name, false)), 5);
        prop_assert_eq!(version(&keyed.id(&name, true)), 8);
        // Without a key (tools, unit tests) a keyed id falls back to the public one.
        let unkeyed = mapping(&base, None);
        prop_assert_eq!(unkeyed.id(&name, true), keyed.id(&name, false));
    }

    #[test]
    fn distinct_names_get_distinct_ids(base in base_iri(), names in (name(), name()), key in key()) {
        prop_assume!(names.0 != names.1);
        let mapping = mapping(&base, Some(&key));
        for keyed in [false, true] {
            prop_assert_ne!(mapping.id(&names.0, keyed), mapping.id(&names.1, keyed));
        }
    }

    #[test]
    fn keyed_ids_depend_on_the_key_and_never_equal_the_public_id(
        base in base_iri(),
        name in name(),
        keys in (key(), key()),
    ) {
        prop_assume!(keys.0 != keys.1);
        let first = mapping(&base, Some(&keys.0));
        let second = mapping(&base, Some(&keys.1));
        prop_assert_ne!(first.id(&name, true), second.id(&name, true));
        prop_assert_ne!(first.id(&name, true), first.id(&name, false));
        // The public id is the deployment's, whatever its key.
        prop_assert_eq!(first.id(&name, false), second.id(&name, false));
    }

    #[test]
    fn another_deployment_gets_other_ids(bases in (base_iri(), base_iri()), name in name(), key in key()) {
        prop_assume!(bases.0 != bases.1);
        let first = mapping(&bases.0, Some(&key));
        let second = mapping(&bases.1, Some(&key));
        for keyed in [false, true] {
            prop_assert_ne!(first.id(&name, keyed), second.id(&name, keyed));
        }
    }
}
